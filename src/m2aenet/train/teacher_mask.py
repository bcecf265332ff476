"""The mask the body restores through while teacher forcing: the truth, widened at random.

At inference the body restores through the predicted mask, which is dilated (blur borders)
and never exact: it marks sharp pixels too. Trained through the exact true mask only, the
body never learns to leave a marked sharp pixel alone, and it damaged them (stage 3: test
images made worse, docs/training.md). So each sample's teacher mask is the true mask dilated
by 0..`max_dilation` px, plus, with probability `false_blob_probability`, a random blob of
sharp pixels; with `loss.marked_weight` the loss scores every marked pixel fully.
Randomness comes from torch's global generator (saved in checkpoints: exact resume).
"""

from __future__ import annotations

import numpy as np
import torch

from m2aenet.data.masks import blob_mask
from m2aenet.models.mask_predictor import dilate_mask


def widen_teacher_mask(
    mask: torch.Tensor, max_dilation: int, false_blob_probability: float
) -> torch.Tensor:
    """(B, 1, H, W) {0, 1} true mask -> a {0, 1} mask that contains it."""
    if max_dilation <= 0 and false_blob_probability <= 0:
        return mask
    samples = []
    height, width = mask.shape[-2:]
    for sample in mask.split(1):
        radius = int(torch.randint(max_dilation + 1, ()).item()) if max_dilation > 0 else 0
        sample = dilate_mask(sample, radius)
        if torch.rand(()).item() < false_blob_probability:
            rng = np.random.default_rng(int(torch.randint(2**31 - 1, ()).item()))
            blob = blob_mask(height, width, float(rng.uniform(0.02, 0.15)), rng)
            sample = torch.maximum(sample, torch.from_numpy(blob).to(sample)[None, None])
        samples.append(sample)
    return torch.cat(samples)
