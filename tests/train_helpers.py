"""Tiny model and data for the training tests (shared by tests/test_train*.py, test_resume.py...).

`TinyNet` honours the model contract (forward(x, mask=None) -> output with image, mask,
mask_prob, trajectory) in a few hundred parameters and has a BatchNorm, so EMA-of-buffers
is exercised. `TinyPairs` yields the shared sample dict with a random crop drawn from the
global torch generator, so the trainer's per-sample seeding is exercised too.
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from m2aenet.registry import create_model, register_model

_counter = itertools.count()


@pytest.fixture
def one_thread():
    """Run torch on one thread: the tiny models here take ~2 ms a step on one thread, but
    OpenMP threads spinning against other processes on a busy 2-core machine made the same
    step take 10-500 ms."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@dataclass
class TinyOutput:
    image: torch.Tensor  # (B, 3, H, W)
    mask: torch.Tensor  # (B, 1, H, W) {0, 1}
    mask_prob: torch.Tensor  # (B, 1, H, W) [0, 1]
    trajectory: torch.Tensor  # (B, 1, 2, H, W)


@dataclass
class TinyConfig:
    channels: int = 4
    batchnorm: bool = True


class TinyNet(nn.Module):
    def __init__(self, config: TinyConfig) -> None:
        super().__init__()
        self.mask_head = nn.Conv2d(3, 1, 3, padding=1)
        self.norm = nn.BatchNorm2d(3) if config.batchnorm else nn.Identity()
        self.body = nn.Sequential(
            nn.Conv2d(3, config.channels, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(config.channels, 3, 3, padding=1),
        )
        self.mask_threshold = 0.5

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> TinyOutput:
        prob = torch.sigmoid(self.mask_head(x))
        if mask is None:
            hard = (prob > self.mask_threshold).to(x.dtype)
            mask = hard + prob - prob.detach()
        image = x + mask * self.body(self.norm(x))
        batch, _, height, width = x.shape
        trajectory = x.new_zeros(batch, 1, 2, height, width)
        return TinyOutput(image=image, mask=mask, mask_prob=prob, trajectory=trajectory)


def register_tiny_model() -> str:
    """Register TinyNet under a fresh name and return it (names cannot be registered twice)."""
    name = f"tiny-test-{next(_counter)}-{id(object())}"
    register_model(name, TinyConfig)(TinyNet)
    return name


def tiny_model(**overrides) -> nn.Module:
    return create_model(register_tiny_model(), **overrides)


class TinyPairs(Dataset):
    """`length` degraded/sharp pairs of `size`x`size`, cropped at random from 2x larger images.

    Sharp images are smooth and bright (in [0.5, 1]); the degraded square in the middle is
    box-blurred and darkened to 30%, so a tiny conv net can both find it (brightness) and
    restore it (a gain), and a loss that goes down means the optimizer really works.
    """

    def __init__(self, length: int = 8, size: int = 16, seed: int = 0) -> None:
        generator = torch.Generator().manual_seed(seed)
        big = 2 * size
        coarse = torch.rand(length, 3, 4, 4, generator=generator)
        self.sharp = 0.5 + 0.5 * F.interpolate(coarse, size=(big, big), mode="bilinear")
        self.mask = torch.zeros(length, 1, big, big)
        self.mask[:, :, big // 4 : 3 * big // 4, big // 4 : 3 * big // 4] = 1.0
        box = F.avg_pool2d(F.pad(self.sharp, (2, 2, 2, 2), mode="replicate"), 5, stride=1)
        self.blur = self.mask * 0.3 * box + (1 - self.mask) * self.sharp
        self.size = size

    def __len__(self) -> int:
        return len(self.sharp)

    def __getitem__(self, index: int) -> dict:
        top, left = torch.randint(0, self.size + 1, (2,)).tolist()
        window = (slice(None), slice(top, top + self.size), slice(left, left + self.size))
        return {
            "blur": self.blur[index][window].clone(),
            "sharp": self.sharp[index][window].clone(),
            "mask": self.mask[index][window].clone(),
            "has_mask": True,
            "name": f"pair{index:03d}",
        }


def replace(config, **changes):
    """dataclasses.replace for nested sections: replace(config, optim={"lr": 1e-2})."""
    updates = {}
    for key, value in changes.items():
        current = getattr(config, key)
        if isinstance(value, dict) and dataclasses.is_dataclass(current):
            value = replace(current, **value)
        updates[key] = value
    return dataclasses.replace(config, **updates)


# ---------------------------------------------------------------------------------------------
# `python tests/train_helpers.py train CONFIG ...`: the real `m2aenet train` command line in a
# process of its own, with the tiny model registered as "tiny-test" and TinyPairs as its data.
# TINY_SAMPLE_DELAY (seconds per sample) slows it down so a test can kill it mid-run.

TINY_MODEL = "tiny-test"


def _tiny_datasets(source, role: str, motion_points: int | None = None) -> Dataset:
    import os
    import time

    delay = float(os.environ.get("TINY_SAMPLE_DELAY", "0"))

    class Slow(TinyPairs):
        def __getitem__(self, index: int) -> dict:
            time.sleep(delay)
            return super().__getitem__(index)

    return Slow(8, 16, seed=0) if role == "train" else TinyPairs(2, 16, seed=1)


def main(argv: list[str]) -> int:
    import m2aenet.train.trainer as trainer
    from m2aenet import cli

    register_model(TINY_MODEL, TinyConfig)(TinyNet)
    trainer.build_dataset = _tiny_datasets
    return cli.main(argv)


if __name__ == "__main__":
    import sys as _sys

    raise SystemExit(main(_sys.argv[1:]))
