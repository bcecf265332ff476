"""Camera degradations applied to a synthetic blurred image: sensor noise and JPEG."""

from __future__ import annotations

import io
import math

import numpy as np
import torch
from PIL import Image

from m2aenet.data.compositing import linear_to_srgb, srgb_to_linear
from m2aenet.imageio import to_uint8


def sample_noise_levels(rng: np.random.Generator) -> dict:
    """Random Poisson-Gaussian levels: `shot` (variance per unit of linear signal) and `read`
    (variance floor), log-uniform over clean-phone to noisy-low-light."""
    return {
        "shot": round(math.exp(rng.uniform(math.log(1e-4), math.log(4e-3))), 7),
        "read": round(math.exp(rng.uniform(math.log(1e-6), math.log(1e-4))), 9),
    }


def add_sensor_noise(
    image: np.ndarray, shot: float, read: float, rng: np.random.Generator
) -> np.ndarray:
    """Poisson-Gaussian noise on a uint8 sRGB image (H, W, 3), applied in linear light.

    Each linear value x gets Gaussian noise of variance shot * x + read (the usual
    heteroscedastic approximation of photon and read noise); returns uint8 sRGB.
    """
    linear = srgb_to_linear(torch.from_numpy(image).float() / 255.0).numpy()
    sigma = np.sqrt(shot * linear + read)
    noisy = linear + sigma * rng.standard_normal(linear.shape).astype(np.float32)
    return to_uint8(linear_to_srgb(torch.from_numpy(noisy.astype(np.float32))).numpy())


def jpeg_roundtrip(image: np.ndarray, quality: int) -> np.ndarray:
    """Encode a uint8 RGB image (H, W, 3) as JPEG at `quality` (1-95) in memory and decode it."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=int(quality))
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        return np.asarray(decoded.convert("RGB")).copy()
