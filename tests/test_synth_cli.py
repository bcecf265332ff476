"""`m2aenet synth`: files, meta.json, determinism, preview and errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from m2aenet import cli
from m2aenet.data import sources
from m2aenet.data.synth_writer import parse_blur_length, parse_size
from m2aenet.errors import InputError
from m2aenet.imageio import read_rgb, write_png


def _photos(folder: Path, count: int = 3) -> Path:
    rng = np.random.default_rng(0)
    for i in range(count):
        ys, xs = np.mgrid[0:120, 0:160].astype(np.float32)
        image = np.stack([0.5 + 0.4 * np.sin(xs / (4 + i) + ys / 6 + c) for c in range(3)], -1)
        image += rng.normal(0, 0.04, image.shape)
        write_png(folder / f"sub{i % 2}" / f"photo{i}.png", np.clip(image, 0, 1))
    return folder


def _synth(out: Path, photos: Path, *extra: str) -> int:
    args = ["synth", "--out", str(out), "--sources", str(photos), "--size", "96x64", *extra]
    return cli.main(args)


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_writes_the_layout_with_the_right_shapes(tmp_path: Path) -> None:
    photos = _photos(tmp_path / "photos")
    out = tmp_path / "set"
    assert _synth(out, photos, "--count", "3", "--seed", "1") == 0
    for name in ("000000", "000001", "000002"):
        blur = np.asarray(Image.open(out / "blur" / f"{name}.png"))
        sharp = np.asarray(Image.open(out / "sharp" / f"{name}.png"))
        mask = np.asarray(Image.open(out / "mask" / f"{name}.png"))
        motion = np.load(out / "motion" / f"{name}.npy")
        assert blur.shape == sharp.shape == (64, 96, 3) and blur.dtype == np.uint8
        assert mask.shape == (64, 96) and set(np.unique(mask)) <= {0, 255}
        assert motion.shape == (64, 96, 8, 2) and motion.dtype == np.float16
        inside = mask > 0
        assert np.array_equal(blur[~inside], sharp[~inside])
        assert not motion[~inside].any()
    meta = json.loads((out / "meta.json").read_text())
    assert meta["seed"] == 1 and meta["count"] == 3 and meta["mode"] == "local"
    assert meta["size"] == {"width": 96, "height": 64} and meta["split"] == "train"
    assert meta["version"] == 1 and len(meta["motion"]["times"]) == 8
    assert [image["name"] for image in meta["images"]] == ["000000", "000001", "000002"]
    assert meta["sources"] == [str(p) for p in sorted(photos.rglob("*.png"))]
    assert set(meta["sources_used"]) <= set(meta["sources"])
    first = meta["images"][0]
    assert first["background"]["source"] in meta["sources"]
    assert 1 <= len(first["objects"]) <= 3
    assert {"motion", "blur_px", "sub_frames", "source", "position"} <= set(first["objects"][0])
    assert first["mask_fraction"] == pytest.approx(
        (np.asarray(Image.open(out / "mask" / "000000.png")) > 0).mean(), abs=1e-4
    )


def test_same_seed_gives_identical_files_and_another_seed_does_not(tmp_path: Path) -> None:
    photos = _photos(tmp_path / "photos")
    for name, seed in (("a", "5"), ("b", "5"), ("c", "6")):
        assert _synth(tmp_path / name, photos, "--count", "2", "--seed", seed) == 0
    a, b, c = (_files(tmp_path / name) for name in "abc")
    assert a == b
    assert a["blur/000000.png"] != c["blur/000000.png"]
    assert a["meta.json"] != c["meta.json"]


def test_workers_write_the_same_files_as_one_process(tmp_path: Path) -> None:
    photos = _photos(tmp_path / "photos")
    for engine in ((), ("--realism",)):
        args = ("--count", "5", "--mode", "mixed", *engine)
        assert _synth(tmp_path / "one", photos, *args, "--overwrite") == 0
        assert _synth(tmp_path / "two", photos, *args, "--workers", "2", "--overwrite") == 0
        assert _files(tmp_path / "one") == _files(tmp_path / "two"), engine


def test_image_i_does_not_depend_on_the_count(tmp_path: Path) -> None:
    photos = _photos(tmp_path / "photos")
    assert _synth(tmp_path / "two", photos, "--count", "2") == 0
    assert _synth(tmp_path / "three", photos, "--count", "3") == 0
    assert (
        _files(tmp_path / "two")["blur/000001.png"] == _files(tmp_path / "three")["blur/000001.png"]
    )


def test_global_mode_masks_everything(tmp_path: Path) -> None:
    photos = _photos(tmp_path / "photos")
    out = tmp_path / "global"
    assert _synth(out, photos, "--count", "2", "--mode", "global") == 0
    for name in ("000000", "000001"):
        assert (np.asarray(Image.open(out / "mask" / f"{name}.png")) == 255).all()
    meta = json.loads((out / "meta.json").read_text())
    assert meta["images"][0]["shake"]["kind"] == "camera_shake"


def test_refuses_a_non_empty_folder_unless_overwrite(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    photos = _photos(tmp_path / "photos")
    out = tmp_path / "set"
    assert _synth(out, photos, "--count", "3") == 0
    assert _synth(out, photos, "--count", "1") == 2
    assert "not empty (pass --overwrite)" in capsys.readouterr().err
    (out / "notes.txt").write_text("mine")
    assert _synth(out, photos, "--count", "1", "--overwrite") == 0
    assert sorted(p.name for p in (out / "blur").iterdir()) == ["000000.png"]
    assert sorted(p.name for p in (out / "motion").iterdir()) == ["000000.npy"]
    assert (out / "notes.txt").read_text() == "mine"  # not ours: left alone
    assert json.loads((out / "meta.json").read_text())["count"] == 1


def test_preview_alone_and_with_generation(tmp_path: Path) -> None:
    photos = _photos(tmp_path / "photos")
    out = tmp_path / "set"
    assert _synth(out, photos, "--count", "2", "--preview", str(tmp_path / "first.png")) == 0
    sheet = read_rgb(tmp_path / "first.png")
    assert sheet.shape[1] > 3 * 200 and sheet.shape[0] > 2 * 100
    assert cli.main(["synth", "--out", str(out), "--preview", str(tmp_path / "again.png")]) == 0
    assert np.array_equal(read_rgb(tmp_path / "again.png"), sheet)


def test_preview_of_a_folder_without_a_set_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["synth", "--out", str(tmp_path), "--preview", str(tmp_path / "p.png")]) == 2
    assert "no synthetic set here" in capsys.readouterr().err


@pytest.mark.parametrize("size", ["512", "0x64", "64x-3", "abc", "10x10"])
def test_bad_size_is_reported_with_the_value(
    tmp_path: Path, size: str, capsys: pytest.CaptureFixture[str]
) -> None:
    photos = _photos(tmp_path / "photos")
    args = ["synth", "--out", str(tmp_path / "o"), "--count", "1", "--sources", str(photos)]
    assert cli.main([*args, f"--size={size}"]) == 2
    err = capsys.readouterr().err
    assert f"bad --size '{size}'" in err
    assert not (tmp_path / "o").exists()


def test_size_is_width_by_height() -> None:
    assert parse_size("96x64") == (64, 96)
    assert parse_size(" 512X384 ") == (384, 512)
    with pytest.raises(InputError):
        parse_size("96x64x3")


def test_empty_or_broken_sources_name_the_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    assert _synth(tmp_path / "o1", empty, "--count", "1") == 2
    assert f"no source photos found in {empty}" in capsys.readouterr().err
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "bad.jpg").write_bytes(b"this is not a jpeg")
    assert _synth(tmp_path / "o2", broken, "--count", "1") == 2
    assert str(broken / "bad.jpg") in capsys.readouterr().err


def test_nothing_to_do_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["synth", "--out", str(tmp_path / "x")]) == 2
    assert "--count" in capsys.readouterr().err


def test_noise_and_jpeg_are_recorded(tmp_path: Path) -> None:
    photos = _photos(tmp_path / "photos")
    out = tmp_path / "set"
    assert _synth(out, photos, "--count", "1", "--noise", "--jpeg", "80") == 0
    meta = json.loads((out / "meta.json").read_text())
    assert meta["noise"] is True and meta["jpeg"] == 80
    assert meta["images"][0]["jpeg"] == 80 and "shot" in meta["images"][0]["noise"]


@pytest.mark.skipif(not sources.debian_photos_installed(), reason="Debian photo packages absent")
def test_default_splits_draw_from_their_own_photos(tmp_path: Path) -> None:
    test_photos = {str(p) for p in sources.lomiri_photos()}
    for split in ("train", "test"):
        out = tmp_path / split
        args = ["synth", "--out", str(out), "--count", "2", "--size", "64x64", "--split", split]
        assert cli.main(args) == 0
        used = set(json.loads((out / "meta.json").read_text())["sources_used"])
        assert used and (used <= test_photos) == (split == "test")
        assert (used & test_photos) == (used if split == "test" else set())


def test_blur_length_range_is_parsed_checked_and_recorded(tmp_path: Path) -> None:
    assert parse_blur_length("3-15") == (3.0, 15.0)
    assert parse_blur_length(" 2.5 - 4 ") == (2.5, 4.0)
    assert parse_blur_length("8") == (8.0, 8.0)
    for bad in ("15-3", "abc", "0-4", "3-", "-3"):
        with pytest.raises(InputError, match="--blur-length"):
            parse_blur_length(bad)
    out = tmp_path / "set"
    assert _synth(out, _photos(tmp_path / "photos"), "--count", "2", "--blur-length", "6-6") == 0
    meta = json.loads((out / "meta.json").read_text())
    assert meta["blur_length_px"] == [6.0, 6.0]
    for image in meta["images"]:
        for obj in image["objects"]:
            # The farthest point travels about 6 px (a turning box corner a bit more).
            assert 0 < obj["blur_px"] < 12.0


def test_blur_length_changes_only_the_motion(tmp_path: Path) -> None:
    photos = _photos(tmp_path / "photos")
    short, long = tmp_path / "short", tmp_path / "long"
    assert _synth(short, photos, "--count", "1", "--blur-length", "3") == 0
    assert _synth(long, photos, "--count", "1", "--blur-length", "20") == 0
    short_mask = read_rgb(short / "mask" / "000000.png")
    long_mask = read_rgb(long / "mask" / "000000.png")
    assert long_mask.mean() > short_mask.mean()  # a longer path sweeps more pixels
    assert np.array_equal(
        read_rgb(short / "sharp" / "000000.png"), read_rgb(long / "sharp" / "000000.png")
    )
