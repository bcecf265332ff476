"""Tiny models of both M2AENet families and a tiny synth-like folder, for the predictor tests
(tests/test_predictor.py, test_predictor_weights.py, test_maintainer_scripts.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from m2aenet import create_model
from m2aenet.checkpoint import save_model

# name -> config overrides: small enough to build and run in milliseconds on one thread.
SMALL_MODELS = {
    "m2aenet-s": {
        "channels": 8,
        "num_blocks": 2,
        "mask_width": 8,
        "mask_depth": 1,
        "analyzer_width": 8,
    },
    "m2aenet-ms": {
        "widths": [8, 8, 8],
        "encoder_blocks": [1, 0],
        "middle_blocks": 1,
        "decoder_blocks": [0, 1],
        "trajectory_points": 2,
        "trajectory_channels": 4,
        "mask_width": 8,
        "mask_depth": 1,
        "mask_context_depth": 1,
        "analyzer_width": 8,
        "analyzer_levels": 1,
    },
}


def write_model(path: Path, name: str = "m2aenet-s", step: int = 5) -> Path:
    """A small model of `name` with trained-looking (non-zero, random) weights, saved to
    `path` with a training record of `step`."""
    torch.manual_seed(0)
    model = create_model(name, **SMALL_MODELS[name])
    with torch.no_grad():  # a zero-initialized last layer would hide a mix-up
        for parameter in model.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    return save_model(path, model, {"step": step})


def write_pool(folder: Path, frames: int = 3) -> Path:
    """`frames` 64x64 frames with a 24x22 px "blurred" (flat) rectangle, in the synth layout."""
    from m2aenet.imageio import write_png

    rng = np.random.default_rng(0)
    for index in range(frames):
        sharp = rng.uniform(0.1, 0.9, (64, 64, 3)).astype(np.float32)
        mask = np.zeros((64, 64), np.float32)
        mask[16:40, 8:30] = 1
        blur = np.where(mask[..., None] > 0, sharp.mean(axis=(0, 1)), sharp)
        for kind, image in (("sharp", sharp), ("blur", blur), ("mask", mask)):
            write_png(folder / kind / f"f{index}.png", image)
    return folder
