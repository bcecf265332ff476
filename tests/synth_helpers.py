"""Small generated photos for the data-engine tests."""

from __future__ import annotations

import numpy as np


def texture(height: int, width: int, seed: int) -> np.ndarray:
    """A smooth colourful uint8 texture with detail, like a photo crop."""
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    phase = rng.uniform(0, 6, 3)
    image = np.stack([0.5 + 0.4 * np.sin(xs / 5 + ys / 7 + p) for p in phase], -1)
    image += rng.normal(0, 0.05, image.shape)
    return np.clip(image * 255, 0, 255).astype(np.uint8)


def patchy_texture(height: int, width: int, seed: int) -> np.ndarray:
    """`texture` with six flat rectangles on it: segments for a segmentation to find."""
    image = texture(height, width, seed)
    rng = np.random.default_rng(seed + 1)
    for _ in range(6):
        y, x = rng.integers(0, height), rng.integers(0, width)
        image[y : y + height // 4, x : x + width // 4] = rng.integers(0, 256, 3)
    return image
