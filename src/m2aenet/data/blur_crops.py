"""Training crops centred on blurred pixels, cut from a fixed pool of synthetic frames.

Why: local blur covers ~8% of a photo, so uniform crops spend most of the compute on sharp
pixels that the masked loss ignores. Frames are synthesized once at the size the model is
judged on (so blur length and object size keep the test set's proportions) and every epoch
cuts new crops from them, most of them centred on a random blurred pixel.

With `zoom_out`, a share of the crops is cut larger and area-downscaled to the crop size: the
frames are made from photos zoomed in 1-3x (soft backgrounds, long blur), while users' photos
are downscaled from their cameras (crisp backgrounds, short blur, small movers). The predictor
trained without it marked the defocused backgrounds of small real photos at 40-60% and missed
small ghosted walkers, and both changed strongly with the photo's scale (session 14).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from m2aenet.data import transforms
from m2aenet.data.datasets import PairedImageDataset
from m2aenet.data.hard_negatives import HardNegatives, apply_hard_negatives
from m2aenet.data.synth_writer import image_records
from m2aenet.errors import InputError
from m2aenet.imageio import to_uint8


def shortest_blurs(root: str | os.PathLike) -> dict[str, float]:
    """Frame name -> its shortest blur in px (the least blurred moving object, or the shake
    of a global frame), from a synth folder's meta.json; {} when the folder has none."""
    shortest = {}
    for name, image in image_records(root).items():
        try:
            lengths = [part["blur_px"] for part in image.get("objects", []) if "blur_px" in part]
            lengths += [image["blur_px"]] if "blur_px" in image else []
            if lengths:
                shortest[name] = float(min(lengths))
        except (ValueError, TypeError, AttributeError) as error:
            raise InputError(f"{root}: image {name} of meta.json: bad blur_px ({error})") from error
    return shortest


