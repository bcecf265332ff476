"""`m2aenet recipe`: data made once, stages trained in order and resumed, weights shipped."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from m2aenet.checkpoint import load_model, read_record
from m2aenet.cli import main
from m2aenet.errors import ConfigError, InputError
from m2aenet.recipe.datasets import check_data_roots, data_state
from m2aenet.recipe.runner import describe, run_recipe, stage_status
from m2aenet.recipe.spec import load_recipe

TINY_MODEL = """\
model:
  name: m2aenet-ms
  overrides:
    widths: [8, 8, 8]
    encoder_blocks: [1, 0]
    middle_blocks: 1
    decoder_blocks: [0, 1]
    trajectory_points: 2
    trajectory_channels: 4
    mask_width: 8
    mask_depth: 1
    mask_context_depth: 1
    analyzer_width: 8
    analyzer_levels: 1
data:
  train: {source: blur_crops, root: data/pool, crop_size: 32, crops_per_frame: 2}
  val: {source: folder, root: data/val, crop_size: null}
  batch_size: 2
  num_workers: 0
optim: {lr: 1.0e-3, warmup_steps: 1}
steps: 3
checkpoint: {every: 1, keep: 2}
validation: {every: 3}
log: {every: 1, progress: false}
threads: 1
"""

RECIPE = """\
out: runs/r
data:
  data/pool: --count 2 --size 64x64 --split train --no-motion --seed 0
  data/val: --count 2 --size 64x64 --split val --no-motion --seed 1
stages:
  - name: first
    config: tiny.yaml
  - name: second
    config: tiny.yaml
    overrides: [optim.lr=5.0e-4]
    init: previous
ship:
  name: mine
  calibrate_on: data/val
  thresholds: [0.3, 0.6]
"""


@pytest.fixture()
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tiny.yaml").write_text(TINY_MODEL)
    (tmp_path / "recipe.yaml").write_text(RECIPE)
    return tmp_path


def test_a_recipe_makes_its_data_trains_in_order_resumes_and_ships(workdir: Path) -> None:
    recipe = load_recipe("recipe.yaml")
    made = run_recipe(recipe, data_only=True, progress=False)
    assert made["data_made"] == ["data/pool", "data/val"] and made["done"] is False
    # A time limit stops the first stage after its first step (every call makes progress).
    stopped = run_recipe(recipe, minutes=1e-6, progress=False)
    assert stopped["done"] is False and stopped["stopped_at"] == "first"
    assert stage_status(recipe, 0, Path("runs/r")).step == 1
    assert "stage first (tiny.yaml): step 1 of 3" in describe(recipe, Path("runs/r"))

    done = run_recipe(recipe, progress=False)
    assert done["done"] is True and done["data_made"] == []
    for index in range(2):
        assert stage_status(recipe, index, Path("runs/r")).finished
    # The second stage started from the first stage's EMA weights.
    second = json.loads(Path("runs/r/second/config.json").read_text())
    assert second["model"]["init_weights"] == "runs/r/first/final_ema.safetensors"
    assert second["optim"]["lr"] == 5.0e-4
    shipped = Path(done["shipped"])
    assert shipped == Path("runs/r/ship/mine.safetensors")
    table = Path("runs/r/ship/calibration.txt").read_text()
    chosen = float(table.strip().splitlines()[-1].split()[-1])
    assert chosen in (0.3, 0.6)
    assert load_model(shipped).mask_threshold == chosen
    training = read_record(shipped)["training"]
    assert training["steps"] == 3 and "calibrated on data/val" in training["note"]

    # Finished: a third call changes nothing.
    stamp = shipped.stat().st_mtime_ns
    again = run_recipe(recipe, progress=False)
    assert again["done"] is True and shipped.stat().st_mtime_ns == stamp


def test_the_cli_plans_without_changing_anything(workdir: Path, capsys) -> None:
    assert main(["recipe", "recipe.yaml", "--plan"]) == 0
    plan = capsys.readouterr().out
    assert "data  data/pool: missing" in plan and "stage second (tiny.yaml): step 0 of 3" in plan
    assert not Path("data").exists() and not Path("runs").exists()


def test_data_only_makes_the_data_and_trains_nothing(workdir: Path, capsys) -> None:
    assert main(["recipe", "recipe.yaml", "--data-only", "--no-progress"]) == 0
    assert "data made: data/pool, data/val" in capsys.readouterr().out
    assert not Path("runs").exists()
    spec = load_recipe("recipe.yaml").data[0]
    assert data_state(spec) == "made"


def test_a_folder_the_recipe_did_not_make_is_left_alone(workdir: Path) -> None:
    recipe = load_recipe("recipe.yaml")
    Path("data/pool").mkdir(parents=True)
    Path("data/pool/notes.txt").write_text("mine")
    with pytest.raises(InputError, match=r"data/pool: exists but holds no finished data set"):
        run_recipe(recipe, data_only=True, progress=False)
    assert Path("data/pool/notes.txt").read_text() == "mine"
    Path("data/pool/notes.txt").unlink()
    Path("data/pool/meta.json").write_text(json.dumps({"count": 5, "seed": 0}))
    with pytest.raises(InputError, match=r"holds a different data set \(count 5, seed 0"):
        data_state(recipe.data[0])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("stages: [{name: a, config: c.yaml, init: previous}]", "first stage has no previous"),
        ("stages: [{name: a, config: c.yaml}, {name: a, config: c.yaml}]", "names must be unique"),
        ("stages: [{name: a, config: c.yaml, steps: 3}]", r"stages\[0\]: unknown key\(s\) steps"),
        ("data: {data/x: --count 2 --out y}", "--out is not allowed"),
        ("data: {data/x: --count 2 --mode sideways}", "invalid choice: 'sideways'"),
        ("data: {data/x: --size 64x64}", "need --count N"),
        ("ship: {thresholds: [0.5, 1.5]}", r"thresholds must be numbers in \(0, 1\)"),
        ("outt: runs/x", r"unknown key\(s\) outt"),
    ],
)
def test_bad_recipes_fail_before_any_work_naming_the_key(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text + "\n")
    with pytest.raises(ConfigError, match=message) as caught:
        load_recipe(path)
    assert str(path) in str(caught.value)


def test_a_missing_data_root_names_the_command_that_makes_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InputError) as caught:
        check_data_roots(["data/pool-train"])
    text = str(caught.value)
    assert text.startswith("data/pool-train: dataset root not found; make it with: ")
    assert "m2aenet synth --out data/pool-train --count 1600" in text
    with pytest.raises(InputError, match=r"^elsewhere: dataset root not found$"):
        check_data_roots(["elsewhere"])


def test_the_shipped_recipe_names_data_for_every_config_it_trains() -> None:
    repo = Path(__file__).resolve().parents[1]
    recipe = load_recipe(repo / "configs" / "recipe.yaml")
    made = {spec.folder for spec in recipe.data}
    from m2aenet.recipe.datasets import config_data_roots
    from m2aenet.train.config import load_config

    cwd = os.getcwd()
    for stage in recipe.stages:
        config = load_config(repo / stage.config, list(stage.overrides))
        assert set(config_data_roots(config)) <= made, stage.name
    assert recipe.ship.calibrate_on in made
    assert os.getcwd() == cwd
