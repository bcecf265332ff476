"""What every M2AENet body shares: the blur-mask predictor and the motion analyzer.

`MaskMotionFrontEnd` predicts the soft and hard blur masks at full resolution, runs the motion
analyzer at 1/4 resolution (motion parameters and context features) and handles the "nothing
blurred" case. The restoration bodies (`models/m2aenet.py`: one level; `models/multiscale.py`:
levels at 1/2, 1/4, 1/8) subclass it and add their blocks, so both read masks and motion the
same way and their checkpoints keep the same parameter names for these parts.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from m2aenet.errors import ConfigError
from m2aenet.limits import MAX_ANALYZER_LEVELS, MAX_CONFIG_INT
from m2aenet.models.edge_width import MAX_WIDTH as MAX_EDGE_WIDTH
from m2aenet.models.edge_width import defocused_cells
from m2aenet.models.frame_blur import MAX_EXTENT as MAX_FRAME_EXTENT
from m2aenet.models.frame_blur import frame_blur_extent
from m2aenet.models.mask_predictor import (
    ContextBranch,
    MaskPredictor,
    blur_probability,
    feature_trunk,
    hard_mask,
    straight_through,
    trunk_input,
)
from m2aenet.models.motion import MotionAnalyzer, motion_to_trajectory, trajectory_times
from m2aenet.models.outputs import ModelOutput
from m2aenet.models.sparse import EXECUTORS, KeptPixels

SIZE_MULTIPLE = 8  # inputs are padded to this (the analyzer works at 1/4 size and below)


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Pad (B, C, H, W) on the right and bottom to multiples of `multiple` (reflect)."""
    height, width = x.shape[-2:]
    pad_h, pad_w = -height % multiple, -width % multiple
    if pad_h == 0 and pad_w == 0:
        return x
    # Reflection needs more pixels than the padding; tiny inputs fall back to replication.
    mode = "reflect" if pad_h < height and pad_w < width else "replicate"
    return F.pad(x, (0, pad_w, 0, pad_h), mode=mode)


def check_front_end_config(config: Any) -> None:
    """ConfigError naming the key for out-of-range front-end fields of a model config (those
    `MaskMotionFrontEnd` reads, plus `mlp_ratio`), shared by every body's config."""
    for key in ("trajectory_points", "mask_width", "analyzer_width"):
        if int(getattr(config, key)) < 1:
            raise ConfigError(f"model_config.{key} must be >= 1, got {getattr(config, key)}")
    for key in (
        "mask_depth",
        "mask_context_depth",
        "mask_refine_width",
        "analyzer_stem_context_depth",
        "analyzer_levels",
        "mask_dilation",
    ):
        if int(getattr(config, key)) < 0:
            raise ConfigError(f"model_config.{key} must be >= 0, got {getattr(config, key)}")
    if config.analyzer_stem_context_depth and not config.analyzer_stem:
        raise ConfigError(
            "model_config.analyzer_stem_context_depth needs analyzer_stem: true, got "
            f"{config.analyzer_stem_context_depth} without a stem"
        )
    # The analyzer doubles its width per level: bound the deepest one before anything is
    # built (40 levels overflowed torch's size arithmetic; 4096 at 1 level asked 24 GB).
    if config.analyzer_levels > MAX_ANALYZER_LEVELS:
        raise ConfigError(
            f"model_config.analyzer_levels must be <= {MAX_ANALYZER_LEVELS}, "
            f"got {config.analyzer_levels}"
        )
    deepest = int(config.analyzer_width) * 2 ** int(config.analyzer_levels)
    if deepest > MAX_CONFIG_INT:
        raise ConfigError(
            f"model_config.analyzer_width {config.analyzer_width} doubled over "
            f"{config.analyzer_levels} analyzer_levels is {deepest} channels "
            f"(limit {MAX_CONFIG_INT})"
        )
    if not 0.0 < config.mask_threshold < 1.0:
        raise ConfigError(
            f"model_config.mask_threshold must be in (0, 1), got {config.mask_threshold}"
        )
    if not 0.0 < config.whole_frame_fraction <= 1.0:
        raise ConfigError(
            "model_config.whole_frame_fraction must be in (0, 1], got "
            f"{config.whole_frame_fraction}"
        )
    if not 0.0 <= config.whole_frame_extent <= MAX_FRAME_EXTENT:
        raise ConfigError(
            f"model_config.whole_frame_extent must be in [0, {MAX_FRAME_EXTENT:g}] px (0: off), "
            f"got {config.whole_frame_extent}"
        )
    if not 0.0 <= config.mask_defocus_veto < MAX_EDGE_WIDTH:
        raise ConfigError(
            f"model_config.mask_defocus_veto must be in [0, {MAX_EDGE_WIDTH:g}) px (0: off), "
            f"got {config.mask_defocus_veto}"
        )
    if config.mlp_ratio <= 0:
        raise ConfigError(f"model_config.mlp_ratio must be > 0, got {config.mlp_ratio}")


