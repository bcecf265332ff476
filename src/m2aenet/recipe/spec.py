"""A recipe YAML: the data sets to make, the training stages, and how the result is shipped.

    out: runs/recipe                    # stage folders and the shipped weights go here
    data:                               # folder -> the `m2aenet synth` arguments that make it
      data/pool-train: --count 1600 --size 512x512 --split train --seed 0 --no-motion
    stages:                             # trained in order; each resumes where it stopped
      - name: stage1
        config: configs/campaign.yaml   # a training config (`m2aenet train`)
        overrides: [steps=60000]        # KEY=VALUE, as on the train command line
        init: previous                  # optional: start from the previous stage's EMA weights
      - name: predictor                 # train the previous stage's mask predictor apart
        kind: predictor                 # (default kind: train)
        pools: [data/pool-train, data/pool-realism]   # synth folders to crop from
        val: data/val-local             # optional: folder(s) scored (IoU, marked / true)
        sharp_photos: [train-split, data/photos-extra]   # optional: whole sharp photos
        init: predictor.safetensors     # optional: start from this predictor instead
        steps: 20000                    # or `minutes: 25`: one of the two
        overrides: [crop=256, lr=1.0e-3, context_depth=5]   # optional, see below
    ship:
      name: default                     # OUT/ship/NAME.safetensors (+ .json)
      calibrate_on: data/val-local      # the mask threshold is picked on this (never test)
      thresholds: [0.2, 0.3, 0.4, 0.5, 0.6]
      max_marked: 1.5                   # optional: only thresholds marking <= 1.5x the blur
      whole_frame_on: [data/val-local, data/val-global]   # optional: pick the share of a frame
      whole_frame_fractions: [0.3, 0.5, 1.0]   # marked that restores it whole (1.0: never)
      whole_frame_extent: 3.5           # optional: frame blur extent (px) that restores it whole

A predictor stage (it needs a previous stage) starts from the previous stage's final EMA
weights' predictor, trains it on its own loss (`m2aenet.train.predictor`), and writes
OUT/NAME/final_ema.safetensors: those weights with the new predictor swapped in
(`train.predictor_weights.swap_mask_predictor`; the motion analyzer gets its own copy of the
old predictor's features, `analyzer_stem: true`, so its input does not move). A following
`init: previous` stage and the ship step read it as any stage's result; such a stage's model is
given the swapped weights' `analyzer_stem`, `analyzer_stem_context_depth` and
`mask_context_depth` (`runner.stage_overrides`), so its config need not spell them out.
Its overrides (KEY=VALUE) are these `PredictorTraining` settings: crop, batch, lr,
context_depth (default: the model's; deeper starts as the shallower branch), cues,
refine_width (a new branch starts at zero), edge_cues (start at zero), centred_fraction,
hard_negatives, defocus_max_radius, zoom_out, zoom_keep_blur, min_blur, sharp_fraction,
threshold (for the val scores; default: the model's), seed, threads, report_every
(`train.predictor.TUNABLE`). `--minutes`
stops it like a training stage; it continues from its resume state.

Paths are relative to the working directory, as in training configs (run from the repository
root). Every data spec is parsed by the synth command's own parser when the recipe is loaded, so
a typo fails before any work.
"""

from __future__ import annotations

import math
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from m2aenet.errors import ConfigError
from m2aenet.limits import check_whole_frame_extent

_STAGE_KEYS = {"name", "kind", "config", "overrides", "init"}
_PREDICTOR_STAGE_KEYS = {
    "name",
    "kind",
    "pools",
    "val",
    "sharp_photos",
    "init",
    "steps",
    "minutes",
    "overrides",
}
_SHIP_KEYS = {
    "name",
    "calibrate_on",
    "thresholds",
    "max_marked",
    "whole_frame_on",
    "whole_frame_fractions",
    "whole_frame_extent",
}


@dataclass(frozen=True)
class DataSpec:
    """One data set: its folder and the `m2aenet synth` arguments (without --out)."""

    folder: str
    synth_args: tuple[str, ...]

    @property
    def command(self) -> str:
        """The shell command that makes this data set."""
        return shlex.join(["m2aenet", "synth", "--out", self.folder, *self.synth_args])


@dataclass(frozen=True)
class Stage:
    """One training run of the recipe, in OUT/NAME."""

    name: str
    config: str
    overrides: tuple[str, ...] = ()
    init_from_previous: bool = False


@dataclass(frozen=True)
class PredictorStage:
    """The previous stage's mask predictor trained apart and swapped into its EMA weights, in
    OUT/NAME; `sharp_photos` are folders of whole sharp photos (or "train-split") labelled
    sharp; `steps` or `minutes` is the training budget, `overrides` are KEY=VALUE settings of
    `train.predictor.PredictorTraining` (its TUNABLE keys); `init` a predictor file (or model
    weights) to start from instead of the previous stage's predictor."""

    name: str
    pools: tuple[str, ...]
    val: tuple[str, ...] = ()
    sharp_photos: tuple[str, ...] = ()
    steps: int | None = None
    minutes: float | None = None
    overrides: tuple[str, ...] = ()
    init: str | None = None


