"""torchrun with two CPU processes (gloo): the run finishes and both ranks hold the same weights."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
import yaml
from test_resume import assert_same_weights
from torchrun_helpers import torchrun

from m2aenet.train import state
from m2aenet.train.plots import read_log

HELPERS = Path(__file__).with_name("train_helpers.py")


def tiny_yaml(tmp_path: Path, **changes) -> Path:
    data = {
        "model": {"name": "tiny-test"},
        "data": {"batch_size": 2, "num_workers": 0},
        "optim": {"lr": 1e-2, "warmup_steps": 2},
        "steps": 6,
        "checkpoint": {"every": 3},
        "validation": {"every": 3},
        "log": {"every": 1, "progress": False},
        "amp": "none",
        **changes,
    }
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.slow
def test_two_gloo_processes_agree_and_resume_like_an_uninterrupted_run(tmp_path: Path) -> None:
    config = tiny_yaml(tmp_path)
    straight = tmp_path / "straight"
    torchrun(str(HELPERS), "train", str(config), "--out", str(straight))
    rows = read_log(straight / "log.jsonl")
    done = [row for row in rows if row["kind"] == "done"]
    assert len(done) == 1  # rank 0 alone writes the log
    digests = done[0]["weights_sha256"]
    assert len(digests) == 2 and digests[0] == digests[1]  # each rank hashed its own weights
    assert [row["step"] for row in rows if row["kind"] == "train"] == [1, 2, 3, 4, 5, 6]
    assert [row["step"] for row in rows if row["kind"] == "val"] == [3, 6]

    # The same run stopped after its step-3 checkpoint, then resumed by two processes.
    stopped = tmp_path / "stopped"
    shutil.copytree(straight, stopped)
    for name in ("model.safetensors", "ema.safetensors", "state.pt"):
        (state.step_dir(stopped, 6) / name).unlink()
    (stopped / "final_ema.safetensors").unlink()
    state.write_last(stopped, 3)
    torchrun(str(HELPERS), "train", str(config), "--out", str(stopped), "--resume")
    assert_same_weights(straight / "final_ema.safetensors", stopped / "final_ema.safetensors")
    training_state = torch.load(state.step_dir(stopped, 6) / "state.pt", weights_only=True)
    assert len(training_state["rng"]) == 2  # each rank's generators are saved


@pytest.mark.slow
def test_torchrun_m2aenet_train_smoke_config(tmp_path: Path) -> None:
    smoke = Path(__file__).resolve().parents[1] / "configs" / "smoke.yaml"
    out = tmp_path / "smoke"
    torchrun("-m", "m2aenet", "train", str(smoke), "--out", str(out), "log.progress=false")
    done = [row for row in read_log(out / "log.jsonl") if row["kind"] == "done"]
    digests = done[0]["weights_sha256"]
    assert len(digests) == 2 and digests[0] == digests[1]
