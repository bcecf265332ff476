"""Paired crops, flips and rotations keep blur, sharp and mask aligned."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from m2aenet.data.transforms import (
    FlipRotate,
    apply_flip_rotate,
    crop,
    crop_size_pair,
    paired_random_crop,
    paired_random_flip_rotate,
    random_crop_window,
    random_int,
    sample_flip_rotate,
    spatial_size,
)


def _coordinates(height: int, width: int) -> np.ndarray:
    """(2, H, W): channel 0 holds the row index, channel 1 the column index."""
    rows, cols = np.mgrid[0:height, 0:width]
    return np.stack([rows, cols]).astype(np.float32)


def test_random_int_from_numpy_and_torch() -> None:
    numpy_draws = {random_int(np.random.default_rng(s), 3) for s in range(40)}
    torch_draws = {random_int(torch.Generator().manual_seed(s), 3) for s in range(40)}
    assert numpy_draws == torch_draws == {0, 1, 2}
    with pytest.raises(ValueError):
        random_int(np.random.default_rng(0), 0)


def test_crop_size_pair() -> None:
    assert crop_size_pair(8) == (8, 8)
    assert crop_size_pair((4, 6)) == (4, 6)
    for bad in (0, (4, 0), (1, 2, 3), -3):
        with pytest.raises(ValueError):
            crop_size_pair(bad)


def test_crop_window_stays_inside_and_reaches_every_position() -> None:
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(400):
        top, left, h, w = random_crop_window(7, 9, (4, 5), rng)
        assert (h, w) == (4, 5)
        assert 0 <= top <= 3 and 0 <= left <= 4
        seen.add((top, left))
    assert len(seen) == 4 * 5
    with pytest.raises(ValueError, match="larger than the image"):
        random_crop_window(7, 9, 8, rng)


def test_paired_crop_takes_the_same_window_of_each_image() -> None:
    coords = _coordinates(20, 30)
    sharp = coords * 2.0 + 1.0
    mask = (coords[:1] % 2 == 0).astype(np.float32)  # (1, H, W)
    rng = np.random.default_rng(3)
    for _ in range(20):
        blur_c, sharp_c, mask_c = paired_random_crop([coords, sharp, mask], (8, 12), rng)
        top, left = int(blur_c[0, 0, 0]), int(blur_c[1, 0, 0])
        np.testing.assert_array_equal(blur_c, coords[:, top : top + 8, left : left + 12])
        np.testing.assert_array_equal(sharp_c, sharp[:, top : top + 8, left : left + 12])
        np.testing.assert_array_equal(mask_c, mask[:, top : top + 8, left : left + 12])


def test_crop_of_tensors_and_mismatched_sizes() -> None:
    image = torch.arange(2 * 5 * 6, dtype=torch.float32).reshape(2, 5, 6)
    (cropped,) = crop([image], 1, 2, 3, 4)
    assert torch.equal(cropped, image[:, 1:4, 2:6])
    with pytest.raises(ValueError, match="differ in size"):
        paired_random_crop([image, torch.zeros(1, 5, 7)], 2, torch.Generator().manual_seed(0))
    assert spatial_size([image, torch.zeros(5, 6)]) == (5, 6)


def test_same_generator_seed_gives_same_crop() -> None:
    coords = torch.from_numpy(_coordinates(16, 16))
    first = paired_random_crop([coords], 5, torch.Generator().manual_seed(11))[0]
    second = paired_random_crop([coords], 5, torch.Generator().manual_seed(11))[0]
    assert torch.equal(first, second)


def test_flip_rotate_matches_numpy_reference() -> None:
    image = np.arange(3 * 4 * 4, dtype=np.float32).reshape(3, 4, 4)
    op = FlipRotate(hflip=True, vflip=True, rotations=1)
    (out,) = apply_flip_rotate([image], op)
    expected = np.rot90(image[:, ::-1, ::-1], 1, axes=(1, 2))
    np.testing.assert_array_equal(out, expected)
    (out_t,) = apply_flip_rotate([torch.from_numpy(image)], op)
    np.testing.assert_array_equal(out_t.numpy(), expected)
    (same,) = apply_flip_rotate([image], FlipRotate())
    np.testing.assert_array_equal(same, image)


def test_flip_rotate_keeps_pairs_aligned_and_covers_all_eight_ops() -> None:
    coords = _coordinates(6, 6)
    sharp = 10.0 - coords
    mask = ((coords[0] + coords[1]) % 3 == 0).astype(np.float32)[None]
    rng = np.random.default_rng(0)
    outcomes = set()
    for _ in range(200):
        blur_a, sharp_a, mask_a = paired_random_flip_rotate([coords, sharp, mask], rng)
        np.testing.assert_array_equal(sharp_a, 10.0 - blur_a)
        np.testing.assert_array_equal(mask_a[0], ((blur_a[0] + blur_a[1]) % 3 == 0))
        outcomes.add(np.ascontiguousarray(blur_a).tobytes())
    assert len(outcomes) == 8  # the dihedral group of the square


def test_non_square_images_are_never_quarter_turned() -> None:
    image = torch.zeros(1, 4, 7)
    rng = torch.Generator().manual_seed(0)
    for _ in range(50):
        (out,) = paired_random_flip_rotate([image], rng)
        assert out.shape == (1, 4, 7)
    ops = {sample_flip_rotate(rng, square=False).rotations for _ in range(50)}
    assert ops == {0, 2}


def test_disabled_parts_stay_identity_and_draws_do_not_shift() -> None:
    for seed in range(20):
        full = sample_flip_rotate(np.random.default_rng(seed))
        none = sample_flip_rotate(
            np.random.default_rng(seed), hflip=False, vflip=False, rotate=False
        )
        assert none == FlipRotate()
        no_rotation = sample_flip_rotate(np.random.default_rng(seed), rotate=False)
        assert (no_rotation.hflip, no_rotation.vflip) == (full.hflip, full.vflip)
        assert no_rotation.rotations == 0
