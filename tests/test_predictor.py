"""Training a mask predictor apart: settings, scores, warm start, stopping and continuing."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
from predictor_helpers import write_model, write_pool

from m2aenet.checkpoint import load_model
from m2aenet.data.datasets import PairedImageDataset
from m2aenet.errors import ConfigError
from m2aenet.train.predictor import (
    PredictorTraining,
    score,
    train_predictor,
    tunable_settings,
)


@pytest.fixture()
def pool(tmp_path: Path) -> Path:
    return write_pool(tmp_path / "pool")


def _settings(pool: Path, **changes) -> PredictorTraining:
    tiny = PredictorTraining(
        model_overrides={"mask_width": 8, "mask_depth": 1},
        pools=(str(pool),),
        val=(str(pool),),
        steps=3,
        context_depth=1,
        crop=32,
        batch=2,
        lr=1e-3,
        centred_fraction=0.5,
        report_every=2,
    )
    return dataclasses.replace(tiny, **changes)


def test_predictor_training_on_a_pool_scores_on_full_frames(pool: Path) -> None:
    lines: list[str] = []
    result = train_predictor(_settings(pool), log=lines.append)
    assert result.step == 3 and result.finished
    assert [line.split(":")[0] for line in lines] == ["step 0", "step 2", "step 3"]
    for scores in (result.initial_scores, result.scores):
        iou, ratio = scores[str(pool)]["iou"], scores[str(pool)]["marked_over_true"]
        assert 0.0 <= iou <= 1.0 and ratio >= 0.0
    frames = PairedImageDataset(pool, require_mask=True)
    assert score(result.net, frames, 0.5, 2) == pytest.approx(result.scores[str(pool)])
    # Everything marked: IoU is the true share of the frame, marked / true its inverse.
    with torch.no_grad():
        result.net.head.bias.fill_(50.0)
    everything = score(result.net, frames, 0.5, 2)
    assert everything["iou"] == pytest.approx(24 * 22 / 64**2)
    assert everything["marked_over_true"] == pytest.approx(64**2 / (24 * 22))


def test_a_warm_started_predictor_begins_as_the_models_and_training_moves_it(
    tmp_path: Path, pool: Path
) -> None:
    weights = write_model(tmp_path / "ema.safetensors")
    settings = _settings(pool, init=str(weights), context_depth=None, val=())
    untrained = train_predictor(dataclasses.replace(settings, steps=1, lr=1e-12), log=print)
    model = load_model(weights)
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():  # context depth None: the model's (0), so the same network
        assert untrained.net.context is None
        assert torch.allclose(untrained.net(x)[0], model.mask_predictor(x)[0], atol=1e-6)
    trained = train_predictor(settings, log=print).net.state_dict()
    before = model.mask_predictor.state_dict()
    assert trained.keys() == before.keys()
    assert all(not torch.equal(trained[key], before[key]) for key in before)


def test_a_stopped_run_continues_to_the_same_weights_as_an_unbroken_one(
    tmp_path: Path, pool: Path
) -> None:
    settings = _settings(pool, report_every=1)
    unbroken = train_predictor(settings, log=print).net.state_dict()
    state = tmp_path / "state.pt"
    lines: list[str] = []
    for expected in (1, 2):  # a deadline already past: one step per call, then a stop
        stopped = train_predictor(settings, deadline=0.0, state_path=state, log=lines.append)
        assert stopped.step == expected and not stopped.finished
    done = train_predictor(settings, state_path=state, log=lines.append)
    assert done.step == 3 and done.finished
    assert "continuing at step 2" in "\n".join(lines)
    for key, value in done.net.state_dict().items():
        assert torch.equal(value, unbroken[key]), key
    # Other settings: the state is not theirs, so training starts again.
    changed = dataclasses.replace(settings, lr=2e-3)
    lines.clear()
    again = train_predictor(changed, deadline=0.0, state_path=state, log=lines.append)
    assert again.step == 1 and lines[0].endswith("made with other settings; starting again")


def test_a_minutes_budget_ends_training_without_a_step_count(pool: Path) -> None:
    result = train_predictor(_settings(pool, steps=None, minutes=1e-9), log=print)
    assert result.finished and result.step == 0


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["crp=32"], r"unknown key 'crp' \(known: crop, batch"),
        (["pools=[a]"], "unknown key 'pools'"),
        (["batch=two"], r"batch: expected an integer, got 'two'"),
        (["lr=-1"], r"lr must be > 0, got -1.0"),
        (["threshold=1.5"], r"threshold must be in \(0, 1\)"),
        (["crop"], "expected KEY=VALUE"),
    ],
)
def test_bad_settings_name_the_key(overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        tunable_settings(overrides)


def test_tunable_settings_are_typed() -> None:
    assert tunable_settings(["crop=256", "lr=1e-3", "hard_negatives=false"]) == {
        "crop": 256,
        "lr": 1e-3,
        "hard_negatives": False,
    }
    with pytest.raises(ConfigError, match="steps or minutes must be given"):
        PredictorTraining(steps=None)
