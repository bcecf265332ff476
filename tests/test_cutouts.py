"""Photographed cut-outs as movers: loading, sizing, the realism engine's cutout kind, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from synth_helpers import patchy_texture

from m2aenet import cli
from m2aenet.data.cutouts import MAX_UPSCALE, Cutouts, load_cutout
from m2aenet.data.realism import Realism, realism_from_overrides
from m2aenet.data.synth import SampleGenerator
from m2aenet.errors import InputError
from m2aenet.imageio import write_png


def _cutout(path: Path, size: int = 60, seed: int = 0) -> Path:
    """An RGBA disc of texture in a transparent square with a 10 px empty border."""
    rgba = np.zeros((size + 20, size + 20, 4), np.uint8)
    rgba[10:-10, 10:-10, :3] = patchy_texture(size, size, seed)
    yy, xx = np.mgrid[:size, :size]
    disc = (yy - size / 2 + 0.5) ** 2 + (xx - size / 2 + 0.5) ** 2 <= (size / 2) ** 2
    rgba[10:-10, 10:-10, 3] = np.where(disc, 255, 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgba, mode="RGBA").save(path)
    return path


def test_a_cutout_loads_cropped_and_premultiplied(tmp_path: Path) -> None:
    colour, alpha = load_cutout(_cutout(tmp_path / "a.png"))
    assert alpha.shape == (60, 60) and colour.shape == (60, 60, 3)
    assert alpha.max() == 1.0 and alpha[0, 0] == 0.0  # the disc's corner is transparent
    assert np.all(colour[alpha == 0] == 0)
    write_png(tmp_path / "rgb.png", np.zeros((8, 8, 3), np.float32))
    with pytest.raises(InputError, match="rgb.png: a cut-out needs an alpha channel"):
        load_cutout(tmp_path / "rgb.png")
    Image.new("RGBA", (8, 8)).save(tmp_path / "empty.png")
    with pytest.raises(InputError, match="fully transparent"):
        load_cutout(tmp_path / "empty.png")
    with pytest.raises(InputError, match="cut-out folder not found"):
        Cutouts(tmp_path / "missing")


def test_cutouts_are_drawn_at_the_wanted_area_within_their_limits(tmp_path: Path) -> None:
    library = Cutouts(_cutout(tmp_path / "lib" / "a.png").parent)
    opaque = float(load_cutout(library.paths[0])[1].sum())
    rng = np.random.default_rng(0)
    _, alpha, described = library.pick(rng, 0.5 * opaque, (500, 500))
    assert abs(alpha.sum() / (0.5 * opaque) - 1) < 0.1 and described["scale"] < 1
    _, alpha, _ = library.pick(rng, 100 * opaque, (500, 500))  # enlarged MAX_UPSCALE at most
    assert alpha.shape[0] == round(60 * MAX_UPSCALE)
    _, alpha, _ = library.pick(rng, 100 * opaque, (30, 500))  # and no larger than allowed
    assert alpha.shape[0] <= 30
    a = library.pick(np.random.default_rng(3), 900.0, (500, 500))
    b = library.pick(np.random.default_rng(3), 900.0, (500, 500))
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]) and a[2] == b[2]


def test_the_engine_moves_cutouts_with_an_exact_mask(tmp_path: Path) -> None:
    photos = [tmp_path / f"photo{i}.png" for i in range(2)]
    for i, path in enumerate(photos):
        write_png(path, patchy_texture(150, 200, i))
    for seed in range(3):
        _cutout(tmp_path / "cutouts" / f"c{seed}.png", 40 + 10 * seed, seed)
    settings = realism_from_overrides(
        ["cutout=1", "segment=0", "polygon=0", "blob=0", f"cutouts={tmp_path / 'cutouts'}"]
    )

    def make() -> SampleGenerator:
        return SampleGenerator(photos, (64, 80), "local", seed=1, realism=settings)

    for index in range(4):
        a, b = make()(index), make()(index)
        assert np.array_equal(a.blur, b.blur) and a.params == b.params
        assert {o["shape"] for o in a.params["objects"]} == {"cutout"}
        assert np.array_equal(a.blur[~a.mask], a.sharp[~a.mask])
    with pytest.raises(ValueError, match="cutout > 0 needs cutouts"):
        Realism(cutout=1.0)


def test_repeated_realism_settings_all_apply(tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    write_png(photos / "p.png", patchy_texture(150, 200, 0))
    args = ["synth", "--out", str(tmp_path / "out"), "--sources", str(photos), "--size", "80x64"]
    extra = ["--realism", "--realism-set", "max_area=0.3", "--realism-set", "max_objects=2"]
    assert cli.main([*args, "--count", "1", "--no-progress", *extra]) == 0
    realism = json.loads((tmp_path / "out" / "meta.json").read_text())["realism"]
    assert realism["max_area"] == 0.3 and realism["max_objects"] == 2
