"""OnTheFlySynthDataset: the shared sample contract, and the same pixels as `m2aenet synth`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from m2aenet.data.synth_dataset import OnTheFlySynthDataset
from m2aenet.data.synth_writer import generate_dataset
from m2aenet.imageio import read_mask, read_rgb, write_png


def _photos(folder: Path) -> Path:
    rng = np.random.default_rng(1)
    for i in range(3):
        write_png(folder / f"p{i}.png", rng.integers(0, 256, (100, 140, 3), dtype=np.uint8))
    return folder


def test_items_follow_the_shared_contract(tmp_path: Path) -> None:
    dataset = OnTheFlySynthDataset(size=(48, 64), length=3, sources=[_photos(tmp_path)])
    assert len(dataset) == 3
    item = dataset[1]
    assert set(item) == {"blur", "sharp", "mask", "has_mask", "name"}
    assert item["blur"].shape == item["sharp"].shape == (3, 48, 64)
    assert (
        item["blur"].dtype == torch.float32 and 0 <= item["blur"].min() <= item["blur"].max() <= 1
    )
    assert item["mask"].shape == (1, 48, 64)
    assert set(item["mask"].unique().tolist()) <= {0.0, 1.0}
    assert item["has_mask"] is True and item["name"] == "synth-train-0-000001"
    outside = item["mask"][0] == 0
    assert torch.equal(item["blur"][:, outside], item["sharp"][:, outside])
    with pytest.raises(IndexError):
        dataset[3]


def test_same_pixels_as_the_written_set(tmp_path: Path) -> None:
    photos = _photos(tmp_path / "photos")
    generate_dataset(tmp_path / "set", 2, seed=7, size=(48, 64), sources=[photos], progress=False)
    dataset = OnTheFlySynthDataset(size=(48, 64), seed=7, length=2, sources=[photos])
    for index in range(2):
        name = f"{index:06d}"
        item = dataset[index]
        blur = torch.from_numpy(read_rgb(tmp_path / "set" / "blur" / f"{name}.png")).permute(
            2, 0, 1
        )
        mask = torch.from_numpy(read_mask(tmp_path / "set" / "mask" / f"{name}.png"))
        assert torch.equal(item["blur"], blur)
        assert torch.equal(item["mask"][0], mask)


def test_motion_option_and_batching(tmp_path: Path) -> None:
    dataset = OnTheFlySynthDataset(
        size=(32, 40),
        length=4,
        mode="mixed",
        global_fraction=1.0,
        sources=[_photos(tmp_path)],
        with_motion=True,
        motion_points=4,
    )
    batch = next(iter(DataLoader(dataset, batch_size=2)))
    assert batch["blur"].shape == (2, 3, 32, 40)
    assert batch["motion"].shape == (2, 4, 2, 32, 40) and batch["motion"].dtype == torch.float32
    assert bool(batch["mask"].eq(1).all())  # global_fraction=1: camera shake everywhere


def test_blur_reference_side_draws_longer_blur_on_small_frames(tmp_path: Path) -> None:
    """Small training crops can carry the blur lengths of a larger reference frame."""
    from m2aenet.data.sources import photo_pool
    from m2aenet.data.synth import SampleGenerator, local_blur_range

    photos = photo_pool("train", [_photos(tmp_path)])
    plain = SampleGenerator(photos, size=(64, 64), mode="local", seed=3)
    scaled = SampleGenerator(photos, size=(64, 64), mode="local", seed=3, blur_reference_side=512)
    high = local_blur_range((512, 512))[1]
    plain_lengths = [o["blur_px"] for i in range(6) for o in plain(i).params["objects"]]
    scaled_lengths = [o["blur_px"] for i in range(6) for o in scaled(i).params["objects"]]
    assert max(plain_lengths) <= local_blur_range((64, 64))[1] * 1.5
    assert max(scaled_lengths) > local_blur_range((64, 64))[1] * 1.5
    assert max(scaled_lengths) <= high * 1.5
