"""Probe scoring: gains through the true and the predicted mask, split by blur length."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from m2aenet.bench.probe import blur_lengths, bucket_name, score_set, summarize


def test_buckets_and_summary_by_hand() -> None:
    assert [bucket_name(x) for x in (3, 8, 19.9, 20, 45)] == ["<8", "8-20", "8-20", "20-40", ">40"]
    summary = summarize([1.0, -0.5, 2.0, math.nan])
    assert summary == {"mean": pytest.approx(2.5 / 3), "median": 1.0, "worse": 1 / 3, "n": 3}
    assert summarize([])["n"] == 0


def test_blur_lengths_take_the_longest_object(tmp_path: Path) -> None:
    meta = {
        "images": [
            {"name": "a", "objects": [{"blur_px": 4.0}, {"blur_px": 9.5}]},
            {"name": "g", "blur_px": 12.0},
        ]
    }
    (tmp_path / "meta.json").write_text(json.dumps(meta))
    assert blur_lengths(tmp_path) == {"a": 9.5, "g": 12.0}
    assert blur_lengths(tmp_path / "none") == {}


class _HalfWay(torch.nn.Module):
    """Restores half the way to the target inside whatever mask it gets; predicts `marked`."""

    def __init__(self, sharp: torch.Tensor, marked: torch.Tensor) -> None:
        super().__init__()
        self.sharp, self.marked = sharp, marked

    def forward(self, x, mask=None):
        mask = self.marked if mask is None else mask
        image = x + mask * 0.5 * (self.sharp - x)
        return type("Out", (), {"image": image, "mask": mask})()


def test_gains_through_true_and_predicted_masks(tmp_path: Path) -> None:
    sharp = torch.full((1, 3, 8, 8), 0.5)
    blur = sharp.clone()
    blur[..., :4, :] += 0.2  # the top half is blurred
    true = torch.zeros(1, 1, 8, 8)
    true[..., :4, :] = 1
    nothing = torch.zeros_like(true)
    item = {"blur": blur[0], "sharp": sharp[0], "mask": true[0], "name": "x"}
    result = score_set(_HalfWay(sharp, nothing), [item], tmp_path)
    # Halving the error everywhere it is gains 20 log10(2) = 6.02 dB (up to 8-bit rounding).
    assert result["true_mask"]["mean"] == pytest.approx(6.02, abs=0.1)
    assert result["predicted"]["mean"] == 0.0  # an empty predicted mask changes nothing
    assert result["mask_iou"] == 0.0 and result["marked_over_true"] == 0.0
