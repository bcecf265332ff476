r"""M2AENet-MS: M2AENet with a multi-scale pruned body (levels at 1/2, 1/4 and 1/8).

    x --pad--> mask predictor (1/4) --> p, M = dilate(p > tau, r)
           \-> motion analyzer (1/4 U-Net) --> trajectory, context
    stem: 2x2 pixel cells -> C0 features at 1/2
    level 0 (1/2, C0):  encoder blocks on M0 = maxpool(M, 2)          -----skip----\
      down: 2x2 cells -> C1                                                         |
    level 1 (1/4, C1):  encoder blocks on M1 = maxpool(M0, 2)   --skip--\           |
      down                                                              |           |
    level 2 (1/8, C2):  middle blocks on M2 = maxpool(M1, 2)            |           |
      up: one cell -> 2x2 cells, + skip ----------------------------- level 1 decoder blocks
      up, + skip ------------------------------------------------------------- level 0 decoder
    head: C0 -> 2x2 pixel cells of RGB residual
    fine (optional, fine_width > 0): level 0 -> 2x2 pixels + the input pixel, full-resolution
      blocks on M itself, a per-pixel residual added to the head's
    out = x + M * residual

Every block is a `ConvBlock` (a `PrunableBlock`: `y = x + m * F(x)`, only F's first op reads
neighbours) on its level's max-pooled mask: a cell is kept when any of its pixels is. Blocks at
the coarse levels (`trajectory_from_level` and below) also sample their input along the motion
trajectory, where positions are few; every block reads the analyzer's context. The level
changes (2x2 stride-2 convolutions down, their transposes up) are per cell, and cheap next to
the blocks, so deploy mode runs them densely and prunes the blocks level by level with the
executors of `models/sparse.py`; its output equals the train-mode output for the same mask.

Why this shape (docs/decisions.md, issue 18): on a CPU with matrix units (AMX) the training
step should spend its time in few, large, channels-last convolutions and matmuls under bf16
autocast, not in elementwise work and irregular sampling at high resolution. Three levels
reach ~8x further than the half-resolution body at a fraction of the positions, and widths
grow where positions are few.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from m2aenet.errors import ConfigError
from m2aenet.models.blocks import ConvBlock
from m2aenet.models.frontend import (
    MaskMotionFrontEnd,
    add_cell_residual,
    check_front_end_config,
)
from m2aenet.models.motion import trajectory_grid, upsample_trajectory
from m2aenet.models.outputs import ModelOutput
from m2aenet.models.sparse import (
    KeptPixels,
    choose_executor,
    find_kept_pixels,
    make_plan,
    run_pruned_blocks,
    tile_statistics,
)
from m2aenet.registry import register_model

MAX_LEVELS = 3  # the padded size is a multiple of 8: 1/2, 1/4, 1/8


@dataclass
class M2AENetMSConfig:
    """Architecture of M2AENet-MS (defaults: `m2aenet-ms`, the CPU-fast model).

    widths:                channels at each level, level l at 1/2**(l+1) of the image
    encoder_blocks:        blocks per level going down (all levels but the deepest)
    middle_blocks:         blocks at the deepest level
    decoder_blocks:        blocks per level coming up (all levels but the deepest)
    trajectory_points:     K points per trajectory, at t_k evenly spaced in [-1/2, 1/2]
    trajectory_channels:   channels of a block's input sampled along the trajectory
    trajectory_from_level: blocks at this level and deeper sample along the trajectory
    mlp_ratio:             hidden width of each block's channel MLP, relative to its level
    fine_width:            channels of the full-resolution level (0: none); the head's 2x2
                           cells alone left a grid on flat colour and lost small blur
    fine_blocks:           blocks of the full-resolution level
    mask_*, analyzer_*, motion_scale, mask_threshold, mask_dilation, whole_frame_fraction,
    whole_frame_extent:    as in M2AENetConfig
    mask_defocus_veto:     as in M2AENetConfig
    """

    widths: tuple[int, ...] = (32, 64, 128)
    encoder_blocks: tuple[int, ...] = (1, 2)
    middle_blocks: int = 5
    decoder_blocks: tuple[int, ...] = (1, 2)
    trajectory_points: int = 3
    trajectory_channels: int = 16
    trajectory_from_level: int = 2
    mlp_ratio: float = 2.0
    fine_width: int = 0
    fine_blocks: int = 1
    mask_width: int = 16
    mask_depth: int = 2
    mask_context_depth: int = 3
    mask_cues: bool = False
    mask_refine_width: int = 0
    mask_edge_cues: bool = False
    analyzer_stem: bool = False
    analyzer_stem_context_depth: int = 0
    analyzer_width: int = 16
    analyzer_levels: int = 2
    motion_scale: float = 8.0
    mask_threshold: float = 0.5
    mask_dilation: int = 2
    whole_frame_fraction: float = 1.0
    whole_frame_extent: float = 0.0
    mask_defocus_veto: float = 0.0

    def __post_init__(self) -> None:
        levels = len(self.widths)
        if not 1 <= levels <= MAX_LEVELS:
            raise ConfigError(f"model_config.widths must list 1 to {MAX_LEVELS} levels")
        for key in ("encoder_blocks", "decoder_blocks"):
            if len(getattr(self, key)) != levels - 1:
                raise ConfigError(
                    f"model_config.{key} must list {levels - 1} block counts (one per level "
                    f"above the deepest), got {getattr(self, key)}"
                )
        counts = (*self.encoder_blocks, *self.decoder_blocks)
        if min(counts, default=0) < 0:
            raise ConfigError("model_config block counts must be >= 0")
        check_front_end_config(self)
        for key in ("middle_blocks", "trajectory_channels"):
            if int(getattr(self, key)) < 1:
                raise ConfigError(f"model_config.{key} must be >= 1, got {getattr(self, key)}")
        if min(self.widths) < 1:
            raise ConfigError(f"model_config.widths must be >= 1, got {self.widths}")
        if self.fine_width < 0 or self.fine_blocks < 0:
            raise ConfigError(
                f"model_config.fine_width and fine_blocks must be >= 0, got "
                f"{self.fine_width} and {self.fine_blocks}"
            )
        if self.fine_width and not self.fine_blocks:
            raise ConfigError("model_config.fine_blocks must be >= 1 when fine_width is set")
        if self.trajectory_from_level < 0:
            raise ConfigError(
                f"model_config.trajectory_from_level must be >= 0, got {self.trajectory_from_level}"
            )
        guided = self.widths[self.trajectory_from_level :]
        if guided and self.trajectory_channels > min(guided):
            raise ConfigError(
                f"model_config.trajectory_channels ({self.trajectory_channels}) must be <= the "
                f"widths of the levels that sample the trajectory ({guided})"
            )


@dataclass
class M2AENetMSBConfig(M2AENetMSConfig):
    """`m2aenet-ms-b`: paper-scale widths and depth, for GPU training."""

    widths: tuple[int, ...] = (48, 96, 192)
    encoder_blocks: tuple[int, ...] = (2, 4)
    middle_blocks: int = 8
    decoder_blocks: tuple[int, ...] = (2, 4)
    trajectory_points: int = 6
    trajectory_channels: int = 24
    trajectory_from_level: int = 1  # sampling is cheap on a GPU: levels 1/4 and 1/8
    mlp_ratio: float = 2.0
    mask_width: int = 24
    mask_depth: int = 3
    analyzer_width: int = 32
    analyzer_levels: int = 3


def _rows(nchw: torch.Tensor) -> torch.Tensor:
    """(B, C, h, w) -> contiguous (B, h, w, C) pixel rows (a view for channels-last input)."""
    return nchw.permute(0, 2, 3, 1).contiguous()


def _nchw(rows: torch.Tensor) -> torch.Tensor:
    """(B, h, w, C) rows -> a (B, C, h, w) channels-last view of the same memory."""
    return rows.permute(0, 3, 1, 2)


class M2AENetMS(MaskMotionFrontEnd):
    """The network; see the module docstring. Build it with `create_model("m2aenet-ms")`."""

    def __init__(self, config: M2AENetMSConfig) -> None:
        super().__init__(config)
        widths = list(config.widths)
        levels = len(widths)
        self.levels = levels

        def blocks(level: int, count: int) -> nn.ModuleList:
            return nn.ModuleList(
                ConvBlock(
                    widths[level],
                    config.analyzer_width,
                    config.trajectory_points,
                    config.trajectory_channels,
                    trajectory=level >= config.trajectory_from_level,
                    mlp_ratio=config.mlp_ratio,
                )
                for _ in range(count)
            )

        # Per-cell maps (2x2 cells, stride 2): a pixel-(un)shuffle and a linear map in one op.
        self.stem = nn.Conv2d(3, widths[0], 2, stride=2)
        self.encoder = nn.ModuleList(blocks(i, n) for i, n in enumerate(config.encoder_blocks))
        self.down = nn.ModuleList(
            nn.Conv2d(widths[i], widths[i + 1], 2, stride=2) for i in range(levels - 1)
        )
        self.middle = blocks(levels - 1, config.middle_blocks)
        self.up = nn.ModuleList(
            nn.ConvTranspose2d(widths[i + 1], widths[i], 2, stride=2) for i in range(levels - 1)
        )
        self.decoder = nn.ModuleList(blocks(i, n) for i, n in enumerate(config.decoder_blocks))
        self.head = nn.ConvTranspose2d(widths[0], 3, 2, stride=2)
        # Start close to "output = input": the body then learns a residual.
        nn.init.normal_(self.head.weight, std=1e-3)
        nn.init.zeros_(self.head.bias)
        self.fine = config.fine_width > 0
        # Parameters a warm start may lack: the level starts as the identity (zero head).
        self.grown_parts = ("fine_",) if self.fine else ()
        if self.fine:
            fine = config.fine_width
            self.fine_lift = nn.ConvTranspose2d(widths[0], fine, 2, stride=2)
            self.fine_pixel = nn.Conv2d(3, fine, 1)
            self.fine_blocks = nn.ModuleList(
                ConvBlock(
                    fine,
                    config.analyzer_width,
                    config.trajectory_points,
                    config.trajectory_channels,
                    trajectory=False,
                    mlp_ratio=config.mlp_ratio,
                )
                for _ in range(config.fine_blocks)
            )
            # Zero: a model grown from one without this level starts with its exact output.
            self.fine_head = nn.Linear(fine, 3)
            nn.init.zeros_(self.fine_head.weight)
            nn.init.zeros_(self.fine_head.bias)
        self.tile_size = 16
        self.tile_min_fill = 0.5  # tiles less full than this go through the pixel path
        self.chunk_pixels = 65536  # positions per executor step
        self.last_executor = None  # per level, e.g. "pixel,pixel,tile" (+ the fine level's)

    # ------------------------------------------------------------------ train mode
    def _level_masks(self, mask: torch.Tensor) -> list[torch.Tensor]:
        """(B, 1, Hp, Wp) pixel mask -> per level (B, 1, h_l, w_l): a cell is kept if any of
        its pixels is."""
        masks = []
        for _ in range(self.levels):
            mask = F.max_pool2d(mask, 2)
            masks.append(mask)
        return masks

    def _level_guides(
        self, lowres: torch.Tensor, context: torch.Tensor, level: int, size: tuple[int, int]
    ) -> tuple[torch.Tensor | None, torch.Tensor]:
        """Dense guidance of one level: the trajectory sampling grid (B, h, w * K, 2) in cells
        (None where the level does not sample) and context rows (B, h, w, Cctx), both
        bilinearly resized from the analyzer's resolution as the pruned plan samples them."""
        grid = None
        if level >= self.config.trajectory_from_level:
            grid = trajectory_grid(upsample_trajectory(lowres / 2 ** (level + 1), size))
        resized = F.interpolate(
            context.contiguous(memory_format=torch.channels_last),
            size=size,
            mode="bilinear",
            align_corners=False,
        )
        return grid, resized.permute(0, 2, 3, 1)

    def _dense_body(
        self, padded: torch.Tensor, mask: torch.Tensor, motion: torch.Tensor, context: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Every cell of every level: (image (B, 3, Hp, Wp), trajectory (B, K, 2, Hp, Wp))."""
        lowres = self._trajectory_lowres(motion)  # (B, K, 2, h, w) in pixels, at 1/4
        trajectory = upsample_trajectory(lowres, tuple(padded.shape[-2:]))
        masks = [m.permute(0, 2, 3, 1) for m in self._level_masks(mask)]
        guides: list[tuple[torch.Tensor | None, torch.Tensor]] = []

        def run(blocks: nn.ModuleList, rows: torch.Tensor, level: int) -> torch.Tensor:
            while len(guides) <= level:
                guides.append(
                    self._level_guides(lowres, context, len(guides), masks[len(guides)].shape[1:3])
                )
            grid, context_rows = guides[level]
            # The features' dtype (bf16 under autocast) for every elementwise op of the level.
            context_rows = context_rows.to(rows.dtype)
            for block in blocks:
                rows = block(rows, masks[level], grid, context_rows)
            return rows

        rows = _rows(self.stem(padded))
        skips = []
        for level, blocks in enumerate(self.encoder):
            rows = run(blocks, rows, level)
            skips.append(rows)
            rows = _rows(self.down[level](_nchw(rows)))
        rows = run(self.middle, rows, self.levels - 1)
        for level in reversed(range(self.levels - 1)):
            rows = _rows(self.up[level](_nchw(rows))) + skips[level]
            rows = run(self.decoder[level], rows, level)
        residual = self.head(_nchw(rows)).to(padded.dtype)  # (B, 3, Hp, Wp)
        if self.fine:
            fine_rows = self._dense_level(
                self.fine_blocks, self._fine_input(rows, padded), -1, mask, lowres, context
            )
            residual = residual + self.fine_head(fine_rows).permute(0, 3, 1, 2).to(padded.dtype)
        return padded + mask * residual, trajectory

    def _fine_input(self, rows: torch.Tensor, padded: torch.Tensor) -> torch.Tensor:
        """Rows (B, Hp, Wp, Cf) of the full-resolution level: level 0's cell features spread to
        their 2x2 pixels plus the pixel's own colour (every pixel: a per-pixel map, cheap)."""
        lifted = self.fine_lift(_nchw(rows))
        return _rows(lifted + self.fine_pixel(padded.to(lifted.dtype)))

    def _dense_level(
        self,
        blocks: nn.ModuleList,
        rows: torch.Tensor,
        level: int,
        mask: torch.Tensor,
        lowres: torch.Tensor,
        context: torch.Tensor,
    ) -> torch.Tensor:
        """Every position of one level (-1: full resolution) through its blocks, on that
        level's mask (B, 1, h, w); the context in the rows' dtype (bf16 under autocast)."""
        grid, context_rows = self._level_guides(lowres, context, level, rows.shape[1:3])
        mask_rows = mask.permute(0, 2, 3, 1)
        context_rows = context_rows.to(rows.dtype)
        for block in blocks:
            rows = block(rows, mask_rows, grid, context_rows)
        return rows

    # ------------------------------------------------------------------ deploy mode
    def _forward_deploy(
        self, x: torch.Tensor, padded: torch.Tensor, mask: torch.Tensor | None
    ) -> ModelOutput:
        height, width = x.shape[-2:]
        logits, source, prob, hard = self._predict_mask(padded, height, width, mask)
        if self.executor == "dense":
            # No data-dependent sizes on this path, so it traces for ONNX export; an empty mask
            # still gives x exactly, through `x + M * F(x)`.
            self.last_executor = "dense"
            motion, context = self._analyze_motion(source, logits)
            image, trajectory = self._dense_body(padded, hard, motion, context)
            return ModelOutput(
                image=image[..., :height, :width].contiguous(),
                mask=hard[..., :height, :width],
                mask_prob=prob[..., :height, :width],
                trajectory=trajectory[..., :height, :width],
            )
        level_masks = self._level_masks(hard)
        kept = [find_kept_pixels(m) for m in level_masks]
        if kept[0].count == 0:
            self.last_executor = "none"
            return self._unchanged(x, hard, prob, height, width)
        motion, context = self._analyze_motion(source, logits)
        lowres = self._trajectory_lowres(motion)
        ran: list[str] = []

        def run(blocks: nn.ModuleList, rows: torch.Tensor, level: int) -> torch.Tensor:
            if len(ran) <= level:
                ran.append(self._level_executor(level_masks[level], kept[level]))
            return self._run_level(
                blocks, rows, level, level_masks[level], kept[level], ran[level], lowres, context
            )

        rows = _rows(self.stem(padded))
        skips = []
        for level, blocks in enumerate(self.encoder):
            rows = run(blocks, rows, level)
            skips.append(rows)
            rows = _rows(self.down[level](_nchw(rows)))
        rows = run(self.middle, rows, self.levels - 1)
        for level in reversed(range(self.levels - 1)):
            rows = _rows(self.up[level](_nchw(rows))).add_(skips[level])
            rows = run(self.decoder[level], rows, level)
        kept_rows = rows.view(-1, rows.shape[-1]).index_select(0, kept[0].index)
        weight, bias = self._head_matrix()
        residual = torch.addmm(bias, kept_rows, weight).to(x.dtype)  # (n, 12)
        image = x.clone()
        add_cell_residual(image, hard, kept[0], residual, 2)
        if self.fine:
            # The full-resolution level runs on the pixel mask itself, pruned like the others.
            kept_pixels = find_kept_pixels(hard)
            ran.append(self._level_executor(hard, kept_pixels))
            fine_rows = self._run_level(
                self.fine_blocks,
                self._fine_input(rows, padded),
                -1,
                hard,
                kept_pixels,
                ran[-1],
                lowres,
                context,
            )
            kept_rows = fine_rows.view(-1, fine_rows.shape[-1]).index_select(0, kept_pixels.index)
            add_cell_residual(image, hard, kept_pixels, self.fine_head(kept_rows).to(x.dtype), 1)
        self.last_executor = ",".join(ran)
        return ModelOutput(
            image=image,
            mask=hard[..., :height, :width],
            mask_prob=prob[..., :height, :width],
            trajectory=lambda: upsample_trajectory(lowres, tuple(padded.shape[-2:]))[
                ..., :height, :width
            ],
        )

    def _head_matrix(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The head (a 2x2 stride-2 transposed conv) per cell: weight (C0, 12), bias (12,), in
        pixel_shuffle's value order (c * 4 + i * 2 + j)."""
        weight = self.head.weight  # (C0, 3, 2, 2)
        return weight.reshape(weight.shape[0], 12), self.head.bias.repeat_interleave(4)

    def _level_executor(self, mask: torch.Tensor, kept: KeptPixels) -> str:
        """The executor of one level: the model's, or for "auto" the fastest by the cost model
        of `models/sparse.py` at that level's kept fraction (coarse levels keep more)."""
        if self.executor != "auto":
            return self.executor
        if kept.count == 0:
            return "pixel"  # nothing to do: the pixel path does nothing
        tiled_area, tiled_kept = tile_statistics(mask, self.tile_size, self.tile_min_fill)
        return choose_executor(kept.count / mask.numel(), tiled_area, tiled_kept)

    def _run_level(
        self,
        blocks: nn.ModuleList,
        rows: torch.Tensor,
        level: int,
        mask: torch.Tensor,
        kept: KeptPixels,
        executor: str,
        lowres: torch.Tensor,
        context: torch.Tensor,
    ) -> torch.Tensor:
        """Apply a level's blocks to rows (B, h, w, C) with `executor`; returns the new rows
        (the same tensor, updated in place, for the pruned executors)."""
        if len(blocks) == 0:
            return rows
        if executor == "dense":
            return self._dense_level(blocks, rows, level, mask, lowres, context)
        if kept.count == 0:
            return rows
        plan = make_plan(
            mask,
            kept,
            lowres / 2 ** (level + 1),  # displacements in this level's cells
            context,
            executor,
            self.tile_size,
            self.tile_min_fill,
            self.chunk_pixels,
        )
        features = rows.view(-1, rows.shape[-1])
        order, last = run_pruned_blocks(list(blocks), features, tuple(rows.shape[:3]), plan)
        features.index_copy_(0, order.index, last)  # the last block's output too
        return rows

    @torch.no_grad()
    def reparameterize(self) -> M2AENetMS:
        """Switch to deploy mode in place: collapsed branches, pruned levels; returns self.

        Deploy mode is for inference (eval mode, no gradients); its output equals the
        train-mode network's for the same mask.
        """
        self.eval()
        fine = [self.fine_blocks] if self.fine else []
        for group in (*self.encoder, self.middle, *self.decoder, *fine):
            for block in group:
                block.reparameterize()
        self.deployed = True
        return self


@register_model("m2aenet-ms", M2AENetMSConfig)
def build_m2aenet_ms(config: M2AENetMSConfig) -> M2AENetMS:
    """Multi-scale pruned body (1/2, 1/4, 1/8): the CPU-fast body v2 (issue 18)."""
    return M2AENetMS(config)


@register_model("m2aenet-ms-b", M2AENetMSBConfig)
def build_m2aenet_ms_b(config: M2AENetMSConfig) -> M2AENetMS:
    """Multi-scale body at paper-scale width, for GPU training."""
    return M2AENetMS(config)