def analyzer_stem(width: int, depth: int, context_depth: int = 0) -> nn.Sequential:
    """The analyzer's own features of `trunk_input(x)`: a `feature_trunk`, then, with
    `context_depth` > 0, a `ContextBranch`, i.e. a mask predictor without its head.

    The branch lets a predictor with a context branch be swapped out of a model whose analyzer
    read its features (`train.predictor_weights`) while the analyzer's input stays the same.
    Appended last, it leaves the trunk's parameter names as a stem without it has them.
    """
    stem = feature_trunk(width, depth)
    if context_depth > 0:
        stem.append(ContextBranch(width, context_depth))
    return stem


def add_cell_residual(
    image: torch.Tensor,
    hard: torch.Tensor,
    kept: KeptPixels,
    residual: torch.Tensor,
    scale: int,
) -> None:
    """Add the residual (n, 3 s^2) of kept s x s cells to `image` (B, 3, H, W) in place, at the
    pixels of the padded hard mask `hard` only (as `x + M * R` does densely)."""
    pixels = image.permute(0, 2, 3, 1)  # (B, H, W, 3) view
    if scale == 1:
        pixels.index_put_((kept.batch, kept.y, kept.x), residual, accumulate=True)
        return
    count = residual.shape[0]
    # pixel_shuffle's order: value c * s^2 + i * s + j goes to pixel (s y + i, s x + j).
    values = residual.view(count, 3, scale, scale).permute(0, 2, 3, 1)  # (n, s, s, 3)
    offsets = torch.arange(scale, device=residual.device)
    ys = (kept.y[:, None] * scale + offsets).view(count, scale, 1).expand(-1, -1, scale)
    xs = (kept.x[:, None] * scale + offsets).view(count, 1, scale).expand(-1, scale, -1)
    batch = kept.batch.view(count, 1, 1).expand(-1, scale, scale)
    inside = hard[batch, 0, ys, xs] > 0  # (n, s, s); padding pixels are never masked
    index = (batch[inside], ys[inside], xs[inside])
    pixels.index_put_(index, values[inside], accumulate=True)


