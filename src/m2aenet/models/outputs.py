"""What every restoration model returns: the image plus the evidence behind it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch


@dataclass
class ModelOutput:
    """Result of `model(x)` for a batch x of shape (B, 3, H, W).

    image:      (B, 3, H, W) restored image; equal to x bit for bit wherever `mask` is 0.
    mask:       (B, 1, H, W) hard blur mask in {0, 1} that selected the restored pixels (in
                training it carries the straight-through gradient of `mask_prob`).
    mask_prob:  (B, 1, H, W) predicted blur probability in [0, 1].
    trajectory: (B, K, 2, H, W) per-pixel motion trajectory: K displacements (x, y) in pixels
                at exposure times t_k in [-1/2, 1/2]; blur(q) ~ mean_k sharp(q + trajectory[k](q)).
                A model may pass a function instead of a tensor; it is called on first access
                (deploy mode does, since restoring the image does not need the full-size
                trajectory and building it costs ~1% of a dense pass).
    """

    image: torch.Tensor
    mask: torch.Tensor
    mask_prob: torch.Tensor
    trajectory: torch.Tensor


def _get_trajectory(self: ModelOutput) -> torch.Tensor:
    value = self.__dict__["trajectory"]
    if callable(value) and not isinstance(value, torch.Tensor):
        value = value()
        self.__dict__["trajectory"] = value
    return value


def _set_trajectory(self: ModelOutput, value: torch.Tensor | Callable[[], torch.Tensor]) -> None:
    self.__dict__["trajectory"] = value


# Installed after @dataclass so that the generated __init__, replace(), asdict() and repr all
# go through it: the field stays a plain field to every user.
ModelOutput.trajectory = property(_get_trajectory, _set_trajectory)  # type: ignore[assignment]
