"""Dense baselines that spend the same work on every pixel, for comparison with M2AENet.

`nafnet-s` is a NAFNet-style U-Net written from the paper's description (Chen et al., "Simple
Baselines for Image Restoration", ECCV 2022): blocks of channel LayerNorm, pointwise and
depthwise convs, SimpleGate and simplified channel attention, with learned residual scales;
stride-2 conv downsampling, pixel-shuffle upsampling, skip additions and a global residual.

It honours the same model contract as M2AENet (`forward(x, mask=None) -> ModelOutput`,
`reparameterize()`, `mask_threshold`, `executor`), so training, evaluation and benchmarks
treat it like any other model. Without a mask it restores every pixel and reports an
all-ones mask (the plain dense network the comparison wants); given a mask it still computes
densely but keeps only the masked pixels, leaving the rest bit-exact, as the contract requires.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from m2aenet.errors import ConfigError
from m2aenet.models.outputs import ModelOutput
from m2aenet.registry import register_model


@dataclass
class NAFNetConfig:
    """Size of a NAFNet-style U-Net.

    `enc_blocks[i]` blocks run at level i (width * 2**i channels, 1/2**i resolution) before
    downsampling; `middle_blocks` at the bottom; `dec_blocks[i]` after upsampling back to level
    i. Defaults (`nafnet-s`): 1.01e5 FLOPs per pixel by `m2aenet.flops.count_flops` at
    256 x 256, 4% above m2aenet-s run densely (9.70e4, all-ones mask); 1.2 M parameters.
    """

    width: int = 28
    enc_blocks: tuple[int, ...] = (1, 1, 1)
    middle_blocks: int = 2
    dec_blocks: tuple[int, ...] = (1, 1, 1)

    def __post_init__(self) -> None:
        # YAML and JSON give lists; keep tuples so configs compare and hash alike.
        self.enc_blocks = tuple(int(n) for n in self.enc_blocks)
        self.dec_blocks = tuple(int(n) for n in self.dec_blocks)
        if self.width < 1:
            raise ConfigError(f"model_config.width must be >= 1, got {self.width}")
        if len(self.enc_blocks) != len(self.dec_blocks):
            raise ConfigError(
                "model_config.enc_blocks and model_config.dec_blocks need one entry per level, "
                f"got {len(self.enc_blocks)} and {len(self.dec_blocks)}"
            )
        for key, counts in (
            ("enc_blocks", self.enc_blocks),
            ("dec_blocks", self.dec_blocks),
            ("middle_blocks", (self.middle_blocks,)),
        ):
            if any(n < 0 for n in counts):
                raise ConfigError(f"model_config.{key} must be >= 0, got {counts}")

    @property
    def levels(self) -> int:
        """Number of 2x downsamplings; inputs are padded to a multiple of 2**levels."""
        return len(self.enc_blocks)


class LayerNorm2d(nn.Module):
    """LayerNorm over the channels of each pixel of a (B, C, H, W) map, with affine weights.

    Written with elementwise ops rather than a permute + `F.layer_norm` so that the ONNX
    export stays a plain graph in NCHW.
    """

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(dim=1, keepdim=True)
        centred = x - mean
        var = centred.pow(2).mean(dim=1, keepdim=True)
        normed = centred * torch.rsqrt(var + self.eps)
        return normed * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)


def simple_gate(x: torch.Tensor) -> torch.Tensor:
    """SimpleGate: split channels in two halves and multiply them, (B, 2C, H, W) -> (B, C, H, W)."""
    first, second = x.chunk(2, dim=1)
    return first * second


class NAFBlock(nn.Module):
    """One block: a spatial branch then a channel (FFN-like) branch, each with a residual scale.

    The scales start at zero, so every block is the identity at initialization and the
    network starts from its input (the blurred image is a good first guess).
    """

    def __init__(self, channels: int, expand: int = 2) -> None:
        super().__init__()
        hidden = channels * expand
        self.norm1 = LayerNorm2d(channels)
        self.expand1 = nn.Conv2d(channels, hidden, 1)
        self.depthwise = nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden)
        # SimpleGate halves `hidden`; the attention and projection work on the gated width.
        self.attention = nn.Conv2d(hidden // 2, hidden // 2, 1)
        self.project1 = nn.Conv2d(hidden // 2, channels, 1)
        self.beta = nn.Parameter(torch.zeros(1, channels, 1, 1))

        self.norm2 = LayerNorm2d(channels)
        self.expand2 = nn.Conv2d(channels, hidden, 1)
        self.project2 = nn.Conv2d(hidden // 2, channels, 1)
        self.gamma = nn.Parameter(torch.zeros(1, channels, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = simple_gate(self.depthwise(self.expand1(self.norm1(x))))
        # Simplified channel attention: a per-channel scale from the global average.
        y = y * self.attention(y.mean(dim=(2, 3), keepdim=True))
        x = x + self.beta * self.project1(y)

        y = self.project2(simple_gate(self.expand2(self.norm2(x))))
        return x + self.gamma * y


def _stage(channels: int, blocks: int) -> nn.Sequential:
    return nn.Sequential(*(NAFBlock(channels) for _ in range(blocks)))


class NAFNet(nn.Module):
    """Dense NAFNet-style U-Net; `forward(x)` restores every pixel of x (B, 3, H, W) in [0, 1]."""

    def __init__(self, config: NAFNetConfig) -> None:
        super().__init__()
        width = config.width
        self.levels = config.levels
        self.intro = nn.Conv2d(3, width, 3, padding=1)
        self.encoders = nn.ModuleList()
        self.downs = nn.ModuleList()
        channels = width
        for blocks in config.enc_blocks:
            self.encoders.append(_stage(channels, blocks))
            self.downs.append(nn.Conv2d(channels, channels * 2, 2, stride=2))
            channels *= 2
        self.middle = _stage(channels, config.middle_blocks)
        self.ups = nn.ModuleList()
        self.decoders = nn.ModuleList()
        for blocks in reversed(config.dec_blocks):
            # 1x1 conv to 4 * (channels / 2), then pixel shuffle: 2x resolution, half channels.
            self.ups.append(
                nn.Sequential(nn.Conv2d(channels, channels * 2, 1, bias=False), nn.PixelShuffle(2))
            )
            channels //= 2
            self.decoders.append(_stage(channels, blocks))
        self.ending = nn.Conv2d(width, 3, 3, padding=1)
        # Zero-initialized output conv: the untrained network returns its input exactly.
        nn.init.zeros_(self.ending.weight)
        nn.init.zeros_(self.ending.bias)

        # The model contract's knobs; a dense network has no mask to threshold and one executor.
        self.mask_threshold = 0.5
        self.executor = "auto"
        self.size_multiple = 2**self.levels  # inputs are padded to this internally

    def restore(self, x: torch.Tensor) -> torch.Tensor:
        """Dense restoration (B, 3, H, W) -> (B, 3, H, W), any H and W."""
        height, width = x.shape[-2:]
        multiple = self.size_multiple
        pad_h = (multiple - height % multiple) % multiple
        pad_w = (multiple - width % multiple) % multiple
        # Reflect padding needs pad < size; replicate covers the (tiny-image) rest. No branch
        # on whether padding is needed: a zero pad is free and keeps the traced graph general.
        mode = "reflect" if pad_h < height and pad_w < width else "replicate"
        padded = F.pad(x, (0, pad_w, 0, pad_h), mode=mode)

        features = self.intro(padded)
        skips = []
        for encoder, down in zip(self.encoders, self.downs, strict=True):
            features = encoder(features)
            skips.append(features)
            features = down(features)
        features = self.middle(features)
        for up, decoder, skip in zip(self.ups, self.decoders, reversed(skips), strict=True):
            features = decoder(up(features) + skip)
        restored = padded + self.ending(features)
        return restored[..., :height, :width]

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> ModelOutput:
        """Restore x (B, 3, H, W) in [0, 1].

        Without `mask` every pixel is restored (the plain dense network) and the reported mask
        is all ones. With a (B, 1, H, W) {0, 1} `mask`, the network still runs densely but only
        masked pixels take its output: the others are returned bit for bit, as for M2AENet.
        """
        batch, _, height, width = x.shape
        restored = self.restore(x)
        if mask is None:
            mask = torch.ones(batch, 1, height, width, dtype=x.dtype, device=x.device)
            image = restored
        else:
            if mask.shape != (batch, 1, height, width):
                raise ValueError(
                    f"mask must have shape {(batch, 1, height, width)}, got {tuple(mask.shape)}"
                )
            mask = mask.to(x.dtype)
            image = torch.where(mask > 0.5, restored, x)
        # A dense network has no motion estimate: one zero displacement per pixel.
        trajectory = x.new_zeros(batch, 1, 2, height, width)  # (B, K=1, 2, H, W)
        return ModelOutput(image=image, mask=mask, mask_prob=mask, trajectory=trajectory)

    def reparameterize(self) -> NAFNet:
        """No-op: a dense network has no branches to collapse or pixels to prune; returns self."""
        return self


@register_model("nafnet-s", NAFNetConfig)
def build_nafnet(config: NAFNetConfig) -> NAFNet:
    """The NAFNet-style dense baseline sized like m2aenet-s."""
    return NAFNet(config)