class MaskMotionFrontEnd(nn.Module):
    """Mask predictor + motion analyzer; subclasses add the restoration body.

    Reads from `config`: mask_width, mask_depth, mask_context_depth, mask_cues,
    mask_refine_width, mask_edge_cues, analyzer_stem,
    analyzer_stem_context_depth, analyzer_width, analyzer_levels, motion_scale,
    mask_threshold, mask_dilation, mask_defocus_veto, whole_frame_fraction, whole_frame_extent,
    trajectory_points.
    """

    size_multiple = SIZE_MULTIPLE
    executors: tuple[str, ...] = EXECUTORS

    def __init__(self, config: Any) -> None:
        super().__init__()
        self.config = config
        self.mask_predictor = MaskPredictor(
            config.mask_width,
            config.mask_depth,
            config.mask_context_depth,
            config.mask_cues,
            config.mask_refine_width,
            config.mask_edge_cues,
        )
        self.analyzer_stem = (
            analyzer_stem(config.mask_width, config.mask_depth, config.analyzer_stem_context_depth)
            if config.analyzer_stem
            else None
        )
        self.analyzer = MotionAnalyzer(
            config.mask_width, config.analyzer_width, config.analyzer_levels, config.motion_scale
        )
        self.mask_threshold = config.mask_threshold
        self.mask_dilation = config.mask_dilation
        self.whole_frame_fraction = config.whole_frame_fraction
        self.whole_frame_extent = config.whole_frame_extent
        self.defocus_veto = config.mask_defocus_veto
        self.deployed = False
        self.executor = "auto"
        self.last_executor: str | None = None  # what the last deploy forward ran

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> ModelOutput:
        """Deblur x (B, 3, H, W) in [0, 1]; `mask` (B, 1, H, W) {0, 1} overrides the predicted one.

        Any H and W: the input is padded to a multiple of 8 and the outputs cropped back.
        Subclasses provide the body: `_dense_body(padded, mask, motion, context)` (train mode)
        and `_forward_deploy(x, padded, mask)` (after `reparameterize()`).
        """
        self._check_input(x, mask)
        height, width = x.shape[-2:]
        padded = pad_to_multiple(x, self.size_multiple).contiguous(
            memory_format=torch.channels_last
        )
        if self.deployed:
            with torch.no_grad():
                return self._forward_deploy(x, padded, mask)
        logits, source, prob, hard = self._predict_mask(padded, height, width, mask)
        used = straight_through(hard, prob) if mask is None else hard  # (B, 1, Hp, Wp)
        if not self.training and not bool(hard.any()):
            # Nothing blurred: the output is the input and the rest of the network is skipped.
            # Training always runs the body: with M = 0 the output is still x exactly, but the
            # straight-through gradient tells the predictor where restoring would have helped
            # (and every parameter gets a gradient, as distributed training requires).
            return self._unchanged(x, used, prob, height, width)
        motion, context = self._analyze_motion(source, logits)
        image, trajectory = self._dense_body(padded, used, motion, context)
        return ModelOutput(
            image=image[..., :height, :width].contiguous(),
            mask=used[..., :height, :width],
            mask_prob=prob[..., :height, :width],
            trajectory=trajectory[..., :height, :width],
        )

    def _predict_mask(
        self, padded: torch.Tensor, height: int, width: int, mask: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(logits at 1/4, what the analyzer's features come from, p and hard mask at full size).

        With an analyzer stem that is the trunk input, computed once for both trunks. Without,
        it is the predictor's features, read detached: the restoration and motion gradients
        flowing back into the small predictor drowned its mask loss (mask loss 1.43 -> 1.34 in
        600 steps, nothing predicted at step 500), while the predictor trained on its own loss
        finds blur within ~1000 steps (docs/decisions.md).
        """
        inputs = trunk_input(padded)
        logits, features = self.mask_predictor(padded, inputs)
        source = inputs if self.analyzer_stem is not None else features.detach()
        # In float32 even under bf16 autocast: bf16 rounds p >= 0.998 to 1.0, where the mask
        # loss's clamp then passes no gradient (1.8% of pixels in a session-8 checkpoint).
        prob = blur_probability(logits.float(), padded.shape[-2:])
        pad = (0, padded.shape[-1] - width, 0, padded.shape[-2] - height)
        if mask is None:
            marked = prob
            if self.defocus_veto > 0.0:  # defocus is not motion blur: its cells stay unmarked
                defocused = defocused_cells(padded, self.defocus_veto).to(prob.dtype)
                marked = prob * (1.0 - F.interpolate(defocused, size=prob.shape[-2:]))
            hard = hard_mask(marked, self.mask_threshold, self.mask_dilation)[..., :height, :width]
            if self.whole_frame_fraction < 1.0:
                # An image-level decision: a mostly marked frame is camera shake, restored whole.
                share = hard.mean(dim=(1, 2, 3), keepdim=True)  # (B, 1, 1, 1)
                hard = torch.where(share >= self.whole_frame_fraction, torch.ones_like(hard), hard)
            if self.whole_frame_extent > 0.0:
                # Camera shake leaves no sharp part anywhere, which a local mask cannot see.
                extent = frame_blur_extent(padded[..., :height, :width])
                shaken = (extent >= self.whole_frame_extent).view(-1, 1, 1, 1)
                hard = torch.where(shaken, torch.ones_like(hard), hard)
            # Padding pixels are never restored: they are cropped away anyway. Re-padding with
            # zeros (not an in-place write to a possibly empty slice) keeps the graph exportable.
            hard = F.pad(hard, pad)
        else:
            hard = F.pad((mask > 0.5).to(padded.dtype), pad)
        return logits, source, prob, hard

    def _check_input(self, x: torch.Tensor, mask: torch.Tensor | None) -> None:
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"x must have shape (B, 3, H, W), got {tuple(x.shape)}")
        if mask is not None:
            expected = (x.shape[0], 1, *x.shape[2:])
            if tuple(mask.shape) != expected:
                raise ValueError(f"mask must have shape {expected}, got {tuple(mask.shape)}")
        if self.executor not in self.executors:
            raise ValueError(f"executor must be one of {self.executors}, got {self.executor!r}")

    def _analyze_motion(
        self, source: torch.Tensor, logits: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(motion (B, 4, h, w), context (B, Cctx, h, w)) at the analyzer's 1/4 resolution.

        The analyzer reads its own trunk's features (with an analyzer stem) or the
        predictor's, and the blur probability without gradient (the mask is the predictor's
        job)."""
        features = self.analyzer_stem(source) if self.analyzer_stem is not None else source
        return self.analyzer(features, torch.sigmoid(logits).detach())

    def _trajectory_lowres(self, motion: torch.Tensor) -> torch.Tensor:
        """(B, K, 2, h, w) trajectory at the analyzer's resolution from motion (B, 4, h, w)."""
        return motion_to_trajectory(motion, trajectory_times(self.config.trajectory_points, motion))

    def _unchanged(
        self, x: torch.Tensor, mask: torch.Tensor, prob: torch.Tensor, height: int, width: int
    ) -> ModelOutput:
        points = self.config.trajectory_points
        return ModelOutput(
            image=x.clone(),
            mask=mask[..., :height, :width],
            mask_prob=prob[..., :height, :width],
            trajectory=x.new_zeros(x.shape[0], points, 2, height, width),
        )
