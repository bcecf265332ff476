"""Blur mask predictor: where is the image blurred, and which pixels get restored.

A small conv net at 1/4 resolution (the image and its gradient magnitudes cut into 4x4
patches by one strided conv, then dilated 3x3 convs) predicts blur logits; they are upsampled
bilinearly to full resolution, `p = sigmoid(logits)`, and the hard mask is
`M = dilate(p > tau, r)` so that blur borders are covered. Its cost is a few percent of the
restoration body's, and it is the only part that runs when nothing is blurred.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def dilate_mask(mask: torch.Tensor, radius: int) -> torch.Tensor:
    """Binary dilation of a (B, 1, H, W) {0, 1} mask by a (2r+1)^2 square, via max-pooling.

    Separable (a row pass then a column pass), which equals the square max-pool and is
    cheaper at full resolution.
    """
    if radius <= 0:
        return mask
    size = 2 * radius + 1
    mask = F.max_pool2d(mask, (1, size), stride=1, padding=(0, radius))
    return F.max_pool2d(mask, (size, 1), stride=1, padding=(radius, 0))


def hard_mask(prob: torch.Tensor, threshold: float, radius: int) -> torch.Tensor:
    """`dilate(prob > threshold, radius)` as float {0, 1}; prob (B, 1, H, W) in [0, 1]."""
    return dilate_mask((prob > threshold).to(prob.dtype), radius)


def straight_through(hard: torch.Tensor, prob: torch.Tensor) -> torch.Tensor:
    """Value of `hard`, gradient of `prob`.

    Written `hard + (prob - prob.detach())`: the bracket is exactly 0 in floating point, so
    the result equals `hard` bit for bit (a mask of exact zeros and ones), which keeps the
    unmasked pixels of the output bit-exact in training too.
    """
    return hard + (prob - prob.detach())


def blur_probability(logits: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """p = sigmoid of the 1/4-resolution logits upsampled bilinearly to `size` (H, W)."""
    return torch.sigmoid(F.interpolate(logits, size=size, mode="bilinear", align_corners=False))


def gradient_magnitudes(x: torch.Tensor) -> torch.Tensor:
    """|d/dx| and |d/dy| of the luma of x (B, 3, H, W) -> (B, 2, H, W), zero on the last column/row.

    Blur is the absence of fine gradients where the surroundings have them; giving the
    predictor these two maps at full resolution (before it downsamples) made it learn the
    mask markedly faster: IoU 0.38 vs 0.27 after 1000 steps in an isolated run
    (docs/decisions.md).
    """
    luma = x.mean(dim=1, keepdim=True)
    grad_x = F.pad((luma[..., :, 1:] - luma[..., :, :-1]).abs(), (0, 1, 0, 0))
    grad_y = F.pad((luma[..., 1:, :] - luma[..., :-1, :]).abs(), (0, 0, 0, 1))
    return torch.cat([grad_x, grad_y], dim=1)


class MaskPredictor(nn.Module):
    """Blur logits at 1/4 resolution from an image.

    forward(x (B, 3, H, W), H and W multiples of 4) -> (logits (B, 1, H/4, W/4),
    features (B, width, H/4, W/4)); the features are shared with the motion analyzer.
    The image and its gradient magnitudes are cut into 4x4 patches (one strided conv, so the
    full-resolution cost is a few MACs per pixel), then `depth` dilated 3x3 convs with growing
    dilation judge blur from context.
    """

    def __init__(self, width: int = 24, depth: int = 4) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(5, width, 4, stride=4), nn.ReLU(inplace=True)]
        for index in range(depth):
            dilation = 2 ** min(index, 3)
            layers += [
                nn.Conv2d(width, width, 3, padding=dilation, dilation=dilation),
                nn.ReLU(inplace=True),
            ]
        self.features = nn.Sequential(*layers)
        self.head = nn.Conv2d(width, 1, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.features(torch.cat([x, 4.0 * gradient_magnitudes(x)], dim=1))
        return self.head(features), features
