"""Loss pieces on hand-made tensors."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from m2aenet.errors import ConfigError
from m2aenet.losses import (
    LossConfig,
    M2AENetLoss,
    canonical_direction,
    charbonnier,
    dice_loss,
    log_mse,
    mask_loss,
    reblur_loss,
    trajectory_error,
    weighted_mean,
)
from m2aenet.models.motion import reblur
from m2aenet.models.outputs import ModelOutput


def test_charbonnier_of_identical_images_is_eps() -> None:
    image = torch.rand(2, 3, 8, 8)
    assert charbonnier(image, image, eps=1e-3).item() == pytest.approx(1e-3, rel=1e-4)
    assert charbonnier(image, image + 0.5, eps=1e-3).item() == pytest.approx(0.5, rel=1e-4)


def test_weighted_mean_counts_only_weighted_pixels() -> None:
    values = torch.zeros(1, 3, 2, 2)
    values[..., 0, 0] = 6.0
    weight = torch.zeros(1, 1, 2, 2)
    weight[..., 0, 0] = 1
    assert weighted_mean(values, weight).item() == 6.0
    assert weighted_mean(values, torch.zeros_like(weight)).item() == 0.0  # no NaN


def test_mask_loss_is_lower_for_the_right_prediction() -> None:
    target = torch.zeros(1, 1, 8, 8)
    target[..., 2:6, 2:6] = 1
    right = target * 0.9 + 0.05
    wrong = 1 - right
    assert mask_loss(right, target) < mask_loss(wrong, target)
    assert dice_loss(target, target, smooth=0).item() == pytest.approx(0.0, abs=1e-6)


def test_reblur_loss_is_zero_for_the_true_sharp_image() -> None:
    sharp = torch.rand(1, 3, 10, 12)
    trajectory = torch.zeros(1, 3, 2, 10, 12)
    trajectory[:, :, 0] = torch.tensor([-1.0, 0.0, 1.0]).view(1, 3, 1, 1)
    blur = reblur(sharp, trajectory)
    mask = torch.ones(1, 1, 10, 12)
    assert reblur_loss(sharp, blur, trajectory, mask).item() == pytest.approx(0.0, abs=1e-6)
    assert reblur_loss(blur, blur, trajectory, mask).item() > 1e-3


def _output(image: torch.Tensor, prob: torch.Tensor) -> ModelOutput:
    batch, _, height, width = image.shape
    return ModelOutput(
        image=image,
        mask=(prob > 0.5).float(),
        mask_prob=prob,
        trajectory=torch.zeros(batch, 2, 2, height, width),
    )


def test_combined_loss_is_the_weighted_sum_of_its_parts() -> None:
    sharp = torch.rand(1, 3, 16, 16)
    blur = sharp.roll(1, dims=-1)
    gt_mask = torch.zeros(1, 1, 16, 16)
    gt_mask[..., 4:12, 4:12] = 1
    image = (sharp + 0.1).requires_grad_()
    prob = (gt_mask * 0.8 + 0.1).requires_grad_()
    config = LossConfig(reblur_weight=0.3, mask_weight=0.2)
    total, parts = M2AENetLoss(config)(_output(image, prob), blur, sharp, gt_mask)
    assert set(parts) == {"rec", "reblur", "mask"}
    expected = parts["rec"] + 0.3 * parts["reblur"] + 0.2 * parts["mask"]
    assert total.item() == pytest.approx(expected.item(), rel=1e-6)
    total.backward()
    assert image.grad.abs().sum() > 0 and prob.grad.abs().sum() > 0


def test_background_weight_and_trajectory_term() -> None:
    sharp = torch.zeros(1, 3, 16, 16)
    gt_mask = torch.zeros(1, 1, 16, 16)
    image = sharp.clone()
    image[..., 0, 0] = 1.0  # an error far from the (empty) blur mask
    prob = torch.full((1, 1, 16, 16), 0.1)
    none = M2AENetLoss(LossConfig(background_weight=0.0))(
        _output(image, prob), sharp, sharp, gt_mask
    )
    some = M2AENetLoss(LossConfig(background_weight=0.5))(
        _output(image, prob), sharp, sharp, gt_mask
    )
    assert none[1]["rec"] == 0 and some[1]["rec"] > 0
    config = LossConfig(trajectory_weight=1.0)
    gt_trajectory = torch.ones(1, 2, 2, 16, 16)
    _, parts = M2AENetLoss(config)(
        _output(image, prob), sharp, sharp, torch.ones_like(gt_mask), gt_trajectory
    )
    assert parts["trajectory"].item() == pytest.approx(1.0)


def test_config_errors_name_the_key() -> None:
    with pytest.raises(ConfigError, match="loss.reblur_weight"):
        LossConfig(reblur_weight=-1)
    with pytest.raises(ConfigError, match="loss.charbonnier_eps"):
        LossConfig(charbonnier_eps=0)


def _linear_trajectory(dx: float, dy: float, height: int = 8, width: int = 8) -> torch.Tensor:
    """(1, 3, 2, H, W): every pixel moves by (dx, dy) over the exposure, times -1/2, 0, 1/2."""
    times = torch.tensor([-0.5, 0.0, 0.5]).view(1, 3, 1, 1, 1)
    return times * torch.tensor([dx, dy]).view(1, 1, 2, 1, 1).expand(1, 1, 2, height, width)


def test_canonical_direction_reverses_leftward_and_upward_paths_only() -> None:
    right, left = _linear_trajectory(4.0, 1.0), _linear_trajectory(-4.0, -1.0)
    up, down = _linear_trajectory(0.0, -3.0), _linear_trajectory(0.0, 3.0)
    assert torch.equal(canonical_direction(right), right)
    assert torch.equal(canonical_direction(down), down)
    assert torch.equal(canonical_direction(left), left.flip(1))
    assert torch.equal(canonical_direction(up), down)
    # A smear does not tell its direction: predicting either way of the same path is right.
    assert trajectory_error(right, left).abs().max().item() == 0.0
    # |(2, .5) - (-2, -.5)| and back over 3 points x 2 coordinates: (4 + 1 + 4 + 1) / 6.
    assert trajectory_error(left, left).mean().item() == pytest.approx(10.0 / 6.0)


def test_motion_term_reblurs_the_sharp_image_along_the_predicted_trajectory() -> None:
    torch.manual_seed(0)
    sharp = torch.rand(1, 3, 8, 8)
    true_path = _linear_trajectory(2.0, 0.0)
    blur = reblur(sharp, true_path)
    gt_mask = torch.ones(1, 1, 8, 8)
    prob = torch.full((1, 1, 8, 8), 0.9)
    config = LossConfig(motion_weight=0.5, reblur_density=1)
    right = dataclasses.replace(_output(blur, prob), trajectory=true_path)
    wrong = _output(blur, prob)  # zero trajectory: reblur(sharp, 0) is the sharp image
    total, parts = M2AENetLoss(config)(right, blur, sharp, gt_mask)
    assert parts["motion"].item() == pytest.approx(0.0, abs=1e-6)
    expected = parts["rec"] + 0.1 * parts["reblur"] + 0.05 * parts["mask"]
    assert total.item() == pytest.approx(expected.item(), rel=1e-6)
    _, parts = M2AENetLoss(config)(wrong, blur, sharp, gt_mask)
    assert parts["motion"].item() == pytest.approx((sharp - blur).abs().mean().item(), rel=1e-5)
    assert "motion" not in M2AENetLoss(LossConfig())(wrong, blur, sharp, gt_mask)[1]


def test_marked_weight_scores_a_restored_sharp_pixel_like_a_blurred_one() -> None:
    sharp = torch.zeros(1, 3, 16, 16)
    gt_mask = torch.zeros(1, 1, 16, 16)
    gt_mask[..., 10:, 10:] = 1  # dilated by 4: rows and columns 6..15 weigh 1 (100 pixels)
    image = sharp.clone()
    image[..., 0, 0] = 0.5  # an error at a sharp pixel...
    prob = torch.zeros(1, 1, 16, 16)
    prob[..., 0, 0] = 0.9  # ...that the model marked, so it restored it
    eps = 1e-3
    error, exact = (0.25 + eps**2) ** 0.5, eps  # Charbonnier at the wrong and right pixels

    def expected(weight_at_error: float) -> float:
        # weighted mean over 3 channels: 100 px at 1, 155 other sharp px at 0.1, the marked one
        total = 3 * (weight_at_error * error + (100 + 0.1 * 155) * exact)
        return total / (3 * (100 + 0.1 * 155 + weight_at_error))

    for marked_weight, weight_at_error in ((0.0, 0.1), (1.0, 1.0)):
        config = LossConfig(background_weight=0.1, marked_weight=marked_weight, charbonnier_eps=eps)
        parts = M2AENetLoss(config)(_output(image, prob), sharp, sharp, gt_mask)[1]
        assert parts["rec"].item() == pytest.approx(expected(weight_at_error), rel=1e-5)


def test_psnr_reconstruction_is_minus_the_mean_per_sample_psnr() -> None:
    sharp = torch.zeros(2, 3, 8, 8)
    image = sharp.clone()
    image[0] += 0.1  # MSE 1e-2: 20 dB
    image[1] += 0.01  # MSE 1e-4: 40 dB
    weight = torch.ones(2, 1, 8, 8)
    value = log_mse(image, sharp, weight, eps=0.0)
    assert value.item() == pytest.approx(-(20.0 + 40.0) / 2, rel=1e-5)
    # Weighted: an error where the weight is 0 does not count.
    weight[1, :, :4] = 0
    image[1, :, :4] += 0.5
    assert log_mse(image, sharp, weight, eps=0.0).item() == pytest.approx(-30.0, rel=1e-5)
    # Through the combined loss, with the masked weights, the nearly sharp sample dominates
    # the gradient: its error is 10x smaller, its gradient per pixel 10x larger.
    image = (sharp + torch.tensor([0.1, 0.01]).view(2, 1, 1, 1)).requires_grad_()
    prob = torch.ones(2, 1, 8, 8)
    config = LossConfig(reconstruction="psnr", reblur_weight=0.0, mask_weight=0.0)
    total, _ = M2AENetLoss(config)(_output(image, prob), sharp, sharp, torch.ones(2, 1, 8, 8))
    total.backward()
    ratio = image.grad[1].abs().mean() / image.grad[0].abs().mean()
    assert ratio.item() == pytest.approx(10.0, rel=1e-3)
    with pytest.raises(ConfigError, match="loss.reconstruction"):
        LossConfig(reconstruction="l2")


def test_reblur_loss_at_half_size_pools_images_trajectory_and_mask() -> None:
    """`scale` 2: the term on 2x2 box-averaged images, the trajectory averaged over the same
    cells and halved (half-size pixels), the mask max-pooled; with no motion it is the mean
    absolute difference of the pooled images over the pooled mask."""
    import torch.nn.functional as F

    from m2aenet.losses import reblur_loss

    torch.manual_seed(0)
    image, blur = torch.rand(2, 3, 8, 10), torch.rand(2, 3, 8, 10)
    mask = torch.zeros(2, 1, 8, 10)
    mask[:, :, 1, 3] = 1.0  # one pixel: its whole 2x2 cell counts at half size
    still = torch.zeros(2, 4, 2, 8, 10)
    pooled = (F.avg_pool2d(image, 2) - F.avg_pool2d(blur, 2)).abs()
    expected = pooled[:, :, 0, 1].mean()
    assert torch.allclose(reblur_loss(image, blur, still, mask, scale=2), expected, atol=1e-6)
    # A uniform shift of 2 px is a shift of 1 half-size pixel.
    shift = torch.zeros(2, 4, 2, 8, 10)
    shift[:, :, 0] = 2.0
    small = F.avg_pool2d(image, 2)
    moved = torch.cat((small[..., 1:], small[..., -1:]), dim=-1)  # border padding
    expected = (moved - F.avg_pool2d(blur, 2)).abs()[:, :, 0, 1].mean()
    assert torch.allclose(reblur_loss(image, blur, shift, mask, scale=2), expected, atol=1e-5)
