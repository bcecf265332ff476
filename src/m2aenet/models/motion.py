"""Intra-frame motion: a small U-Net predicts per-pixel motion, which becomes a trajectory.

Each pixel q gets a velocity v and an acceleration a (full-resolution pixels per exposure);
its trajectory is the K points `q_k = q + v t_k + a t_k^2` at exposure times t_k evenly spaced
in [-1/2, 1/2] (t = 0 is the sharp mid-exposure frame). The trajectory is used twice:
restoration blocks sample their input along it, and `reblur` averages an image along it
(the physical blur model, used by the reblur loss). The analyzer's decoder features are also
the low-resolution context that the full-resolution blocks read at each kept pixel.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def trajectory_times(points: int, like: torch.Tensor) -> torch.Tensor:
    """K exposure times evenly spaced in [-1/2, 1/2] (just [0] for K = 1), on like's device."""
    if points == 1:
        return like.new_zeros(1)
    return torch.linspace(-0.5, 0.5, points, dtype=like.dtype, device=like.device)


def motion_to_trajectory(motion: torch.Tensor, times: torch.Tensor) -> torch.Tensor:
    """Displacements `v t + a t^2` of every pixel at every time.

    motion (B, 4, H, W) = (v_x, v_y, a_x, a_y) in pixels; times (K,) -> (B, K, 2, H, W).
    """
    velocity = motion[:, None, 0:2]  # (B, 1, 2, H, W)
    acceleration = motion[:, None, 2:4]
    t = times.view(1, -1, 1, 1, 1)
    return velocity * t + acceleration * (t * t)


def upsample_trajectory(trajectory: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear upsampling (align_corners=False) of a (B, K, 2, h, w) trajectory to `size`.

    The trajectory is linear in the motion parameters, so computing it at the analyzer's
    resolution and upsampling once equals upsampling the motion first, with less work.
    """
    batch, points = trajectory.shape[:2]
    flat = F.interpolate(
        trajectory.flatten(1, 2), size=size, mode="bilinear", align_corners=False
    )  # (B, 2K, H, W)
    return flat.view(batch, points, 2, *size)


def sampling_grid(
    base: torch.Tensor, displacement: torch.Tensor, height: int, width: int
) -> torch.Tensor:
    """grid_sample coordinates (align_corners=True) of `base + displacement`.

    base and displacement hold pixel coordinates (x, y) on their last dim and broadcast;
    returns a new contiguous tensor of their broadcast shape. The one place this conversion
    happens, so the dense and the pruned path compute bit-identical sampling positions.
    """
    scale = torch.tensor([2.0 / (width - 1), 2.0 / (height - 1)], dtype=displacement.dtype)
    scale = scale.to(displacement.device)
    functional = torch.is_grad_enabled() and (base.requires_grad or displacement.requires_grad)
    # torch.export keeps the strides of `out=` results, which broke the caller's view, and
    # the TorchScript ONNX exporter has no `add` with `out=` (a TypeError naming add()).
    if functional or torch.compiler.is_exporting() or torch.jit.is_tracing():
        return (base + displacement).contiguous() * scale - 1.0
    # The same arithmetic without temporaries (out= and in-place ops do not support autograd).
    shape = torch.broadcast_shapes(base.shape, displacement.shape)
    grid = torch.empty(shape, dtype=displacement.dtype, device=displacement.device)
    torch.add(base, displacement, out=grid)
    return grid.mul_(scale).sub_(1.0)


def pixel_coordinates(height: int, width: int, like: torch.Tensor) -> torch.Tensor:
    """(H, W, 2) coordinates (x, y) of every pixel, in like's dtype and device."""
    ys = torch.arange(height, dtype=like.dtype, device=like.device)
    xs = torch.arange(width, dtype=like.dtype, device=like.device)
    return torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1)


def trajectory_grid(trajectory: torch.Tensor) -> torch.Tensor:
    """Sampling grid of every pixel's trajectory points: (B, K, 2, H, W) -> (B, H, W * K, 2).

    Point k of pixel (y, x) sits at column x * K + k, so `grid_sample` returns the K samples
    of a pixel next to each other.
    """
    batch, points, _, height, width = trajectory.shape
    base = pixel_coordinates(height, width, trajectory)[:, :, None]  # (H, W, 1, 2)
    displacement = trajectory.permute(0, 3, 4, 1, 2)  # (B, H, W, K, 2), a view
    grid = sampling_grid(base, displacement, height, width)  # contiguous (B, H, W, K, 2)
    return grid.view(batch, height, width * points, 2)


