"""A torch Dataset that synthesizes blur pairs on the fly (no files), for training."""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch
from torch.utils.data import Dataset

from m2aenet.data.realism import Realism
from m2aenet.data.sources import photo_pool
from m2aenet.data.synth import MOTION_SAMPLES, SampleGenerator


class OnTheFlySynthDataset(Dataset):
    """Sample i is generated from (seed, split, i): the same pixels as `m2aenet synth` writes
    for image i with the same arguments, and the same in every epoch and every worker.

    size: (height, width); mode: "local", "global" or "mixed" (global with probability
    `global_fraction`); sources: files or folders replacing the split's photo pool.
    Items follow the shared sample contract: {"blur", "sharp": float32 (3, H, W) in [0, 1],
    "mask": float32 (1, H, W) in {0, 1}, "has_mask": True, "name": str}; with
    `with_motion=True` also "motion": float32 (K, 2, H, W) at K = `motion_points` times evenly
    spaced over the exposure, ends included: pass the model's `trajectory_points` to compare
    with its trajectory directly (see docs/data.md). `blur_reference_side` and `blur_length`
    set the blur lengths as `SampleGenerator` does; `realism` turns on the realistic scene mix
    and camera (`m2aenet.data.realism.Realism`).
    """

    def __init__(
        self,
        split: str = "train",
        size: tuple[int, int] = (256, 256),
        mode: str = "local",
        seed: int = 0,
        length: int = 1000,
        global_fraction: float = 0.2,
        sources: Sequence[str | os.PathLike] | None = None,
        noise: bool = False,
        jpeg: int | None = None,
        with_motion: bool = False,
        motion_points: int = MOTION_SAMPLES,
        blur_reference_side: int | None = None,
        blur_length: tuple[float, float] | None = None,
        realism: Realism | None = None,
    ) -> None:
        if length < 1:
            raise ValueError(f"length must be >= 1, got {length}")
        self.split, self.seed, self.length = split, int(seed), int(length)
        self.with_motion = with_motion
        self.generator = SampleGenerator(
            photo_pool(split, sources),
            size,
            mode,
            seed,
            split,
            global_fraction,
            noise,
            jpeg,
            motion_points=motion_points,
            blur_reference_side=blur_reference_side,
            blur_length=blur_length,
            realism=realism,
        )

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < self.length:
            raise IndexError(f"index {index} out of range for {self.length} samples")
        sample = self.generator(index)
        item = {
            "blur": torch.from_numpy(sample.blur).permute(2, 0, 1).float().div_(255.0),
            "sharp": torch.from_numpy(sample.sharp).permute(2, 0, 1).float().div_(255.0),
            "mask": torch.from_numpy(sample.mask).float()[None],
            "has_mask": True,
            "name": f"synth-{self.split}-{self.seed}-{index:06d}",
        }
        if self.with_motion:
            item["motion"] = torch.from_numpy(sample.motion.astype("float32")).permute(2, 3, 0, 1)
        return item
