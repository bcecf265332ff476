"""Loss pieces on hand-made tensors."""

from __future__ import annotations

import pytest
import torch

from m2aenet.errors import ConfigError
from m2aenet.losses import (
    LossConfig,
    M2AENetLoss,
    charbonnier,
    dice_loss,
    mask_loss,
    reblur_loss,
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
