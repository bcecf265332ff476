"""Weights files (checkpoint.py): tampered sidecars and metadata are refused before any model
is built, with one message naming the file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from m2aenet import registry
from m2aenet.checkpoint import load_model, load_weights_into, save_model
from m2aenet.errors import CheckpointError
from m2aenet.registry import create_model

SMALL = {"channels": 8, "num_blocks": 1, "mask_width": 8, "analyzer_width": 8}


@pytest.fixture()
def weights(tmp_path: Path) -> Path:
    return save_model(tmp_path / "w.safetensors", create_model("m2aenet-s", **SMALL))


def _tamper_sidecar(weights: Path, **changes: object) -> None:
    sidecar = weights.with_suffix(".json")
    record = json.loads(sidecar.read_text())
    for key, value in changes.items():
        if key == "model_config":
            record[key] = value
        else:
            record["model_config"][key] = value
    sidecar.write_text(json.dumps(record))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"channels": "abc"}, "model_config.channels must be int, got 'abc'"),
        ({"channels": 8.5}, "model_config.channels must be int, got 8.5"),
        ({"mask_threshold": "high"}, "model_config.mask_threshold must be float"),
        ({"batch_norm": 1}, "model_config.batch_norm must be bool"),
        ({"model_config": [1, 2]}, "'model_config' must be a mapping"),
        ({"channels": 10**9}, "absurdly large"),
        ({"channels": 4096, "num_blocks": 64}, r"parameters \(limit"),
        # Each analyzer level doubles the width: 40 levels overflowed torch's size arithmetic.
        ({"analyzer_levels": 40}, "model_config.analyzer_levels must be <= "),
        ({"analyzer_width": 4096}, "model_config.analyzer_width"),
        ({"mask_refine_width": -2}, "model_config.mask_refine_width must be >= 0, got -2"),
    ],
)
def test_tampered_sidecars_are_refused_before_the_model_is_built(
    weights: Path, monkeypatch: pytest.MonkeyPatch, changes: dict, message: str
) -> None:
    _tamper_sidecar(weights, **changes)
    built = []
    original = registry._MODELS["m2aenet-s"]
    monkeypatch.setitem(
        registry._MODELS,
        "m2aenet-s",
        # What is built where: a size check may build on the meta device (no memory).
        (
            original[0],
            lambda config: (
                built.append((config, torch.empty(0).device.type)) or original[1](config)
            ),
        ),
    )
    with pytest.raises(CheckpointError, match=message) as error:
        load_model(weights)
    assert str(error.value).startswith(f"{weights.with_suffix('.json')}: ")
    assert not [config for config, device in built if device != "meta"]  # nothing allocated


def test_bad_json_in_the_sidecar_or_the_metadata_is_refused(weights: Path) -> None:
    sidecar = weights.with_suffix(".json")
    sidecar.write_text("{not json")
    with pytest.raises(CheckpointError, match=r"w.json: not valid JSON"):
        load_model(weights)
    sidecar.unlink()
    save_file(load_file(weights), weights, metadata={"m2aenet": "{broken"})
    with pytest.raises(CheckpointError, match=r"w.safetensors: model record .* not valid JSON"):
        load_model(weights)
    save_file(load_file(weights), weights, metadata={"m2aenet": json.dumps({"model": 3})})
    with pytest.raises(CheckpointError, match=r"'model' must be a model name, got 3"):
        load_model(weights)


def test_a_sidecar_nested_too_deeply_is_one_error(weights: Path) -> None:
    depth = 100_000  # json.loads recursed past the interpreter's limit: RecursionError
    weights.with_suffix(".json").write_text("[" * depth + "]" * depth)
    with pytest.raises(CheckpointError, match=r"w.json: JSON nested too deeply"):
        load_model(weights)
    weights.with_suffix(".json").unlink()
    save_file(load_file(weights), weights, metadata={"m2aenet": "[" * depth + "]" * depth})
    with pytest.raises(CheckpointError, match=r"w.safetensors: model record .* not valid JSON"):
        load_model(weights)


def test_an_intact_sidecar_still_loads(weights: Path) -> None:
    model = load_model(weights)
    assert model.config.channels == 8 and not model.training


def test_growing_loads_only_the_parts_that_start_as_the_identity(tmp_path: Path) -> None:
    """A warm start may add m2aenet-ms's full-resolution level (its `grown_parts`), nothing
    else: without `grow` the same file is refused, and a file lacking other parameters is
    refused even with it."""
    small = dict(widths=(8, 8, 8), trajectory_channels=4, analyzer_width=4, mask_width=4)
    path = save_model(tmp_path / "plain.safetensors", create_model("m2aenet-ms", **small))
    grown = create_model("m2aenet-ms", **small, fine_width=4)
    load_weights_into(grown, path, "m2aenet-ms", grow=True)
    with pytest.raises(CheckpointError, match="do not fit"):
        load_weights_into(grown, path, "m2aenet-ms")
    state = load_file(str(path))
    del state["stem.weight"]
    save_file(state, str(tmp_path / "partial.safetensors"))
    with pytest.raises(CheckpointError, match="stem.weight"):
        load_weights_into(grown, tmp_path / "partial.safetensors", "m2aenet-ms", grow=True)