def sample_bilinear(features: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """Bilinear samples of features (B, C, H, W) at grid (B, Ho, Wo, 2), border padding."""
    return F.grid_sample(features, grid, mode="bilinear", padding_mode="border", align_corners=True)


def reblur(image: torch.Tensor, trajectory: torch.Tensor) -> torch.Tensor:
    """Average of `image` sampled along each pixel's trajectory: the blur the motion would cause.

    image (B, C, H, W); trajectory (B, K, 2, H, W) displacements in pixels -> (B, C, H, W).
    Bilinear sampling with border padding (points leaving the frame read the edge pixel).
    """
    batch, channels, height, width = image.shape
    points = trajectory.shape[1]
    samples = sample_bilinear(image, trajectory_grid(trajectory))  # (B, C, H, W * K)
    return samples.view(batch, channels, height, width, points).mean(dim=-1)


def densify_trajectory(trajectory: torch.Tensor, factor: int) -> torch.Tensor:
    """Insert `factor - 1` evenly spaced points between consecutive trajectory points.

    (B, K, 2, H, W) -> (B, (K - 1) * factor + 1, 2, H, W), piecewise linear in time, so a
    reblur with few trajectory points still spreads the image along the whole path.
    """
    points = trajectory.shape[1]
    if factor <= 1 or points < 2:
        return trajectory
    weights = torch.linspace(0.0, 1.0, factor + 1, dtype=trajectory.dtype, device=trajectory.device)
    weights = weights[:-1].view(1, 1, -1, 1, 1, 1)  # (1, 1, f, 1, 1, 1)
    start, end = trajectory[:, :-1, None], trajectory[:, 1:, None]  # (B, K-1, 1, 2, H, W)
    between = start + (end - start) * weights  # (B, K-1, f, 2, H, W)
    between = between.flatten(1, 2)
    return torch.cat((between, trajectory[:, -1:]), dim=1)


def _conv(in_channels: int, out_channels: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1), nn.GELU()
    )


class MotionAnalyzer(nn.Module):
    """U-Net at 1/4 resolution: motion parameters and context features.

    forward(features (B, Cin, h, w), blur_prob (B, 1, h, w)) ->
    (motion (B, 4, h, w) = (v_x, v_y, a_x, a_y) in full-resolution pixels,
     context (B, width, h, w)). Level i runs at 1/2**i of the input size with width * 2**i
    channels; the deepest levels hold most parameters at a small fraction of the cost.
    """

    def __init__(self, in_channels: int, width: int, levels: int, motion_scale: float) -> None:
        super().__init__()
        self.motion_scale = motion_scale
        widths = [width * 2**level for level in range(levels + 1)]
        self.inp = nn.Conv2d(in_channels, width, 3, padding=1)
        # The blur probability enters through a per-channel weight instead of as one more
        # conv input channel: an odd channel count (16 + 1) made the first conv 3x slower.
        self.prob_weight = nn.Parameter(torch.zeros(width, 1, 1))
        self.act = nn.GELU()
        self.down = nn.ModuleList(
            nn.Sequential(
                _conv(widths[i], widths[i + 1], stride=2), _conv(widths[i + 1], widths[i + 1])
            )
            for i in range(levels)
        )
        self.lateral = nn.ModuleList(nn.Conv2d(widths[i + 1], widths[i], 1) for i in range(levels))
        # No 3x3 conv after the last upsampling: at 1/4 size it would cost as much as two
        # deeper levels, and the heads that follow are pointwise anyway.
        self.up = nn.ModuleList(
            _conv(widths[i], widths[i]) if i > 0 else nn.GELU() for i in range(levels)
        )
        self.motion_head = nn.Conv2d(width, 4, 1)
        # Start from (almost) no motion: blocks then sample at the pixel itself.
        nn.init.normal_(self.motion_head.weight, std=1e-3)
        nn.init.zeros_(self.motion_head.bias)

    def forward(
        self, features: torch.Tensor, blur_prob: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.act(self.inp(features) + self.prob_weight * blur_prob)
        skips = [x]
        for down in self.down:
            x = down(x)
            skips.append(x)
        skips.pop()
        for level in reversed(range(len(self.down))):
            skip = skips[level]
            # 1x1 before upsampling: fewer channels to interpolate.
            x = F.interpolate(
                self.lateral[level](x), size=skip.shape[-2:], mode="bilinear", align_corners=False
            )
            x = self.up[level](x + skip)
        return self.motion_head(x) * self.motion_scale, x