def zoomed_out(
    blur: np.ndarray, sharp: np.ndarray, mask: np.ndarray, size: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(blur, sharp (H, W, 3) uint8, mask (H, W) uint8) area-downscaled to `size` x `size`;
    a pixel of the result is blurred when at least half of its area was."""
    images = torch.from_numpy(np.stack([blur, sharp])).permute(0, 3, 1, 2).float()
    images = F.interpolate(images, size=(size, size), mode="area")
    share = F.interpolate(
        torch.from_numpy(mask)[None, None].float(), size=(size, size), mode="area"
    )
    blur, sharp = (to_uint8(image.permute(1, 2, 0).numpy() / 255.0) for image in images)
    return blur, sharp, (share[0, 0].numpy() >= 0.5).astype(np.uint8)


class BlurCentredCrops(Dataset):
    """`crops_per_frame` crops of every frame of a dataset folder with blur masks.

    Item i is a `crop_size` crop of frame i // crops_per_frame: with probability
    `centred_fraction` centred (up to a quarter of the crop off) on a blurred pixel drawn
    uniformly from the frame's mask, else anywhere; then, with `hard_negatives`, sharp-labelled
    look-alikes of blur (`data.hard_negatives`) and random flips and 90-degree turns. With
    probability `zoom_out`, the window is 1/s times the crop, s drawn uniformly from
    [`min_zoom`, 1] (and no smaller than the frame allows), and area-downscaled to the crop;
    the mask keeps the pixels at least half blurred. `zoom_out` 0 draws nothing extra, so
    crops stay what they were. With `zoom_keep_blur` > 0, s also keeps the frame's shortest
    blur (`shortest_blurs`) at least that long: a 4-px blur zoomed out to 2 px is hardly
    visible, and labelled blurred it teaches marking crisp content; frames the folder's
    meta.json does not describe are then never zoomed. With `min_blur` > 0, frames whose
    shortest blur is under it are left out: a 3-5 px smear looks like slight defocus, and
    labelled blurred it teaches marking real photos' out-of-focus backgrounds (frames without
    a description are kept).
    Frames are decoded on first use and kept in memory as uint8 (about 1 MB per 512x512
    frame). Randomness comes from NumPy's global generator, which the training loader seeds
    per sample (`train.data.EpochSeededDataset`), so a resumed run cuts the same crops.
    Items follow the shared sample contract (see `data.datasets.PairedImageDataset`).
    """

    def __init__(
        self,
        root: str | os.PathLike,
        crop_size: int,
        crops_per_frame: int = 4,
        centred_fraction: float = 0.9,
        layout: Any = "generic",
        hard_negatives: HardNegatives | None = None,
        zoom_out: float = 0.0,
        min_zoom: float = 0.5,
        zoom_keep_blur: float = 0.0,
        min_blur: float = 0.0,
    ) -> None:
        if not 0.0 <= zoom_out <= 1.0:
            raise InputError(f"zoom_out must be in [0, 1], got {zoom_out}")
        if not 0.0 < min_zoom <= 1.0:
            raise InputError(f"min_zoom must be in (0, 1], got {min_zoom}")
        if not 0.0 <= zoom_keep_blur < math.inf:
            raise InputError(f"zoom_keep_blur must be >= 0 px, got {zoom_keep_blur}")
        if not 0.0 <= min_blur < math.inf:
            raise InputError(f"min_blur must be >= 0 px, got {min_blur}")
        if crops_per_frame < 1:
            raise InputError(f"crops_per_frame must be >= 1, got {crops_per_frame}")
        if not 0.0 <= centred_fraction <= 1.0:
            raise InputError(f"centred_fraction must be in [0, 1], got {centred_fraction}")
        self.root = Path(root)
        self.frames = PairedImageDataset(root, layout, require_mask=True)
        if len(self.frames) == 0:
            raise InputError(f"{self.root}: no frames")
        self.crop_size = int(crop_size)
        self.crops_per_frame = int(crops_per_frame)
        self.centred_fraction = float(centred_fraction)
        self.hard_negatives = hard_negatives
        self.zoom_out, self.min_zoom = float(zoom_out), float(min_zoom)
        self.zoom_keep_blur = float(zoom_keep_blur)
        needs_lengths = (zoom_out and zoom_keep_blur) or min_blur
        self.shortest_blur = shortest_blurs(root) if needs_lengths else {}
        # Indices of the frames crops are cut from (all of them unless `min_blur` drops some).
        self.kept = [
            index
            for index, sample in enumerate(self.frames.samples)
            if self.shortest_blur.get(sample.name, math.inf) >= min_blur
        ]
        if not self.kept:
            raise InputError(f"{self.root}: no frame has a blur of at least {min_blur:g} px")
        self._cache: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray, int]] = {}

    def __len__(self) -> int:
        return len(self.kept) * self.crops_per_frame

    def _frame(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
        """(blur, sharp (H, W, 3) uint8, mask (H, W) uint8, number of blurred pixels).

        Every frame stays cached (decoding PNGs per crop would starve the step), so only what
        is needed is kept: the blurred pixels' flat indices (int64) would cost up to 2 MB more
        per 512x512 frame and are found again when a crop is centred (~0.2 ms)."""
        cached = self._cache.get(index)
        if cached is None:
            item = self.frames[index]
            blur, sharp, mask = (
                item[key].permute(1, 2, 0).numpy() for key in ("blur", "sharp", "mask")
            )
            height, width = blur.shape[:2]
            if min(height, width) < self.crop_size:
                raise InputError(
                    f"{self.frames.samples[index].blur}: frame {height}x{width} is smaller "
                    f"than the crop {self.crop_size}"
                )
            mask = (mask[..., 0] > 0.5).astype(np.uint8)
            cached = (to_uint8(blur), to_uint8(sharp), mask, int(np.count_nonzero(mask)))
            self._cache[index] = cached
        return cached

    def _kept_blur_zoom(self, frame: int) -> float:
        """The smallest zoom that keeps the frame's shortest blur `zoom_keep_blur` px long."""
        if not self.zoom_keep_blur:
            return 0.0
        shortest = self.shortest_blur.get(self.frames.samples[frame].name)
        return self.zoom_keep_blur / shortest if shortest else 1.0

    def _window(self, rng: np.random.Generator, mask: np.ndarray, blurred: int, size: int):
        height, width = mask.shape
        if blurred and rng.random() < self.centred_fraction:
            centre = np.flatnonzero(mask)[rng.integers(blurred)]
            centre_y, centre_x = divmod(int(centre), width)
            jitter = size // 4
            top = centre_y - size // 2 + int(rng.integers(-jitter, jitter + 1))
            left = centre_x - size // 2 + int(rng.integers(-jitter, jitter + 1))
        else:
            top = int(rng.integers(height - size + 1))
            left = int(rng.integers(width - size + 1))
        return min(max(top, 0), height - size), min(max(left, 0), width - size)

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} crops")
        frame = self.kept[index // self.crops_per_frame]
        blur, sharp, mask, blurred = self._frame(frame)
        rng = np.random.default_rng(int(np.random.randint(0, 2**31 - 1)))
        size = self.crop_size
        if self.zoom_out and rng.random() < self.zoom_out:
            smallest = max(self.min_zoom, size / min(mask.shape), self._kept_blur_zoom(frame))
            if smallest < 1.0:
                size = min(round(size / rng.uniform(smallest, 1.0)), *mask.shape)
        top, left = self._window(rng, mask, blurred, size)
        window = (slice(top, top + size), slice(left, left + size))
        blur, sharp, mask = blur[window], sharp[window], mask[window]
        if size != self.crop_size:
            blur, sharp, mask = zoomed_out(blur, sharp, mask, self.crop_size)
        if self.hard_negatives is not None:
            blur, sharp = apply_hard_negatives(blur, sharp, mask, rng, self.hard_negatives)
        images = [
            torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)
            for image in (blur, sharp)
        ]
        images.append(torch.from_numpy(np.ascontiguousarray(mask))[None])
        images = transforms.paired_random_flip_rotate(images, rng)
        blur_t, sharp_t, mask_t = (image.contiguous() for image in images)
        return {
            "blur": blur_t.float().div_(255.0),
            "sharp": sharp_t.float().div_(255.0),
            "mask": mask_t.float(),
            "has_mask": True,
            "name": f"{self.frames.samples[frame].name}-crop{index % self.crops_per_frame}",
        }
