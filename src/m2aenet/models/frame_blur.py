"""Image-level blur evidence: how far a frame's sharpest parts stay correlated along a direction.

A sharp photo is sharp somewhere: an edge, a texture, a subject in focus, where the derivative
along any direction loses its correlation within a pixel or two. Camera shake smears every part
of the frame along its path, so even the sharpest tiles stay correlated along it, over a good
part of the blur length (a smooth smear) or at the spacing of its copies (a jerky one). A
derivative flattens a scene's own spectrum and each tile's autocorrelation is divided by its
value at lag 0, so the figure follows the blur far more than the scene or its contrast (the
predictor's share of marked pixels does not: bokeh photos reach 40-48%, shaken ones 15-25%).
Only the derivative along the direction is followed along it: a long sharp edge parallel to
it does not change along it, so it cannot pass for a smear. The frame's figure, per direction,
is a low quantile over its textured tiles (its sharpest parts); its extent, the largest over
the directions.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from m2aenet.models.gaussian import gaussian_blur, gaussian_radius

WORKING_SIDE = 640  # px: the frame is measured at this longest side, so blur counts relative to it
TILE = 64
STRIDE = 64  # tiles side by side: overlapping ones (32) took 75 ms at 640x360, these 9
MAX_LAG = 20  # steps: correlations are followed this far, so lengths stop at MAX_EXTENT px
FFT_SIDE = 96  # >= TILE + MAX_LAG
DIRECTIONS = ((0, 1), (1, 1), (1, 0), (1, -1))  # (dy, dx): 0, 45, 90 and 135 degrees
MAX_EXTENT = MAX_LAG * math.sqrt(2.0)  # limits.MAX_FRAME_BLUR_EXTENT
PRESMOOTH_SIGMA = 1.0  # spreads sensor noise and JPEG blocks over ~2 px: they do not pass as detail
TEXTURED_SHARE = 0.2  # tiles judged: energy >= this share of the strongest (edges, not noise)
SHARPEST_QUANTILE = 0.25
DETAIL_SHARE = 0.05  # a tile has detail when its energy is >= this share of the frame's strongest
MIN_DETAIL_COVER = 0.5  # a frame with detail in fewer tiles than this gives no evidence


def frame_blur_extent(image: torch.Tensor) -> torch.Tensor:
    """(B,) blur extent in px at `WORKING_SIDE`: the correlation length, along the direction
    where it is largest, of the derivative along that direction at the frame's sharpest
    textured tiles.

    About 1-1.7 on sharp photos, 3 and more on camera-shaken ones; 0 (no evidence) when the
    frame is smaller than a tile or mostly flat: a blurred subject on a plain wall is the local
    mask's to find, and the wall needs no restoring. `image` (B, 3, H, W) in [0, 1].
    """
    if image.dim() != 4 or image.shape[1] != 3:
        raise ValueError(f"image must have shape (B, 3, H, W), got {tuple(image.shape)}")
    with torch.autocast(image.device.type, enabled=False), torch.no_grad():
        luma = _working_luma(image.float())
        if min(luma.shape[-2:]) < TILE + 1:
            return image.new_zeros(image.shape[0], dtype=torch.float32)
        return _extent(luma)


def _extent(luma: torch.Tensor) -> torch.Tensor:
    """(B,) the figure of working-size luma (B, 1, h, w)."""
    measured = [_tile_lengths(_derivative(luma, step), step) for step in DIRECTIONS]
    lengths, energies = zip(*measured, strict=True)
    per_direction = torch.stack(
        [
            torch.stack([_sharpest(one, e) for one, e in zip(length, energy, strict=True)])
            for length, energy in zip(lengths, energies, strict=True)
        ]
    )  # (directions, B)
    energy = torch.stack(energies).sum(dim=0)  # (B, tiles)
    detailed = energy >= DETAIL_SHARE * energy.amax(dim=1, keepdim=True).clamp_min(1e-12)
    enough = detailed.float().mean(dim=1) >= MIN_DETAIL_COVER
    return torch.where(enough, per_direction.amax(dim=0), torch.zeros_like(per_direction[0]))


def _working_luma(image: torch.Tensor) -> torch.Tensor:
    weights = image.new_tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    luma = (image * weights).sum(dim=1, keepdim=True)
    height, width = luma.shape[-2:]
    scale = WORKING_SIDE / max(height, width)
    if scale < 1.0:
        size = (max(1, round(height * scale)), max(1, round(width * scale)))
        luma = F.interpolate(luma, size=size, mode="area")
    return _gaussian(luma, PRESMOOTH_SIGMA)


def _gaussian(luma: torch.Tensor, sigma: float) -> torch.Tensor:
    if min(luma.shape[-2:]) <= gaussian_radius(sigma):  # too small to reflect-pad
        return luma
    return gaussian_blur(luma, sigma)


def _derivative(luma: torch.Tensor, step: tuple[int, int]) -> torch.Tensor:
    """The difference to the neighbour one `step` (dy, dx) away, on a common (H - 1, W - 2) grid.

    Only the derivative along a direction: an edge parallel to it (a bamboo stalk, a stripe)
    does not change along it, so it cannot pass for a smear in that direction."""
    dy, dx = step
    height, width = luma.shape[-2:]
    base = luma[..., : height - 1, 1 : width - 1]
    moved = luma[..., dy : height - 1 + dy, 1 + dx : width - 1 + dx]
    return moved - base


def _tile_lengths(
    derivative: torch.Tensor, step: tuple[int, int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """(length in px, energy), each (B, tiles): each TILE x TILE tile's correlation length of
    `derivative` along `step` (its autocorrelation over lags 1..MAX_LAG, negative parts
    dropped), and its mean square."""
    window = torch.hann_window(
        TILE, periodic=False, dtype=derivative.dtype, device=derivative.device
    )
    tiles = derivative[:, 0].unfold(1, TILE, STRIDE).unfold(2, TILE, STRIDE)
    tiles = tiles.reshape(tiles.shape[0], -1, TILE, TILE)  # (B, tiles, T, T)
    energy = tiles.square().mean(dim=(-2, -1))
    centred = (tiles - tiles.mean(dim=(-2, -1), keepdim=True)) * (window[:, None] * window[None, :])
    # Zero-padded by more than MAX_LAG: the lags read do not wrap around the tile.
    power = torch.fft.rfft2(centred, s=(FFT_SIDE, FFT_SIDE)).abs().square()
    correlation = torch.fft.irfft2(power, s=(FFT_SIDE, FFT_SIDE))
    lags = torch.arange(0, MAX_LAG + 1, device=derivative.device)
    rows, cols = (lags * step[0]) % FFT_SIDE, (lags * step[1]) % FFT_SIDE
    along = correlation[..., rows, cols]  # (B, tiles, MAX_LAG + 1)
    along = along / along[..., :1].clamp_min(1e-12)
    return along[..., 1:].clamp_min(0.0).sum(dim=-1) * math.hypot(*step), energy


def _sharpest(length: torch.Tensor, energy: torch.Tensor) -> torch.Tensor:
    """The frame's figure in one direction: a low quantile of its textured tiles' lengths."""
    if float(energy.max()) <= 0.0:
        return length.new_zeros(())
    textured = length[energy >= TEXTURED_SHARE * energy.max()]
    return torch.quantile(textured, SHARPEST_QUANTILE)
