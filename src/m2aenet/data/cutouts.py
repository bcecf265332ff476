"""Photographed objects with their own alpha (RGBA cut-outs) as the data engine's movers.

Segments of photos give real outlines but rarely a whole thing. A cut-out is one: an animal,
a vehicle, a person, a tool, photographed and freed from its background, with the internal
structure, thin parts and straight edges of the real object. `scripts/collect_cutouts.py`
gathers the photographed ones of Debian's `tuxpaint-stamps-default` into a folder; the realism
engine moves them (`Realism.cutout`, `Realism.cutouts`).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
from PIL import Image

from m2aenet.errors import InputError

# Cut-outs are enlarged at most this much: further up they turn soft, and a soft object that
# is labelled sharp would teach the predictor that softness is not blur.
MAX_UPSCALE = 1.5
MIN_OPAQUE_PIXELS = 400  # smaller drawn sizes carry too little of the object to show motion


def cutout_paths(folder: str | os.PathLike) -> list[Path]:
    """The PNG files of `folder` (recursively), sorted; InputError if there are none."""
    root = Path(folder)
    if not root.is_dir():
        raise InputError(f"{root}: cut-out folder not found (scripts/collect_cutouts.py makes one)")
    paths = sorted(p for p in root.rglob("*.png") if p.is_file())
    if not paths:
        raise InputError(f"{root}: no .png cut-outs in it")
    return paths


def load_cutout(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """(premultiplied colour float32 (h, w, 3) in [0, 255], alpha float32 (h, w) in [0, 1]),
    cropped to the opaque part; InputError naming the file if it has no alpha or no object."""
    try:
        with Image.open(path) as image:
            if "A" not in image.getbands() and "transparency" not in image.info:
                raise InputError(f"{path}: a cut-out needs an alpha channel")
            rgba = np.asarray(image.convert("RGBA"), dtype=np.float32)
    except OSError as error:
        raise InputError(f"{path}: cannot read the cut-out ({error})") from None
    alpha = rgba[..., 3] / 255.0
    ys, xs = np.nonzero(alpha > 0.02)
    if len(ys) == 0:
        raise InputError(f"{path}: the cut-out is fully transparent")
    box = (slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1))
    # Premultiplied, so resizing does not bleed the transparent pixels' colour into the rim.
    return rgba[box][..., :3] * alpha[box][..., None], alpha[box]


class Cutouts:
    """The cut-outs of a folder, decoded once each, drawn at a wanted area."""

    def __init__(self, folder: str | os.PathLike) -> None:
        self.paths = cutout_paths(folder)
        self._loaded: dict[Path, tuple[np.ndarray, np.ndarray]] = {}

    def _get(self, path: Path) -> tuple[np.ndarray, np.ndarray]:
        if path not in self._loaded:
            self._loaded[path] = load_cutout(path)
        return self._loaded[path]

    def pick(
        self, rng: np.random.Generator, area: float, largest: tuple[int, int]
    ) -> tuple[np.ndarray, np.ndarray, dict]:
        """A random cut-out scaled so its opaque area is about `area` pixels (but enlarged at
        most MAX_UPSCALE times, and no larger than `largest` = (h, w)), mirrored half of the
        time: (texture uint8 (h, w, 3), alpha float32 (h, w) in [0, 1], description)."""
        path = self.paths[int(rng.integers(len(self.paths)))]
        colour, alpha = self._get(path)
        opaque = float(alpha.sum())
        scale = min(
            math.sqrt(max(area, MIN_OPAQUE_PIXELS) / opaque),
            MAX_UPSCALE,
            largest[0] / alpha.shape[0],
            largest[1] / alpha.shape[1],
        )
        height = max(2, round(alpha.shape[0] * scale))
        width = max(2, round(alpha.shape[1] * scale))
        colour = _resized(colour, (height, width))
        alpha = np.clip(_resized(alpha, (height, width)), 0.0, 1.0)
        texture = colour / np.maximum(alpha, 1e-3)[..., None]  # back from premultiplied
        texture = np.clip(np.rint(texture), 0, 255).astype(np.uint8)
        mirrored = bool(rng.random() < 0.5)
        if mirrored:
            texture, alpha = texture[:, ::-1], alpha[:, ::-1]
        described = {
            "source": str(path),
            "scale": round(scale, 4),
            "mirrored": mirrored,
        }
        return np.ascontiguousarray(texture), np.ascontiguousarray(alpha), described


def _resized(array: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """float32 (h, w) or (h, w, C) resized to `size` = (height, width), Lanczos per channel."""
    height, width = size
    if array.ndim == 2:
        image = Image.fromarray(array.astype(np.float32), mode="F")
        return np.asarray(image.resize((width, height), Image.LANCZOS), dtype=np.float32)
    channels = [_resized(array[..., c], size) for c in range(array.shape[-1])]
    return np.stack(channels, axis=-1)
