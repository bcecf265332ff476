"""FLOP and MAC counts of a forward pass, dense or pruned.

`torch.utils.flop_counter.FlopCounterMode` counts convolutions and matrix products. The
operations it does not see are counted here explicitly, in both modes alike:
  bilinear sampling (grid_sample, bilinear upsampling): 4 MACs = 8 FLOPs per channel per
  sampled point; in-place matrix products (`addmm_`); scatter-adds (`index_add_`,
  accumulating `index_put_`): 1 FLOP per element.
Gathers and copies (`index_select`, `index_copy_`) move memory and do no arithmetic; gathered
elements are reported separately as `gathered`. Other elementwise work (activations,
LayerNorm, SimpleGate, residual adds and mask products, max-pool dilation) is not counted in
either mode, as is usual.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

aten = torch.ops.aten

SAMPLE_FLOPS = 8  # 4 multiply-accumulates per channel per bilinear sample
SCATTER_FLOPS = 1  # one add per scattered element


def _numel(shape) -> int:
    count = 1
    for size in shape:
        count *= int(size)
    return count


def _sample_flops(*args, out_shape=None, **kwargs) -> int:
    return SAMPLE_FLOPS * _numel(out_shape)


def _scatter_add_flops(self_shape, dim, index_shape, source_shape, *args, out_shape=None, **kwargs):
    return SCATTER_FLOPS * _numel(source_shape)


def _addmm_flops(self_shape, a_shape, b_shape, *args, out_shape=None, **kwargs) -> int:
    # FlopCounterMode knows the out-of-place addmm only; the pruned executor accumulates
    # into its output with the in-place one.
    return 2 * int(a_shape[0]) * int(a_shape[1]) * int(b_shape[1])


def _index_put_flops(
    self_shape, indices, values_shape, accumulate=False, *args, out_shape=None, **kwargs
):
    return SCATTER_FLOPS * _numel(values_shape) if accumulate else 0


_CUSTOM = {
    aten.grid_sampler_2d: _sample_flops,
    aten.upsample_bilinear2d: _sample_flops,
    aten.index_add: _scatter_add_flops,
    aten.index_add_: _scatter_add_flops,
    aten.addmm_: _addmm_flops,
    aten.index_put: _index_put_flops,
    aten.index_put_: _index_put_flops,
}

_GATHERS = {aten.index_select.default, aten.index.Tensor, aten.gather.default}


class _GatherCounter(TorchDispatchMode):
    """Counts elements produced by gather operations."""

    def __init__(self) -> None:
        super().__init__()
        self.gathered = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if func in _GATHERS and isinstance(out, torch.Tensor):
            self.gathered += out.numel()
        return out


@dataclass
class FlopCount:
    """Arithmetic of one forward pass.

    flops: floating-point operations (a multiply-accumulate counts 2); macs = flops / 2.
    by_op: FLOPs per aten operation; by_module: FLOPs per top-level submodule where the
    operations ran inside one (pruned block computations are attributed to the model).
    gathered: tensor elements copied by gathers (memory traffic, no arithmetic).
    """

    flops: int
    gathered: int = 0
    by_op: dict[str, int] = field(default_factory=dict)
    by_module: dict[str, int] = field(default_factory=dict)

    @property
    def macs(self) -> float:
        return self.flops / 2

    @property
    def gflops(self) -> float:
        return self.flops / 1e9


def count_flops(
    model: torch.nn.Module, x: torch.Tensor, mask: torch.Tensor | None = None
) -> FlopCount:
    """Count the FLOPs of `model(x, mask=mask)` (no gradients), in whatever mode it is in."""
    counter = FlopCounterMode(display=False, depth=2, custom_mapping=_CUSTOM)
    gathers = _GatherCounter()
    with torch.no_grad(), counter, gathers:
        model(x, mask=mask) if mask is not None else model(x)
    counts = counter.get_flop_counts()
    by_op: dict[str, int] = defaultdict(int)
    for op, value in counts.get("Global", {}).items():
        by_op[str(op).removeprefix("aten.")] += int(value)
    by_module: dict[str, int] = {}
    root = type(model).__name__
    for name, ops in counts.items():
        parts = name.split(".")
        if len(parts) == 2 and parts[0] == root:
            by_module[parts[1]] = int(sum(ops.values()))
    return FlopCount(
        flops=int(counter.get_total_flops()),
        gathered=gathers.gathered,
        by_op=dict(by_op),
        by_module=by_module,
    )
