"""`m2aenet recipe`: data made once, stages trained in order and resumed, weights shipped."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import torch

from m2aenet.checkpoint import load_model, load_state_dict, read_record
from m2aenet.cli import main
from m2aenet.errors import ConfigError, InputError
from m2aenet.recipe.datasets import check_data_roots, data_state
from m2aenet.recipe.runner import describe, run_recipe, stage_overrides, stage_status
from m2aenet.recipe.spec import PredictorStage, load_recipe

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

FINAL_OF_MASK = "runs/p/mask/final_ema.safetensors"

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
  max_marked: 1.5
"""


PREDICTOR_RECIPE = """\
out: runs/p
data:
  data/pool: --count 2 --size 64x64 --split train --no-motion --seed 0
  data/val: --count 2 --size 64x64 --split val --no-motion --seed 1
stages:
  - {name: body, config: tiny.yaml, overrides: [steps=1]}
  - name: mask
    kind: predictor
    pools: [data/pool]
    val: data/val
    sharp_photos: [train-split]
    init: data/start-predictor.safetensors
    steps: 3
    overrides: [crop=32, batch=2, report_every=2, context_depth=2, sharp_fraction=0.5]
  - {name: tune, config: tiny.yaml, overrides: [steps=1], init: previous}
ship:
  {name: mine, calibrate_on: data/val, thresholds: [0.5], whole_frame_on: [data/val, data/pool],
   whole_frame_fractions: [1.0, 0.01], whole_frame_extent: 2.5}
"""


@pytest.fixture()
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tiny.yaml").write_text(TINY_MODEL)
    (tmp_path / "recipe.yaml").write_text(RECIPE)
    return tmp_path


