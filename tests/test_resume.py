"""Resuming a run gives the same weights as never stopping it (bit for bit on the CPU)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from test_trainer import run, tiny_config
from train_helpers import one_thread, replace

from m2aenet.checkpoint import load_state_dict
from m2aenet.cli import FAST_MALLOC_TUNABLES
from m2aenet.train import state
from m2aenet.train.plots import read_log

HELPERS = Path(__file__).with_name("train_helpers.py")
pytestmark = pytest.mark.usefixtures(one_thread.__name__)


def assert_same_weights(a: Path, b: Path) -> None:
    first, second = load_state_dict(a), load_state_dict(b)
    assert first.keys() == second.keys()
    for key in first:
        assert torch.equal(first[key], second[key]), key


def train_rows(out: Path) -> list[dict]:
    rows = [row for row in read_log(out / "log.jsonl") if row["kind"] == "train"]
    return [
        {k: row[k] for k in row if k not in ("time", "steps_per_s", "samples_per_s")}
        for row in rows
    ]


def test_resume_from_a_middle_checkpoint_matches_the_uninterrupted_run(tmp_path: Path) -> None:
    config = tiny_config(steps=8, checkpoint={"every": 2, "keep": 10}, validation={"every": 4})
    full = tmp_path / "full"
    run(config, full)

    # What a run killed just after its step-4 checkpoint leaves behind: newer, half-written
    # checkpoint folders, log rows past step 4 and a torn last line.
    partial = tmp_path / "partial"
    shutil.copytree(full, partial)
    for step in (6, 8):
        (state.step_dir(partial, step) / "state.pt").unlink()
    (partial / "final_ema.safetensors").unlink()
    state.write_last(partial, 4)
    with (partial / "log.jsonl").open("a") as handle:
        handle.write('{"kind": "train", "step": 9, "lo')

    run(config, partial, resume=True)
    assert_same_weights(full / "final_ema.safetensors", partial / "final_ema.safetensors")
    assert_same_weights(
        state.step_dir(full, 8) / "model.safetensors",
        state.step_dir(partial, 8) / "model.safetensors",
    )
    assert train_rows(partial) == train_rows(full)  # same losses, same learning rates
    assert state.list_steps(partial) == [2, 4, 6, 8]


def test_resume_without_a_checkpoint_starts_from_step_zero(tmp_path: Path) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "log.jsonl").write_text('{"kind": "train", "step": 1, "loss": 9.0}\n')
    run(tiny_config(steps=2), out, resume=True)
    steps = [row["step"] for row in read_log(out / "log.jsonl") if row["kind"] == "train"]
    assert steps == [1, 2]
    assert (out / "final_ema.safetensors").is_file()


def test_a_broken_state_file_is_a_clear_error(tmp_path: Path) -> None:
    from m2aenet.errors import CheckpointError

    out = tmp_path / "run"
    config = tiny_config(steps=2, checkpoint={"every": 2})
    run(config, out)
    (state.step_dir(out, 2) / "state.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match=r"state\.pt: unreadable training state"):
        run(replace(config, steps=4), out, resume=True)


def _command(config: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, str(HELPERS), "train", str(config), "--out", str(out), *extra]


@pytest.mark.slow
def test_kill_9_mid_run_then_resume_gives_the_uninterrupted_weights(tmp_path: Path) -> None:
    steps, every = 32, 4
    config = tmp_path / "tiny.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "model": {"name": "tiny-test"},
                "data": {"batch_size": 2, "num_workers": 1},
                "optim": {"lr": 1e-2, "warmup_steps": 3},
                "steps": steps,
                "checkpoint": {"every": every, "keep": 2},
                "validation": {"every": 8},
                "log": {"every": 1, "progress": False},
                "amp": "none",
            }
        )
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GLIBC_TUNABLES": FAST_MALLOC_TUNABLES}
    env.pop("TINY_SAMPLE_DELAY", None)
    full = tmp_path / "full"
    subprocess.run(_command(config, full), env=env, check=True, timeout=120)

    killed = tmp_path / "killed"
    slow_env = {**env, "TINY_SAMPLE_DELAY": "0.03"}  # ~0.06 s per step: time to aim the kill
    process = subprocess.Popen(_command(config, killed), env=slow_env)
    try:
        deadline = time.monotonic() + 120
        step_seen = 0
        while step_seen < 2 * every + 2:  # past the second checkpoint, before the third
            assert process.poll() is None, "the run ended before it could be killed"
            assert time.monotonic() < deadline, "the run made no progress"
            rows = read_log(killed / "log.jsonl")
            step_seen = max([row["step"] for row in rows if row["kind"] == "train"], default=0)
            time.sleep(0.01)
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.kill()
        process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL
    saved_step, _ = state.read_last(killed)
    assert step_seen - every <= saved_step < steps  # lost at most one checkpoint interval
    assert not (killed / "final_ema.safetensors").exists()

    subprocess.run(_command(config, killed, "--resume"), env=env, check=True, timeout=120)
    assert_same_weights(full / "final_ema.safetensors", killed / "final_ema.safetensors")
    assert train_rows(killed) == train_rows(full)
    record = json.loads((killed / "final_ema.json").read_text())
    assert record["step"] == steps and "--resume" in record["command"]


@pytest.mark.parametrize("damaged", ["state.pt", "ema.safetensors", "last.json"])
def test_resume_falls_back_to_the_newest_intact_checkpoint(
    tmp_path: Path, damaged: str, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    config = tiny_config()  # 6 steps, checkpoints every 2, the newest 2 kept
    run(config, out)
    assert state.list_steps(out) == [4, 6]
    target = out / "last.json" if damaged == "last.json" else state.step_dir(out, 6) / damaged
    target.write_bytes(target.read_bytes()[:20])  # truncated, as a full disk leaves it
    assert run(replace(config, steps=8), out, resume=True)["step"] == 8
    message = capsys.readouterr().err
    if damaged == "last.json":
        assert "trying the checkpoint folders" in message  # step 6 itself is intact
    else:
        assert "resuming from step_00000004" in message and damaged in message
    assert state.read_last(out)[0] == 8
