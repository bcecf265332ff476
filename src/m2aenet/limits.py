"""Bounds on values users give, checked the same way by the CLI, the API and the weights loader.

Kept free of heavy imports so argument parsing can use it before torch is loaded.
"""

from __future__ import annotations

import math
import numbers

from m2aenet.errors import ConfigError

#: Largest integer accepted in a model config (widths, depths, counts). Every shipped and
#: tested model stays below 64; a tampered sidecar asking for 10**9 channels is refused before
#: anything is allocated.
MAX_CONFIG_INT = 4096
#: Most analyzer levels below 1/4 size: 8 more halvings leave one pixel of a 1024-px crop.
MAX_ANALYZER_LEVELS = 8
#: Largest model, in parameters, that a config may describe (counted on the meta device,
#: without allocating): 2**30 float32 parameters are 4 GiB, far above any model of this project.
MAX_PARAMETERS = 2**30
#: Largest `frame_blur_extent` (px): 20 lags of correlation 1 along a diagonal. Kept here, not
#: imported from the model, so argument parsing stays free of torch.
MAX_FRAME_BLUR_EXTENT = 20 * math.sqrt(2.0)
#: Edge widths (px) are read up to this (`models.edge_width.MAX_WIDTH`), so a defocus veto
#: must stay below it. Kept here for the same reason.
MAX_DEFOCUS_VETO = 12.0


def check_threshold(value: object, name: str = "threshold") -> float:
    """`value` as a blur-mask threshold: a number strictly between 0 and 1.

    0 would restore every pixel and 1 none; `dense=True` / `--dense` is the way to process every
    pixel. NaN, infinities, strings and booleans are refused with a ConfigError naming `name`.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ConfigError(f"{name} {value!r}: must be a number in (0, 1)")
    number = float(value)
    if not (math.isfinite(number) and 0.0 < number < 1.0):
        raise ConfigError(f"{name} {value!r}: must be in (0, 1)")
    return number


def check_whole_frame_extent(value: object, name: str = "whole_frame_extent") -> float:
    """`value` as the frame blur extent (px) that restores a frame whole: 0 (off) up to
    `MAX_FRAME_BLUR_EXTENT`. NaN, infinities, strings and booleans: a ConfigError naming `name`."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ConfigError(f"{name} {value!r}: must be a number of px (0: off)")
    number = float(value)
    if not (math.isfinite(number) and 0.0 <= number <= MAX_FRAME_BLUR_EXTENT):
        raise ConfigError(f"{name} {value!r}: must be in [0, {MAX_FRAME_BLUR_EXTENT:.2f}] px")
    return number


def check_defocus_veto(value: object, name: str = "defocus_veto") -> float:
    """`value` as the edge width (px) above which defocused cells are left unmarked: 0 (off)
    up to, not including, `MAX_DEFOCUS_VETO`. NaN, infinities, strings and booleans: a
    ConfigError naming `name`."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ConfigError(f"{name} {value!r}: must be a number of px (0: off)")
    number = float(value)
    if not (math.isfinite(number) and 0.0 <= number < MAX_DEFOCUS_VETO):
        raise ConfigError(f"{name} {value!r}: must be in [0, {MAX_DEFOCUS_VETO:g}) px")
    return number
