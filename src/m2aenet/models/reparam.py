"""Structural reparameterization: train-time multi-branch 3x3 mixing collapsed into one conv.

`RepMixer` trains as 3x3 conv + 1x1 conv + scaled identity (each optionally followed by
BatchNorm). All branches are linear, so after training they collapse into a single 3x3 conv
(`reparameterize()`), which deployment runs as a [9C -> C] matmul over the unfolded 3x3
neighbourhood of each kept pixel (`conv3x3_as_matrix`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def fuse_batch_norm(
    kernel: torch.Tensor, bias: torch.Tensor | None, norm: nn.BatchNorm2d
) -> tuple[torch.Tensor, torch.Tensor]:
    """Fold an eval-mode BatchNorm into the conv before it: kernel (O, I, kh, kw), bias (O,)."""
    scale = norm.weight / torch.sqrt(norm.running_var + norm.eps)  # (O,)
    bias = torch.zeros_like(norm.running_mean) if bias is None else bias
    return kernel * scale.view(-1, 1, 1, 1), norm.bias + (bias - norm.running_mean) * scale


def conv3x3_as_matrix(kernel: torch.Tensor) -> torch.Tensor:
    """A (O, I, 3, 3) conv kernel as a (9 * I, O) matrix over unfolded neighbourhoods.

    Row `j * I + c` with `j = 3 * (dy + 1) + (dx + 1)` multiplies channel c of the neighbour at
    offset (dy, dx); this is the order `sparse.neighbour_indices` gathers neighbours in.
    """
    out_channels, in_channels = kernel.shape[:2]
    return kernel.permute(2, 3, 1, 0).reshape(9 * in_channels, out_channels).contiguous()


class RepMixer(nn.Module):
    """Reparameterizable 3x3 spatial mixing, channels -> channels.

    Train mode: 3x3 conv (with bias) + 1x1 conv + identity scaled per channel, each branch
    optionally followed by BatchNorm (`batch_norm=True`). Without BatchNorm the branches are
    summed into one kernel before the convolution, which is the same function and the same
    gradients at the cost of a single conv; with BatchNorm they run separately in training.
    Deploy mode (`reparameterize()`): one 3x3 conv with bias.
    """

    def __init__(self, channels: int, batch_norm: bool = False) -> None:
        super().__init__()
        self.channels = channels
        self.batch_norm = batch_norm
        self.deployed = False
        self.conv3 = nn.Conv2d(channels, channels, 3, padding=1, bias=not batch_norm)
        self.conv1 = nn.Conv2d(channels, channels, 1, bias=False)
        self.identity_scale = nn.Parameter(torch.ones(channels))
        if batch_norm:
            self.norm3 = nn.BatchNorm2d(channels)
            self.norm1 = nn.BatchNorm2d(channels)
            self.norm_identity = nn.BatchNorm2d(channels)

    def branch_kernels(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Each branch as an equivalent (kernel (C, C, 3, 3), bias (C,)) pair (BN folded)."""
        channels = self.channels
        zero_bias = self.identity_scale.new_zeros(channels)
        kernel3 = self.conv3.weight
        bias3 = self.conv3.bias if self.conv3.bias is not None else zero_bias
        kernel1 = F.pad(self.conv1.weight, (1, 1, 1, 1))
        identity = torch.zeros(channels, channels, 3, 3, dtype=kernel3.dtype, device=kernel3.device)
        index = torch.arange(channels, device=kernel3.device)
        identity[index, index, 1, 1] = 1.0
        identity = identity * self.identity_scale.view(-1, 1, 1, 1)
        if not self.batch_norm:
            return [(kernel3, bias3), (kernel1, zero_bias), (identity, zero_bias)]
        return [
            fuse_batch_norm(kernel3, None, self.norm3),
            fuse_batch_norm(kernel1, None, self.norm1),
            fuse_batch_norm(identity, None, self.norm_identity),
        ]

    def fused(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The single (kernel (C, C, 3, 3), bias (C,)) the branches collapse into."""
        if self.deployed:
            return self.weight, self.bias
        kernels = self.branch_kernels()
        return sum(k for k, _ in kernels), sum(b for _, b in kernels)

    def forward_branches(self, x: torch.Tensor) -> torch.Tensor:
        """Reference: every branch computed separately and summed; x (B, C, H, W)."""
        branch3 = self.conv3(x)
        branch1 = self.conv1(x)
        identity = x * self.identity_scale.view(1, -1, 1, 1)
        if self.batch_norm:
            branch3, branch1 = self.norm3(branch3), self.norm1(branch1)
            identity = self.norm_identity(identity)
        return branch3 + branch1 + identity

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, C, H, W) -> (B, C, H, W); zero padding at the borders."""
        if self.batch_norm and not self.deployed and self.training:
            return self.forward_branches(x)  # BN needs its batch statistics per branch
        kernel, bias = self.fused()
        return F.conv2d(x, kernel, bias, padding=1)

    @torch.no_grad()
    def reparameterize(self) -> None:
        """Collapse the branches into `weight` (C, C, 3, 3) and `bias` (C,), in place."""
        if self.deployed:
            return
        kernel, bias = self.fused()
        self.weight = nn.Parameter(kernel.detach().clone())
        self.bias = nn.Parameter(bias.detach().clone())
        for name in ("conv3", "conv1", "norm3", "norm1", "norm_identity"):
            if hasattr(self, name):
                delattr(self, name)
        del self.identity_scale
        self.deployed = True
