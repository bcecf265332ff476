"""Blur-centred training crops from a pool of frames: contract, centring, determinism, errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from m2aenet.data import blur_crops
from m2aenet.data.blur_crops import BlurCentredCrops, shortest_blurs, zoomed_out
from m2aenet.errors import InputError
from m2aenet.imageio import write_png


def _frames(root: Path, count: int = 2, size: int = 64, masks: bool = True) -> Path:
    """Frames whose blurred region is a 10x10 square at a known place; blur = sharp + 0.2 there."""
    rng = np.random.default_rng(0)
    for i in range(count):
        sharp = rng.uniform(0.1, 0.7, (size, size, 3)).astype(np.float32)
        mask = np.zeros((size, size), np.float32)
        mask[40 + i : 50 + i, 5:15] = 1
        write_png(root / "sharp" / f"f{i}.png", sharp)
        write_png(root / "blur" / f"f{i}.png", sharp + 0.2 * mask[..., None])
        if masks:
            write_png(root / "mask" / f"f{i}.png", mask)
    return root


def test_items_follow_the_sample_contract_and_pair_up(tmp_path: Path) -> None:
    crops = BlurCentredCrops(_frames(tmp_path), crop_size=16, crops_per_frame=3)
    assert len(crops) == 6
    np.random.seed(1)
    item = crops[4]  # crop 1 of frame 1
    assert item["blur"].shape == item["sharp"].shape == (3, 16, 16)
    assert item["mask"].shape == (1, 16, 16) and item["has_mask"] is True
    assert item["name"] == "f1-crop1"
    # blur - sharp is 0.2 exactly where the mask is: the three crops are the same window.
    difference = (item["blur"] - item["sharp"]).mean(0)
    torch.testing.assert_close(difference, 0.2 * item["mask"][0], atol=1.5 / 255, rtol=0)
    with pytest.raises(IndexError):
        crops[6]


def test_centred_crops_hold_blur_and_uniform_ones_mostly_do_not(tmp_path: Path) -> None:
    root = _frames(tmp_path)
    centred = BlurCentredCrops(root, crop_size=16, centred_fraction=1.0)
    uniform = BlurCentredCrops(root, crop_size=16, centred_fraction=0.0)
    np.random.seed(0)
    centred_shares = [centred[i]["mask"].mean().item() for i in range(len(centred))] * 5
    uniform_shares = [uniform[i % len(uniform)]["mask"].mean().item() for i in range(40)]
    assert min(centred_shares) > 0  # every centred crop sees blur (jitter is a quarter crop)
    assert np.mean(centred_shares) > 3 * np.mean(uniform_shares)


def test_the_same_seed_cuts_the_same_crop(tmp_path: Path) -> None:
    crops = BlurCentredCrops(_frames(tmp_path), crop_size=16)
    np.random.seed(7)
    first = crops[2]["blur"]
    np.random.seed(8)
    other = crops[2]["blur"]
    np.random.seed(7)
    assert torch.equal(crops[2]["blur"], first)
    assert not torch.equal(other, first)


def test_bad_pools_are_refused_with_the_reason(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="mask"):
        BlurCentredCrops(_frames(tmp_path / "nomask", masks=False), crop_size=16)
    small = BlurCentredCrops(_frames(tmp_path / "small", size=32), crop_size=48)
    with pytest.raises(InputError, match="smaller than the crop 48"):
        small[0]
    with pytest.raises(InputError, match="crops_per_frame"):
        BlurCentredCrops(_frames(tmp_path / "ok"), crop_size=16, crops_per_frame=0)
    with pytest.raises(InputError, match="zoom_out must be in"):
        BlurCentredCrops(_frames(tmp_path / "ok"), crop_size=16, zoom_out=1.5)
    with pytest.raises(InputError, match="min_zoom must be in"):
        BlurCentredCrops(_frames(tmp_path / "ok"), crop_size=16, min_zoom=0)


def test_zooming_out_averages_areas_and_keeps_pixels_at_least_half_blurred() -> None:
    blur = np.zeros((4, 4, 3), np.uint8)
    blur[:2, :2] = (100, 0, 0)  # one 2x2 block of the result
    blur[:2, 2:] = (0, 200, 50)
    mask = np.zeros((4, 4), np.uint8)
    mask[0, 0] = 1  # a quarter of the top-left block: not blurred
    mask[0:2, 2] = 1  # half of the top-right block: blurred
    mask[2:, 2:] = 1  # all of the bottom-right block
    small_blur, small_sharp, small_mask = zoomed_out(blur, blur, mask, 2)
    assert small_blur.shape == (2, 2, 3) and small_blur.dtype == np.uint8
    np.testing.assert_array_equal(small_blur[0, 0], (100, 0, 0))
    np.testing.assert_array_equal(small_blur[0, 1], (0, 200, 50))
    np.testing.assert_array_equal(small_sharp, small_blur)
    np.testing.assert_array_equal(small_mask, [[0, 1], [0, 1]])


def test_zoomed_out_crops_are_crop_sized_and_off_draws_the_crops_of_before(tmp_path: Path) -> None:
    root = _frames(tmp_path, size=64)
    before = BlurCentredCrops(root, crop_size=16)
    off = BlurCentredCrops(root, crop_size=16, zoom_out=0.0)
    zoomed = BlurCentredCrops(root, crop_size=16, zoom_out=1.0, min_zoom=0.25)
    np.random.seed(3)
    expected = [before[i]["blur"] for i in range(len(before))]
    np.random.seed(3)
    assert all(torch.equal(off[i]["blur"], crop) for i, crop in enumerate(expected))
    np.random.seed(3)
    items = [zoomed[i % len(zoomed)] for i in range(12)]
    assert all(item["blur"].shape == (3, 16, 16) for item in items)
    assert all(item["mask"].shape == (1, 16, 16) for item in items)
    # The 10x10 blurred square shrinks with the zoom (s^2 is 0.44 on average for s drawn from
    # [0.25, 1]), and blur - sharp still follows the downscaled mask.
    assert np.mean([item["mask"].sum().item() for item in items]) < 75
    for item in items:
        difference = (item["blur"] - item["sharp"]).mean(0)
        assert (difference[item["mask"][0] > 0] > 0.09).all()


def test_extra_roots_join_the_pool_and_only_blur_crops_take_them(tmp_path: Path) -> None:
    from m2aenet.errors import ConfigError
    from m2aenet.train.config import DataSource, TrainConfig, from_dict, validate
    from m2aenet.train.data import build_dataset

    local = _frames(tmp_path / "local", count=2)
    extra = _frames(tmp_path / "global", count=3)
    source = DataSource(
        source="blur_crops", root=str(local), extra_roots=[str(extra)], crop_size=32,
        crops_per_frame=2,
    )  # fmt: skip
    dataset = build_dataset(source, "train")
    assert len(dataset) == 2 * (2 + 3)
    names = {dataset[index]["name"].split("-")[0] for index in range(len(dataset))}
    assert names == {"f0", "f1", "f2"}  # the extra folder's third frame is in the pool
    wrong = {"data": {"train": {"source": "folder", "root": "x", "extra_roots": ["y"]}}}
    with pytest.raises(ConfigError, match="data.train.extra_roots"):
        validate(from_dict(TrainConfig, wrong))


def _describe(root: Path, images: list) -> Path:
    (root / "meta.json").write_text(json.dumps({"format": "m2aenet-synth", "images": images}))
    return root


def test_shortest_blurs_reads_objects_and_shake_and_refuses_a_broken_meta(tmp_path: Path) -> None:
    assert shortest_blurs(tmp_path) == {}  # no meta.json: nothing known
    _describe(
        tmp_path,
        [
            {"name": "a", "objects": [{"blur_px": 9.5}, {"blur_px": 5.0}]},
            {"name": "b", "mode": "global", "blur_px": 12},
            {"name": "c", "objects": []},  # nothing moves: not described
        ],
    )
    assert shortest_blurs(tmp_path) == {"a": 5.0, "b": 12.0}
    (tmp_path / "meta.json").write_text('{"images": [{"objects": [{"blur_px": 3}]}]}')
    with pytest.raises(InputError, match="not a synth meta.json"):
        shortest_blurs(tmp_path)


def test_a_zoom_keeps_the_shortest_blur_long_enough(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _describe(
        _frames(tmp_path, size=64),
        [{"name": "f0", "objects": [{"blur_px": 5.0}]}, {"name": "f1", "blur_px": 20.0}],
    )
    zooms = []
    real = blur_crops.zoomed_out
    monkeypatch.setattr(
        blur_crops, "zoomed_out", lambda *args: zooms.append(args[0].shape[0]) or real(*args)
    )
    strict = BlurCentredCrops(
        root, crop_size=16, crops_per_frame=1, zoom_out=1.0, min_zoom=0.25, zoom_keep_blur=6
    )
    assert strict._kept_blur_zoom(0) == 1.2 and strict._kept_blur_zoom(1) == 0.3
    np.random.seed(0)
    for _ in range(10):
        assert strict[0]["blur"].shape == (3, 16, 16)  # 5 px < 6 px: never zoomed
    assert zooms == []
    for _ in range(10):
        strict[1]
    # 20 px kept >= 6 px: windows of at most 16 / 0.3 px (a zoom near 1 rounds to no zoom)
    assert len(zooms) >= 8 and max(zooms) <= 16 / 0.3 + 1
    undescribed = BlurCentredCrops(
        _frames(tmp_path / "plain"), crop_size=16, zoom_out=1.0, zoom_keep_blur=6
    )
    assert undescribed._kept_blur_zoom(0) == 1.0  # no meta.json: never zoomed


def test_min_blur_leaves_out_frames_with_a_shorter_blur_and_keeps_undescribed_ones(
    tmp_path: Path,
) -> None:
    root = _describe(
        _frames(tmp_path / "pool", count=3),
        [
            {"name": "f0", "objects": [{"blur_px": 4.0}, {"blur_px": 30.0}]},
            {"name": "f1", "blur_px": 9},
        ],
    )
    every = BlurCentredCrops(root, crop_size=16, crops_per_frame=2)
    assert len(every) == 6  # 0 keeps every frame
    kept = BlurCentredCrops(root, crop_size=16, crops_per_frame=2, min_blur=6)
    assert len(kept) == 4  # f0's shortest blur is 4 px; f2 has no description, so it stays
    np.random.seed(0)
    names = {kept[i]["name"].split("-")[0] for i in range(len(kept))}
    assert names == {"f1", "f2"}
    with pytest.raises(InputError, match="no frame has a blur of at least 50 px"):
        BlurCentredCrops(
            _describe(_frames(tmp_path / "short", count=1), [{"name": "f0", "blur_px": 9}]),
            crop_size=16,
            min_blur=50,
        )
    with pytest.raises(InputError, match="min_blur must be >= 0 px"):
        BlurCentredCrops(root, crop_size=16, min_blur=-1)
