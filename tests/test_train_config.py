"""Training config: YAML onto dataclasses, dotted overrides, and errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest
import train_helpers
import yaml

from m2aenet.errors import ConfigError
from m2aenet.train.config import (
    TrainConfig,
    apply_overrides,
    from_dict,
    load_config,
    parse_override,
    to_dict,
)

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
TINY = train_helpers.register_tiny_model()


def write(tmp_path: Path, data: dict) -> Path:
    """A config file; a tiny registered model unless `data` names one."""
    data = {"model": {"name": TINY}, **data}
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def test_defaults_round_trip_through_plain_data() -> None:
    config = from_dict(TrainConfig, {})
    assert from_dict(TrainConfig, to_dict(config)) == config
    assert config.optim.betas == (0.9, 0.99)  # a list in YAML becomes the typed tuple


def test_unknown_key_at_depth_names_the_dotted_key_and_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, {"optim": {"lrr": 1e-3}})
    with pytest.raises(ConfigError) as error:
        load_config(path)
    message = str(error.value)
    assert str(path) in message
    assert "'optim.lrr'" in message
    assert "did you mean 'optim.lr'" in message


def test_unknown_key_two_levels_down(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"'data\.val\.crop'"):
        load_config(write(tmp_path, {"data": {"val": {"crop": 64}}}))


def test_unknown_top_level_key() -> None:
    with pytest.raises(ConfigError, match="unknown key 'stepz'"):
        from_dict(TrainConfig, {"stepz": 3})


@pytest.mark.parametrize(
    ("data", "key", "expected"),
    [
        ({"steps": "ten"}, "steps", "integer"),
        ({"steps": 2.5}, "steps", "integer"),
        ({"steps": True}, "steps", "integer"),
        ({"optim": {"lr": "fast"}}, "optim.lr", "number"),
        ({"ema": {"enabled": "yes please"}}, "ema.enabled", "true or false"),
        ({"amp": "fp8"}, "amp", "not one of"),
        ({"data": {"train": {"source": "web"}}}, "data.train.source", "not one of"),
        ({"optim": {"betas": [0.9]}}, "optim.betas", "2 items"),
        ({"optim": "adam"}, "optim", "mapping"),
        ({"model": {"overrides": [1, 2]}}, "model.overrides", "mapping"),
    ],
)
def test_wrong_value_types_name_the_key(data: dict, key: str, expected: str) -> None:
    with pytest.raises(ConfigError) as error:
        from_dict(TrainConfig, data)
    assert str(error.value).startswith(f"{key}:") or f"'{key}'" in str(error.value)
    assert expected in str(error.value)


def test_range_errors_name_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"optim\.accumulation: must be >= 1"):
        load_config(write(tmp_path, {"optim": {"accumulation": 0}}))
    with pytest.raises(ConfigError, match=r"data\.train\.root: a folder source needs a root"):
        load_config(write(tmp_path, {"data": {"train": {"source": "folder"}}}))


def test_yaml_exponent_without_dot_is_read_as_a_float(tmp_path: Path) -> None:
    # YAML 1.1 reads 1e-3 as the string "1e-3"; the float field still accepts it.
    path = tmp_path / "run.yaml"
    path.write_text(f"model:\n  name: {TINY}\noptim:\n  lr: 1e-3\n", encoding="utf-8")
    config = load_config(path)
    assert config.optim.lr == pytest.approx(1e-3)


def test_parse_override_reads_values_as_yaml() -> None:
    assert parse_override("optim.lr=1e-3") == (["optim", "lr"], "1e-3")
    assert parse_override("data.batch_size=2") == (["data", "batch_size"], 2)
    assert parse_override("ema.enabled=false") == (["ema", "enabled"], False)
    assert parse_override("optim.betas=[0.8, 0.9]") == (["optim", "betas"], [0.8, 0.9])
    assert parse_override("data.val.root=null") == (["data", "val", "root"], None)
    for bad in ("optim.lr", "=3", "optim..lr=1", "optim.lr=[1,"):
        with pytest.raises(ConfigError, match="override"):
            parse_override(bad)


def test_overrides_apply_on_top_of_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, {"optim": {"lr": 0.1}, "data": {"batch_size": 8}})
    config = load_config(path, ["optim.lr=1e-3", "data.batch_size=2", "data.train.crop_size=32"])
    assert config.optim.lr == pytest.approx(1e-3)
    assert config.data.batch_size == 2
    assert config.data.train.crop_size == 32


def test_bad_override_is_checked_like_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, {})
    with pytest.raises(ConfigError, match="'optim.lrr'"):
        load_config(path, ["optim.lrr=1"])
    with pytest.raises(ConfigError, match=r"data\.batch_size: expected an integer"):
        load_config(path, ["data.batch_size=two"])
    with pytest.raises(ConfigError, match="'steps' is a value, not a section"):
        apply_overrides({"steps": 3}, ["steps.x=1"])


def test_model_overrides_are_checked_against_the_model_config(tmp_path: Path) -> None:
    name = train_helpers.register_tiny_model()
    config = load_config(write(tmp_path, {"model": {"name": name, "overrides": {"channels": 2}}}))
    assert config.model.overrides == {"channels": 2}
    with pytest.raises(ConfigError, match=r"model: .*unknown key\(s\) \['chanels'\]"):
        load_config(write(tmp_path, {"model": {"name": name, "overrides": {"chanels": 2}}}))
    with pytest.raises(ConfigError, match="unknown model 'no-such-model'"):
        load_config(write(tmp_path, {"model": {"name": "no-such-model"}}))


def test_a_model_whose_training_state_cannot_fit_is_refused_naming_the_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from m2aenet import memory

    smoke = Path(__file__).resolve().parents[1] / "configs" / "smoke.yaml"
    monkeypatch.setattr(memory, "available_memory", lambda: 50 * 1000**2)
    load_config(smoke)  # a small model fits in 50 MB
    with pytest.raises(ConfigError, match=r"model.overrides.channels=1024: training .* needs"):
        load_config(smoke, ["model.overrides.channels=1024"])


def test_loss_section_maps_onto_the_loss_config(tmp_path: Path) -> None:
    from m2aenet.losses import LossConfig

    config = load_config(write(tmp_path, {}))
    assert isinstance(config.loss, LossConfig)
    with pytest.raises(ConfigError, match="'loss.no_such_weight'"):
        load_config(write(tmp_path, {"loss": {"no_such_weight": 1.0}}))


def test_missing_or_broken_file_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="missing.yaml: cannot read config"):
        load_config(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("optim: [1, 2\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="broken.yaml: not valid YAML"):
        load_config(broken)


@pytest.mark.parametrize("name", ["smoke.yaml", "default.yaml", "stage3.yaml", "gpu.yaml"])
def test_shipped_configs_load(name: str) -> None:
    config = load_config(CONFIGS / name)
    assert config.model.name.startswith("m2aenet")


def _flatten(data: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in data.items():
        if isinstance(value, dict) and value:
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def test_baseline_recipe_differs_from_stage3_only_where_a_dense_model_must() -> None:
    # The comparison page trains both with "the same recipe": drift between the two files
    # (a changed lr, crop or step count in one only) would make it unfair. The baseline follows
    # the from-scratch recipe of the campaign (stage 3; stage 4 continues it from weights).
    default = _flatten(to_dict(load_config(CONFIGS / "stage3.yaml")))
    baseline = _flatten(to_dict(load_config(CONFIGS / "nafnet-s.yaml")))
    differing = {
        key for key in default.keys() | baseline.keys() if default.get(key) != baseline.get(key)
    }
    allowed = {"model.name", "out", "teacher_forcing_steps"} | {
        key
        for key in default.keys() | baseline.keys()
        if (key.startswith("loss.") and key != "loss.reconstruction_weight")
        or key.startswith("model.overrides")  # m2aenet-s's own architecture settings
    }
    assert differing <= allowed, sorted(differing - allowed)
    assert baseline["model.name"] == "nafnet-s"
