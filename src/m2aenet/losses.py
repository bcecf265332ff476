"""Training losses of M2AENet: reconstruction + reblur + mask (DESIGN section 3).

    L = w_rec * Charbonnier(out, sharp; weighted by the dilated ground-truth mask)
            (or minus the per-sample PSNR over the same weights: `reconstruction: psnr`)
      + w_reblur * L1(M * (reblur(out, trajectory) - blur))
      + w_motion * L1(M_gt * (reblur(sharp, trajectory) - blur))
      + w_mask * (BCE(p, M_gt) + Dice(p, M_gt))
      [+ w_traj * L1(M_gt * (trajectory - canonical(trajectory_gt))), off by default]

The reblur term alone cannot start the motion analyzer: at initialization the output is the
blurry input and the trajectory is ~0, and reblur(blur, 0) == blur, so that term is already
zero and teaches no motion. The motion term re-blurs the ground-truth sharp image instead,
which only the true trajectory turns into the blur: the analyzer learns motion from the
first step, from any paired data (no motion ground truth needed).

All images are (B, C, H, W) in [0, 1]; masks (B, 1, H, W) in {0, 1} (all ones for data
without masks, e.g. globally blurred GoPro pairs).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from m2aenet.errors import ConfigError
from m2aenet.models.mask_predictor import dilate_mask
from m2aenet.models.motion import densify_trajectory, reblur
from m2aenet.models.outputs import ModelOutput


@dataclass
class LossConfig:
    """Weights and settings of `M2AENetLoss`.

    reconstruction: "charbonnier" (weighted Charbonnier) or "psnr" (`log_mse`: minus each
        sample's PSNR over the same weights, then averaged; weight it ~0.005 to keep its
        gradient near Charbonnier's at ~30 dB).
    reconstruction_weight, reblur_weight, motion_weight, mask_weight, trajectory_weight:
        term weights (see the module docstring).
    background_weight: reconstruction weight of pixels outside the dilated ground-truth
        mask (sharp background), so that restoring them is not free to damage them.
    marked_weight: reconstruction weight of every pixel the model restored (its mask), at
        least; 1 scores a marked sharp pixel like a blurred one, since a mistake there shows.
    charbonnier_eps: epsilon of sqrt(d^2 + eps^2), in [0, 1] intensity units.
    mask_dilation: radius in pixels by which the ground-truth mask is dilated for the
        reconstruction weights (blur borders matter).
    reblur_density: points inserted per trajectory segment before re-blurring, so a
        trajectory of few points still spreads the image along the whole path.
    dice_smooth: additive smoothing of the Dice ratio, in pixels.
    reblur_scale: the reblur and motion terms are computed at 1/s of the resolution (images
        box-downsampled, trajectories in the smaller pixels, masks max-pooled): s^2 fewer
        bilinear samples, which at full resolution were a third of a training step of the
        multi-scale body (docs/training.md, issue 18).
    """

    reconstruction: Literal["charbonnier", "psnr"] = "charbonnier"
    reconstruction_weight: float = 1.0
    reblur_weight: float = 0.1
    motion_weight: float = 0.0
    mask_weight: float = 0.05
    trajectory_weight: float = 0.0
    background_weight: float = 0.1
    marked_weight: float = 0.0
    charbonnier_eps: float = 1e-3
    mask_dilation: int = 4
    reblur_density: int = 4
    dice_smooth: float = 1.0
    reblur_scale: int = 1

    def __post_init__(self) -> None:
        for key in (
            "reconstruction_weight", "reblur_weight", "motion_weight", "mask_weight",
            "trajectory_weight",
            "background_weight", "marked_weight", "mask_dilation", "dice_smooth",
        ):  # fmt: skip
            if getattr(self, key) < 0:
                raise ConfigError(f"loss.{key} must be >= 0, got {getattr(self, key)}")
        if self.reconstruction not in ("charbonnier", "psnr"):
            raise ConfigError(
                f"loss.reconstruction must be charbonnier or psnr, got {self.reconstruction!r}"
            )
        if self.charbonnier_eps <= 0:
            raise ConfigError(f"loss.charbonnier_eps must be > 0, got {self.charbonnier_eps}")
        if self.reblur_scale < 1:
            raise ConfigError(f"loss.reblur_scale must be >= 1, got {self.reblur_scale}")
        if self.reblur_density < 1:
            raise ConfigError(f"loss.reblur_density must be >= 1, got {self.reblur_density}")


def weighted_mean(values: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Mean of values (B, C, H, W) weighted by weight (B, 1, H, W); 0 when the weight is 0."""
    total = (values * weight).sum()
    return total / (weight.sum() * values.shape[1]).clamp_min(1e-8)


def charbonnier(
    prediction: torch.Tensor,
    target: torch.Tensor,
    eps: float = 1e-3,
    weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """Charbonnier loss sqrt((x - y)^2 + eps^2), averaged (weighted by (B, 1, H, W) weight)."""
    values = torch.sqrt((prediction - target) ** 2 + eps * eps)
    return values.mean() if weight is None else weighted_mean(values, weight)


def log_mse(
    prediction: torch.Tensor, target: torch.Tensor, weight: torch.Tensor, eps: float = 1e-8
) -> torch.Tensor:
    """Mean over samples of 10 log10(weighted MSE + eps): minus the PSNR of each sample.

    The metric the product is judged by is a mean of per-image PSNR_w: a 0.001 error costs
    far more on a nearly sharp image than on a heavily blurred one. Charbonnier weighs both
    alike, and the stage-3 weights damaged near-sharp objects (input PSNR_w 35-39 dB, -1 to
    -6 dB). In this loss each sample's gradient is scaled by 1 / its own MSE.
    """
    dims = (1, 2, 3)
    squared = ((prediction - target) ** 2 * weight).sum(dims)
    mse = squared / (weight.sum(dims) * prediction.shape[1]).clamp_min(1e-8)
    return (10.0 / math.log(10.0) * torch.log(mse + eps)).mean()


def reblur_loss(
    image: torch.Tensor,
    blur: torch.Tensor,
    trajectory: torch.Tensor,
    mask: torch.Tensor,
    density: int = 1,
    scale: int = 1,
) -> torch.Tensor:
    """Mean |reblur(image, trajectory) - blur| over the pixels where mask (B, 1, H, W) is 1.

    With `scale` s > 1 it is computed on s x s box-downsampled images, with the trajectory
    averaged over the same cells and measured in their units, and the mask max-pooled.
    """
    if scale > 1:
        image, blur = F.avg_pool2d(image, scale), F.avg_pool2d(blur, scale)
        batch, points = trajectory.shape[:2]
        trajectory = F.avg_pool2d(trajectory.flatten(1, 2), scale) / scale
        trajectory = trajectory.view(batch, points, 2, *trajectory.shape[-2:])
        mask = F.max_pool2d(mask, scale)
    reblurred = reblur(image, densify_trajectory(trajectory, density))
    return weighted_mean((reblurred - blur).abs(), mask)


def canonical_direction(trajectory: torch.Tensor) -> torch.Tensor:
    """The trajectory (B, K, 2, H, W), reversed in time (point k <-> K-1-k) at every pixel whose
    end-to-end displacement points left (or straight up), so that all point right or down.

    A blurred image does not tell which way the exposure ran (a smear is the same forwards
    and backwards): regressing the true direction would drive the prediction to zero, and
    a loss taking the better of both directions has a saddle at zero that training never
    leaves (measured: no movement in 100 steps). A fixed rule makes the target a function
    of the image again.
    """
    span = trajectory[:, -1] - trajectory[:, 0]  # (B, 2, H, W)
    backwards = (span[:, 0] < 0) | ((span[:, 0] == 0) & (span[:, 1] < 0))  # (B, H, W)
    return torch.where(backwards[:, None, None], trajectory.flip(1), trajectory)


def trajectory_error(trajectory: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-pixel mean |trajectory - canonical_direction(target)|, (B, 1, H, W), in pixels."""
    return (trajectory - canonical_direction(target)).abs().mean(dim=(1, 2))[:, None]


def dice_loss(prob: torch.Tensor, target: torch.Tensor, smooth: float = 1.0) -> torch.Tensor:
    """1 - Dice overlap of prob and target (B, 1, H, W), averaged over the batch."""
    dims = (1, 2, 3)
    overlap = (prob * target).sum(dims)
    total = prob.sum(dims) + target.sum(dims)
    return (1 - (2 * overlap + smooth) / (total + smooth)).mean()


def mask_loss(prob: torch.Tensor, target: torch.Tensor, smooth: float = 1.0) -> torch.Tensor:
    """BCE + Dice of the blur probability prob against the ground-truth mask target."""
    bce = F.binary_cross_entropy(prob.clamp(1e-6, 1 - 1e-6), target)
    return bce + dice_loss(prob, target, smooth)


class M2AENetLoss(nn.Module):
    """The combined loss. `loss(output, blur, sharp, gt_mask) -> (total, parts)`.

    parts maps "rec", "reblur", "mask" (and "trajectory" when enabled) to detached scalars.
    """

    def __init__(self, config: LossConfig | None = None) -> None:
        super().__init__()
        self.config = config or LossConfig()

    def forward(
        self,
        output: ModelOutput,
        blur: torch.Tensor,
        sharp: torch.Tensor,
        gt_mask: torch.Tensor,
        gt_trajectory: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """output from the model on `blur`; blur, sharp (B, 3, H, W); gt_mask (B, 1, H, W).

        gt_trajectory (B, K, 2, H, W) is used only when `trajectory_weight` > 0.
        """
        config = self.config
        gt_mask = gt_mask.to(blur.dtype)
        weight = dilate_mask(gt_mask, config.mask_dilation).clamp_min(config.background_weight)
        if config.marked_weight > 0:
            weight = torch.maximum(weight, config.marked_weight * output.mask.detach())
        if config.reconstruction == "psnr":
            parts = {"rec": log_mse(output.image, sharp, weight)}
        else:
            parts = {"rec": charbonnier(output.image, sharp, config.charbonnier_eps, weight)}
        # The reblur term is measured where the model restored; the mask's value only
        # selects pixels here, its gradient comes from the other terms.
        restored = output.mask.detach()
        parts["reblur"] = reblur_loss(
            output.image,
            blur,
            output.trajectory,
            restored,
            config.reblur_density,
            config.reblur_scale,
        )
        parts["mask"] = mask_loss(output.mask_prob, gt_mask, config.dice_smooth)
        total = (
            config.reconstruction_weight * parts["rec"]
            + config.reblur_weight * parts["reblur"]
            + config.mask_weight * parts["mask"]
        )
        if config.motion_weight > 0:
            parts["motion"] = reblur_loss(
                sharp, blur, output.trajectory, gt_mask, config.reblur_density, config.reblur_scale
            )
            total = total + config.motion_weight * parts["motion"]
        if config.trajectory_weight > 0 and gt_trajectory is not None:
            if gt_trajectory.shape != output.trajectory.shape:
                raise ValueError(
                    f"gt_trajectory must have shape {tuple(output.trajectory.shape)}, "
                    f"got {tuple(gt_trajectory.shape)}"
                )
            parts["trajectory"] = weighted_mean(
                trajectory_error(output.trajectory, gt_trajectory), gt_mask
            )
            total = total + config.trajectory_weight * parts["trajectory"]
        return total, {name: value.detach() for name, value in parts.items()}
