"""Reading and writing images: the one place that touches image files.

Arrays are float32 in [0, 1], shape (H, W, 3) for colour, unless a function says otherwise.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

from m2aenet.atomic import atomic_path
from m2aenet.errors import InputError


def read_rgb(path: str | os.PathLike) -> np.ndarray:
    """Read any Pillow-readable image as float32 RGB (H, W, 3) in [0, 1].

    16-bit images keep their precision; gray is replicated to RGB; alpha is dropped.
    Raises InputError naming the file when it cannot be decoded.
    """
    path = Path(path)
    try:
        with Image.open(path) as image:
            image.load()
            if image.mode in ("I;16", "I;16B", "I;16L", "I"):
                array = np.asarray(image, dtype=np.float32) / 65535.0
                array = np.repeat(array[..., None], 3, axis=2)
            else:
                array = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    except FileNotFoundError as error:
        raise InputError(f"{path}: file not found") from error
    except (OSError, ValueError, Image.DecompressionBombError) as error:
        raise InputError(f"{path}: cannot read image ({error})") from error
    return np.ascontiguousarray(np.clip(array, 0.0, 1.0))


def read_mask(path: str | os.PathLike) -> np.ndarray:
    """Read a blur mask PNG as float32 (H, W) in {0, 1} (pixels > 127 count as blurred)."""
    path = Path(path)
    try:
        with Image.open(path) as image:
            gray = np.asarray(image.convert("L"))
    except FileNotFoundError as error:
        raise InputError(f"{path}: file not found") from error
    except (OSError, ValueError, Image.DecompressionBombError) as error:
        raise InputError(f"{path}: cannot read mask ({error})") from error
    return (gray > 127).astype(np.float32)


def to_uint8(array: np.ndarray) -> np.ndarray:
    """Float [0, 1] -> uint8 with rounding, the way a saved output is quantized."""
    return np.clip(np.round(np.asarray(array, dtype=np.float32) * 255.0), 0, 255).astype(np.uint8)


def write_png(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write (H, W) or (H, W, 3|4) as PNG atomically; floats are taken as [0, 1] -> 8-bit."""
    if array.dtype != np.uint8 and array.dtype != np.uint16:
        array = to_uint8(array)
    if array.dtype == np.uint16 and array.ndim == 2:
        image = Image.fromarray(array, mode="I;16")
    else:
        image = Image.fromarray(array)
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG")
