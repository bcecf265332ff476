"""A recipe YAML: the data sets to make, the training stages, and how the result is shipped.

    out: runs/recipe                    # stage folders and the shipped weights go here
    data:                               # folder -> the `m2aenet synth` arguments that make it
      data/pool-train: --count 1600 --size 512x512 --split train --seed 0 --no-motion
    stages:                             # trained in order; each resumes where it stopped
      - name: stage1
        config: configs/campaign.yaml   # a training config (`m2aenet train`)
        overrides: [steps=60000]        # KEY=VALUE, as on the train command line
        init: previous                  # optional: start from the previous stage's EMA weights
    ship:
      name: default                     # OUT/ship/NAME.safetensors (+ .json)
      calibrate_on: data/val-local      # the mask threshold is picked on this (never test)
      thresholds: [0.2, 0.3, 0.4, 0.5, 0.6]

Paths are relative to the working directory, as in training configs (run from the repository
root). Every data spec is parsed by the synth command's own parser when the recipe is loaded, so
a typo fails before any work.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from m2aenet.errors import ConfigError

_STAGE_KEYS = {"name", "config", "overrides", "init"}
_SHIP_KEYS = {"name", "calibrate_on", "thresholds"}


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
class ShipSpec:
    """How the last stage's EMA weights become the recipe's result."""

    name: str = "default"
    calibrate_on: str | None = None
    thresholds: tuple[float, ...] = (0.2, 0.3, 0.4, 0.5, 0.6)


@dataclass(frozen=True)
class Recipe:
    path: Path
    out: str
    data: tuple[DataSpec, ...] = ()
    stages: tuple[Stage, ...] = ()
    ship: ShipSpec = field(default_factory=ShipSpec)


def parse_synth_args(folder: str, text: str) -> tuple[str, ...]:
    """Split and check one data spec with the synth command's parser; ConfigError if bad."""
    import argparse

    from m2aenet.commands import synth

    args = tuple(shlex.split(str(text)))
    for forbidden in ("--out", "--overwrite", "--preview"):
        if forbidden in args:
            raise ConfigError(f"data.{folder}: {forbidden} is not allowed (the key is the folder)")
    subparsers = argparse.ArgumentParser(add_help=False).add_subparsers()
    synth.add_parser(subparsers)
    parser = subparsers.choices["synth"]

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


def _stage(index: int, value: Any) -> Stage:
    where = f"stages[{index}]"
    entry = _mapping(value, where)
    unknown = set(entry) - _STAGE_KEYS
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    for key in ("name", "config"):
        if not isinstance(entry.get(key), str) or not entry[key]:
            raise ConfigError(f"{where}.{key} must be a non-empty string")
    if "/" in entry["name"] or entry["name"] in (".", "..", "ship"):
        raise ConfigError(f"{where}.name {entry['name']!r} must be a plain folder name")
    overrides = entry.get("overrides") or []
    if not isinstance(overrides, list) or not all(isinstance(o, str) for o in overrides):
        raise ConfigError(f"{where}.overrides must be a list of KEY=VALUE strings")
    init = entry.get("init")
    if init not in (None, "previous"):
        raise ConfigError(f"{where}.init must be 'previous' or left out, got {init!r}")
    if init == "previous" and index == 0:
        raise ConfigError(f"{where}.init: the first stage has no previous stage")
    return Stage(entry["name"], entry["config"], tuple(overrides), init == "previous")


def _ship(value: Any) -> ShipSpec:
    entry = _mapping(value, "ship")
    unknown = set(entry) - _SHIP_KEYS
    if unknown:
        raise ConfigError(f"ship: unknown key(s) {', '.join(sorted(unknown))}")
    name = entry.get("name", "default")
    if not isinstance(name, str) or not name or "/" in name:
        raise ConfigError(f"ship.name must be a plain file name, got {name!r}")
    thresholds = entry.get("thresholds", ShipSpec.thresholds)
    try:
        thresholds = tuple(float(t) for t in thresholds)
    except (TypeError, ValueError):
        raise ConfigError("ship.thresholds must be a list of numbers") from None
    if not thresholds or not all(0.0 < t < 1.0 for t in thresholds):
        raise ConfigError("ship.thresholds must be numbers in (0, 1)")
    calibrate_on = entry.get("calibrate_on")
    if calibrate_on is not None and not isinstance(calibrate_on, str):
        raise ConfigError("ship.calibrate_on must be a folder path")
    return ShipSpec(name, calibrate_on, thresholds)


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
