"""`m2aenet recipe --bundle`: a folder that trains the recipe elsewhere with nothing else."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image
from test_recipe import TINY_MODEL

from m2aenet.cli import main
from m2aenet.errors import InputError
from m2aenet.imageio import write_png
from m2aenet.recipe.bundle import write_bundle
from m2aenet.recipe.spec import load_recipe


def _recipe(root: Path) -> Path:
    rng = np.random.default_rng(0)
    for index in range(3):
        photo = rng.uniform(0.0, 1.0, (300, 200 + 40 * index, 3)).astype(np.float32)
        write_png(root / "mine" / f"p{index}.png", photo)
    (root / "tiny.yaml").write_text(TINY_MODEL)
    recipe = root / "recipe.yaml"
    recipe.write_text(
        "out: runs/r\n"
        "data:\n"
        f"  data/pool: --count 2 --size 64x64 --sources {root / 'mine'} --no-motion\n"
        f"  data/val: --count 2 --size 64x64 --split val --sources {root / 'mine'} --no-motion\n"
        "stages:\n"
        "  - {name: first, config: tiny.yaml, overrides: [steps=2]}\n"
        "ship: {calibrate_on: data/val, thresholds: [0.5]}\n"
    )
    return recipe


def test_the_bundle_holds_photos_configs_package_and_trains_on_its_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    work = tmp_path / "work"
    monkeypatch.chdir(_recipe(work).parent)
    bundle = write_bundle(load_recipe("recipe.yaml"), tmp_path / "bundle")

    document = yaml.safe_load((bundle / "recipe.yaml").read_text())
    assert document["stages"] == [
        {"name": "first", "config": "configs/tiny.yaml", "overrides": ["steps=2"]}
    ]
    pool = document["data"]["data/pool"]
    assert pool.endswith("--sources photos/train-0") and str(work) not in pool
    photos = sorted((bundle / "photos" / "train-0").iterdir())
    # In the pool's order, downscaled to the side the engine uses (64 px frames: 2.5x + margin).
    assert [p.name for p in photos] == ["0000-p0.jpg", "0001-p1.jpg", "0002-p2.jpg"]
    assert min(Image.open(photos[2]).size) < 300
    assert (bundle / "src" / "m2aenet" / "cli.py").is_file()
    assert os.access(bundle / "run.sh", os.X_OK)

    # Away from the checkout: nothing but the bundle on the path.
    env = {
        "PATH": os.environ["PATH"],
        "PYTHON": sys.executable,
        "WORKERS": "1",
        "OMP_NUM_THREADS": "1",
        "PYTHONNOUSERSITE": "1",
    }
    run = subprocess.run(
        ["sh", str(bundle / "run.sh"), "5"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert "recipe: done" in run.stdout
    assert (bundle / "data" / "pool" / "meta.json").is_file()
    assert (bundle / "out" / "first" / "final_ema.safetensors").is_file()
    assert (bundle / "out" / "ship" / "default.safetensors").is_file()


def test_a_bundle_goes_only_into_a_new_or_empty_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.chdir(_recipe(tmp_path / "work").parent)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    with pytest.raises(InputError, match="must be a new or empty folder"):
        write_bundle(load_recipe("recipe.yaml"), tmp_path / "full")
    assert (tmp_path / "full" / "keep.txt").read_text() == "mine"
    assert main(["recipe", "recipe.yaml", "--bundle", str(tmp_path / "b")]) == 0
    assert "sh b/run.sh MINUTES" in capsys.readouterr().out


def test_a_predictor_stage_is_bundled_as_it_was_written(tmp_path: Path) -> None:
    import dataclasses

    from PIL import Image

    from m2aenet.recipe.bundle import SHARP_SIDE, _pack_sharp_photos, predictor_stage_entry

    photos = tmp_path / "sharp"
    photos.mkdir()
    for name, size in (("a.png", (1600, 900)), ("b.png", (300, 200))):
        Image.new("RGB", size, (90, 120, 30)).save(photos / name)
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        "stages:\n"
        "  - {name: body, config: tiny.yaml}\n"
        "  - {name: mask, kind: predictor, pools: [data/a, data/b], val: data/v, minutes: 2,\n"
        f"     sharp_photos: [{photos.as_posix()}], overrides: [crop=32], init: w/p.safetensors}}\n"
    )
    stage = load_recipe(recipe).stages[1]
    packed = _pack_sharp_photos(stage, tmp_path / "bundle")
    assert packed == ["photos/sharp-mask"]
    written = sorted((tmp_path / "bundle" / packed[0]).iterdir())
    assert [p.name for p in written] == ["0000-a.jpg", "0001-b.jpg"]
    assert [min(Image.open(p).size) for p in written] == [SHARP_SIDE, 200]  # never upscaled
    entry = predictor_stage_entry(stage, packed, stage.init)
    assert entry == {
        "name": "mask",
        "kind": "predictor",
        "pools": ["data/a", "data/b"],
        "val": ["data/v"],
        "sharp_photos": ["photos/sharp-mask"],
        "init": "w/p.safetensors",
        "minutes": 2.0,
        "overrides": ["crop=32"],
    }
    recipe.write_text(yaml.safe_dump({"stages": [{"name": "body", "config": "t"}, entry]}))
    assert load_recipe(recipe).stages[1] == dataclasses.replace(stage, sharp_photos=tuple(packed))
