"""Alpha mattes of foreground objects: irregular blobs with a soft, feathered edge."""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from m2aenet.data.masks import smooth_noise


def object_alpha(
    height: int, width: int, rng: np.random.Generator, feather: float = 1.0
) -> np.ndarray:
    """Alpha (H, W) float32 in [0, 1] of one irregular object filling most of the box.

    The outline is an ellipse perturbed by smooth noise (so no two objects look alike), kept to
    its largest piece with holes filled; the edge is feathered by a Gaussian of `feather` px
    (soft edges like a real object's slightly defocused rim). The box border stays transparent,
    so warping the sprite never shows a hard edge.
    """
    margin = math.ceil(3.0 * feather) + 1
    inner_h, inner_w = height - 2 * margin, width - 2 * margin
    if inner_h < 4 or inner_w < 4:
        raise ValueError(f"object box {width}x{height} too small for a {feather:.1f} px feather")
    ys = np.linspace(-1.0, 1.0, inner_h, dtype=np.float32)[:, None]
    xs = np.linspace(-1.0, 1.0, inner_w, dtype=np.float32)[None, :]
    ellipse = 1.0 - (xs**2 + ys**2)
    scale = min(inner_h, inner_w) * rng.uniform(0.25, 0.5)
    wobble = smooth_noise(inner_h, inner_w, scale, rng) * rng.uniform(0.2, 0.55)
    hard = ellipse + wobble > 0.0
    labels, count = ndimage.label(hard)
    if count > 1:
        sizes = np.bincount(labels.ravel())[1:]
        hard = labels == 1 + int(np.argmax(sizes))
    hard = ndimage.binary_fill_holes(hard)
    if hard.mean() < 0.2:  # the noise ate the shape: fall back to the plain ellipse
        hard = ellipse > 0.0
    full = np.zeros((height, width), dtype=np.float32)
    full[margin : margin + inner_h, margin : margin + inner_w] = hard
    alpha = ndimage.gaussian_filter(full, sigma=feather, mode="constant", truncate=3.0)
    alpha[alpha < 1e-3] = 0.0  # drop the Gaussian's far tail so the box border is exactly 0
    return np.clip(alpha, 0.0, 1.0).astype(np.float32)
