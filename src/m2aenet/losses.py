"""Training losses of M2AENet: reconstruction + reblur + mask (DESIGN section 3).

    L = w_rec * Charbonnier(out, sharp; weighted by the dilated ground-truth mask)
      + w_reblur * L1(M * (reblur(out, trajectory) - blur))
      + w_mask * (BCE(p, M_gt) + Dice(p, M_gt))
      [+ w_traj * L1(M_gt * (trajectory - trajectory_gt)), off by default]

All images are (B, C, H, W) in [0, 1]; masks (B, 1, H, W) in {0, 1} (all ones for data
without masks, e.g. globally blurred GoPro pairs).
"""

from __future__ import annotations

from dataclasses import dataclass

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

    reconstruction_weight, reblur_weight, mask_weight, trajectory_weight: term weights.
    background_weight: reconstruction weight of pixels outside the dilated ground-truth
        mask (sharp background), so that restoring them is not free to damage them.
    charbonnier_eps: epsilon of sqrt(d^2 + eps^2), in [0, 1] intensity units.
    mask_dilation: radius in pixels by which the ground-truth mask is dilated for the
        reconstruction weights (blur borders matter).
    reblur_density: points inserted per trajectory segment before re-blurring, so a
        trajectory of few points still spreads the image along the whole path.
    dice_smooth: additive smoothing of the Dice ratio, in pixels.
    """

    reconstruction_weight: float = 1.0
    reblur_weight: float = 0.1
    mask_weight: float = 0.05
    trajectory_weight: float = 0.0
    background_weight: float = 0.1
    charbonnier_eps: float = 1e-3
    mask_dilation: int = 4
    reblur_density: int = 4
    dice_smooth: float = 1.0

    def __post_init__(self) -> None:
        for key in (
            "reconstruction_weight", "reblur_weight", "mask_weight", "trajectory_weight",
            "background_weight", "mask_dilation", "dice_smooth",
        ):  # fmt: skip
            if getattr(self, key) < 0:
                raise ConfigError(f"loss.{key} must be >= 0, got {getattr(self, key)}")
        if self.charbonnier_eps <= 0:
            raise ConfigError(f"loss.charbonnier_eps must be > 0, got {self.charbonnier_eps}")
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


def reblur_loss(
    image: torch.Tensor,
    blur: torch.Tensor,
    trajectory: torch.Tensor,
    mask: torch.Tensor,
    density: int = 1,
) -> torch.Tensor:
    """Mean |reblur(image, trajectory) - blur| over the pixels where mask (B, 1, H, W) is 1."""
    reblurred = reblur(image, densify_trajectory(trajectory, density))
    return weighted_mean((reblurred - blur).abs(), mask)


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
        parts = {"rec": charbonnier(output.image, sharp, config.charbonnier_eps, weight)}
        # The reblur term is measured where the model restored; the mask's value only
        # selects pixels here, its gradient comes from the other terms.
        restored = output.mask.detach()
        parts["reblur"] = reblur_loss(
            output.image, blur, output.trajectory, restored, config.reblur_density
        )
        parts["mask"] = mask_loss(output.mask_prob, gt_mask, config.dice_smooth)
        total = (
            config.reconstruction_weight * parts["rec"]
            + config.reblur_weight * parts["reblur"]
            + config.mask_weight * parts["mask"]
        )
        if config.trajectory_weight > 0 and gt_trajectory is not None:
            if gt_trajectory.shape != output.trajectory.shape:
                raise ValueError(
                    f"gt_trajectory must have shape {tuple(output.trajectory.shape)}, "
                    f"got {tuple(gt_trajectory.shape)}"
                )
            error = (output.trajectory - gt_trajectory).abs().flatten(1, 2)  # (B, 2K, H, W)
            parts["trajectory"] = weighted_mean(error, gt_mask)
            total = total + config.trajectory_weight * parts["trajectory"]
        return total, {name: value.detach() for name, value in parts.items()}
