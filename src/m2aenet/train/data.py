"""Training and validation data: dataset construction and a resumable, sharded sample order.

Reproducibility and exact resume rest on two things here:
- the order of samples is a pure function of (seed, epoch, rank), so a resumed run can start
  at any position without replaying the batches before it;
- each sample is drawn with the global random generators seeded from (seed, epoch, index),
  so random crops and flips do not depend on which worker loads it or on what ran before.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import BatchSampler, ConcatDataset, DataLoader, Dataset, Sampler, Subset

from m2aenet.errors import ConfigError, M2AENetError
from m2aenet.train.config import DataSection, DataSource

# Large odd multipliers spread (seed, epoch, index) over the 64-bit seed space.
_EPOCH_MIX = 0x9E3779B97F4A7C15
_INDEX_MIX = 0xBF58476D1CE4E5B9
_MASK64 = (1 << 64) - 1


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """The 64-bit seed of sample `index` in `epoch` of a run seeded with `seed`."""
    return (seed + (epoch + 1) * _EPOCH_MIX + (index + 1) * _INDEX_MIX) & _MASK64


def build_dataset(source: DataSource, role: str, motion_points: int | None = None) -> Dataset:
    """The dataset of one source; `role` ("train" or "val") picks augmentation and split.

    `motion_points`: synthetic samples also carry their motion ground truth at this many
    trajectory points (for the trajectory loss); folder datasets have none and refuse it.

    Training folders are read with random crops and flips; validation folders unaugmented
    (full images when `crop_size` is null). Synthetic sources use the generator's split of
    the same name, so train and val never share photos.
    """
    if source.source == "folder":
        from m2aenet.data.datasets import open_dataset

        if motion_points is not None:
            raise ConfigError(
                f"data.{role}: loss.trajectory_weight needs motion ground truth, which only "
                "`source: synth` provides; set loss.trajectory_weight: 0 (loss.motion_weight "
                "trains the motion analyzer from pairs alone)"
            )
        dataset = open_dataset(
            source.root, source.layout, crop_size=source.crop_size, augment=role == "train"
        )
        dataset.validate()  # every file header now, not one bad file hours into the run
    elif source.source == "blur_crops":
        from m2aenet.data.blur_crops import BlurCentredCrops
        from m2aenet.data.hard_negatives import HardNegatives

        if motion_points is not None:
            raise ConfigError(
                f"data.{role}: loss.trajectory_weight needs motion ground truth, which "
                "`source: blur_crops` does not load; set loss.trajectory_weight: 0"
            )
        parts = [
            BlurCentredCrops(
                root,
                source.crop_size,
                source.crops_per_frame,
                source.centred_fraction,
                source.layout,
                HardNegatives() if source.hard_negatives else None,
            )
            for root in [source.root, *source.extra_roots]
        ]
        for part in parts:
            part.frames.validate()
        dataset = parts[0] if len(parts) == 1 else ConcatDataset(parts)
    else:
        from m2aenet.data.synth import MOTION_SAMPLES
        from m2aenet.data.synth_dataset import OnTheFlySynthDataset

        dataset = OnTheFlySynthDataset(
            split=role,
            size=(source.crop_size, source.crop_size),
            mode=source.mode,
            seed=source.seed,
            length=source.length,
            global_fraction=source.global_fraction,
            blur_reference_side=source.blur_reference_side,
            blur_length=tuple(source.blur_length) if source.blur_length else None,
            with_motion=motion_points is not None,
            motion_points=motion_points or MOTION_SAMPLES,
        )
    if len(dataset) == 0:
        where = source.root if source.source == "folder" else "synth"
        raise ConfigError(f"data.{role}: the dataset ({where}) holds no samples")
    if source.max_items is not None and source.max_items < len(dataset):
        dataset = Subset(dataset, range(source.max_items))
    return dataset


class ShardedEpochSampler(Sampler[int]):
    """Endless sample order for one rank, resumable at any position.

    Epoch e is a permutation of the dataset drawn from `seed + e`; it is cut to a multiple
    of `world_size` and rank r takes every world_size-th index from r (as DistributedSampler
    does with drop_last). Yields `epoch * len(dataset) + index`, so the dataset wrapper knows
    the epoch without shared state. `start` skips that many of this rank's samples.
    """

    def __init__(
        self, length: int, seed: int, rank: int = 0, world_size: int = 1, start: int = 0
    ) -> None:
        if length < world_size:
            raise ConfigError(
                f"data.train: {length} sample(s) cannot be shared by {world_size} processes"
            )
        self.length = length
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.per_rank = length // world_size
        self.start = start

    def __iter__(self) -> Iterator[int]:
        epoch, offset = divmod(self.start, self.per_rank)
        while True:
            generator = torch.Generator().manual_seed(self.seed + epoch)
            order = torch.randperm(self.length, generator=generator)
            shard = order[: self.per_rank * self.world_size][self.rank :: self.world_size]
            for index in shard[offset:].tolist():
                yield epoch * self.length + index
            epoch, offset = epoch + 1, 0


class EpochSeededDataset(Dataset):
    """Wraps a dataset so that item `epoch * len + i` is sample i drawn with seeded RNGs.

    In the main process the caller's generator states are restored afterwards, so loading
    data (num_workers=0) does not disturb the training process's random stream.
    """

    def __init__(self, dataset: Dataset, seed: int) -> None:
        self.dataset = dataset
        self.seed = seed
        self.length = len(dataset)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, key: int) -> dict[str, Any]:
        epoch, index = divmod(int(key), self.length)
        seed = sample_seed(self.seed, epoch, index)
        in_worker = torch.utils.data.get_worker_info() is not None
        saved = (
            None if in_worker else (torch.get_rng_state(), np.random.get_state(), random.getstate())
        )
        torch.default_generator.manual_seed(seed)  # the CPU generator only: CUDA's is left be
        np.random.seed(seed % (1 << 32))
        random.seed(seed)
        try:
            return self.dataset[index]
        finally:
            if saved is not None:
                torch.set_rng_state(saved[0])
                np.random.set_state(saved[1])
                random.setstate(saved[2])


def one_line_data_errors(batches: Iterator[Any]) -> Iterator[Any]:
    """`batches`, with a data error from a DataLoader worker re-raised under its own message.

    A worker's exception comes back as the same type whose message is "Caught InputError in
    DataLoader worker process 0" plus the worker's whole traceback; the user needs its last
    line only, the one naming the file that could not be read.
    """
    while True:
        try:
            batch = next(batches)
        except StopIteration:
            return
        except M2AENetError as error:
            lines = str(error).strip().splitlines()
            if len(lines) < 2 or not lines[0].startswith("Caught "):
                raise
            kind = type(error)
            message = lines[-1].removeprefix(f"{kind.__module__}.{kind.__qualname__}: ")
            raise kind(message) from None
        yield batch


def seed_worker(worker_id: int) -> None:
    """DataLoader worker_init_fn: seed NumPy and Python from the worker's torch seed."""
    worker_seed = torch.initial_seed() % (1 << 32)
    np.random.seed(worker_seed)
    random.seed(worker_seed)


def train_loader(
    dataset: Dataset,
    data: DataSection,
    seed: int,
    rank: int,
    world_size: int,
    start_sample: int,
    pin_memory: bool = False,
) -> DataLoader:
    """An endless loader of training batches for this rank, starting at `start_sample`."""
    sampler = ShardedEpochSampler(len(dataset), seed, rank, world_size, start_sample)
    batches = BatchSampler(sampler, data.batch_size, drop_last=True)
    generator = torch.Generator().manual_seed(seed + 7919 * rank)
    return DataLoader(
        EpochSeededDataset(dataset, seed),
        batch_sampler=batches,
        num_workers=data.num_workers,
        worker_init_fn=seed_worker,
        generator=generator,
        pin_memory=pin_memory,
        persistent_workers=data.num_workers > 0,
    )


def val_loader(dataset: Dataset, seed: int) -> DataLoader:
    """Validation samples one at a time, in order (images may differ in size)."""
    return DataLoader(EpochSeededDataset(dataset, seed), batch_size=1, shuffle=False)
