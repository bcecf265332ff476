"""Sharp photos for the data engine: which files make up each split, and random crops of them.

Splits (never mix them: the test photos are unseen in training, as backgrounds and as cut-outs):

- train: Debian `mate-backgrounds` (/usr/share/backgrounds/mate/{nature,desktop,abstract}) and
  the colour photos bundled with scikit-image.
- val: Debian `lomiri-wallpapers-20.04` and `ukui-wallpapers`: photos of their own, so a model
  that learns its training photos does not look better on val (it did while val drew new
  compositions of the training photos: docs/decisions.md, session 3).
- test: Debian `lomiri-wallpapers-16.04` only (the files `dpkg -L` lists).

A user folder (`--sources`) replaces the split's photos.
"""

from __future__ import annotations

import importlib.util
import math
import os
import re
import subprocess
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from m2aenet.errors import InputError
from m2aenet.imageio import read_rgb, to_uint8

SPLITS = ("train", "val", "test")
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".bmp"})
TRAIN_PACKAGES = ("mate-backgrounds",)
VAL_PACKAGES = ("lomiri-wallpapers-20.04", "ukui-wallpapers")
TEST_PACKAGES = ("lomiri-wallpapers-16.04",)
INSTALL_HINT = "apt-get install " + " ".join(TRAIN_PACKAGES + VAL_PACKAGES + TEST_PACKAGES)

# scikit-image's bundled colour photographs (grey images, charts and drawings are left out).
SKIMAGE_PHOTOS = (
    "astronaut.png",
    "chelsea.png",
    "coffee.png",
    "hubble_deep_field.jpg",
    "ihc.png",
    "motorcycle_left.png",
    "retina.jpg",
    "rocket.jpg",
)
MATE_FOLDERS = ("nature", "desktop", "abstract")
MATE_ROOT = Path("/usr/share/backgrounds/mate")
# These wallpapers are mostly transparent, meant to lie over a desktop colour; read_rgb drops
# alpha, which leaves flat black or white fields.
MATE_EXCLUDED = frozenset(
    {
        "Arc-Colors-Transparent-Wallpaper.png",
        "MATE-Stripes-Dark.png",
        "MATE-Stripes-Light.png",
        "Silk.png",
        "Spring.png",
        "Waves.png",
    }
)
_RESOLUTION_VARIANT = re.compile(r"^(?P<stem>.+)_\d+x\d+$")


def is_image_file(path: Path) -> bool:
    """True for files whose suffix is a readable image format."""
    return path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")


def skimage_photos() -> list[Path]:
    """scikit-image's bundled colour photos that exist in this install (read from disk directly)."""
    spec = importlib.util.find_spec("skimage")  # locates the package without importing it
    if spec is None or not spec.submodule_search_locations:
        return []
    folder = Path(next(iter(spec.submodule_search_locations))) / "data"
    return [folder / name for name in SKIMAGE_PHOTOS if (folder / name).is_file()]


