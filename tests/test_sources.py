"""Photo sources: split pools, folder scanning, the photo cache and random crops."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from m2aenet.data import sources
from m2aenet.data.sources import (
    PhotoCache,
    folder_photos,
    photo_pool,
    random_crop,
    skimage_photos,
)
from m2aenet.errors import InputError
from m2aenet.imageio import write_png


def _photo(path: Path, height: int, width: int, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    write_png(path, rng.integers(0, 256, (height, width, 3), dtype=np.uint8))
    return path


def test_folder_photos_recurses_keeps_images_only_and_sorts(tmp_path: Path) -> None:
    _photo(tmp_path / "b.png", 8, 8, 0)
    _photo(tmp_path / "sub" / "deeper" / "a.png", 8, 8, 1)
    (tmp_path / "notes.txt").write_text("not a photo")
    (tmp_path / "sub" / "data.npy").write_bytes(b"x")
    found = folder_photos([tmp_path])
    assert found == sorted([tmp_path / "b.png", tmp_path / "sub" / "deeper" / "a.png"])


def test_folder_photos_errors_name_the_path(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.md").write_text("no images")
    with pytest.raises(InputError, match="no source photos found in .*empty"):
        folder_photos([empty])
    with pytest.raises(InputError, match="missing.*no such file"):
        folder_photos([tmp_path / "missing"])
    text = tmp_path / "a.txt"
    text.write_text("x")
    with pytest.raises(InputError, match="a.txt: not an image"):
        folder_photos([text])


def test_sources_override_the_split_and_unknown_split_is_rejected(tmp_path: Path) -> None:
    photo = _photo(tmp_path / "p.png", 8, 8, 0)
    assert photo_pool("test", [tmp_path]) == [photo]
    with pytest.raises(InputError, match="unknown split 'dev'"):
        photo_pool("dev", [tmp_path])


def test_skimage_photos_are_bundled_colour_files() -> None:
    photos = skimage_photos()
    assert photos, "scikit-image ships its sample photos"
    assert all(p.is_file() and p.name in sources.SKIMAGE_PHOTOS for p in photos)
    assert "camera.png" not in {p.name for p in photos}  # grey images are left out


def test_missing_debian_package_error_says_how_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(sources, "_package_files", lambda package: None)
    monkeypatch.setattr(sources, "MATE_ROOT", tmp_path / "nowhere")
    with pytest.raises(InputError, match="apt-get install mate-backgrounds lomiri-wallpapers"):
        photo_pool("train")
    with pytest.raises(InputError, match="apt-get install mate-backgrounds lomiri-wallpapers"):
        photo_pool("test")
    with pytest.raises(InputError, match="'lomiri-wallpapers-20.04' is not installed"):
        photo_pool("val")


@pytest.mark.skipif(not sources.debian_photos_installed(), reason="Debian photo packages absent")
def test_debian_splits_are_disjoint_and_cleaned() -> None:
    train, val, test = photo_pool("train"), photo_pool("val"), photo_pool("test")
    assert train and val and test
    # Three disjoint photo sets: by path and by name (the same picture in two packages).
    for first, second in ((train, val), (train, test), (val, test)):
        assert not set(first) & set(second)
        assert not {p.name for p in first} & {p.name for p in second}
    assert all(
        p.parent.parent == Path("/usr/share/backgrounds/mate") for p in sources.mate_photos()
    )
    names = {p.name for p in train}
    assert not names & sources.MATE_EXCLUDED
    if "Elephants.jpg" in names:
        assert "Elephants_3840x2160.jpg" not in names  # same picture, larger file
    assert all(p.suffix.lower() in sources.IMAGE_SUFFIXES for p in test)


def test_photo_cache_downscales_reuses_and_names_bad_files(tmp_path: Path) -> None:
    big = _photo(tmp_path / "big.png", 300, 200, 0)
    cache = PhotoCache(short_side=100)
    photo = cache.get(big)
    assert photo.dtype == np.uint8 and photo.shape == (150, 100, 3)
    assert cache.get(big) is photo
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    with pytest.raises(InputError, match="broken.jpg"):
        cache.get(broken)


def test_photo_cache_eviction_gives_the_same_pixels(tmp_path: Path) -> None:
    paths = [_photo(tmp_path / f"{i}.png", 64, 64, i) for i in range(3)]
    small = PhotoCache(short_side=64, max_bytes=64 * 64 * 3)  # room for one photo only
    first = small.get(paths[0]).copy()
    small.get(paths[1])
    small.get(paths[2])
    assert np.array_equal(small.get(paths[0]), first)


def test_random_crop_is_deterministic_and_exact_when_not_resized() -> None:
    photo = np.random.default_rng(0).integers(0, 256, (120, 160, 3), dtype=np.uint8)
    a, info_a = random_crop(photo, (40, 50), np.random.default_rng(5))
    b, info_b = random_crop(photo, (40, 50), np.random.default_rng(5))
    assert a.dtype == np.uint8 and a.shape == (40, 50, 3)
    assert np.array_equal(a, b) and info_a == info_b
    # min_fraction=1 forces the widest zoom; a photo exactly the crop size is copied verbatim.
    same, info = random_crop(photo, (120, 160), np.random.default_rng(1), min_fraction=1.0)
    assert info["box"] == [0, 0, 160, 120]
    assert np.array_equal(same, photo[:, ::-1] if info["mirrored"] else photo)


def test_random_crop_zoom_stays_within_the_photo() -> None:
    photo = np.zeros((400, 600, 3), dtype=np.uint8)
    for seed in range(20):
        crop, info = random_crop(photo, (64, 64), np.random.default_rng(seed), reference=(128, 128))
        x, y, w, h = info["box"]
        assert crop.shape == (64, 64, 3)
        assert 0 <= x and x + w <= 600 and 0 <= y and y + h <= 400
        # Zoom between 40% and 100% of what fits the whole photo into the reference frame.
        assert 0.4 * 400 / 128 - 1e-6 <= info["zoom"] <= 400 / 128 + 1e-6
