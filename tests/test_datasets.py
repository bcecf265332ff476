"""Paired dataset readers: layouts, the sample contract, aligned crops and clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from m2aenet.data.datasets import (
    GENERIC_LAYOUT,
    LayoutPatterns,
    PairedImageDataset,
    find_pairs,
    open_dataset,
    parse_layout,
)
from m2aenet.errors import ConfigError, InputError


def _picture(height: int = 12, width: int = 16, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def _save(path: Path, pixels: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)
    return path


def _mask(height: int = 12, width: int = 16, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed + 100).random((height, width)) > 0.5).astype(np.uint8) * 255


def _generic(root: Path, names=("b", "a", "c"), masks: bool = True) -> Path:
    for i, name in enumerate(names):
        _save(root / "blur" / f"{name}.png", _picture(seed=i))
        _save(root / "sharp" / f"{name}.png", _picture(seed=i + 10))
        if masks:
            _save(root / "mask" / f"{name}.png", _mask(seed=i))
    return root


def _message(error: pytest.ExceptionInfo) -> str:
    return str(error.value)


# -- layouts ----------------------------------------------------------------------------------


def test_generic_layout_with_masks(tmp_path: Path) -> None:
    root = _generic(tmp_path)
    dataset = PairedImageDataset(root)
    assert len(dataset) == 3 and dataset.has_masks
    assert [s.name for s in dataset.samples] == ["a", "b", "c"]
    item = dataset[0]  # "a" was written second (seed 1)
    assert set(item) == {"blur", "sharp", "mask", "has_mask", "name"}
    assert item["name"] == "a" and item["has_mask"] is True
    assert item["blur"].shape == (3, 12, 16) and item["blur"].dtype == torch.float32
    assert item["mask"].shape == (1, 12, 16) and item["mask"].dtype == torch.float32
    expected = torch.from_numpy(_picture(seed=1)).permute(2, 0, 1).float() / 255
    torch.testing.assert_close(item["blur"], expected, rtol=0, atol=1e-6)
    expected_sharp = torch.from_numpy(_picture(seed=11)).permute(2, 0, 1).float() / 255
    torch.testing.assert_close(item["sharp"], expected_sharp, rtol=0, atol=1e-6)
    assert torch.equal(item["mask"][0], torch.from_numpy(_mask(seed=1) > 0).float())


def test_generic_layout_without_masks_and_mixed_extensions(tmp_path: Path) -> None:
    _save(tmp_path / "blur" / "x.png", _picture())
    _save(tmp_path / "sharp" / "x.TIF", _picture(seed=1))
    (tmp_path / "blur" / "README.txt").write_text("not an image")  # ignored: not an image name
    _save(tmp_path / "blur" / ".x.png.ab12.tmp.png", _picture())  # hidden: an interrupted write
    dataset = open_dataset(tmp_path, "generic")
    assert not dataset.has_masks
    item = dataset[0]
    assert item["has_mask"] is False and torch.equal(item["mask"], torch.ones(1, 12, 16))
    assert dataset.samples[0].sharp.name == "x.TIF"


def test_gopro_layout(tmp_path: Path) -> None:
    for scene in ("GOPR0002_00", "GOPR0001_00"):
        for frame in ("000002", "000001"):
            _save(tmp_path / scene / "blur" / f"{frame}.png", _picture())
            _save(tmp_path / scene / "sharp" / f"{frame}.png", _picture(seed=1))
        _save(tmp_path / scene / "blur_gamma" / "000001.png", _picture())  # not part of pairs
    _save(tmp_path / ".cache" / "blur" / "000001.png", _picture())  # hidden folder: skipped
    dataset = PairedImageDataset(tmp_path, layout="gopro")
    assert [s.name for s in dataset.samples] == [
        "GOPR0001_00/000001",
        "GOPR0001_00/000002",
        "GOPR0002_00/000001",
        "GOPR0002_00/000002",
    ]
    assert dataset[3]["name"] == "GOPR0002_00/000002" and not dataset[3]["has_mask"]


RELOBLUR_SIDE_BY_SIDE = {
    "blur": "{seq}/{seq}_blur_{frame}.png",
    "sharp": "{seq}/{seq}_gt_{frame}.png",
    "mask": "{seq}/{seq}_mask_{frame}.png",
    "name": "{seq}_{frame}",
}


def _reloblur_side_by_side(root: Path, seqs=("s01_01", "s02_03"), frames=("000", "001")) -> Path:
    for i, seq in enumerate(seqs):
        for frame in frames:
            _save(root / seq / f"{seq}_blur_{frame}.png", _picture(seed=i))
            _save(root / seq / f"{seq}_gt_{frame}.png", _picture(seed=i + 5))
            _save(root / seq / f"{seq}_mask_{frame}.png", _mask(seed=i))
    return root


def test_pattern_layout_modelled_on_reloblur(tmp_path: Path) -> None:
    root = _reloblur_side_by_side(tmp_path / "train")
    dataset = PairedImageDataset(root, patterns=LayoutPatterns(**RELOBLUR_SIDE_BY_SIDE))
    assert [s.name for s in dataset.samples] == [
        "s01_01_000",
        "s01_01_001",
        "s02_03_000",
        "s02_03_001",
    ]
    sample = dataset.samples[2]
    assert sample.sharp == root / "s02_03" / "s02_03_gt_000.png"
    assert sample.mask == root / "s02_03" / "s02_03_mask_000.png"
    assert dataset[2]["has_mask"] and dataset.has_masks
    # The same layout given as YAML text, as a config file would.
    yaml_text = "\n".join(f"{k}: '{v}'" for k, v in RELOBLUR_SIDE_BY_SIDE.items())
    assert [s.name for s in open_dataset(root, yaml_text).samples] == [
        s.name for s in dataset.samples
    ]


def test_builtin_reloblur_layout_reads_side_by_side_sequences(tmp_path: Path) -> None:
    """`layout: reloblur` is the side-by-side pattern layout above, by name (any extension)."""
    root = _reloblur_side_by_side(tmp_path / "train")
    _save(root / "s09_00" / "s09_00_blur_000.jpg", _picture(seed=3))
    _save(root / "s09_00" / "s09_00_gt_000.png", _picture(seed=4))
    _save(root / "s09_00" / "s09_00_mask_000.png", _mask(seed=3))
    dataset = open_dataset(root, "reloblur", require_mask=True)
    assert [s.name for s in dataset.samples] == [
        "s01_01_000",
        "s01_01_001",
        "s02_03_000",
        "s02_03_001",
        "s09_00_000",
    ]
    assert dataset.samples[4].sharp == root / "s09_00" / "s09_00_gt_000.png"
    (root / "s02_03" / "s02_03_gt_001.png").unlink()
    with pytest.raises(InputError, match=r"s02_03_blur_001.png: no sharp partner"):
        open_dataset(root, "ReLoBlur")


def test_reloblur_author_layout_with_separate_mask_tree(tmp_path: Path) -> None:
    for scene, clip in (("s01", "00"), ("s02", "01")):
        for frame in ("00", "01"):
            folder = tmp_path / "dataset" / "train" / scene / clip
            _save(folder / f"{frame}_blur.png", _picture())
            _save(folder / f"{frame}_sharp.png", _picture(seed=1))
            _save(tmp_path / "masks" / "train" / scene / clip / f"{frame}.png", _mask())
    layout = {
        "blur": "dataset/train/{scene}/{clip}/{frame}_blur.png",
        "sharp": "dataset/train/{scene}/{clip}/{frame}_sharp.png",
        "mask": "masks/train/{scene}/{clip}/{frame}.png",
    }
    dataset = open_dataset(tmp_path, layout, require_mask=True)
    assert len(dataset) == 4 and dataset.samples[0].name == "s01/00/00"
    assert dataset.samples[3].mask == tmp_path / "masks/train/s02/01/01.png"


def test_parse_layout() -> None:
    assert parse_layout("generic") is GENERIC_LAYOUT
    assert parse_layout("GoPro").mask is None
    with pytest.raises(ConfigError, match="unknown layout 'relo'"):
        parse_layout("relo")
    with pytest.raises(ConfigError, match="layout.shrap"):
        parse_layout({"blur": "b/{n}.png", "shrap": "s/{n}.png"})
    with pytest.raises(ConfigError, match="layout.sharp"):
        parse_layout({"blur": "b/{n}.png"})


def test_layout_from_yaml_file(tmp_path: Path) -> None:
    _generic(tmp_path / "data", masks=False)
    spec = tmp_path / "layout.yaml"
    spec.write_text("layout:\n  blur: 'blur/{id}.{ext}'\n  sharp: 'sharp/{id}.{ext}'\n")
    assert len(open_dataset(tmp_path / "data", spec)) == 3
    with pytest.raises(ConfigError, match="missing.yaml"):
        parse_layout(tmp_path / "missing.yaml")


def test_bad_patterns_are_config_errors(tmp_path: Path) -> None:
    _generic(tmp_path)
    bad = [
        ({"blur": "blur/*.png", "sharp": "sharp/*.png"}, "needs a field"),
        ({"blur": "blur/{a}.png", "sharp": "sharp/{b}.png"}, "layout.sharp"),
        ({"blur": "../blur/{a}.png", "sharp": "sharp/{a}.png"}, "'..'"),
        ({"blur": "blur/{a.png", "sharp": "sharp/{a}.png"}, "unmatched"),
        ({"blur": "blur/{a}.png", "sharp": "s/{a}.png", "name": "{z}"}, "layout.name"),
    ]
    for spec, reason in bad:
        with pytest.raises(ConfigError, match=reason):
            PairedImageDataset(tmp_path, spec)
    with pytest.raises(ConfigError, match="require_mask"):
        PairedImageDataset(tmp_path, "gopro", require_mask=True)
    with pytest.raises(ConfigError, match="crop_size"):
        PairedImageDataset(tmp_path, crop_size=0)


# -- listing errors ---------------------------------------------------------------------------


def test_missing_root_and_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="nowhere: dataset root not found"):
        PairedImageDataset(tmp_path / "nowhere")
    (tmp_path / "blur").mkdir()
    (tmp_path / "sharp").mkdir()
    with pytest.raises(InputError, match="no blurred images match 'blur/"):
        PairedImageDataset(tmp_path)
    with pytest.raises(InputError, match="no blurred images"):
        PairedImageDataset(tmp_path, "gopro")


def test_missing_partners_are_listed_both_ways(tmp_path: Path) -> None:
    root = _generic(tmp_path, masks=False)
    (root / "sharp" / "a.png").unlink()
    _save(root / "sharp" / "orphan.png", _picture())
    with pytest.raises(InputError) as error:
        PairedImageDataset(root)
    message = _message(error)
    assert "2 problem(s)" in message
    assert f"{root / 'blur' / 'a.png'}: no sharp partner" in message
    assert str(root / "sharp" / "a.*") in message  # where it was looked for
    assert f"{root / 'sharp' / 'orphan.png'}: sharp image without a blurred partner" in message


def test_masks_present_for_some_samples_only(tmp_path: Path) -> None:
    root = _generic(tmp_path)
    (root / "mask" / "c.png").unlink()
    with pytest.raises(InputError) as error:
        PairedImageDataset(root)
    assert f"{root / 'blur' / 'c.png'}: no mask" in _message(error)


def test_require_mask(tmp_path: Path) -> None:
    root = _generic(tmp_path, masks=False)
    with pytest.raises(InputError, match="require_mask is set but no mask matches"):
        PairedImageDataset(root, require_mask=True)
    assert len(PairedImageDataset(root)) == 3


def test_orphan_mask_and_duplicate_names(tmp_path: Path) -> None:
    root = _generic(tmp_path)
    _save(root / "mask" / "zzz.png", _mask())
    _save(root / "blur" / "a.jpg", _picture())
    with pytest.raises(InputError) as error:
        PairedImageDataset(root)
    message = _message(error)
    assert f"{root / 'mask' / 'zzz.png'}: mask image without a blurred partner" in message
    assert "several blur files" in message and "a.jpg" in message and "a.png" in message


def test_many_problems_are_summarized(tmp_path: Path) -> None:
    for i in range(30):
        _save(tmp_path / "blur" / f"{i:02d}.png", _picture(2, 2))
    (tmp_path / "sharp").mkdir()
    with pytest.raises(InputError) as error:
        find_pairs(tmp_path, GENERIC_LAYOUT)
    message = _message(error)
    assert "30 problem(s)" in message and "... and 10 more" in message
    assert "00.png: no sharp partner" in message


# -- loading errors ---------------------------------------------------------------------------


def test_size_mismatch_names_both_files(tmp_path: Path) -> None:
    root = _generic(tmp_path)
    _save(root / "sharp" / "b.png", _picture(10, 16))
    dataset = PairedImageDataset(root)
    with pytest.raises(InputError) as error:
        dataset[1]
    message = _message(error)
    assert str(root / "blur" / "b.png") in message and str(root / "sharp" / "b.png") in message
    assert "sizes differ" in message
    _save(root / "mask" / "c.png", _mask(12, 15))
    with pytest.raises(InputError, match=r"mask[/\\]c\.png \(12x15\)"):
        dataset[2]


def test_unreadable_image_is_named_at_load_time(tmp_path: Path) -> None:
    root = _generic(tmp_path)
    (root / "sharp" / "a.png").write_text("garbage")
    dataset = PairedImageDataset(root)  # listing reads no pixels
    with pytest.raises(InputError, match=r"sharp[/\\]a\.png: not a readable"):
        dataset[0]


def test_validate_reports_every_problem_at_once(tmp_path: Path) -> None:
    root = _generic(tmp_path, names=("a", "b", "c", "d"))
    (root / "sharp" / "a.png").write_text("garbage")
    _save(root / "mask" / "b.png", _mask(11, 16))
    _save(root / "blur" / "c.png", _picture(5, 5))
    _save(root / "sharp" / "c.png", _picture(5, 5))
    _save(root / "mask" / "c.png", _mask(5, 5))
    dataset = PairedImageDataset(root, crop_size=8)
    with pytest.raises(InputError) as error:
        dataset.validate()
    message = _message(error)
    assert "3 problem(s)" in message
    assert f"{root / 'sharp' / 'a.png'}: not a readable" in message
    assert f"{root / 'mask' / 'b.png'} (11x16)" in message
    assert f"{root / 'blur' / 'c.png'}: image 5x5 is smaller than the crop 8x8" in message
    with pytest.raises(InputError, match=r"blur[/\\]c\.png: crop 8x8 is larger"):
        dataset[2]


def test_validate_passes_on_a_good_dataset(tmp_path: Path) -> None:
    PairedImageDataset(_generic(tmp_path), crop_size=8).validate()


# -- crops and augmentation -------------------------------------------------------------------


def _coordinate_dataset(root: Path, height: int = 30, width: int = 40) -> Path:
    """blur encodes (row, col) in R and G; sharp is its negative; mask is a checkerboard."""
    rows, cols = np.mgrid[0:height, 0:width]
    blur = np.stack([rows * 5, cols * 5, np.zeros_like(rows)], axis=2).astype(np.uint8)
    _save(root / "blur" / "grid.png", blur)
    _save(root / "sharp" / "grid.png", 255 - blur)
    _save(root / "mask" / "grid.png", (((rows + cols) % 2) * 255).astype(np.uint8))
    return root


def _assert_aligned(item: dict) -> None:
    blur, sharp, mask = item["blur"], item["sharp"], item["mask"]
    torch.testing.assert_close(sharp, 1.0 - blur, rtol=0, atol=1e-6)
    rows = torch.round(blur[0] * 255 / 5)
    cols = torch.round(blur[1] * 255 / 5)
    assert torch.equal(mask[0], ((rows + cols) % 2).float())


def test_crop_takes_the_same_window_of_blur_sharp_and_mask(tmp_path: Path) -> None:
    dataset = PairedImageDataset(_coordinate_dataset(tmp_path), crop_size=(8, 12), seed=0)
    full = PairedImageDataset(tmp_path)[0]
    tops = set()
    for epoch in range(10):
        dataset.set_epoch(epoch)
        item = dataset[0]
        assert item["blur"].shape == (3, 8, 12) and item["mask"].shape == (1, 8, 12)
        top = int(round(item["blur"][0, 0, 0].item() * 255 / 5))
        left = int(round(item["blur"][1, 0, 0].item() * 255 / 5))
        window = (slice(None), slice(top, top + 8), slice(left, left + 12))
        for key in ("blur", "sharp", "mask"):
            assert torch.equal(item[key], full[key][window]), key
        tops.add(top)
    assert len(tops) > 1


def test_augmented_crops_stay_aligned(tmp_path: Path) -> None:
    dataset = PairedImageDataset(_coordinate_dataset(tmp_path), crop_size=10, augment=True)
    corners = set()
    for _ in range(40):
        item = dataset[0]
        assert item["blur"].is_contiguous() and item["blur"].shape == (3, 10, 10)
        _assert_aligned(item)
        corners.add(tuple(torch.round(item["blur"][:2, 0, 0] * 51).tolist()))
    assert len(corners) > 10


def test_seeded_items_repeat_and_change_with_epoch(tmp_path: Path) -> None:
    root = _coordinate_dataset(tmp_path)
    first = PairedImageDataset(root, crop_size=9, augment=True, seed=7)
    second = PairedImageDataset(root, crop_size=9, augment=True, seed=7)
    assert torch.equal(first[0]["blur"], second[0]["blur"])
    assert torch.equal(first[0]["blur"], first[0]["blur"])
    blurs = set()
    for epoch in range(6):
        first.set_epoch(epoch)
        blurs.add(first[0]["blur"].numpy().tobytes())
    assert len(blurs) > 1


def test_dataloader_workers_reproduce_the_same_batches(tmp_path: Path) -> None:
    root = _generic(tmp_path, names=("a", "b", "c", "d"))
    dataset = PairedImageDataset(root, crop_size=6, augment=True, seed=None)

    def batches(workers: int) -> list[torch.Tensor]:
        loader = DataLoader(
            dataset,
            batch_size=2,
            num_workers=workers,
            generator=torch.Generator().manual_seed(5),
        )
        return [batch["blur"] for batch in loader]

    first, second = batches(2), batches(2)
    assert all(torch.equal(a, b) for a, b in zip(first, second, strict=True))
    assert [b.shape for b in first] == [(2, 3, 6, 6)] * 2
    # With an int seed an item depends on (seed, epoch, index) only, not on the workers.
    dataset.seed = 3
    single, double = batches(0), batches(2)
    assert all(torch.equal(a, b) for a, b in zip(single, double, strict=True))
