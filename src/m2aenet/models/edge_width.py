"""How wide the edges are, per edge orientation: what tells a smear from defocus.

A motion smear widens the edges that cross its direction and leaves the edges along it as
sharp as the rest of the photo; a defocus disc widens every edge. So over a neighbourhood, the
*narrowest* orientation's edge width stays at the sharp level under motion and grows under
defocus, while the *widest* grows under both. On the real development set (session 16,
`docs/training.md`) the narrowest width was 0.6-0.8 px on the clock and the walkers, as on
sharp photos, and 1.0-1.9 px on the defocused crowds and leaves that the predictor marked;
the energy cues of `blur_cues` could not tell those apart.

Width at an edge pixel is read from how much a known Gaussian re-blur (sigma s0) lowers the
gradient there: a step blurred to sigma s has a peak gradient ratio R = sqrt(s^2 + s0^2) / s,
so s = s0 / sqrt(R^2 - 1) (the gradient-ratio estimate of defocus maps). Edge pixels are the
local maxima of the gradient along its direction.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from m2aenet.models.gaussian import gaussian_blur

#: Channels of `edge_width_cues`: narrowest and widest log2 width, support, edge density.
EDGE_CUE_CHANNELS = 4
REBLUR_SIGMA = 2.0  # s0: wide enough to measure widths up to ~4 px before the ratio flattens
MAX_WIDTH = 12.0  # px; a ratio near 1 (flat gradient) means "very wide", not infinite
ORIENTATIONS = 8  # gradient-direction bins over 180 degrees
MIN_CONTRAST = 0.02  # gradient (luma in [0, 1] per px) below which no edge is read
NEIGHBOURHOOD = 11  # 1/4-size cells (44 px) pooled per estimate: a few edges of each bin
MIN_EDGES = 3.0  # edge pixels an orientation needs in a neighbourhood to count


def _central_gradients(luma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    padded = F.pad(luma, (1, 1, 1, 1), mode="replicate")
    grad_x = (padded[..., 1:-1, 2:] - padded[..., 1:-1, :-2]) / 2
    grad_y = (padded[..., 2:, 1:-1] - padded[..., :-2, 1:-1]) / 2
    return grad_x, grad_y


def _edge_pixels(magnitude: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    """Pixels whose gradient is a local maximum along its direction (rounded to 45 degrees)
    and above MIN_CONTRAST."""
    height, width = magnitude.shape[-2:]
    padded = F.pad(magnitude, (1, 1, 1, 1), mode="replicate")

    def shifted(dy: int, dx: int) -> torch.Tensor:
        return padded[..., 1 + dy : 1 + dy + height, 1 + dx : 1 + dx + width]

    direction = torch.floor(torch.remainder(angle + math.pi / 8, math.pi) / (math.pi / 4))
    direction = direction.long().clamp(max=3)
    ahead = torch.stack([shifted(0, 1), shifted(1, 1), shifted(1, 0), shifted(1, -1)])
    behind = torch.stack([shifted(0, -1), shifted(-1, -1), shifted(-1, 0), shifted(-1, 1)])
    ahead = torch.gather(ahead, 0, direction[None]).squeeze(0)
    behind = torch.gather(behind, 0, direction[None]).squeeze(0)
    return (magnitude >= ahead) & (magnitude >= behind) & (magnitude > MIN_CONTRAST)


def _neighbourhood_sum(cells: torch.Tensor) -> torch.Tensor:
    """Sum over NEIGHBOURHOOD x NEIGHBOURHOOD cells around each cell (zeros past the border)."""
    pad = NEIGHBOURHOOD // 2
    area = NEIGHBOURHOOD * NEIGHBOURHOOD
    return F.avg_pool2d(cells, NEIGHBOURHOOD, stride=1, padding=pad, count_include_pad=True) * area


def _orientation_widths(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per 1/4-size cell's neighbourhood and orientation (B, ORIENTATIONS, H/4, W/4): the mean
    edge width (px), the edge pixels, and whether there are at least MIN_EDGES of them."""
    luma = x.float().mean(dim=1, keepdim=True)
    grad_x, grad_y = _central_gradients(luma)
    magnitude = torch.hypot(grad_x, grad_y)
    reblurred = gaussian_blur(luma, REBLUR_SIGMA, truncate=3.0, pad_mode="replicate")
    ratio = (magnitude / (torch.hypot(*_central_gradients(reblurred)) + 1e-6)).clamp(min=1.001)
    widths = (REBLUR_SIGMA / torch.sqrt(ratio.square() - 1)).clamp(max=MAX_WIDTH)
    angle = torch.remainder(torch.atan2(grad_y, grad_x), math.pi)
    edges = _edge_pixels(magnitude, angle)
    bins = torch.remainder(angle + math.pi / (2 * ORIENTATIONS), math.pi) / (math.pi / ORIENTATIONS)
    bins = bins.long().clamp(max=ORIENTATIONS - 1)
    per_bin = torch.cat(
        [(edges & (bins == k)).to(luma.dtype) for k in range(ORIENTATIONS)], dim=1
    )  # (B, ORIENTATIONS, H, W)
    counts = _neighbourhood_sum(F.avg_pool2d(per_bin, 4) * 16)
    sums = _neighbourhood_sum(F.avg_pool2d(per_bin * widths, 4) * 16)
    return sums / counts.clamp(min=1.0), counts, counts >= MIN_EDGES


def _narrowest(mean: torch.Tensor, supported: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, 1, h, w): the narrowest supported orientation's width (inf where none) and whether
    at least two orientations are supported (a verdict needs directions to compare)."""
    narrowest = torch.where(supported, mean, torch.full_like(mean, math.inf)).amin(1, keepdim=True)
    return narrowest, supported.sum(1, keepdim=True) >= 2


def edge_width_cues(x: torch.Tensor) -> torch.Tensor:
    """Edge widths of x (B, 3, H, W) per 1/4-size cell's neighbourhood: (B, 4, H/4, W/4).

    Channels: log2 of the narrowest and of the widest orientation's mean edge width (0 where
    fewer than two orientations have MIN_EDGES edge pixels), that support (1 or 0), and the
    neighbourhood's edge density (log1p of edge pixels / 4). H and W must be multiples of 4.
    """
    mean, counts, supported = _orientation_widths(x)
    narrowest, valid = _narrowest(mean, supported)
    widest = torch.where(supported, mean, torch.zeros_like(mean)).amax(1, keepdim=True)
    narrowest = torch.log2(torch.where(valid, narrowest, torch.ones_like(narrowest)))
    valid = valid.to(mean.dtype)
    widest = torch.log2(widest.clamp(min=1e-3)) * valid
    density = torch.log1p(counts.sum(1, keepdim=True) / 4)
    return torch.cat([narrowest, widest, valid, density], dim=1)


def defocused_cells(x: torch.Tensor, veto: float) -> torch.Tensor:
    """Cells (B, 1, H/4, W/4) of x (B, 3, H, W) that look defocused rather than smeared:
    even their narrowest edge orientation is wider than `veto` px (MAX_WIDTH > veto > 0)."""
    mean, _, supported = _orientation_widths(x)
    narrowest, valid = _narrowest(mean, supported)
    return valid & (narrowest > veto)
