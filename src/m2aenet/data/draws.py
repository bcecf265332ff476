"""Random draws shared by the data engine's modules."""

from __future__ import annotations

import math

import numpy as np


def log_uniform(rng: np.random.Generator, low: float, high: float) -> float:
    """A value in [low, high] (both > 0) whose log is uniform: scales such as blur lengths,
    areas and radii, where each octave is as likely as the next."""
    return math.exp(rng.uniform(math.log(low), math.log(high)))
