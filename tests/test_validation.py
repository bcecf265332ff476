"""Validation during training: the true-mask PSNR_w isolates the body from the mask predictor."""

from __future__ import annotations

import math
from types import SimpleNamespace

import torch
from torch import nn

from m2aenet.imageio import to_uint8
from m2aenet.metrics import psnr
from m2aenet.train.validation import psnr_w_with_true_mask


class _PasteSharpThroughMask(nn.Module):
    """Returns the sharp image where the given mask is 1: a perfect body, if fed the true mask."""

    def __init__(self, sharp: torch.Tensor) -> None:
        super().__init__()
        self.sharp = sharp

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> SimpleNamespace:
        assert mask is not None, "validation must pass the ground-truth mask"
        return SimpleNamespace(image=torch.where(mask > 0.5, self.sharp, x))


def _item(seed: int) -> dict:
    generator = torch.Generator().manual_seed(seed)
    sharp = torch.rand(3, 12, 16, generator=generator)
    mask = torch.zeros(1, 12, 16)
    mask[:, 3:9, 4:12] = 1
    blur = torch.where(mask > 0.5, sharp * 0.5, sharp)
    return {"blur": blur, "sharp": sharp, "mask": mask}


def test_perfect_body_is_infinite_and_identity_equals_input() -> None:
    item = _item(0)
    perfect = _PasteSharpThroughMask(item["sharp"][None])
    assert psnr_w_with_true_mask(perfect, [item], torch.device("cpu")) == math.inf

    class Identity(nn.Module):
        def forward(self, x, mask=None):
            return SimpleNamespace(image=x)

    value = psnr_w_with_true_mask(Identity(), [item], torch.device("cpu"))
    expected = psnr(
        to_uint8(item["blur"].permute(1, 2, 0).numpy()),
        to_uint8(item["sharp"].permute(1, 2, 0).numpy()),
        mask=item["mask"][0].numpy() > 0.5,
    )
    assert value == expected
