"""Exponential moving average of a model's weights and buffers (the weights that get exported)."""

from __future__ import annotations

import copy

import torch
from torch import nn


class ModelEma:
    """A frozen copy of `model` whose floating-point parameters and buffers follow

    `ema = decay * ema + (1 - decay) * model` after every update; integer buffers (counters)
    are copied. Buffers are included because normalization statistics and similar state must
    match the averaged weights, or the exported model would be inconsistent.

    With `warmup`, the decay starts small, `min(decay, (1 + n) / (10 + n))` after n updates,
    so early averages are not dominated by the random initialization.
    """

    def __init__(self, model: nn.Module, decay: float = 0.999, warmup: bool = True) -> None:
        self.module = copy.deepcopy(model).eval()
        self.module.requires_grad_(False)
        self.decay = decay
        self.warmup = warmup
        self.updates = 0

    def current_decay(self) -> float:
        """The decay the next update will use."""
        if not self.warmup:
            return self.decay
        return min(self.decay, (1 + self.updates) / (10 + self.updates))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Move the average towards `model` (the unwrapped module, not a DDP wrapper)."""
        decay = self.current_decay()
        current = model.state_dict()
        for name, average in self.module.state_dict().items():
            value = current[name].detach()
            if average.is_floating_point():
                average.lerp_(value.to(average.dtype), 1.0 - decay)
            else:
                average.copy_(value)
        self.updates += 1

    def state_dict(self) -> dict[str, int | float]:
        """Averaging state besides the weights (the weights are saved as safetensors)."""
        return {"updates": self.updates, "decay": self.decay}

    def load_state_dict(self, state: dict[str, int | float]) -> None:
        """Restore the update counter saved by `state_dict`."""
        self.updates = int(state["updates"])
