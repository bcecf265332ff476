"""Where a recipe stage stands, and the file that is its result."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

# Every stage's result, in OUT/NAME (the file a training run ends with): what `init: previous`
# and the ship step read.
from m2aenet.train.trainer import FINAL  # noqa: F401  (re-exported)


@dataclass(frozen=True)
class StageStatus:
    """Where one stage stands: `step` of `steps` (in `unit`s: optimizer steps, or seconds for
    a predictor stage with a minutes budget), finished or not."""

    name: str
    folder: Path
    step: int
    steps: int
    finished: bool
    unit: Literal["step", "second"] = "step"

    def text(self) -> str:
        """`finished`, `step 5 of 30`, or `2.5 of 20 minutes`."""
        if self.finished:
            return "finished"
        if self.unit == "second":
            return f"{self.step / 60:.1f} of {self.steps / 60:g} minutes"
        return f"step {self.step} of {self.steps}"