def _package_files(package: str) -> list[Path] | None:
    """Files of an installed Debian package (`dpkg -L`), or None when it is not installed."""
    try:
        result = subprocess.run(
            ["dpkg", "-L", package], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if result.returncode != 0:
        return None
    return [Path(line) for line in result.stdout.splitlines() if line.strip()]


def _missing_package_error(package: str) -> InputError:
    return InputError(
        f"photo source package {package!r} is not installed; run `{INSTALL_HINT}` "
        "(or pass --sources FOLDER)"
    )


def _drop_resolution_variants(paths: list[Path]) -> list[Path]:
    """Keep `Name.jpg` and drop `Name_3840x2160.jpg` (the same picture, only larger)."""
    names = {(p.parent, p.stem) for p in paths}
    kept = []
    for path in paths:
        match = _RESOLUTION_VARIANT.match(path.stem)
        if match and (path.parent, match["stem"]) in names:
            continue
        kept.append(path)
    return kept


def mate_photos() -> list[Path]:
    """The `mate-backgrounds` wallpapers used for training (sorted). Raises InputError if absent."""
    files = _package_files("mate-backgrounds")
    if files is None:
        if not MATE_ROOT.is_dir():
            raise _missing_package_error("mate-backgrounds")
        files = [p for folder in MATE_FOLDERS for p in (MATE_ROOT / folder).glob("*")]
    folders = {MATE_ROOT / name for name in MATE_FOLDERS}
    photos = [
        p
        for p in files
        if p.parent in folders and is_image_file(p) and p.name not in MATE_EXCLUDED and p.is_file()
    ]
    if not photos:
        raise _missing_package_error("mate-backgrounds")
    return _drop_resolution_variants(sorted(set(photos)))


def package_photos(packages: Sequence[str]) -> list[Path]:
    """The image files of these Debian packages (sorted); InputError naming one that is absent."""
    photos: set[Path] = set()
    for package in packages:
        files = _package_files(package)
        found = {p for p in files or [] if is_image_file(p) and p.is_file()}
        if not found:
            raise _missing_package_error(package)
        photos |= found
    return sorted(photos)


def lomiri_photos() -> list[Path]:
    """The `lomiri-wallpapers-16.04` photos (test split, sorted); InputError if absent."""
    return package_photos(TEST_PACKAGES)


def val_photos() -> list[Path]:
    """The validation split's photos (sorted): none of them is a training or test photo."""
    return package_photos(VAL_PACKAGES)


def debian_photos_installed() -> bool:
    """Whether the Debian photo packages of all three splits are installed."""
    try:
        mate_photos()
        val_photos()
        lomiri_photos()
    except InputError:
        return False
    return True


def folder_photos(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """Image files in the given files and folders (folders searched recursively), sorted.

    Raises InputError naming the path when one does not exist or none holds any image.
    """
    photos: list[Path] = []
    given = [Path(p) for p in paths]
    for path in given:
        if path.is_file():
            if not is_image_file(path):
                raise InputError(f"{path}: not an image file (expected one of {_suffix_list()})")
            photos.append(path)
        elif path.is_dir():
            photos.extend(p for p in path.rglob("*") if p.is_file() and is_image_file(p))
        else:
            raise InputError(f"{path}: no such file or folder")
    if not photos:
        where = ", ".join(str(p) for p in given) or "(none given)"
        raise InputError(f"no source photos found in {where} (looked for {_suffix_list()})")
    return sorted(set(photos))


def _suffix_list() -> str:
    return " ".join(sorted(IMAGE_SUFFIXES))


def photo_pool(
    split: str = "train", sources: Sequence[str | os.PathLike] | None = None
) -> list[Path]:
    """The sorted list of photos a split draws from; `sources` (files or folders) overrides it."""
    if split not in SPLITS:
        raise InputError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    if sources:
        return folder_photos(sources)
    if split == "test":
        return lomiri_photos()
    if split == "val":
        return val_photos()
    return mate_photos() + skimage_photos()


class PhotoCache:
    """Decoded photos kept in memory as uint8 (H, W, 3), downscaled to a short side of at most
    `short_side` px (so a 4K wallpaper costs a few MB); least recently used ones are dropped
    beyond `max_bytes`. Decoding is deterministic, so eviction never changes results."""

    def __init__(self, short_side: int, max_bytes: int = 768 * 2**20) -> None:
        self.short_side = int(short_side)
        self.max_bytes = int(max_bytes)
        self._photos: OrderedDict[Path, np.ndarray] = OrderedDict()
        self._bytes = 0

    def get(self, path: str | os.PathLike) -> np.ndarray:
        """The photo at `path` as uint8 (H, W, 3); raises InputError naming it if unreadable."""
        path = Path(path)
        photo = self._photos.get(path)
        if photo is not None:
            self._photos.move_to_end(path)
            return photo
        photo = downscale_to_short_side(read_rgb(path), self.short_side)
        self._photos[path] = photo
        self._bytes += photo.nbytes
        while self._bytes > self.max_bytes and len(self._photos) > 1:
            _, dropped = self._photos.popitem(last=False)
            self._bytes -= dropped.nbytes
        return photo


def downscale_to_short_side(image: np.ndarray, short_side: int) -> np.ndarray:
    """Float (H, W, 3) in [0, 1] -> uint8, area-downscaled so min(H, W) <= short_side."""
    height, width = image.shape[:2]
    factor = short_side / min(height, width)
    if factor >= 1.0:
        return to_uint8(image)
    size = (max(1, round(height * factor)), max(1, round(width * factor)))
    return to_uint8(_resize(torch.from_numpy(np.ascontiguousarray(image)), size).numpy())


def _resize(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(H, W, 3) float -> (h, w, 3), antialiased bilinear (proper averaging when shrinking)."""
    chw = image.permute(2, 0, 1)[None]
    out = F.interpolate(chw, size=size, mode="bilinear", antialias=True, align_corners=False)
    return out[0].permute(1, 2, 0).clamp(0.0, 1.0).contiguous()


def random_crop(
    photo: np.ndarray,
    size: tuple[int, int],
    rng: np.random.Generator,
    reference: tuple[int, int] | None = None,
    min_fraction: float = 0.4,
) -> tuple[np.ndarray, dict]:
    """A random crop of `photo` (uint8 (H, W, 3)) resized to `size` = (h, w), uint8 sRGB.

    The zoom (photo pixels per output pixel) is drawn log-uniformly between the one that fits
    the whole photo into `reference` (default `size`; pass the frame size when cropping a
    smaller object so it gets the background's pixel scale) and `min_fraction` of that, without
    upscaling unless the photo is too small. Half of the crops are mirrored left-right.
    Returns the crop and a JSON-ready description {"box": [x, y, w, h], "zoom", "mirrored"}.
    """
    height, width = photo.shape[:2]
    out_h, out_w = size
    ref_h, ref_w = reference or size
    widest = min(height / ref_h, width / ref_w, height / out_h, width / out_w)
    lowest = max(widest * min_fraction, min(1.0, widest))
    zoom = math.exp(rng.uniform(math.log(lowest), math.log(widest))) if widest > lowest else widest
    box_h = min(height, max(1, round(out_h * zoom)))
    box_w = min(width, max(1, round(out_w * zoom)))
    y = int(rng.integers(0, height - box_h + 1))
    x = int(rng.integers(0, width - box_w + 1))
    mirrored = bool(rng.random() < 0.5)
    window = photo[y : y + box_h, x : x + box_w]
    if mirrored:
        window = window[:, ::-1]
    crop = np.ascontiguousarray(window)
    if (box_h, box_w) != (out_h, out_w):
        crop = to_uint8(_resize(torch.from_numpy(crop).float() / 255.0, (out_h, out_w)).numpy())
    info = {"box": [x, y, box_w, box_h], "zoom": round(zoom, 4), "mirrored": mirrored}
    return crop, info
