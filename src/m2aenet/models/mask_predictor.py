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

from m2aenet.models.edge_width import EDGE_CUE_CHANNELS, edge_width_cues


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


def trunk_input(x: torch.Tensor) -> torch.Tensor:
    """What a blur feature trunk reads: the image and its scaled gradient magnitudes (5 ch)."""
    return torch.cat([x, 4.0 * gradient_magnitudes(x)], dim=1)


#: Channels of `blur_cues`: 4 directions x 3 pyramid levels.
CUE_CHANNELS = 12
CUE_FLOOR = 1e-5  # energy floor: about the variance of 8-bit quantization noise and JPEG


def _directional_differences(luma: torch.Tensor) -> list[torch.Tensor]:
    """Neighbour differences of (B, 1, H, W) luma along 0, 90, 45 and 135 degrees, each
    padded back to (B, 1, H, W) by repeating the border's (zeros would read as blur there)."""
    horizontal = luma[..., :, 1:] - luma[..., :, :-1]
    vertical = luma[..., 1:, :] - luma[..., :-1, :]
    diagonal = luma[..., 1:, 1:] - luma[..., :-1, :-1]
    anti = luma[..., 1:, :-1] - luma[..., :-1, 1:]
    return [
        F.pad(horizontal, (0, 1, 0, 0), mode="replicate"),
        F.pad(vertical, (0, 0, 0, 1), mode="replicate"),
        F.pad(diagonal, (0, 1, 0, 1), mode="replicate"),
        F.pad(anti, (1, 0, 0, 1), mode="replicate"),
    ]


def blur_cues(x: torch.Tensor) -> torch.Tensor:
    """Directional, contrast-free blur evidence of x (B, 3, H, W) at 1/4 size: (B, 12, H/4, W/4).

    For each level of a luma pyramid (1, 1/2, 1/4) and each of 4 directions, the log10 of the
    mean squared neighbour difference over the pixels of a 4x4 cell (of the full image). Blur
    of length L along a direction makes fine differences along it small next to coarse ones
    (energy grows with the level until 2^level ~ L) while across it the levels stay alike;
    defocus does so in every direction; noise and sharp texture in none. Logs turn those
    ratios into differences a linear layer reads, whatever the local contrast: the trunk's
    4x4-patch conv of gradient magnitudes cannot divide, and marked flat sky and bokeh.
    H and W must be multiples of 4.
    """
    luma = x.float().mean(dim=1, keepdim=True)
    cues = []
    for level in range(3):
        if level:
            luma = F.avg_pool2d(luma, 2)
        energies = torch.cat([d.square() for d in _directional_differences(luma)], dim=1)
        cell = 4 >> level  # pixels of this level per 1/4-size cell, along each axis
        if cell > 1:
            energies = F.avg_pool2d(energies, cell)
        cues.append(torch.log10(energies + CUE_FLOOR) + 3.0)  # about [-2, 1]
    return torch.cat(cues, dim=1)


def dilated_convs(width: int, depth: int) -> list[nn.Module]:
    """`depth` (3x3 conv, ReLU) pairs of `width` channels, dilations 1, 2, 4, 8, 8, ..."""
    layers: list[nn.Module] = []
    for index in range(depth):
        dilation = 2 ** min(index, 3)
        layers += [
            nn.Conv2d(width, width, 3, padding=dilation, dilation=dilation),
            nn.ReLU(inplace=True),
        ]
    return layers


def feature_trunk(width: int, depth: int) -> nn.Sequential:
    """4x4 patches by one strided conv, then `depth` dilated 3x3 convs, at 1/4 resolution.

    The full-resolution cost is a few MACs per pixel; the dilations (1, 2, 4, 8) let the
    convs judge blur from context. Reads `trunk_input(x)`.
    """
    return nn.Sequential(
        nn.Conv2d(5, width, 4, stride=4), nn.ReLU(inplace=True), *dilated_convs(width, depth)
    )


class ContextBranch(nn.Module):
    """A residual branch at 1/8 resolution that widens what the predictor sees.

    Photos are mostly sharp and much of a sharp photo is flat (sky, walls) and looks like blur
    up close; telling them apart needs the surroundings. At 1/8 size, `depth` dilated convs of
    twice the trunk's width reach ~100 px at a quarter of a 1/4-size conv's cost per channel.
    The last conv starts at zero, so adding the branch to a trained predictor changes nothing
    until it learns.
    """

    def __init__(self, width: int, depth: int) -> None:
        super().__init__()
        wide = 2 * width
        layers: list[nn.Module] = [
            nn.Conv2d(width, wide, 2, stride=2),
            nn.ReLU(inplace=True),
            *dilated_convs(wide, depth),
            nn.Conv2d(wide, width, 1),
        ]
        nn.init.zeros_(layers[-1].weight)
        nn.init.zeros_(layers[-1].bias)
        self.layers = nn.Sequential(*layers)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        context = self.layers(features)
        return features + F.interpolate(
            context, size=features.shape[-2:], mode="bilinear", align_corners=False
        )