@pytest.fixture(scope="module")
def made_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The data sets of RECIPE (and PREDICTOR_RECIPE), made once for the tests that train."""
    root = tmp_path_factory.mktemp("made")
    cwd = os.getcwd()
    os.chdir(root)
    try:
        (root / "recipe.yaml").write_text(RECIPE)
        run_recipe(load_recipe("recipe.yaml"), data_only=True, progress=False)
    finally:
        os.chdir(cwd)
    return root / "data"


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


def test_a_predictor_stage_trains_apart_swaps_in_resumes_and_feeds_the_next_stage(
    workdir: Path, made_data: Path
) -> None:
    from m2aenet.models.mask_predictor import MaskPredictor
    from m2aenet.train.predictor_weights import save_predictor

    shutil.copytree(made_data, "data")
    Path("recipe.yaml").write_text(PREDICTOR_RECIPE)
    recipe, out = load_recipe("recipe.yaml"), Path("runs/p")
    torch.manual_seed(5)  # the predictor the stage starts from (`init`), not the body's
    start = MaskPredictor(8, 1, 2)
    save_predictor("data/start-predictor.safetensors", start)
    # Time limits: the body's only step, then a stop before the predictor stage; then one
    # predictor step and a stop (its resume state is written).
    first = run_recipe(recipe, minutes=1e-6, progress=False)
    assert first["stopped_at"] == "mask" and stage_status(recipe, 0, out).finished
    second = run_recipe(recipe, minutes=1e-6, progress=False)
    assert second["stopped_at"] == "mask" and Path("runs/p/mask/predictor_state.pt").is_file()
    assert "stage mask (predictor of body, trained apart): step 1 of 3" in describe(recipe, out)

    done = run_recipe(recipe, progress=False)
    assert done["done"] and done["shipped"] == "runs/p/ship/mine.safetensors"
    assert not Path("runs/p/mask/predictor_state.pt").exists()
    assert not Path("runs/p/mask/predictor_state.start").exists()
    scores = json.loads(Path("runs/p/mask/val_scores.json").read_text())
    assert scores["steps"] == 3 and set(scores["after"]) == set(scores["before"]) == {"data/val"}
    assert scores["settings"]["context_depth"] == 2
    assert scores["settings"]["sharp_photos"] == ["train-split"]
    assert scores["settings"]["init"] == "data/start-predictor.safetensors"
    # The whole-frame share was scored on both folders and its choice shipped.
    table = Path("runs/p/ship/whole_frame.txt").read_text().strip().splitlines()
    assert table[0].split() == [
        "whole_frame_fraction",
        "data/val",
        "data/pool",
        "sum",
        "sharp_images_whole",
    ]
    assert [float(row.split()[0]) for row in table[1:3]] == [0.01, 1.0]
    chosen = float(table[-1].split()[-1])
    assert chosen in (0.01, 1.0)
    assert load_model(done["shipped"]).whole_frame_fraction == chosen
    assert load_model(done["shipped"]).whole_frame_extent == 2.5
    # The stage's result is the body's weights with the new predictor (and the analyzer's own
    # copy of the old one's features); every other tensor is the body's.
    body = load_state_dict(Path("runs/p/body/final_ema.safetensors"))
    swapped = load_state_dict(Path("runs/p/mask/final_ema.safetensors"))
    predictor = load_state_dict(Path("runs/p/mask/predictor.safetensors"))
    for key, value in swapped.items():
        if key.startswith("mask_predictor."):
            assert torch.equal(value, predictor[key]), key
        elif not key.startswith("analyzer_stem."):
            assert torch.equal(value, body[key]), key
    assert any(not torch.equal(predictor[k], body[k]) for k in predictor if k in body)
    assert load_model("runs/p/mask/final_ema.safetensors").config.mask_context_depth == 2
    # The next stage started from it, its model built to fit the swapped weights.
    tune = json.loads(Path("runs/p/tune/config.json").read_text())["model"]
    assert tune["init_weights"] == "runs/p/mask/final_ema.safetensors"
    assert tune["overrides"]["analyzer_stem"] is True
    assert tune["overrides"]["mask_context_depth"] == 2
    # A stage after that one builds the same model (the swapped keys carry on).
    Path("longer.yaml").write_text(
        PREDICTOR_RECIPE.replace(
            "ship:",
            "  - {name: tune2, config: tiny.yaml, overrides: [steps=1], init: previous}\nship:",
        )
    )
    assert "model.overrides.mask_context_depth=2" in stage_overrides(
        load_recipe("longer.yaml"), 3, out
    )

    stamps = [Path(p).stat().st_mtime_ns for p in (done["shipped"], FINAL_OF_MASK)]
    again = run_recipe(recipe, progress=False)
    assert again["done"] and stamps == [
        Path(p).stat().st_mtime_ns for p in (done["shipped"], FINAL_OF_MASK)
    ]
    # Other settings, or a body trained again (newer weights): the predictor stage runs again.
    Path("other.yaml").write_text(PREDICTOR_RECIPE.replace("batch=2", "batch=3"))
    assert "stage mask (predictor of body, trained apart): step 0 of 3" in describe(
        load_recipe("other.yaml"), out
    )
    assert "stage mask (predictor of body, trained apart): finished" in describe(recipe, out)
    # File times do not count (a fresh clone of a committed campaign gets checkout order)...
    later = Path(FINAL_OF_MASK).stat().st_mtime + 10
    os.utime("runs/p/body/final_ema.safetensors", (later, later))
    assert "stage mask (predictor of body, trained apart): finished" in describe(recipe, out)
    # ...contents do: a body trained again (other weights) makes the predictor stage run again.
    shutil.copyfile(FINAL_OF_MASK, "runs/p/body/final_ema.safetensors")
    assert "stage mask (predictor of body, trained apart): step 0 of 3" in describe(recipe, out)


def test_a_stage_says_where_it_stands_in_steps_or_minutes() -> None:
    from m2aenet.recipe.progress import StageStatus

    assert StageStatus("a", Path("a"), 5, 30, False).text() == "step 5 of 30"
    assert StageStatus("a", Path("a"), 90, 1500, False, "second").text() == "1.5 of 25 minutes"
    assert StageStatus("a", Path("a"), 1500, 1500, True, "second").text() == "finished"


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


def _after_a(stage: str) -> str:
    """A recipe whose second stage (after a training stage) is `{name: b, STAGE}`."""
    return f"stages: [{{name: a, config: c.yaml}}, {{name: b, {stage}}}]"


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
        ("ship: {max_marked: 0.5}", r"ship.max_marked must be a number >= 1, got 0.5"),
        ("ship: {max_marked: .nan}", r"ship.max_marked must be a number >= 1"),
        ("ship: {whole_frame_extent: -1}", r"ship.whole_frame_extent -1: must be in \[0, 28.28\]"),
        ("ship: {whole_frame_extent: px}", r"ship.whole_frame_extent 'px': must be a number"),
        ("outt: runs/x", r"unknown key\(s\) outt"),
        ("stages: [{name: a, kind: predictor, pools: p, steps: 3}]", r"first stage has none"),
        (_after_a("kind: pretrain"), r"stages\[1\].kind must be 'train' or 'predictor'"),
        (_after_a("kind: predictor, steps: 3"), r"stages\[1\].pools: a predictor stage needs"),
        (_after_a("kind: predictor, pools: []"), r"stages\[1\].pools must name at least one"),
        (_after_a("kind: predictor, pools: [3]"), r"stages\[1\].pools must be a folder or"),
        (_after_a("kind: predictor, pools: p"), r"stages\[1\]: give steps or minutes"),
        (_after_a("kind: predictor, pools: p, steps: 3, minutes: 2"), "give steps or minutes"),
        (_after_a("kind: predictor, pools: p, steps: 0"), r"stages\[1\].steps must be an"),
        (_after_a("kind: predictor, pools: p, minutes: .inf"), r"minutes must be a number > 0"),
        (
            _after_a("kind: predictor, pools: p, steps: 3, config: c.yaml"),
            r"stages\[1\]: unknown key\(s\) config for a predictor stage",
        ),
        (
            _after_a("kind: predictor, pools: p, steps: 3, overrides: [crp=32]"),
            r"stages\[1\].overrides: unknown key 'crp' \(known: crop, batch",
        ),
        (
            _after_a("kind: predictor, pools: p, steps: 3, overrides: [lr=-1]"),
            r"stages\[1\].overrides: lr must be > 0",
        ),
        (
            _after_a("kind: predictor, pools: p, steps: 3, overrides: [batch=two]"),
            r"stages\[1\].overrides: batch: expected an integer",
        ),
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


def test_a_missing_photo_folder_stops_before_any_data_and_says_how_to_gather_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from m2aenet.recipe.datasets import make_data
    from m2aenet.recipe.spec import DataSpec

    monkeypatch.chdir(tmp_path)
    spec = DataSpec("data/pool-more", ("--sources", "data/photos-more", "--count", "2"))
    with pytest.raises(InputError) as caught:
        make_data([spec], progress=False)
    assert str(caught.value) == (
        "data/photos-more: photo folder of data/pool-more not found; the recipe's is gathered "
        "with: apt-get install enlightenment-data lxqt-themes && "
        "python scripts/collect_extra_photos.py --set more --out data/photos-more"
    )
    assert not Path("data/pool-more").exists()
    unknown = DataSpec("data/mine", ("--sources", "my-photos", "--count", "2"))
    with pytest.raises(InputError, match=r"^my-photos: photo folder of data/mine not found$"):
        make_data([unknown], progress=False)


def test_the_shipped_recipe_names_data_for_every_config_it_trains() -> None:
    repo = Path(__file__).resolve().parents[1]
    recipe = load_recipe(repo / "configs" / "recipe.yaml")
    made = {spec.folder for spec in recipe.data}
    from m2aenet.recipe.datasets import config_data_roots
    from m2aenet.train.config import load_config

    cwd = os.getcwd()
    for stage in recipe.stages:
        if isinstance(stage, PredictorStage):
            assert {*stage.pools, *stage.val} <= made, stage.name
            continue
        config = load_config(repo / stage.config, list(stage.overrides))
        assert set(config_data_roots(config)) <= made, stage.name
    assert recipe.ship.calibrate_on in made
    assert os.getcwd() == cwd