@dataclass(frozen=True)
class ShipSpec:
    """How the last stage's EMA weights become the recipe's result."""

    name: str = "default"
    calibrate_on: str | None = None
    thresholds: tuple[float, ...] = (0.2, 0.3, 0.4, 0.5, 0.6)
    whole_frame_on: tuple[str, ...] = ()
    whole_frame_fractions: tuple[float, ...] = (0.3, 0.4, 0.5, 0.6, 0.8, 1.0)
    max_marked: float | None = None  # cap on marked / truly blurred share for the threshold
    whole_frame_extent: float | None = None  # None: the model's own


@dataclass(frozen=True)
class Recipe:
    path: Path
    out: str
    data: tuple[DataSpec, ...] = ()
    stages: tuple[Stage | PredictorStage, ...] = ()
    ship: ShipSpec = field(default_factory=ShipSpec)


def synth_parser():
    """The `m2aenet synth` sub-command's own argument parser."""
    import argparse

    from m2aenet.commands import synth

    subparsers = argparse.ArgumentParser(add_help=False).add_subparsers()
    synth.add_parser(subparsers)
    return subparsers.choices["synth"]


def parse_synth_args(folder: str, text: str) -> tuple[str, ...]:
    """Split and check one data spec with the synth command's parser; ConfigError if bad."""
    args = tuple(shlex.split(str(text)))
    for forbidden in ("--out", "--overwrite", "--preview"):
        if forbidden in args:
            raise ConfigError(f"data.{folder}: {forbidden} is not allowed (the key is the folder)")
    parser = synth_parser()

    def refuse(message: str) -> None:  # argparse would print usage and exit
        raise ConfigError(f"data.{folder}: bad synth arguments {text!r} ({message})")

    parser.error = refuse  # type: ignore[method-assign]
    namespace, unknown = parser.parse_known_args(["--out", folder, *args])
    if unknown:
        raise ConfigError(f"data.{folder}: unknown synth arguments {' '.join(unknown)}")
    if namespace.count is None:
        raise ConfigError(f"data.{folder}: the synth arguments need --count N")
    return args


def _mapping(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{where} must be a mapping")
    return value


def _name(where: str, entry: dict[str, Any]) -> str:
    name = entry.get("name")
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{where}.name must be a non-empty string")
    if "/" in name or name in (".", "..", "ship"):
        raise ConfigError(f"{where}.name {name!r} must be a plain folder name")
    return name


def _overrides(where: str, entry: dict[str, Any]) -> tuple[str, ...]:
    overrides = entry.get("overrides") or []
    if not isinstance(overrides, list) or not all(isinstance(o, str) for o in overrides):
        raise ConfigError(f"{where}.overrides must be a list of KEY=VALUE strings")
    return tuple(overrides)


def _folders(where: str, value: Any) -> tuple[str, ...]:
    """A folder or a list of folders."""
    folders = [value] if isinstance(value, str) else value
    if not isinstance(folders, list) or not all(isinstance(f, str) and f for f in folders):
        raise ConfigError(f"{where} must be a folder or a list of folders, got {value!r}")
    return tuple(folders)


def _stage(index: int, value: Any) -> Stage | PredictorStage:
    where = f"stages[{index}]"
    entry = _mapping(value, where)
    kind = entry.get("kind", "train")
    if kind == "predictor":
        return _predictor_stage(index, entry)
    if kind != "train":
        raise ConfigError(f"{where}.kind must be 'train' or 'predictor', got {kind!r}")
    unknown = set(entry) - _STAGE_KEYS
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    name = _name(where, entry)
    if not isinstance(entry.get("config"), str) or not entry["config"]:
        raise ConfigError(f"{where}.config must be a non-empty string")
    init = entry.get("init")
    if init not in (None, "previous"):
        raise ConfigError(f"{where}.init must be 'previous' or left out, got {init!r}")
    if init == "previous" and index == 0:
        raise ConfigError(f"{where}.init: the first stage has no previous stage")
    return Stage(name, entry["config"], _overrides(where, entry), init == "previous")


def _predictor_stage(index: int, entry: dict[str, Any]) -> PredictorStage:
    """Check a `kind: predictor` stage; its settings are checked as training will check them."""
    from m2aenet.train.predictor import tunable_settings

    where = f"stages[{index}]"
    unknown = set(entry) - _PREDICTOR_STAGE_KEYS
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {', '.join(sorted(unknown))} for a predictor stage "
            f"(known: {', '.join(sorted(_PREDICTOR_STAGE_KEYS))})"
        )
    name = _name(where, entry)
    if index == 0:
        raise ConfigError(
            f"{where}.kind: a predictor stage trains the previous stage's predictor; the "
            "first stage has none"
        )
    if "pools" not in entry:
        raise ConfigError(
            f"{where}.pools: a predictor stage needs the synth folder(s) to crop from"
        )
    pools = _folders(f"{where}.pools", entry["pools"])
    if not pools:
        raise ConfigError(f"{where}.pools must name at least one folder")
    val = _folders(f"{where}.val", entry.get("val") or [])
    sharp_photos = _folders(f"{where}.sharp_photos", entry.get("sharp_photos") or [])
    steps, minutes = entry.get("steps"), entry.get("minutes")
    if (steps is None) == (minutes is None):
        raise ConfigError(f"{where}: give steps or minutes (one of the two)")
    if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int) or steps < 1):
        raise ConfigError(f"{where}.steps must be an integer >= 1, got {steps!r}")
    if minutes is not None and (
        isinstance(minutes, bool)
        or not isinstance(minutes, int | float)
        or not 0 < minutes < math.inf
    ):
        raise ConfigError(f"{where}.minutes must be a number > 0, got {minutes!r}")
    overrides = _overrides(where, entry)
    try:
        tunable_settings(overrides)
    except ConfigError as error:
        raise ConfigError(f"{where}.overrides: {error}") from None
    init = entry.get("init")
    if init is not None and (not isinstance(init, str) or not init):
        raise ConfigError(f"{where}.init must be a weights file path, got {init!r}")
    return PredictorStage(
        name,
        pools,
        val,
        sharp_photos,
        steps,
        None if minutes is None else float(minutes),
        overrides,
        init,
    )


