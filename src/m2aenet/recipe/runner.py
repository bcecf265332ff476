"""Run a recipe: make missing data, train each stage to its end (resuming), then ship.

Every step is idempotent: a finished stage (its final EMA at the config's last step; for a
predictor stage, final weights newer than the previous stage's and made with its current
settings, `recipe.predictor_stage`) is skipped, an unfinished one resumes from its newest
checkpoint or resume state, and the shipped weights are written once after the last stage.
`minutes` bounds one call, so a session can run the same command again and again until the
recipe is done.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from m2aenet.recipe.datasets import check_data_roots, config_data_roots, data_state, make_data
from m2aenet.recipe.predictor_stage import predictor_stage_status, run_predictor_stage
from m2aenet.recipe.progress import FINAL, StageStatus
from m2aenet.recipe.spec import PredictorStage, Recipe, Stage

SHIP_FOLDER = "ship"


# What a predictor stage changes in the model's config (`swap_predictor`): every later training
# stage that starts from its weights, directly or through other stages, builds its model with
# the same values, or they would not load.
SWAPPED_MODEL_KEYS = (
    "analyzer_stem",
    "analyzer_stem_context_depth",
    "mask_context_depth",
    "mask_cues",
    "mask_refine_width",
    "mask_edge_cues",
)


def stage_overrides(recipe: Recipe, index: int, out: Path) -> list[str]:
    """The training stage's KEY=VALUE overrides, with `init: previous` turned into init
    weights and the previous weights' SWAPPED_MODEL_KEYS."""
    import json

    from m2aenet.checkpoint import read_record

    stage: Stage = recipe.stages[index]
    overrides = list(stage.overrides)
    if stage.init_from_previous:
        previous = out / recipe.stages[index - 1].name / FINAL
        if previous.is_file():
            config = read_record(previous).get("model_config", {})
            overrides += [
                f"model.overrides.{key}={json.dumps(config[key])}"
                for key in SWAPPED_MODEL_KEYS
                if key in config
            ]
        overrides.append(f"model.init_weights={previous.as_posix()}")
    return overrides


def stage_status(recipe: Recipe, index: int, out: Path) -> StageStatus:
    """The stage's progress from its folder: the final weights' step, else the newest
    checkpoint's, else 0 (a predictor stage: `predictor_stage_status`)."""
    from m2aenet.checkpoint import read_record
    from m2aenet.errors import CheckpointError
    from m2aenet.train import state
    from m2aenet.train.config import load_config

    stage = recipe.stages[index]
    if isinstance(stage, PredictorStage):
        return predictor_stage_status(recipe, index, out)
    folder = out / stage.name
    config = load_config(stage.config, stage_overrides(recipe, index, out))
    step = 0
    final = folder / FINAL
    if final.is_file():
        step = int(read_record(final).get("step") or 0)
    if step < config.steps:
        try:
            found = state.read_last(folder) if folder.is_dir() else None
        except CheckpointError:
            found = None
        steps = state.list_steps(folder) if folder.is_dir() else []
        step = max(step, found[0] if found else 0, max(steps, default=0))
    return StageStatus(stage.name, folder, step, config.steps, step >= config.steps)


def describe(recipe: Recipe, out: Path) -> str:
    """A plan of what a run would do: data made or missing, stage progress, shipped or not."""
    lines = [f"recipe {recipe.path} -> {out}"]
    for spec in recipe.data:
        try:
            where = data_state(spec)
        except Exception as error:  # shown, not raised: the plan is for reading
            where = f"blocked: {error}"
        lines.append(f"  data  {spec.folder}: {where}")
    for index, stage in enumerate(recipe.stages):
        status = stage_status(recipe, index, out)
        if isinstance(stage, PredictorStage):
            what = f"predictor of {recipe.stages[index - 1].name}, trained apart"
        else:
            what = stage.config
        lines.append(f"  stage {status.name} ({what}): {status.text()}")
    shipped = out / SHIP_FOLDER / f"{recipe.ship.name}.safetensors"
    lines.append(f"  ship  {shipped}: {'written' if shipped.is_file() else 'not yet'}")
    return "\n".join(lines)


def _train_stage(
    recipe: Recipe, index: int, out: Path, minutes: float | None, command: list[str]
) -> StageStatus:
    from m2aenet.train.config import load_config
    from m2aenet.train.trainer import train

    stage: Stage = recipe.stages[index]
    overrides = stage_overrides(recipe, index, out)
    if minutes is not None:
        overrides.append(f"time_limit_minutes={minutes:.3f}")
    config = load_config(stage.config, overrides)
    check_data_roots(config_data_roots(config))
    print(f"recipe: training stage {stage.name} in {out / stage.name}", flush=True)
    train(config, out=out / stage.name, resume=True, command=command)
    return stage_status(recipe, index, out)


