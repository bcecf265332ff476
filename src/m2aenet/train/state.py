"""Training checkpoints on disk, written so that a killed run always finds a complete one.

Layout under the run folder OUT:

    OUT/checkpoints/step_00000500/model.safetensors (+ .json)   training weights
    OUT/checkpoints/step_00000500/ema.safetensors   (+ .json)   averaged weights
    OUT/checkpoints/step_00000500/state.pt                      optimizer, scheduler, scaler,
                                                                RNG states, EMA counter, step
    OUT/last.json                                               {"step": 500, "dir": ...}

Every file is written atomically, and `last.json` is written last: a checkpoint exists only
once `last.json` names it, so a crash mid-write leaves the previous one in charge. The state
file holds only tensors and plain containers and is read with `torch.load(weights_only=True)`.
No symlinks, so the scheme works on any file system.
"""

from __future__ import annotations

import json
import random
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from m2aenet.atomic import atomic_path, write_text_atomic
from m2aenet.errors import CheckpointError

CHECKPOINTS = "checkpoints"
LAST = "last.json"
_STEP_DIR = re.compile(r"^step_(\d{8})$")


def step_dir(out: Path, step: int) -> Path:
    """Folder of the checkpoint taken after optimizer step `step`."""
    return Path(out) / CHECKPOINTS / f"step_{step:08d}"


def capture_rng() -> dict[str, Any]:
    """Python, NumPy, torch (and CUDA) generator states as tensors and plain values."""
    np_kind, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    py_version, py_internal, py_gauss = random.getstate()
    state: dict[str, Any] = {
        "python": {"version": py_version, "internal": list(py_internal), "gauss": py_gauss},
        "numpy": {
            "kind": np_kind,
            "keys": torch.from_numpy(np.asarray(np_keys, dtype=np.int64)),
            "pos": int(np_pos),
            "has_gauss": int(np_has_gauss),
            "gauss": float(np_gauss),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    """Inverse of `capture_rng`."""
    python = state["python"]
    random.setstate((python["version"], tuple(python["internal"]), python["gauss"]))
    numpy_state = state["numpy"]
    np.random.set_state(
        (
            numpy_state["kind"],
            numpy_state["keys"].numpy().astype(np.uint32),
            numpy_state["pos"],
            numpy_state["has_gauss"],
            numpy_state["gauss"],
        )
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        cuda_states = state["cuda"]
        if len(cuda_states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda_states)


def save_state(path: Path, state: dict[str, Any]) -> None:
    """torch.save a dict of tensors and plain containers, atomically."""
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_state(path: Path) -> dict[str, Any]:
    """Read a state file with `weights_only=True` (no arbitrary unpickling)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError as error:
        raise CheckpointError(f"{path}: training state not found") from error
    except Exception as error:  # torch raises UnpicklingError, RuntimeError, EOFError...
        raise CheckpointError(f"{path}: unreadable training state ({error})") from error


def write_last(out: Path, step: int) -> None:
    """Point `last.json` at the checkpoint of `step` (call after all its files are written)."""
    directory = step_dir(out, step)
    record = {"step": step, "dir": str(directory.relative_to(out))}
    write_text_atomic(Path(out) / LAST, json.dumps(record) + "\n")


def read_last(out: Path) -> tuple[int, Path] | None:
    """(step, folder) of the newest complete checkpoint, or None when the run has none."""
    path = Path(out) / LAST
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        step = int(record["step"])
        directory = Path(out) / record["dir"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise CheckpointError(f"{path}: not a valid checkpoint pointer ({error})") from error
    if not directory.is_dir():
        raise CheckpointError(f"{path}: names {directory}, which does not exist")
    return step, directory


def list_steps(out: Path) -> list[int]:
    """Steps of every checkpoint folder present (complete or not), ascending."""
    root = Path(out) / CHECKPOINTS
    if not root.is_dir():
        return []
    steps = []
    for child in root.iterdir():
        match = _STEP_DIR.match(child.name)
        if match and child.is_dir():
            steps.append(int(match.group(1)))
    return sorted(steps)


def prune(out: Path, keep: int, current: int) -> None:
    """Delete checkpoint folders beyond the newest `keep`, and any newer than `current`

    (left by a run killed while writing them); never the one `last.json` names.
    """
    steps = list_steps(out)
    complete = [step for step in steps if step <= current]
    doomed = set(complete[:-keep]) | {step for step in steps if step > current}
    doomed.discard(current)
    for step in sorted(doomed):
        shutil.rmtree(step_dir(out, step), ignore_errors=True)
