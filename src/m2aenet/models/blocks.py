"""Prunable restoration block: `y = x + M * F(x)`, exact on any subset of pixels.

F's first operation is the only one that reads other pixels, and it reads the block input,
which exists at every pixel (where the mask is 0, y = x). It sums three linear terms:
  (a) reparameterizable 3x3 mixing of x (`RepMixer`),
  (b) trajectory mixing (in blocks built with `trajectory=True`): the first
      `trajectory_channels` channels of x sampled bilinearly at the pixel's K trajectory
      points, combined by a learned per-point linear map,
  (c) context: the motion analyzer's features, upsampled to the pixel, through a linear map.
Everything after that is pointwise (LayerNorm, a SimpleGate channel MLP), so computing F on
a gathered list of pixels gives exactly the dense result.

Dense tensors here are "pixel rows": (B, H, W, C), contiguous, i.e. channels-last, so the
pointwise part is a plain matmul and the pruned executor shares the same code.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from m2aenet.models.motion import sample_bilinear
from m2aenet.models.reparam import RepMixer, conv3x3_as_matrix


def linear_rows(rows: torch.Tensor, layer: nn.Linear) -> torch.Tensor:
    """`layer(rows)` for 2-D rows (N, in), as a matmul plus an in-place bias add.

    Same function as `nn.Linear`; measured 2x faster on the CPU for millions of rows, where
    `addmm`'s broadcast of the bias into a fresh output dominates.
    """
    out = torch.mm(rows, layer.weight.t())
    return out if layer.bias is None else out.add_(layer.bias)


def accumulate_mm(h: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """`h + a @ b`, in place on h where possible.

    In place saves a copy of h; under autocast the out-of-place `addmm` is used, because
    autocast does not cast the operands of in-place ops.
    """
    if torch.is_autocast_enabled(h.device.type):
        return torch.addmm(h, a, b)
    return h.addmm_(a, b)


class PrunableBlock(nn.Module):
    """One masked residual block of the full-resolution body (see the module docstring)."""

    def __init__(
        self,
        channels: int,
        context_channels: int,
        trajectory_points: int,
        trajectory_channels: int,
        trajectory: bool = True,
        mlp_ratio: float = 1.0,
        batch_norm: bool = False,
    ) -> None:
        super().__init__()
        hidden = max(1, round(channels * mlp_ratio))
        self.channels = channels
        self.trajectory_points = trajectory_points if trajectory else 0
        self.trajectory_channels = trajectory_channels if trajectory else 0
        self.mixer = RepMixer(channels, batch_norm=batch_norm)
        # One linear map over [trajectory samples, context]: the learned per-point weights of
        # the trajectory mixing and the context projection (applied as two accumulating
        # matmuls, which saves concatenating the inputs).
        sampled = self.trajectory_points * self.trajectory_channels
        self.guide_proj = nn.Linear(sampled + context_channels, channels, bias=False)
        self.norm = nn.LayerNorm(channels)
        self.expand = nn.Linear(channels, 2 * hidden)
        self.project = nn.Linear(hidden, channels)
        # Zero-initialized last layer: every block starts as the identity.
        nn.init.zeros_(self.project.weight)
        nn.init.zeros_(self.project.bias)

    @property
    def samples_trajectory(self) -> bool:
        return self.trajectory_points > 0

    def pointwise(self, h: torch.Tensor) -> torch.Tensor:
        """The pointwise tail of F: (N, C) -> (N, C)."""
        a, b = linear_rows(self.norm(h), self.expand).chunk(2, dim=-1)
        return linear_rows(a * b, self.project)  # SimpleGate: the product is the nonlinearity

    def trajectory_samples(self, x: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
        """x (B, C, H, W), grid (B, H, W * K, 2) -> (B, H, W, K * trajectory_channels)."""
        batch, _, height, width = x.shape
        samples = sample_bilinear(x[:, : self.trajectory_channels], grid)  # (B, c, H, W*K)
        samples = samples.view(
            batch, self.trajectory_channels, height, width, self.trajectory_points
        )
        return samples.permute(0, 2, 3, 4, 1)  # (B, H, W, K, c), not yet contiguous

    def forward(
        self,
        x: torch.Tensor,
        mask: torch.Tensor,
        grid: torch.Tensor | None,
        context: torch.Tensor,
    ) -> torch.Tensor:
        """Dense forward.

        x (B, H, W, C) pixel rows; mask (B, H, W, 1) in {0, 1} (may carry a straight-through
        gradient); grid (B, H, W * K, 2) trajectory sampling grid (unused by blocks without
        trajectory mixing); context (B, H, W, Cctx) analyzer context at full size.
        Returns y (B, H, W, C).
        """
        batch, height, width, channels = x.shape
        x_nchw = x.permute(0, 3, 1, 2)  # a channels-last view, no copy
        # Linear layers get 2-D (pixels, channels) views: on >2-D inputs torch's linear
        # runs a separate bias add and was 2.5x slower.
        h = self.mixer(x_nchw).permute(0, 2, 3, 1).reshape(-1, channels)  # a view
        weights = self.guide_weights()
        if self.samples_trajectory:
            samples = self.trajectory_samples(x_nchw, grid).reshape(h.shape[0], -1)  # copies
            # In place is safe for autograd: the conv's backward does not need its output.
            h = accumulate_mm(h, samples, weights["trajectory"])
        h = accumulate_mm(h, context.reshape(h.shape[0], -1), weights["context"])
        y = torch.addcmul(x.reshape(-1, channels), mask.reshape(-1, 1), self.pointwise(h))
        return y.view(batch, height, width, channels)

    def guide_weights(self) -> dict[str, torch.Tensor]:
        """`guide_proj` split into its trajectory (K*c, C) and context (Cctx, C) parts."""
        guide = self.guide_proj.weight.t()  # (K*c + Cctx, C)
        sampled = self.trajectory_points * self.trajectory_channels
        return {"trajectory": guide[:sampled], "context": guide[sampled:]}

    def deploy_weights(self) -> dict[str, torch.Tensor]:
        """Matrices the pruned executors use."""
        kernel, bias = self.mixer.fused()
        guide = self.guide_weights()
        points, sampled = self.trajectory_points, self.trajectory_channels
        channels = guide["context"].shape[1]
        by_channel = guide["trajectory"].reshape(points, sampled, channels).transpose(0, 1)
        return {
            "kernel": kernel,  # (C, C, 3, 3), for the tile executor
            "matrix": conv3x3_as_matrix(kernel),  # (9C, C), for the pixel executor
            "bias": bias,
            "trajectory": guide["trajectory"].contiguous(),  # (K*c, C), rows point-major
            "trajectory_by_channel": by_channel.reshape(points * sampled, channels),
            "context": guide["context"].contiguous(),  # (Cctx, C)
        }

    @torch.no_grad()
    def reparameterize(self) -> None:
        """Collapse the mixer's branches into one 3x3 conv."""
        self.mixer.reparameterize()


