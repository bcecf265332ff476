"""Speed rows of a benchmark report and the target they are judged by.

Shared by `report.py` (which measures) and `report_markdown.py` / `report_plots.py` (which
present): both sides import from here, so neither imports the other.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import Any

TARGET_FRACTION = 0.1  # blurred fraction of the speed target
TARGET_SPEEDUP = 3.0
SPEEDUP_EXECUTOR = "auto"  # what `Deblurrer` runs by default, so what users get


def speed_row(
    speed: Sequence[dict[str, Any]], label: str, fraction: float
) -> dict[str, Any] | None:
    """The speed row of model `label` at blurred `fraction`, or None."""
    for row in speed:
        if row["model"] == label and math.isclose(row["fraction"], fraction, abs_tol=1e-9):
            return row
    return None


def dense_reference_ms(speed: Sequence[dict[str, Any]], label: str) -> float:
    """Median ms of the dense rows of `label` (measured once per fraction); nan if none."""
    times = [row["ms"] for row in speed if row["model"] == label]
    return float(statistics.median(times)) if times else math.nan


def speedup_at(
    speed: Sequence[dict[str, Any]], baseline: str, model: str, fraction: float = TARGET_FRACTION
) -> float | None:
    """Baseline ms / `model` ms at `fraction` (rows as `measure_speed` gives them); None when
    either row is missing."""
    base, ours = speed_row(speed, baseline, fraction), speed_row(speed, model, fraction)
    return None if base is None or ours is None or not ours["ms"] else base["ms"] / ours["ms"]
