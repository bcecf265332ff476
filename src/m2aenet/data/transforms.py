"""Paired augmentations: one random window, flip and rotation applied to blur, sharp and mask.

Pure functions. Images are numpy arrays or torch tensors whose last two axes are (H, W):
(C, H, W) tensors, (H, W) masks. Randomness comes only from the `rng` argument, a
`numpy.random.Generator` or a `torch.Generator`, so a DataLoader worker that seeds its generator
reproduces its samples exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import torch

Array = TypeVar("Array", np.ndarray, torch.Tensor)
Rng = np.random.Generator | torch.Generator


def random_int(rng: Rng, high: int) -> int:
    """A uniform integer in [0, high) drawn from a numpy or torch generator."""
    if high <= 0:
        raise ValueError(f"random_int needs high > 0, got {high}")
    if isinstance(rng, torch.Generator):
        return int(torch.randint(high, (1,), generator=rng).item())
    return int(rng.integers(high))


def crop_size_pair(crop_size: int | Sequence[int]) -> tuple[int, int]:
    """Normalize an int or (height, width) crop size; raises ValueError unless positive."""
    if isinstance(crop_size, int | np.integer):
        size = (int(crop_size), int(crop_size))
    else:
        values = tuple(int(v) for v in crop_size)
        if len(values) != 2:
            raise ValueError(f"crop size must be an int or (height, width), got {crop_size!r}")
        size = (values[0], values[1])
    if min(size) <= 0:
        raise ValueError(f"crop size must be positive, got {crop_size!r}")
    return size


def spatial_size(images: Sequence[Array]) -> tuple[int, int]:
    """The common (H, W) of the last two axes; raises ValueError if the images disagree."""
    sizes = {tuple(int(s) for s in image.shape[-2:]) for image in images}
    if len(sizes) != 1:
        raise ValueError(f"paired images differ in size: {sorted(sizes)}")
    height, width = sizes.pop()
    return height, width


def random_crop_window(
    height: int, width: int, crop_size: int | Sequence[int], rng: Rng
) -> tuple[int, int, int, int]:
    """A uniformly placed (top, left, crop_height, crop_width) window inside (height, width).

    Raises ValueError when the crop is larger than the image (callers add the file name).
    """
    crop_h, crop_w = crop_size_pair(crop_size)
    if crop_h > height or crop_w > width:
        raise ValueError(f"crop {crop_h}x{crop_w} is larger than the image {height}x{width}")
    top = random_int(rng, height - crop_h + 1)
    left = random_int(rng, width - crop_w + 1)
    return top, left, crop_h, crop_w


def crop(images: Sequence[Array], top: int, left: int, height: int, width: int) -> list[Array]:
    """The same window [top:top+height, left:left+width] of every image (views, no copy)."""
    return [image[..., top : top + height, left : left + width] for image in images]


def paired_random_crop(
    images: Sequence[Array], crop_size: int | Sequence[int], rng: Rng
) -> list[Array]:
    """Crop one random window, identical for all images (which must share their size)."""
    height, width = spatial_size(images)
    top, left, crop_h, crop_w = random_crop_window(height, width, crop_size, rng)
    return crop(images, top, left, crop_h, crop_w)


@dataclass(frozen=True)
class FlipRotate:
    """A dihedral transform: optional left-right and up-down flips, then `rotations` x 90
    degrees counter-clockwise."""

    hflip: bool = False
    vflip: bool = False
    rotations: int = 0


def sample_flip_rotate(
    rng: Rng,
    hflip: bool = True,
    vflip: bool = True,
    rotate: bool = True,
    square: bool = True,
) -> FlipRotate:
    """Draw a random FlipRotate; each disabled part stays identity.

    Three draws are always made, so switching a part off does not shift later random numbers.
    square=False allows only 0 or 180 degree turns, which keep (H, W): a batch of non-square
    crops must keep one shape.
    """
    flip_lr = random_int(rng, 2) == 1
    flip_ud = random_int(rng, 2) == 1
    turns = random_int(rng, 4)
    if not square:
        turns = 2 * (turns // 2)
    return FlipRotate(
        hflip=hflip and flip_lr, vflip=vflip and flip_ud, rotations=turns if rotate else 0
    )


def apply_flip_rotate(images: Sequence[Array], op: FlipRotate) -> list[Array]:
    """Apply `op` to every image (last two axes); numpy results may be views."""
    out = []
    for image in images:
        if isinstance(image, torch.Tensor):
            if op.hflip:
                image = torch.flip(image, dims=(-1,))
            if op.vflip:
                image = torch.flip(image, dims=(-2,))
            if op.rotations % 4:
                image = torch.rot90(image, op.rotations % 4, dims=(-2, -1))
        else:
            if op.hflip:
                image = np.flip(image, axis=-1)
            if op.vflip:
                image = np.flip(image, axis=-2)
            if op.rotations % 4:
                image = np.rot90(image, op.rotations % 4, axes=(-2, -1))
        out.append(image)
    return out


def paired_random_flip_rotate(
    images: Sequence[Array],
    rng: Rng,
    hflip: bool = True,
    vflip: bool = True,
    rotate: bool = True,
) -> list[Array]:
    """Random flips and 90-degree turns, identical for all images.

    Quarter turns are used only on square images so the output keeps its shape otherwise.
    """
    height, width = spatial_size(images)
    op = sample_flip_rotate(rng, hflip=hflip, vflip=vflip, rotate=rotate, square=height == width)
    return apply_flip_rotate(images, op)
