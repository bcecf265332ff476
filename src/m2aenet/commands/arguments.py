"""Argument types shared by the sub-commands (argparse `type=` callables)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def positive_int(text: str) -> int:
    """An integer >= 1, or an argparse error naming the value."""
    try:
        value = int(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from error
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def positive_float(text: str) -> float:
    """A finite number > 0, or an argparse error naming the value."""
    try:
        value = float(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from error
    if not 0.0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number > 0, got {text}")
    return value


def comma_list(
    parse: Callable[[str], T], check: Callable[[T], bool], example: str, rule: str
) -> Callable[[str], tuple[T, ...]]:
    """An argparse type for comma-separated values, e.g. `--fractions 0.05,0.1`.

    parse: turns one item into a value (raises ValueError on bad text), e.g. `float`.
    check: True for an allowed value. example: what the option expects, used in the message
    for unparsable or empty text ("fractions like 0.05,0.1"); rule: the message for a value
    `check` refuses ("fractions must be in (0, 1)"). Empty items ("1,,2") are skipped.
    """

    def parse_list(text: str) -> tuple[T, ...]:
        try:
            values = tuple(parse(part.strip()) for part in text.split(",") if part.strip())
        except ValueError as error:
            raise argparse.ArgumentTypeError(f"expected {example}, got {text!r}") from error
        if not values:
            raise argparse.ArgumentTypeError(f"expected {example}, got {text!r}")
        if not all(check(value) for value in values):
            raise argparse.ArgumentTypeError(f"{rule}, got {text!r}")
        return values

    return parse_list


def unit_fraction(text: str) -> float:
    """A number in [0, 1] (a share or probability), or an argparse error naming the value.

    NaN and infinities are refused: they would pass a plain `float` and end up in JSON files.
    """
    import math

    try:
        value = float(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {text!r}") from error
    if not (math.isfinite(value) and 0.0 <= value <= 1.0):
        raise argparse.ArgumentTypeError(f"must be in [0, 1], got {text!r}")
    return value


def threshold(text: str) -> float:
    """A blur-mask threshold in (0, 1) (`m2aenet.limits.check_threshold`), or an argparse error."""
    from m2aenet.errors import ConfigError
    from m2aenet.limits import check_threshold

    try:
        return check_threshold(float(text))
    except (ValueError, ConfigError) as error:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1), got {text!r}") from error


def whole_frame_extent(text: str) -> float:
    """Frame blur extent px (`m2aenet.limits.check_whole_frame_extent`), or an argparse error."""
    from m2aenet.errors import ConfigError
    from m2aenet.limits import MAX_FRAME_BLUR_EXTENT, check_whole_frame_extent

    try:
        return check_whole_frame_extent(float(text))
    except (ValueError, ConfigError) as error:
        raise argparse.ArgumentTypeError(
            f"expected px in [0, {MAX_FRAME_BLUR_EXTENT:.2f}] (0: off), got {text!r}"
        ) from error


def defocus_veto(text: str) -> float:
    """Edge width px (`m2aenet.limits.check_defocus_veto`), or an argparse error."""
    from m2aenet.errors import ConfigError
    from m2aenet.limits import MAX_DEFOCUS_VETO, check_defocus_veto

    try:
        return check_defocus_veto(float(text))
    except (ValueError, ConfigError) as error:
        raise argparse.ArgumentTypeError(
            f"expected px in [0, {MAX_DEFOCUS_VETO:g}) (0: off), got {text!r}"
        ) from error


def threshold_help(what: str) -> str:
    """Help text of a `--threshold` option that shows the shipped weights' own threshold.

    Read from the shipped sidecar JSON (no torch import), so `--help` states the effective
    default instead of "the model's".
    """
    import json
    from pathlib import Path

    sidecar = Path(__file__).resolve().parent.parent / "weights" / "default.json"
    try:
        shipped = json.loads(sidecar.read_text(encoding="utf-8"))["model_config"]["mask_threshold"]
        default = f"the weights' own: {shipped} for the shipped 'default'"
    except (OSError, ValueError, KeyError, TypeError):
        default = "the weights' own"
    return f"{what}, in (0, 1); higher restores fewer pixels, faster (default: {default})"


def device_name(text: str) -> str:
    """`auto`, `cpu`, `cuda`, `cuda:N` or `mps` (availability is checked when it is used)."""
    import re

    if not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", text):
        raise argparse.ArgumentTypeError(f"expected auto, cpu, cuda, cuda:N or mps, got {text!r}")
    return text


def add_weights_option(parser: argparse.ArgumentParser) -> None:
    """`--weights NAME|PATH`, default the shipped `default`."""
    parser.add_argument(
        "--weights",
        default="default",
        metavar="NAME|PATH",
        help="shipped weights name or a .safetensors file (default: %(default)s)",
    )


def add_threshold_option(parser: argparse.ArgumentParser, what: str) -> None:
    """`--threshold T` (None: the weights' own), described as `what` in the help."""
    parser.add_argument(
        "--threshold", type=threshold, default=None, metavar="T", help=threshold_help(what)
    )


def add_device_option(parser: argparse.ArgumentParser) -> None:
    """`--device auto|cpu|cuda|cuda:N|mps`, default auto."""
    parser.add_argument(
        "--device",
        type=device_name,
        default="auto",
        help="auto, cpu, cuda, cuda:N or mps (default: auto)",
    )


def add_threads_option(parser: argparse.ArgumentParser) -> None:
    """`--threads N`: CPU threads of the network (default: torch's choice, one per core)."""
    parser.add_argument(
        "--threads",
        type=positive_int,
        default=None,
        metavar="N",
        help="CPU threads for the network (default: one per core); on a busy machine "
        "--threads 1 is much faster",
    )
