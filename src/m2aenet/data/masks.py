"""Blob-shaped masks: irregular, smooth-edged regions like real moving objects."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def smooth_noise(height: int, width: int, scale: float, rng: np.random.Generator) -> np.ndarray:
    """Gaussian-smoothed white noise (H, W), float32, zero mean; `scale` is the blob size in px."""
    sigma = max(scale / 4.0, 0.5)
    radius = int(3 * sigma) + 1
    taps = np.arange(-radius, radius + 1, dtype=np.float32)
    kernel = np.exp(-0.5 * (taps / sigma) ** 2)
    kernel = torch.from_numpy(kernel / kernel.sum())
    noise = torch.from_numpy(rng.standard_normal((height, width)).astype(np.float32))
    field = noise[None, None]
    # Separable blur with reflect padding; torch keeps it vectorized and fast at 1024 px.
    field = F.conv2d(F.pad(field, (radius, radius, 0, 0), mode="reflect"), kernel.view(1, 1, 1, -1))
    field = F.conv2d(F.pad(field, (0, 0, radius, radius), mode="reflect"), kernel.view(1, 1, -1, 1))
    field = field[0, 0].numpy()
    return (field - field.mean()) / (field.std() + 1e-8)


def blob_mask(
    height: int, width: int, fraction: float, rng: np.random.Generator, scale: float | None = None
) -> np.ndarray:
    """Boolean (H, W) mask of smooth irregular blobs covering about `fraction` of the pixels.

    The threshold is the (1 - fraction) quantile of a smooth random field, so the covered
    fraction is exact up to ties; blob boundaries are not aligned to any tile grid.
    """
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must be in [0, 1], got {fraction}")
    if fraction == 0.0:
        return np.zeros((height, width), dtype=bool)
    if fraction == 1.0:
        return np.ones((height, width), dtype=bool)
    scale = scale if scale is not None else max(height, width) / 6.0
    field = smooth_noise(height, width, scale, rng)
    threshold = np.quantile(field, 1.0 - fraction)
    return field > threshold
