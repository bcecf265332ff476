"""Mask predictor: dilation, thresholding, straight-through gradient, shapes."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from m2aenet.models.mask_predictor import (
    CUE_CHANNELS,
    MaskPredictor,
    blur_cues,
    dilate_mask,
    gradient_magnitudes,
    hard_mask,
    straight_through,
)


def test_dilation_of_one_pixel_is_a_square() -> None:
    mask = torch.zeros(1, 1, 9, 9)
    mask[0, 0, 4, 4] = 1
    dilated = dilate_mask(mask, 2)
    expected = torch.zeros(1, 1, 9, 9)
    expected[0, 0, 2:7, 2:7] = 1
    assert torch.equal(dilated, expected)
    assert torch.equal(dilate_mask(mask, 0), mask)


def test_separable_dilation_equals_square_max_pool() -> None:
    mask = (torch.rand(2, 1, 23, 17, generator=torch.Generator().manual_seed(0)) > 0.9).float()
    square = F.max_pool2d(mask, 7, stride=1, padding=3)
    assert torch.equal(dilate_mask(mask, 3), square)


def test_hard_mask_thresholds_then_dilates() -> None:
    prob = torch.full((1, 1, 8, 8), 0.2)
    prob[0, 0, 0, 0] = 0.7
    assert hard_mask(prob, 0.5, 0).sum() == 1
    assert hard_mask(prob, 0.5, 1).sum() == 4  # corner pixel: a 2x2 square inside the image
    assert hard_mask(prob, 0.1, 1).sum() == 64
    assert set(hard_mask(prob, 0.5, 1).unique().tolist()) <= {0.0, 1.0}


def test_straight_through_has_hard_value_and_soft_gradient() -> None:
    prob = torch.rand(1, 1, 5, 5, generator=torch.Generator().manual_seed(2)).requires_grad_()
    hard = hard_mask(prob.detach(), 0.5, 1)
    mask = straight_through(hard, prob)
    assert torch.equal(mask.detach(), hard)  # bit for bit: exact zeros and ones
    weights = torch.randn(1, 1, 5, 5)
    (mask * weights).sum().backward()
    assert torch.equal(prob.grad, weights)


def test_predictor_works_at_quarter_resolution() -> None:
    predictor = MaskPredictor(width=8, depth=2)
    logits, features = predictor(torch.rand(2, 3, 40, 56))
    assert logits.shape == (2, 1, 10, 14)
    assert features.shape == (2, 8, 10, 14)


def test_gradient_magnitudes_of_a_step_edge() -> None:
    image = torch.zeros(1, 3, 4, 6)
    image[..., 3:] = 0.6  # a vertical edge between columns 2 and 3
    grads = gradient_magnitudes(image)
    assert grads.shape == (1, 2, 4, 6)
    expected_x = torch.zeros(4, 6)
    expected_x[:, 2] = 0.6
    torch.testing.assert_close(grads[0, 0], expected_x)
    assert grads[0, 1].abs().max() == 0  # no change along y


def _textured(seed: int = 0) -> torch.Tensor:
    return torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(seed))


def test_blur_cues_fall_along_the_blur_and_not_across_it() -> None:
    sharp = _textured()
    box = torch.ones(3, 1, 1, 9) / 9  # 9 px of horizontal motion
    blurred = F.conv2d(sharp, box, padding=(0, 4), groups=3)
    inner = (..., slice(3, -3), slice(3, -3))  # cells away from the zero padding
    drop = (blur_cues(sharp) - blur_cues(blurred))[inner].mean(dim=(0, 2, 3))
    assert blur_cues(sharp).shape == (1, CUE_CHANNELS, 16, 16)
    horizontal, vertical = drop[0], drop[1]  # level 0: 0 and 90 degrees
    assert horizontal > 1.0  # fine differences along the motion lose > 10x their energy
    assert horizontal - vertical > 0.5  # and far more than across it


def test_blur_cues_shift_alike_when_only_the_contrast_changes() -> None:
    image = _textured(1)
    faint = 0.5 + 0.5 * (image - 0.5)  # half the contrast: every energy / 4
    cues = blur_cues(image)
    shift = blur_cues(faint) - cues
    strong = cues > 0.5  # energies far above the floor, which bends the log below ~1e-4
    assert strong.float().mean() > 0.5
    expected = torch.full_like(shift[strong], -0.6021)  # log10(1/4)
    torch.testing.assert_close(shift[strong], expected, atol=0.01, rtol=0)


def test_a_predictor_given_cues_reads_them() -> None:
    predictor = MaskPredictor(width=8, depth=1, cues=True)
    x = _textured(2)
    with torch.no_grad():
        before = predictor(x)[0]
        predictor.cues.weight.normal_()
        assert not torch.equal(predictor(x)[0], before)


def test_a_refine_branch_starts_at_zero_and_corrects_the_logits_once_trained() -> None:
    torch.manual_seed(0)
    plain = MaskPredictor(width=8, depth=1, context_depth=1)
    refined = MaskPredictor(width=8, depth=1, context_depth=1, refine_width=12)
    refined.load_state_dict(plain.state_dict(), strict=False)
    x = _textured(2)
    with torch.no_grad():
        logits, features = refined(x)
        assert torch.equal(logits, plain(x)[0])
        assert torch.equal(features, plain(x)[1])  # the branch never touches the features
        refined.refine.layers[-1].weight.normal_()
        corrected, _ = refined(x)
    assert corrected.shape == logits.shape
    assert not torch.equal(corrected, logits)