def ship(recipe: Recipe, out: Path) -> Path:
    """Calibrate the last stage's EMA weights on `ship.calibrate_on` and write them as
    OUT/ship/NAME.safetensors (+ .json, + calibration.txt)."""
    from m2aenet.atomic import write_text_atomic
    from m2aenet.train.ship import (
        choose_threshold,
        choose_whole_frame,
        format_threshold_table,
        format_whole_frame_table,
        ship_run,
        threshold_table,
        whole_frame_table,
    )

    run = out / recipe.stages[-1].name
    folder = out / SHIP_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    threshold = None
    note = f"m2aenet recipe {recipe.path}"
    if recipe.ship.calibrate_on is not None:
        check_data_roots([recipe.ship.calibrate_on])
        print(f"recipe: calibrating the mask threshold on {recipe.ship.calibrate_on}", flush=True)
        rows = threshold_table(run / FINAL, recipe.ship.calibrate_on, recipe.ship.thresholds)
        threshold = choose_threshold(rows, recipe.ship.max_marked)
        table = format_threshold_table(rows)
        write_text_atomic(
            folder / "calibration.txt", f"{table}\nchosen threshold {threshold:.2f}\n"
        )
        note += f"; threshold {threshold:.2f} calibrated on {recipe.ship.calibrate_on}"
    fraction = None
    if recipe.ship.whole_frame_on:
        check_data_roots(recipe.ship.whole_frame_on)
        folders = ", ".join(recipe.ship.whole_frame_on)
        print(f"recipe: calibrating the whole-frame share on {folders}", flush=True)
        rows = whole_frame_table(
            run / FINAL, threshold, recipe.ship.whole_frame_on, recipe.ship.whole_frame_fractions
        )
        fraction = choose_whole_frame(rows)
        write_text_atomic(
            folder / "whole_frame.txt",
            f"{format_whole_frame_table(rows)}\nchosen whole_frame_fraction {fraction:.2f}\n",
        )
        note += f"; whole-frame share {fraction:.2f} calibrated on {folders}"
    target = folder / f"{recipe.ship.name}.safetensors"
    extent = recipe.ship.whole_frame_extent
    if extent is not None:
        note += f"; whole-frame blur extent {extent:g} px"
    return ship_run(
        run, target, threshold, note, whole_frame_fraction=fraction, whole_frame_extent=extent
    )


def run_recipe(
    recipe: Recipe,
    out: str | Path | None = None,
    minutes: float | None = None,
    data_only: bool = False,
    progress: bool = True,
    command: list[str] | None = None,
    workers: int = 1,
) -> dict[str, Any]:
    """Make the data, train the stages, ship. Returns {"done": bool, "stopped_at": stage name
    or None, "shipped": path or None, "data_made": [...]}; stops early (resumably) when
    `minutes` run out. `workers`: processes per data set being made."""
    out = Path(out or recipe.out)
    deadline = None if minutes is None else time.monotonic() + 60.0 * minutes
    made = make_data(recipe.data, progress=progress, workers=workers)
    result: dict[str, Any] = {"done": False, "stopped_at": None, "shipped": None, "data_made": made}
    if data_only:
        return result
    trained = False
    for index in range(len(recipe.stages)):
        status = stage_status(recipe, index, out)
        if status.finished:
            continue
        left = None if deadline is None else (deadline - time.monotonic()) / 60.0
        if left is not None and left <= 0:
            if trained:
                result["stopped_at"] = status.name
                return result
            left = 1e-6  # every call makes progress: at least one step of the pending stage
        trained = True
        if isinstance(recipe.stages[index], PredictorStage):
            status = run_predictor_stage(recipe, index, out, left)
        else:
            status = _train_stage(recipe, index, out, left, command or ["m2aenet", "recipe"])
        if not status.finished:
            result["stopped_at"] = status.name
            return result
    if recipe.stages:
        shipped = out / SHIP_FOLDER / f"{recipe.ship.name}.safetensors"
        last_final = out / recipe.stages[-1].name / FINAL
        if not shipped.is_file() or shipped.stat().st_mtime < last_final.stat().st_mtime:
            shipped = ship(recipe, out)
        result["shipped"] = str(shipped)
    result["done"] = True
    return result
