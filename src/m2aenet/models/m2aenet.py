r"""M2AENet: motion-aware adaptive pixel pruning for local motion deblurring.

    x --pad--> mask predictor (1/4 res) --> p, M = dilate(p > tau, r)
           \-> motion analyzer (1/4 res U-Net on its own stem's or the predictor's features
               and p) --> motion, context
           \-> pixel-unshuffle by s --> stem (per-position linear)
               --> N prunable blocks y = x + M_s * F(x) --> head --> pixel-shuffle by s
    out = x + M * body(x),   M_s = maxpool(M, s): a body position is kept if any of its s x s
                             pixels is blurred

With `body_scale` s = 2 the body works on 2x2 pixel cells: a 3x3 conv then reaches twice as
far in pixels at a quarter of the positions, which is what long blur paths need.

Train mode computes every pixel (masked by M, with a straight-through gradient to p).
`reparameterize()` switches to deploy mode: collapsed convs, and the blocks run on the kept
pixels only (`models/sparse.py`), with the same output for the same mask.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from m2aenet.errors import ConfigError
from m2aenet.models.blocks import PrunableBlock, linear_rows
from m2aenet.models.frontend import (
    SIZE_MULTIPLE,
    MaskMotionFrontEnd,
    add_cell_residual,
    check_front_end_config,
    pad_to_multiple,
)
from m2aenet.models.motion import trajectory_grid, upsample_trajectory
from m2aenet.models.outputs import ModelOutput
from m2aenet.models.sparse import (
    choose_executor,
    find_kept_pixels,
    make_plan,
    run_pruned_blocks,
    tile_statistics,
)
from m2aenet.registry import register_model

__all__ = ["M2AENet", "M2AENetConfig", "SIZE_MULTIPLE", "pad_to_multiple", "parameter_count"]


@dataclass
class M2AENetConfig:
    """Architecture of M2AENet (defaults: `m2aenet-s`, the first CPU model: full-resolution
    body, C = 24; the shipped weights are `m2aenet-s2`, below).

    channels:            width C of the full-resolution body
    num_blocks:          number of prunable blocks N
    trajectory_points:   K points per trajectory, at t_k evenly spaced in [-1/2, 1/2]
    trajectory_channels: channels of the block input sampled along the trajectory
    trajectory_every:    blocks 0, e, 2e, ... sample their input along the trajectory
    mlp_ratio:           hidden width of each block's channel MLP, relative to C
    mask_width, mask_depth: mask predictor width and number of 3x3 convs at 1/4 size
    mask_context_depth:  3x3 convs of the predictor's context branch at 1/8 size (0: none)
    mask_cues:           the predictor also reads `blur_cues` (directional log energies)
    mask_refine_width:   width of the predictor's `RefineBranch` (cues + features -> a logit
                         correction; 0: none)
    mask_edge_cues:      the predictor also reads `edge_width_cues` (edge widths per
                         orientation: a smear or defocus)
    analyzer_stem:       the motion analyzer computes its own features of the image (a trunk
                         of `mask_width`, `mask_depth`) instead of reading the predictor's, so
                         the predictor can be retrained or replaced without moving the
                         analyzer's input
    analyzer_stem_context_depth: the stem's own context branch (as the predictor's; 0: none),
                         set when a predictor with a context branch is swapped out of a model
                         whose analyzer read its features
    analyzer_width:      motion analyzer width at 1/4 size (doubles per level)
    analyzer_levels:     downsamplings below 1/4 size in the analyzer U-Net
    motion_scale:        pixels per unit of the motion head's output
    mask_threshold:      tau, the blur probability above which a pixel is restored
    mask_dilation:       r, dilation radius of the hard mask in pixels
    whole_frame_fraction: an image whose hard mask covers at least this share is restored
                         whole (camera shake: the predictor's holes in a blurred frame would
                         stay blurred); 1.0: only when the mask already covers everything
    whole_frame_extent:  an image whose `frame_blur_extent` (px at 640 px: how far its sharpest
                         parts stay correlated) reaches this is camera shake, restored whole,
                         whatever the predictor marked; 0: off
    mask_defocus_veto:   px: where even the narrowest edge orientation is wider than this
                         (`edge_width.defocused_cells`: defocus widens every edge, a smear only
                         those across it), nothing is marked; 0: off
    batch_norm:          BatchNorm in the mixer branches (folded by reparameterize())
    body_scale:          s, the body's cell size in pixels (1: full resolution; 2: the body
                         runs on pixel-unshuffled 2x2 cells, twice the reach per conv)
    """

    channels: int = 24
    num_blocks: int = 6
    trajectory_points: int = 4
    trajectory_channels: int = 8
    trajectory_every: int = 2
    mlp_ratio: float = 1.0
    mask_width: int = 16
    mask_depth: int = 2
    mask_context_depth: int = 0
    mask_cues: bool = False
    mask_refine_width: int = 0
    mask_edge_cues: bool = False
    analyzer_stem: bool = False
    analyzer_stem_context_depth: int = 0
    analyzer_width: int = 16
    analyzer_levels: int = 3
    motion_scale: float = 8.0
    mask_threshold: float = 0.5
    mask_dilation: int = 2
    whole_frame_fraction: float = 1.0
    whole_frame_extent: float = 0.0
    mask_defocus_veto: float = 0.0
    batch_norm: bool = False
    body_scale: int = 1

    def __post_init__(self) -> None:
        check_front_end_config(self)
        for key in ("channels", "num_blocks", "trajectory_channels", "trajectory_every"):
            if int(getattr(self, key)) < 1:
                raise ConfigError(f"model_config.{key} must be >= 1, got {getattr(self, key)}")
        if self.trajectory_channels > self.channels:
            raise ConfigError(
                f"model_config.trajectory_channels ({self.trajectory_channels}) must be <= "
                f"channels ({self.channels})"
            )
        if self.body_scale not in (1, 2, 4, 8):  # the padded size is a multiple of 8
            raise ConfigError(
                f"model_config.body_scale must be 1, 2, 4 or 8, got {self.body_scale}"
            )


@dataclass
class M2AENetBConfig(M2AENetConfig):
    """`m2aenet-b`: a wider, deeper body and analyzer, for GPU training."""

    channels: int = 48
    num_blocks: int = 12
    trajectory_points: int = 6
    trajectory_channels: int = 16
    trajectory_every: int = 1
    mlp_ratio: float = 2.0
    mask_width: int = 24
    mask_depth: int = 3
    analyzer_width: int = 32
    analyzer_levels: int = 3


@dataclass
class M2AENetS2Config(M2AENetConfig):
    """`m2aenet-s2`: the architecture of the shipped `default` weights (since session 4): the
    body on 2x2 cells (`body_scale: 2`), C = 48, 16 trajectory channels, the analyzer's own
    stem, a depth-5 predictor context, threshold 0.3, (since session 13) frames whose
    `frame_blur_extent` reaches 3.5 px restored whole and (since session 14) a predictor that
    reads the blur cues (docs/architecture.md)."""

    channels: int = 48
    trajectory_channels: int = 16
    mask_context_depth: int = 5
    mask_cues: bool = True
    analyzer_stem: bool = True
    mask_threshold: float = 0.3
    whole_frame_extent: float = 3.5
    body_scale: int = 2


class M2AENet(MaskMotionFrontEnd):
    """The network; see the module docstring. Build it with `create_model("m2aenet-s")`."""

    def __init__(self, config: M2AENetConfig) -> None:
        super().__init__(config)
        channels = config.channels
        # Pointwise (a linear map on pixel rows): the stem runs at every body position, since
        # pruned blocks read block inputs anywhere along a trajectory, so it is kept to
        # 3 s^2 x C MACs per position; block 0 mixes space. (A 1x1 conv takes a slow path on
        # the CPU.)
        self.body_scale = config.body_scale
        cell = 3 * config.body_scale**2  # values of one s x s cell of RGB pixels
        self.stem = nn.Linear(cell, channels)
        self.blocks = nn.ModuleList(
            PrunableBlock(
                channels,
                config.analyzer_width,
                config.trajectory_points,
                config.trajectory_channels,
                trajectory=index % config.trajectory_every == 0,
                mlp_ratio=config.mlp_ratio,
                batch_norm=config.batch_norm,
            )
            for index in range(config.num_blocks)
        )
        self.head = nn.Linear(channels, cell)
        # Start close to "output = input": the body then learns a residual.
        nn.init.normal_(self.head.weight, std=1e-3)
        nn.init.zeros_(self.head.bias)
        self.tile_size = 16
        self.tile_min_fill = 0.5  # tiles less full than this go through the pixel path
        self.chunk_pixels = 65536  # pixels per executor step (larger was no faster here)

    def _dense_body(
        self, padded: torch.Tensor, mask: torch.Tensor, motion: torch.Tensor, context: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Every pixel through the body: (image (B, 3, Hp, Wp), trajectory (B, K, 2, Hp, Wp))."""
        size = tuple(padded.shape[-2:])
        scale = self.body_scale
        body_size = (size[0] // scale, size[1] // scale)
        lowres = self._trajectory_lowres(motion)
        trajectory = upsample_trajectory(lowres, size)
        if scale > 1:  # the body samples its own grid of cells: displacements in cells
            grid = trajectory_grid(upsample_trajectory(self._in_cells(lowres), body_size))
        else:
            grid = trajectory_grid(trajectory)  # (B, Hp, Wp * K, 2)
        context = F.interpolate(
            context.contiguous(memory_format=torch.channels_last),
            size=body_size,
            mode="bilinear",
            align_corners=False,
        ).permute(0, 2, 3, 1)  # (B, h, w, Cctx) rows of body positions
        rows = self._stem_rows(padded)  # (B, h, w, C)
        mask_rows = self._body_mask(mask).permute(0, 2, 3, 1)
        for block in self.blocks:
            rows = block(rows, mask_rows, grid, context)
        batch, height, width, channels = rows.shape
        residual = linear_rows(rows.reshape(-1, channels), self.head)
        residual = residual.view(batch, height, width, -1).permute(0, 3, 1, 2)  # (B, 3s^2, h, w)
        if scale > 1:
            residual = F.pixel_shuffle(residual, scale)  # (B, 3, Hp, Wp)
        return padded + mask * residual, trajectory

    def _in_cells(self, trajectory: torch.Tensor) -> torch.Tensor:
        """Displacements in pixels -> in body cells (what the blocks sample with)."""
        return trajectory if self.body_scale == 1 else trajectory / self.body_scale

    def _body_mask(self, mask: torch.Tensor) -> torch.Tensor:
        """(B, 1, Hp, Wp) pixel mask -> (B, 1, Hp/s, Wp/s): a cell is kept if any pixel is."""
        return mask if self.body_scale == 1 else F.max_pool2d(mask, self.body_scale)

    def _stem_rows(self, padded: torch.Tensor) -> torch.Tensor:
        """Stem features as rows of body positions: (B, 3, Hp, Wp) -> (B, Hp/s, Wp/s, C)."""
        cells = padded if self.body_scale == 1 else F.pixel_unshuffle(padded, self.body_scale)
        batch, values, height, width = cells.shape
        rows = linear_rows(cells.permute(0, 2, 3, 1).reshape(-1, values), self.stem)
        return rows.view(batch, height, width, -1)

    # ------------------------------------------------------------------ deploy mode
    def _forward_deploy(
        self, x: torch.Tensor, padded: torch.Tensor, mask: torch.Tensor | None
    ) -> ModelOutput:
        batch, _, height, width = x.shape
        padded_h, padded_w = padded.shape[-2:]
        logits, source, prob, hard = self._predict_mask(padded, height, width, mask)
        if self.executor == "dense":
            # No data-dependent sizes on this path, so it traces for ONNX export; an empty mask
            # still gives x exactly, through `x + M * F(x)`.
            kept = None
        else:
            body_hard = self._body_mask(hard)
            kept = find_kept_pixels(body_hard)
            if kept.count == 0:
                self.last_executor = "none"
                return self._unchanged(x, hard, prob, height, width)
        motion, context = self._analyze_motion(source, logits)
        executor = self.executor
        if executor == "auto":
            tiled_area, tiled_kept = tile_statistics(body_hard, self.tile_size, self.tile_min_fill)
            executor = choose_executor(kept.count / body_hard.numel(), tiled_area, tiled_kept)
        self.last_executor = executor
        if executor == "dense":
            image, trajectory = self._dense_body(padded, hard, motion, context)
            image = image[..., :height, :width].contiguous()
            trajectory = trajectory[..., :height, :width]
        else:
            lowres_trajectory = self._trajectory_lowres(motion)  # in pixels
            scale = self.body_scale
            plan = make_plan(
                body_hard,
                kept,
                self._in_cells(lowres_trajectory),
                context,
                executor,
                self.tile_size,
                self.tile_min_fill,
                self.chunk_pixels,
            )
            features = self._stem_rows(padded).view(-1, self.config.channels)  # (B*Hp*Wp, C)
            body_shape = (batch, padded_h // scale, padded_w // scale)
            kept, rows = run_pruned_blocks(list(self.blocks), features, body_shape, plan)
            residual = linear_rows(rows, self.head).to(x.dtype)  # (n, 3s^2); autocast may lower
            image = x.clone()
            add_cell_residual(image, hard, kept, residual, scale)
            # Restoring the image did not need the full-size trajectory: it is built only
            # if the caller reads it (see ModelOutput).
            trajectory = functools.partial(
                _cropped_trajectory, lowres_trajectory, (padded_h, padded_w), height, width
            )
        return ModelOutput(
            image=image,
            mask=hard[..., :height, :width],
            mask_prob=prob[..., :height, :width],
            trajectory=trajectory,
        )

    @torch.no_grad()
    def reparameterize(self) -> M2AENet:
        """Switch to deploy mode in place: collapsed branches, pruned blocks; returns self.

        Deploy mode is for inference (the model is put in eval mode and runs without
        gradients); its output equals the train-mode network's for the same mask.
        """
        self.eval()
        for block in self.blocks:
            block.reparameterize()
        self.deployed = True
        return self


def _cropped_trajectory(
    lowres: torch.Tensor, size: tuple[int, int], height: int, width: int
) -> torch.Tensor:
    """Full-size trajectory (B, K, 2, height, width) from the (B, K, 2, h, w) one."""
    return upsample_trajectory(lowres, size)[..., :height, :width]


@register_model("m2aenet-s", M2AENetConfig)
def build_m2aenet_s(config: M2AENetConfig) -> M2AENet:
    """CPU-fast default: trains on a 2-core CPU, runs in about a second per megapixel."""
    return M2AENet(config)


@register_model("m2aenet-s2", M2AENetS2Config)
def build_m2aenet_s2(config: M2AENetConfig) -> M2AENet:
    """The shipped architecture: m2aenet-s with its body on 2x2 cells and a wider body."""
    return M2AENet(config)


@register_model("m2aenet-b", M2AENetBConfig)
def build_m2aenet_b(config: M2AENetConfig) -> M2AENet:
    """Larger model for GPU training."""
    return M2AENet(config)


def parameter_count(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
