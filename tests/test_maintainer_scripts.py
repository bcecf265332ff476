"""The maintainer scripts that produced the shipped weights: predictor injection and shipping."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from m2aenet import create_model
from m2aenet.checkpoint import save_model

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
SMALL = {"channels": 8, "num_blocks": 2, "mask_width": 8, "mask_depth": 1, "analyzer_width": 8}


def _script(name: str):
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _checkpoint(folder: Path) -> None:
    torch.manual_seed(0)
    model = create_model("m2aenet-s", **SMALL)
    for name in ("model", "ema"):
        save_model(folder / f"{name}.safetensors", model, {"step": 5})


def test_inject_replaces_only_the_predictor_in_model_and_ema(tmp_path: Path) -> None:
    pretrain = _script("pretrain_mask_predictor")
    _checkpoint(tmp_path)
    before = load_file(str(tmp_path / "model.safetensors"))
    predictor = {
        k: torch.full_like(v, 0.25) for k, v in before.items() if k.startswith(pretrain.PREFIX)
    }
    pretrain.inject(predictor, tmp_path)
    for name in ("model", "ema"):
        after = load_file(str(tmp_path / f"{name}.safetensors"))
        assert after.keys() == before.keys()
        for key, value in after.items():
            expected = predictor.get(key, before[key])
            assert torch.equal(value, expected), key
    wrong = {key: value[..., :1] for key, value in predictor.items() if value.dim() == 4}
    with pytest.raises(SystemExit, match="do not fit"):
        pretrain.inject(wrong, tmp_path)


def test_training_time_leaves_out_stops(tmp_path: Path) -> None:
    ship = _script("ship_weights")
    log = tmp_path / "log.jsonl"
    times = [0.0, 10.0, 20.0, 20.0 + ship.IDLE_GAP_S + 1, 30.0 + ship.IDLE_GAP_S + 1]
    log.write_text("".join(json.dumps({"time": t}) + "\n" for t in times))
    assert ship.training_seconds(log) == pytest.approx(30.0)
