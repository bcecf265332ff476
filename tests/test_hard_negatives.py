"""Sharp-labelled look-alikes of blur: applied to both images alike, never to the motion region."""

from __future__ import annotations

import numpy as np
import pytest

from m2aenet.data.hard_negatives import HardNegatives, apply_hard_negatives, defocus, disc_kernel


def _pair(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    sharp = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    mask = np.zeros((64, 64), np.uint8)
    mask[20:40, 20:40] = 1
    blur = sharp.copy()
    blur[mask > 0] = 128  # "blurred" inside the mask
    return blur, sharp, mask


def test_disc_kernel_is_a_normalized_disc() -> None:
    kernel = disc_kernel(2.0)
    assert kernel.shape == (5, 5)
    assert kernel.sum() == pytest.approx(1.0)
    assert kernel[2, 2] == kernel.max() and kernel[0, 0] == 0.0
    flat = np.full((16, 16, 3), 77, np.uint8)
    assert np.array_equal(defocus(flat, 3.0), flat)  # a flat image stays flat


@pytest.mark.parametrize("kind", ["defocus", "dark", "noise", "gray"])
def test_both_images_change_alike_outside_the_mask(kind: str) -> None:
    blur, sharp, mask = _pair()
    rates = [name for name in vars(HardNegatives()) if name != "defocus_max_radius"]
    only = HardNegatives(**{name: float(name == kind) for name in rates})
    changed = False
    for seed in range(4):
        new_blur, new_sharp = apply_hard_negatives(
            blur, sharp, mask, np.random.default_rng(seed), only
        )
        outside = mask == 0
        assert np.array_equal(new_blur[outside], new_sharp[outside])  # still labelled sharp
        changed |= not np.array_equal(new_sharp, sharp)
        if kind in ("defocus", "dark"):  # regional: the motion region is left alone
            assert np.array_equal(new_blur[mask > 0], blur[mask > 0])
    assert changed


def test_jpeg_changes_both_and_nothing_happens_at_zero_probability() -> None:
    blur, sharp, mask = _pair(1)
    jpeg = HardNegatives(defocus=0, dark=0, noise=0, jpeg=1, gray=0)
    new_blur, new_sharp = apply_hard_negatives(blur, sharp, mask, np.random.default_rng(0), jpeg)
    assert not np.array_equal(new_blur, blur) and not np.array_equal(new_sharp, sharp)
    never = HardNegatives(defocus=0, dark=0, noise=0, jpeg=0, gray=0)
    same = apply_hard_negatives(blur, sharp, mask, np.random.default_rng(0), never)
    assert np.array_equal(same[0], blur) and np.array_equal(same[1], sharp)
    with pytest.raises(ValueError, match="defocus"):
        HardNegatives(defocus=1.5)


def test_a_larger_defocus_radius_smooths_more_and_still_spares_the_motion_region() -> None:
    rng = np.random.default_rng(3)
    sharp = rng.integers(0, 256, (160, 160, 3), dtype=np.uint8)
    mask = np.zeros((160, 160), np.uint8)
    mask[60:90, 60:90] = 1
    blur = sharp.copy()
    blur[mask > 0] = 128
    only_defocus = dict(defocus=1.0, dark=0, noise=0, jpeg=0, gray=0)

    def roughness(max_radius: float) -> float:
        settings = HardNegatives(**only_defocus, defocus_max_radius=max_radius)
        new_blur, new_sharp = apply_hard_negatives(
            blur, sharp, mask, np.random.default_rng(0), settings
        )
        assert np.array_equal(new_blur[mask > 0], blur[mask > 0])
        assert np.array_equal(new_blur[mask == 0], new_sharp[mask == 0])
        changed = np.any(new_sharp != sharp, axis=-1)
        assert changed.any()
        return float(np.abs(np.diff(new_sharp.astype(float), axis=1))[changed[:, 1:]].mean())

    assert roughness(20.0) < roughness(5.0)
    with pytest.raises(ValueError, match="defocus_max_radius"):
        HardNegatives(defocus_max_radius=1.0)
