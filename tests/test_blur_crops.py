"""Blur-centred training crops from a pool of frames: contract, centring, determinism, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from m2aenet.data.blur_crops import BlurCentredCrops
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
