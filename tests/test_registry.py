"""The model registry (registry.py): names, patterns and typed config values."""

from __future__ import annotations

import pytest

from m2aenet import list_models
from m2aenet.errors import ConfigError
from m2aenet.registry import create_model, model_config


def test_list_models_takes_shell_patterns() -> None:
    every = list_models()
    assert {"m2aenet-s", "m2aenet-b", "nafnet-s"} <= set(every)
    assert list_models("m2aenet*") == sorted(name for name in every if name.startswith("m2aenet"))
    assert list_models("nafnet-?") == ["nafnet-s"]
    assert list_models("resnet*") == []


@pytest.mark.parametrize(
    ("name", "overrides", "message"),
    [
        ("m2aenet-s", {"channels": 8.5}, "model_config.channels must be int, got 8.5"),
        ("m2aenet-s", {"channels": True}, "model_config.channels must be int"),
        ("m2aenet-s", {"motion_scale": float("nan")}, "model_config.motion_scale must be float"),
        ("m2aenet-s", {"num_blocks": 5000}, "absurdly large"),
        ("nafnet-s", {"enc_blocks": "abc"}, "enc_blocks must be a list of integers"),
        ("nafnet-s", {"enc_blocks": [1, 1.5, 1]}, "enc_blocks must be int, got 1.5"),
    ],
)
def test_config_values_of_the_wrong_type_are_refused(
    name: str, overrides: dict, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        model_config(name, **overrides)


def test_right_types_pass_including_ints_for_floats() -> None:
    config = model_config("m2aenet-s", channels=16, motion_scale=4, batch_norm=True)
    assert (config.channels, config.motion_scale, config.batch_norm) == (16, 4, True)
    assert model_config("nafnet-s", enc_blocks=[1, 2, 1], dec_blocks=[1, 1, 1]).enc_blocks == (
        1,
        2,
        1,
    )


def test_the_shipped_weights_are_the_registered_m2aenet_s2() -> None:
    """`create_model("m2aenet-s2")` is the architecture of the shipped `default` weights."""
    import dataclasses
    import json

    from m2aenet.checkpoint import WEIGHTS_DIR, load_model

    record = json.loads((WEIGHTS_DIR / "default.json").read_text(encoding="utf-8"))
    assert record["model"] == "m2aenet-s2"
    registered = create_model("m2aenet-s2")
    # Session 13 re-saved the record with every field (it had lacked those added later).
    assert dataclasses.asdict(registered.config) == record["model_config"]
    shipped = load_model("default")
    assert shipped.model_name == "m2aenet-s2"
    assert {k: v.shape for k, v in shipped.state_dict().items()} == {
        k: v.shape for k, v in registered.state_dict().items()
    }