class RefineBranch(nn.Module):
    """A wider residual head that corrects the predictor's logits from its features and the
    `blur_cues` (issue 19: sharp photos with bokeh were marked at 40-50% by every 16-channel,
    2-layer predictor, whatever defocused negatives it was shown).

    Telling defocus from motion blur needs comparing directions over a neighbourhood (motion
    leaves the edges along it sharp, defocus none); a 1x1 conv then `depth` dilated 3x3 convs
    of `width` channels (dilations 1, 2, 4, 8) reach ~120 px at 1/4 size. Its last conv starts
    at zero, so a trained predictor given the branch starts exactly where it was.
    """

    def __init__(self, features: int, width: int, depth: int) -> None:
        super().__init__()
        layers: list[nn.Module] = [
            nn.Conv2d(features + CUE_CHANNELS, width, 1),
            nn.ReLU(inplace=True),
            *dilated_convs(width, depth),
            nn.Conv2d(width, 1, 1),
        ]
        nn.init.zeros_(layers[-1].weight)
        nn.init.zeros_(layers[-1].bias)
        self.layers = nn.Sequential(*layers)

    def forward(self, features: torch.Tensor, cues: torch.Tensor) -> torch.Tensor:
        return self.layers(torch.cat([features, cues.to(features.dtype)], dim=1))


#: 3x3 convs of a `RefineBranch` (its width is the model's `mask_refine_width`).
REFINE_DEPTH = 4


class MaskPredictor(nn.Module):
    """Blur logits at 1/4 resolution from an image.

    forward(x (B, 3, H, W), H and W multiples of 8) -> (logits (B, 1, H/4, W/4),
    features (B, width, H/4, W/4)). A `feature_trunk`, then, with `context_depth` > 0, a
    `ContextBranch` at 1/8 size, then a 1x1 head. The features are what the motion analyzer
    reads when it has no trunk of its own (`M2AENetConfig.analyzer_stem`). With `cues`, the
    `blur_cues` enter the trunk's first layer through a 1x1 conv that starts at zero, so a
    predictor given them starts exactly as it was without; `edge_cues` do the same with
    `edge_width_cues` (how wide edges are across and along a smear: motion or defocus). With
    `refine_width` > 0, a `RefineBranch` of that width adds its correction to the head's logits.
    """

    def __init__(
        self,
        width: int = 24,
        depth: int = 4,
        context_depth: int = 0,
        cues: bool = False,
        refine_width: int = 0,
        edge_cues: bool = False,
    ) -> None:
        super().__init__()
        self.features = feature_trunk(width, depth)
        self.context = ContextBranch(width, context_depth) if context_depth > 0 else None
        self.head = nn.Conv2d(width, 1, 1)
        self.cues = nn.Conv2d(CUE_CHANNELS, width, 1) if cues else None
        if self.cues is not None:
            nn.init.zeros_(self.cues.weight)
            nn.init.zeros_(self.cues.bias)
        self.refine = RefineBranch(width, refine_width, REFINE_DEPTH) if refine_width else None
        self.edge_cues = nn.Conv2d(EDGE_CUE_CHANNELS, width, 1) if edge_cues else None
        if self.edge_cues is not None:
            nn.init.zeros_(self.edge_cues.weight)
            nn.init.zeros_(self.edge_cues.bias)

    def forward(
        self, x: torch.Tensor, inputs: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """`inputs`: `trunk_input(x)`, when the caller has computed it already (to share it)."""
        inputs = trunk_input(x) if inputs is None else inputs
        cues = blur_cues(x) if self.cues is not None or self.refine is not None else None
        if self.cues is None and self.edge_cues is None:
            features = self.features(inputs)
        else:  # the cues join the patch conv before its ReLU
            patches = self.features[0](inputs)
            if self.cues is not None:
                patches = patches + self.cues(cues).to(patches.dtype)
            if self.edge_cues is not None:
                patches = patches + self.edge_cues(edge_width_cues(x)).to(patches.dtype)
            features = self.features[1:](patches)
        if self.context is not None:
            features = self.context(features)
        logits = self.head(features)
        if self.refine is not None:
            logits = logits + self.refine(features, cues)
        return logits, features
