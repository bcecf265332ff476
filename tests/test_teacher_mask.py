"""The widened teacher mask: contains the truth, within its dilation, with sharp blobs added."""

from __future__ import annotations

import torch

from m2aenet.models.mask_predictor import dilate_mask
from m2aenet.train.teacher_mask import widen_teacher_mask


def _truth(batch: int = 6) -> torch.Tensor:
    mask = torch.zeros(batch, 1, 48, 48)
    mask[..., 20:28, 18:30] = 1
    return mask


def test_nothing_asked_returns_the_truth_itself() -> None:
    truth = _truth()
    assert widen_teacher_mask(truth, 0, 0.0) is truth


def test_dilation_stays_between_the_truth_and_its_largest_dilation() -> None:
    torch.manual_seed(0)
    truth = _truth(12)
    widened = widen_teacher_mask(truth, 5, 0.0)
    assert set(widened.unique().tolist()) <= {0.0, 1.0}
    assert (widened >= truth).all()  # never drops a blurred pixel
    assert (widened <= dilate_mask(truth, 5)).all()
    areas = widened.sum(dim=(1, 2, 3))
    assert len(areas.unique()) > 1  # the radius is drawn per sample


def test_false_blobs_mark_sharp_pixels_and_repeat_under_the_same_seed() -> None:
    truth = _truth(8)
    torch.manual_seed(3)
    first = widen_teacher_mask(truth, 0, 1.0)
    torch.manual_seed(3)
    second = widen_teacher_mask(truth, 0, 1.0)
    assert torch.equal(first, second)  # torch's generator decides: resumes repeat it
    outside = (first > truth).sum(dim=(1, 2, 3))
    assert (outside > 0).all() and (first >= truth).all()