class ConvBlock(PrunableBlock):
    """A `PrunableBlock` shaped for matrix units (AMX, tensor cores) under bf16 autocast.

    F(x) = project(gelu(expand(gelu(mixer(x) + guide(x))))): no LayerNorm and no gate, and
    the dense forward runs as channels-last convolutions (the 3x3 mixer, one 1x1 conv over the
    concatenated trajectory samples and context, 1x1 convs for the MLP), which oneDNN runs on
    the matrix units with bias and layout handled inside. Elementwise work stays in the
    features' dtype: mixed bf16/float32 elementwise ops took a slow path on the CPU (a bias
    add on 49152 x 64 rows: 69 ms). The pruned executors run the same maps as row matmuls
    (`pointwise`), so deploy still equals train.
    """

    def __init__(
        self,
        channels: int,
        context_channels: int,
        trajectory_points: int,
        trajectory_channels: int,
        trajectory: bool = True,
        mlp_ratio: float = 2.0,
    ) -> None:
        super().__init__(
            channels, context_channels, trajectory_points, trajectory_channels, trajectory
        )
        hidden = max(1, round(channels * mlp_ratio))
        del self.norm
        self.expand = nn.Linear(channels, hidden)
        self.project = nn.Linear(hidden, channels)
        nn.init.zeros_(self.project.weight)
        nn.init.zeros_(self.project.bias)

    def pointwise(self, h: torch.Tensor) -> torch.Tensor:
        """The pointwise tail of F on rows: (N, C) -> (N, C)."""
        hidden = F.gelu(linear_rows(F.gelu(h), self.expand))
        return linear_rows(hidden, self.project)

    def forward(
        self,
        x: torch.Tensor,
        mask: torch.Tensor,
        grid: torch.Tensor | None,
        context: torch.Tensor,
    ) -> torch.Tensor:
        """Dense forward; same arguments and result as `PrunableBlock.forward` (rows)."""
        x_nchw = x.permute(0, 3, 1, 2)  # a channels-last view
        h = self.mixer(x_nchw)
        guides = context
        if self.samples_trajectory:
            # Sampled in float32 (bf16 grid coordinates would be off by ~1/16 of a cell).
            samples = self.trajectory_samples(x_nchw.float(), grid).flatten(3)  # (B, H, W, K*c)
            guides = torch.cat((samples.to(context.dtype), context), dim=-1)
        h = h + F.conv2d(guides.permute(0, 3, 1, 2), _as_1x1(self.guide_proj.weight))
        h = F.conv2d(F.gelu(h), _as_1x1(self.expand.weight), self.expand.bias)
        h = F.conv2d(F.gelu(h), _as_1x1(self.project.weight), self.project.bias)
        update = h.permute(0, 2, 3, 1)  # rows view
        return torch.addcmul(x, mask.to(update.dtype), update.to(x.dtype))


def _as_1x1(weight: torch.Tensor) -> torch.Tensor:
    """A linear layer's (out, in) weight as a 1x1 conv kernel (out, in, 1, 1)."""
    return weight[:, :, None, None]
