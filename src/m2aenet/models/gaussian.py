"""Separable Gaussian blur of single-channel maps, shared by the image-level blur measures."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def gaussian_radius(sigma: float, truncate: float = 4.0) -> int:
    """Taps on each side of the centre: the kernel is cut at `truncate` sigmas."""
    return math.ceil(truncate * sigma)


def gaussian_blur(
    image: torch.Tensor, sigma: float, truncate: float = 4.0, pad_mode: str = "reflect"
) -> torch.Tensor:
    """(B, 1, H, W) blurred by a Gaussian of `sigma` px, a row pass then a column pass, the
    borders padded by `pad_mode` ("reflect" needs H and W above `gaussian_radius`)."""
    radius = gaussian_radius(sigma, truncate)
    taps = torch.arange(-radius, radius + 1, dtype=image.dtype, device=image.device)
    kernel = torch.exp(-0.5 * (taps / sigma) ** 2)
    kernel = kernel / kernel.sum()
    padded = F.pad(image, (radius, radius, radius, radius), mode=pad_mode)
    rows = F.conv2d(padded, kernel.view(1, 1, 1, -1))
    return F.conv2d(rows, kernel.view(1, 1, -1, 1))