def _numbers(key: str, value: Any, one_allowed: bool) -> tuple[float, ...]:
    """A non-empty list of numbers in (0, 1), or (0, 1] when `one_allowed`; ConfigError naming
    `key` otherwise."""
    try:
        numbers = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        raise ConfigError(f"{key} must be a list of numbers") from None
    if not numbers or not all(0.0 < v < 1.0 or (one_allowed and v == 1.0) for v in numbers):
        raise ConfigError(f"{key} must be numbers in (0, 1{']' if one_allowed else ')'}")
    return numbers


def _ship(value: Any) -> ShipSpec:
    entry = _mapping(value, "ship")
    unknown = set(entry) - _SHIP_KEYS
    if unknown:
        raise ConfigError(f"ship: unknown key(s) {', '.join(sorted(unknown))}")
    name = entry.get("name", "default")
    if not isinstance(name, str) or not name or "/" in name:
        raise ConfigError(f"ship.name must be a plain file name, got {name!r}")
    thresholds = _numbers(
        "ship.thresholds", entry.get("thresholds", ShipSpec.thresholds), one_allowed=False
    )
    calibrate_on = entry.get("calibrate_on")
    if calibrate_on is not None and not isinstance(calibrate_on, str):
        raise ConfigError("ship.calibrate_on must be a folder path")
    whole_frame_on = _folders("ship.whole_frame_on", entry.get("whole_frame_on") or [])
    fractions = _numbers(
        "ship.whole_frame_fractions",
        entry.get("whole_frame_fractions", ShipSpec.whole_frame_fractions),
        one_allowed=True,
    )
    max_marked = entry.get("max_marked")
    if max_marked is not None and (
        isinstance(max_marked, bool)
        or not isinstance(max_marked, (int, float))
        or not math.isfinite(max_marked)
        or max_marked < 1.0
    ):
        raise ConfigError(f"ship.max_marked must be a number >= 1, got {max_marked!r}")
    extent = entry.get("whole_frame_extent")
    if extent is not None:
        extent = check_whole_frame_extent(extent, "ship.whole_frame_extent")
    return ShipSpec(
        name,
        calibrate_on,
        thresholds,
        whole_frame_on,
        fractions,
        None if max_marked is None else float(max_marked),
        extent,
    )


def load_recipe(path: str | Path) -> Recipe:
    """Read and check a recipe YAML; errors name the file and the key."""
    path = Path(path)
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError as error:
        raise ConfigError(f"{path}: cannot read recipe ({error.strerror or error})") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML ({error})") from None
    try:
        document = _mapping(document, "the top level")
        unknown = set(document) - {"out", "data", "stages", "ship"}
        if unknown:
            raise ConfigError(f"unknown key(s) {', '.join(sorted(unknown))}")
        out = document.get("out", "runs/recipe")
        if not isinstance(out, str) or not out:
            raise ConfigError("out must be a folder path")
        data = tuple(
            DataSpec(str(folder), parse_synth_args(str(folder), text))
            for folder, text in _mapping(document.get("data"), "data").items()
        )
        stages_value = document.get("stages") or []
        if not isinstance(stages_value, list):
            raise ConfigError("stages must be a list")
        stages = tuple(_stage(i, value) for i, value in enumerate(stages_value))
        names = [stage.name for stage in stages]
        if len(set(names)) != len(names):
            raise ConfigError(f"stages: names must be unique, got {names}")
        return Recipe(path, out, data, stages, _ship(document.get("ship")))
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}") from None
