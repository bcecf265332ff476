"""A recipe's predictor stage: the previous stage's mask predictor trained apart, swapped in.

OUT/NAME holds, while it trains, `predictor_state.pt`: its resume state, written every
`report_every` steps and when a call's minutes run out, so a stopped call continues where it
stopped (a killed one from its last report). At the end it writes `predictor.safetensors` (the
trained predictor), `val_scores.json` (val scores of the starting and the trained predictor,
and the settings), and last `final_ema.safetensors` (+ .json): the previous stage's final EMA
weights with the new predictor swapped in. The stage is finished when that file exists and
`val_scores.json` holds the stage's current settings and the SHA-256 of the previous stage's
weights it started from: a previous stage trained again, or changed settings, make it start
again (as a resume state does whose `predictor_state.start` names other weights). Contents,
not file times, decide: a fresh clone of a committed campaign gets checkout-order times.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

from m2aenet.recipe.progress import FINAL, StageStatus
from m2aenet.recipe.spec import PredictorStage, Recipe
from m2aenet.train.predictor import (
    PredictorTraining,
    model_of,
    read_progress,
    tunable_settings,
)

STATE = "predictor_state.pt"
STATE_START = "predictor_state.start"  # the digest of the weights the resume state started from
PREDICTOR = "predictor.safetensors"
SCORES = "val_scores.json"


def check_sharp_folders(stage: PredictorStage) -> None:
    """InputError naming a missing sharp-photo folder and how the recipe's ones are gathered."""
    from m2aenet.data.sharp_crops import TRAIN_SPLIT
    from m2aenet.recipe.datasets import check_photo_folder

    for folder in stage.sharp_photos:
        if folder != TRAIN_SPLIT:
            check_photo_folder(folder, "sharp-photo folder")


def previous_final(recipe: Recipe, index: int, out: Path) -> Path:
    """The weights a predictor stage starts from: the previous stage's final EMA."""
    return out / recipe.stages[index - 1].name / FINAL


def predictor_settings(recipe: Recipe, index: int, out: Path) -> PredictorTraining:
    """The stage's training settings; the model and its predictor come from the previous
    stage's final weights (which must exist; the predictor from the stage's `init` when it
    names one), context depth and threshold too unless the stage's overrides set them."""
    stage: PredictorStage = recipe.stages[index]
    start = previous_final(recipe, index, out)
    return PredictorTraining(
        **model_of(start),
        init=stage.init or start.as_posix(),
        pools=stage.pools,
        val=stage.val,
        sharp_photos=stage.sharp_photos,
        steps=stage.steps,
        minutes=stage.minutes,
        **tunable_settings(stage.overrides),
    ).resolved()


def file_digest(path: Path) -> str | None:
    """SHA-256 of a file's bytes; None if it is not there."""
    if not path.is_file():
        return None
    with path.open("rb") as stream:
        return hashlib.file_digest(stream, "sha256").hexdigest()


def _state_fits(folder: Path, start_digest: str | None) -> bool:
    """Whether the resume state started from these weights."""
    try:
        written = (folder / STATE_START).read_text(encoding="utf-8").strip()
    except OSError:
        return False
    return (folder / STATE).is_file() and start_digest is not None and written == start_digest


def predictor_stage_status(recipe: Recipe, index: int, out: Path) -> StageStatus:
    """Finished (final weights made from the previous stage's current ones with the current
    settings), else the progress of a resume state that fits both, else 0."""
    stage: PredictorStage = recipe.stages[index]
    folder = out / stage.name
    start_digest = file_digest(previous_final(recipe, index, out))
    unit = "step" if stage.steps is not None else "second"
    total = stage.steps if stage.steps is not None else round(60 * stage.minutes)
    if (folder / FINAL).is_file() and _finished_with(folder, recipe, index, out, start_digest):
        return StageStatus(stage.name, folder, total, total, True, unit)
    done = 0
    if _state_fits(folder, start_digest):
        progress = read_progress(folder / STATE)
        if (
            progress is not None
            and progress[2] == predictor_settings(recipe, index, out).result_settings()
        ):
            done = progress[0] if unit == "step" else int(progress[1])
    return StageStatus(stage.name, folder, done, total, False, unit)


def _finished_with(
    folder: Path, recipe: Recipe, index: int, out: Path, start_digest: str | None
) -> bool:
    """Whether the stage's scores file says it was trained with its current settings, from
    the previous stage's current weights."""
    try:
        scores = json.loads((folder / SCORES).read_text(encoding="utf-8"))
        written, started = scores["settings"], scores["start_sha256"]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return (
        start_digest is not None
        and started == start_digest
        and written == predictor_settings(recipe, index, out).result_settings()
    )


def run_predictor_stage(
    recipe: Recipe, index: int, out: Path, minutes: float | None = None
) -> StageStatus:
    """Train the stage's predictor (for at most `minutes` in this call, at least one step) and,
    once its budget is used up, write its results and OUT/NAME/final_ema.safetensors."""
    from m2aenet.atomic import write_text_atomic
    from m2aenet.recipe.datasets import check_data_roots
    from m2aenet.train.predictor import train_predictor
    from m2aenet.train.predictor_weights import save_predictor, swap_mask_predictor

    stage: PredictorStage = recipe.stages[index]
    folder = out / stage.name
    start = previous_final(recipe, index, out)
    check_data_roots([*stage.pools, *stage.val])
    check_sharp_folders(stage)
    settings = predictor_settings(recipe, index, out)
    state = folder / STATE
    start_digest = file_digest(start)
    if state.is_file() and not _state_fits(folder, start_digest):
        state.unlink()  # made from other weights of the previous stage
    deadline = None if minutes is None else time.monotonic() + 60.0 * minutes
    print(f"recipe: training the predictor of {start} apart in {folder}", flush=True)
    folder.mkdir(parents=True, exist_ok=True)
    write_text_atomic(folder / STATE_START, f"{start_digest}\n")
    result = train_predictor(
        settings,
        deadline,
        state,
        log=lambda line: print(f"recipe: {stage.name}: {line}", flush=True),
    )
    if result.finished:
        save_predictor(folder / PREDICTOR, result.net)
        scores = {
            "steps": result.step,
            "before": result.initial_scores,
            "after": result.scores,
            "settings": settings.result_settings(),
            "start_sha256": start_digest,
        }
        write_text_atomic(folder / SCORES, json.dumps(scores, indent=2) + "\n")
        made_by = (
            f"m2aenet recipe {recipe.path}: stage {stage.name}, the predictor trained apart "
            f"({result.step} steps) and swapped in"
        )
        swap_mask_predictor(start, folder / PREDICTOR, folder / FINAL, made_by)
        state.unlink(missing_ok=True)
        (folder / STATE_START).unlink(missing_ok=True)
    return predictor_stage_status(recipe, index, out)
