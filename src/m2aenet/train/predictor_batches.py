"""Training batches for a mask predictor trained apart (`train.predictor`): crops of synth
folders with hard negatives (and a share of whole sharp photos), or synthetic crops made once."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch.utils.data import ConcatDataset

if TYPE_CHECKING:
    from m2aenet.train.predictor import PredictorTraining


def synth_pool(split: str, size: int, count: int, mode: str, seed: int) -> dict[str, torch.Tensor]:
    """`count` synthetic (blur, mask) pairs of `size` px, stacked."""
    from m2aenet.data.synth_dataset import OnTheFlySynthDataset

    data = OnTheFlySynthDataset(split, (size, size), mode, seed, count, blur_reference_side=512)
    items = [data[index] for index in range(count)]
    return {key: torch.stack([item[key] for item in items]) for key in ("blur", "mask")}


class Batches:
    """Random training batches (blur (B, 3, crop, crop), mask (B, 1, crop, crop)) from synth
    folders or from synthetic crops.

    Batch `step` depends only on the seed, the step and the index generator's state, so a run
    continued from `state_dict()` draws the batches an uninterrupted one would."""

    def __init__(self, settings: PredictorTraining) -> None:
        from m2aenet.data.blur_crops import BlurCentredCrops
        from m2aenet.data.hard_negatives import HardNegatives

        self.batch = settings.batch
        self.step = 0
        self.generator = torch.Generator().manual_seed(settings.seed)
        self.seed = settings.seed
        self.crops = self.tensors = self.sharp = None
        self.sharp_fraction = settings.sharp_fraction
        if settings.pools:
            negatives = (
                HardNegatives(defocus_max_radius=settings.defocus_max_radius)
                if settings.hard_negatives
                else None
            )
            if settings.sharp_photos and settings.sharp_fraction > 0:
                from m2aenet.data.sharp_crops import SharpPhotoCrops

                self.sharp = SharpPhotoCrops(
                    settings.sharp_photos, settings.crop, hard_negatives=negatives
                )
            self.crops = ConcatDataset(
                [
                    BlurCentredCrops(
                        root,
                        settings.crop,
                        crops_per_frame=1,
                        centred_fraction=settings.centred_fraction,
                        hard_negatives=negatives,
                        zoom_out=settings.zoom_out,
                        zoom_keep_blur=settings.zoom_keep_blur,
                        min_blur=settings.min_blur,
                    )
                    for root in settings.pools
                ]
            )
        else:
            self.tensors = synth_pool(
                "train", settings.crop, settings.samples, "mixed", settings.seed
            )

    def state_dict(self) -> dict[str, Any]:
        return {"step": self.step, "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.step = int(state["step"])
        self.generator.set_state(state["generator"])

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        self.step += 1
        if self.crops is not None:
            index = torch.randint(len(self.crops), (self.batch,), generator=self.generator)
            # Which items are whole sharp photos, and which photo (drawn even without them,
            # so the synth crops of a batch do not depend on the sharp photos).
            sharp = torch.rand(self.batch, generator=self.generator) < self.sharp_fraction
            photo = torch.randint(2**31 - 1, (self.batch,), generator=self.generator)
            items = []
            for position, frame in enumerate(index.tolist()):
                np.random.seed((self.seed * 1_000_003 + self.step * 131 + position) % 2**31)
                if self.sharp is not None and sharp[position]:
                    items.append(self.sharp[int(photo[position]) % len(self.sharp)])
                else:  # crops, hard negatives, flips and turns
                    items.append(self.crops[frame])
            return tuple(torch.stack([item[key] for item in items]) for key in ("blur", "mask"))
        index = torch.randint(len(self.tensors["blur"]), (self.batch,), generator=self.generator)
        blur, mask = self.tensors["blur"][index], self.tensors["mask"][index]
        if self.step % 2:  # flips: a small pool goes further
            blur, mask = blur.flip(-1), mask.flip(-1)
        if self.step % 4 >= 2:
            blur, mask = blur.flip(-2), mask.flip(-2)
        return blur, mask
