"""Whole sharp photos, labelled sharp everywhere, for the mask predictor (issue 19).

Inside synth frames the predictor only sees sharp content next to a moving object, at the
engine's pixel scale and through the engine's renderer. Real sharp photos are different: whole
frames at any scale, with their own camera's tone, noise, JPEG and defocused backgrounds, and
the shipped predictor marked 4-64% of them. A crop here is a random window of a photo at a
random pixel scale, half of them with a shallow depth of field (a sharp subject before a
defocused background), through a random camera (`camera.Camera`, without the motion), with the
sharp-labelled look-alikes of `hard_negatives`; its mask is all zero.

Which photos: the train split's photos (never val or test ones) and folders of extra sharp
photos, e.g. the wallpapers `scripts/collect_extra_photos.py` gathers. The real development set
(devset/real) must never be among them.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from m2aenet.data.camera import CameraRates, sample_camera
from m2aenet.data.compositing import image_to_linear
from m2aenet.data.hard_negatives import HardNegatives, apply_hard_negatives, defocus
from m2aenet.data.masks import blob_mask
from m2aenet.data.sources import PhotoCache, folder_photos, photo_pool, random_crop
from m2aenet.data.synth_degrade import jpeg_roundtrip
from m2aenet.data.transforms import paired_random_flip_rotate
from m2aenet.errors import InputError

#: A `sharp_photos` entry meaning the synth engine's own train-split photos.
TRAIN_SPLIT = "train-split"
# Frame sides (px) a crop's pixel scale is drawn for: the whole photo fits a frame of this
# side at the widest zoom. Real photos users deblur are 400-1500 px; the synth frames 512.
_FRAME_SIDES = (384, 1280)
_CACHE_SHORT_SIDE = 1280


def sharp_photo_paths(sources: Sequence[str | os.PathLike]) -> list:
    """The photos of `sources`: folders or files, `TRAIN_SPLIT` for the train split's photos."""
    paths = []
    for source in sources:
        if str(source) == TRAIN_SPLIT:
            paths += photo_pool("train")
        else:
            paths += folder_photos([source])
    if not paths:
        raise InputError(f"no sharp photos in {', '.join(map(str, sources))}")
    return paths


def shallow_depth_of_field(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """`image` (H, W, 3) uint8 with everything but a subject (a blob of 15-45% of the crop)
    out of focus: a disc of radius 2-12 px, as a portrait lens blurs a crowd behind a player.

    The real development set's sharp photos with such backgrounds were marked at 43-57% by the
    predictors of sessions 6-9, whose defocus negatives were small patches of radius <= 5."""
    height, width = image.shape[:2]
    subject = blob_mask(height, width, float(rng.uniform(0.15, 0.45)), rng)[..., None]
    radius = float(rng.uniform(2.0, 12.0))
    return np.where(subject, image, defocus(image, radius))


class SharpPhotoCrops(torch.utils.data.Dataset):
    """`len(photos)` items, each a fresh random crop of that photo:
    {"blur", "sharp": (3, crop, crop) float in [0, 1] (the same image), "mask": zeros (1, crop,
    crop)}. Draws come from np.random (seed it per item for reproducible batches)."""

    def __init__(
        self,
        sources: Sequence[str | os.PathLike],
        crop: int,
        camera: CameraRates | None = None,
        hard_negatives: HardNegatives | None = None,
        bokeh: float = 0.5,
    ) -> None:
        self.photos = sharp_photo_paths(sources)
        self.crop = int(crop)
        self.camera = camera or CameraRates()
        self.hard_negatives = hard_negatives
        self.bokeh = float(bokeh)
        self.cache = PhotoCache(_CACHE_SHORT_SIDE)

    def __len__(self) -> int:
        return len(self.photos)

    def __getitem__(self, index: int) -> dict[str, Any]:
        rng = np.random.default_rng(int(np.random.randint(0, 2**31 - 1)))
        side = int(rng.integers(*_FRAME_SIDES))
        size = (self.crop, self.crop)
        image, _ = random_crop(
            self.cache.get(self.photos[index]), size, rng, reference=(side, side), min_fraction=0.5
        )
        if rng.random() < self.bokeh:
            image = shallow_depth_of_field(image, rng)
        camera = sample_camera(rng, self.camera)
        image = camera.develop(camera.scene_radiance(image_to_linear(image)))
        if camera.jpeg is not None:
            image = jpeg_roundtrip(image, camera.jpeg)
        mask = np.zeros(size, dtype=np.float32)
        if self.hard_negatives is not None:
            image, _ = apply_hard_negatives(image, image, mask, rng, self.hard_negatives)
        tensors = [torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)]
        tensors.append(torch.from_numpy(mask)[None])
        image_t, mask_t = paired_random_flip_rotate(tensors, rng)
        image_t = image_t.float().div_(255.0).contiguous()
        return {"blur": image_t, "sharp": image_t, "mask": mask_t.contiguous()}
