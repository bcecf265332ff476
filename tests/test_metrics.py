"""Metrics: hand-computed values on tiny arrays, and agreement with scikit-image."""

from __future__ import annotations

import math

import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from m2aenet import metrics


def _noisy_pair(seed: int, shape=(64, 64, 3)) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    target = rng.integers(0, 256, shape, dtype=np.uint8)
    noise = rng.normal(0.0, 25.0, shape)
    pred = np.clip(target + noise, 0, 255).astype(np.uint8)
    return pred, target


def _skimage_ssim(pred: np.ndarray, target: np.ndarray, **extra):
    return structural_similarity(
        pred,
        target,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        data_range=255,
        **extra,
    )


# --- PSNR -------------------------------------------------------------------------------------


def test_psnr_of_a_known_mse_is_exact() -> None:
    target = np.zeros((2, 2, 3), dtype=np.uint8)
    pred = np.full((2, 2, 3), 5, dtype=np.uint8)  # MSE = 25
    assert metrics.psnr(pred, target) == pytest.approx(20 * math.log10(255 / 5), abs=1e-12)
    # One channel of one pixel off by 12: MSE = 144 / 12 values = 12.
    pred = target.copy()
    pred[0, 1, 2] = 12
    assert metrics.psnr(pred, target) == pytest.approx(10 * math.log10(255**2 / 12), abs=1e-12)


def test_psnr_honours_data_range() -> None:
    target = np.zeros((2, 2, 3))
    pred = np.full((2, 2, 3), 0.1)
    assert metrics.psnr(pred, target, data_range=1.0) == pytest.approx(20.0, abs=1e-12)


def test_masked_psnr_uses_only_mask_pixels_of_every_channel() -> None:
    target = np.full((2, 2, 3), 100, dtype=np.uint8)
    pred = target.copy()
    pred[0, 0] = 103  # error 3 in all channels of the masked pixel
    pred[1, :, 1] = 200  # large errors outside the mask must not count
    mask = np.array([[True, False], [False, False]])
    assert metrics.psnr(pred, target, mask=mask) == pytest.approx(20 * math.log10(255 / 3))
    assert metrics.weighted_psnr(pred, target, mask) == metrics.psnr(pred, target, mask=mask)
    assert metrics.psnr(pred, target) < 20.0


def test_psnr_identical_is_inf_and_empty_mask_is_nan() -> None:
    image = np.arange(12, dtype=np.uint8).reshape(2, 2, 3)
    assert metrics.psnr(image, image) == math.inf
    assert math.isnan(metrics.psnr(image, image + 1, mask=np.zeros((2, 2), bool)))


def test_psnr_rejects_shape_mismatches() -> None:
    with pytest.raises(ValueError, match="shapes differ"):
        metrics.psnr(np.zeros((2, 2, 3)), np.zeros((2, 3, 3)))
    with pytest.raises(ValueError, match="mask shape"):
        metrics.psnr(np.zeros((2, 2, 3)), np.ones((2, 2, 3)), mask=np.ones((3, 2), bool))


@pytest.mark.parametrize("seed", [0, 1])
def test_psnr_matches_skimage(seed: int) -> None:
    pred, target = _noisy_pair(seed)
    expected = peak_signal_noise_ratio(target, pred, data_range=255)
    assert metrics.psnr(pred, target) == pytest.approx(expected, abs=1e-10)


def test_rgb_to_y_is_bt601_studio_range() -> None:
    image = np.array([[[0, 0, 0], [255, 255, 255]]], dtype=np.uint8)
    np.testing.assert_allclose(metrics.rgb_to_y(image), [[16.0, 235.0]], atol=1e-9)


def test_psnr_y_of_gray_images_by_hand() -> None:
    # For gray pixels Y = 16 + v * 219 / 255, so an RGB error d becomes a Y error d * 219 / 255.
    target = np.full((4, 4, 3), 90, dtype=np.uint8)
    pred = target + 10
    expected = 20 * math.log10(255 / (10 * 219 / 255))
    assert metrics.psnr_y(pred, target) == pytest.approx(expected, abs=1e-9)


# --- SSIM -------------------------------------------------------------------------------------


def test_ssim_of_constant_images_by_hand() -> None:
    # Constant images have zero variance: SSIM = (2ab + C1) / (a^2 + b^2 + C1) everywhere.
    a, b = 100.0, 120.0
    c1 = (0.01 * 255) ** 2
    expected = (2 * a * b + c1) / (a * a + b * b + c1)
    first = np.full((16, 16, 3), a)
    second = np.full((16, 16, 3), b)
    np.testing.assert_allclose(metrics.ssim_map(first, second), expected, rtol=1e-12)
    assert metrics.ssim(first, second) == pytest.approx(expected, rel=1e-12)
    assert metrics.ssim(first, first) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("seed", [0, 3])
def test_ssim_map_and_mean_match_skimage(seed: int) -> None:
    pred, target = _noisy_pair(seed)
    value, full = _skimage_ssim(pred, target, channel_axis=2, full=True)
    ours = metrics.ssim_map(pred, target)
    assert ours.shape == (64, 64)
    np.testing.assert_allclose(ours, full.mean(axis=2), atol=1e-6, rtol=0)
    assert metrics.ssim(pred, target) == pytest.approx(value, abs=1e-9)


def test_gray_ssim_matches_skimage() -> None:
    pred, target = _noisy_pair(5, shape=(40, 48))
    assert metrics.ssim(pred, target) == pytest.approx(_skimage_ssim(pred, target), abs=1e-9)


def test_border_is_left_out_of_the_mean() -> None:
    pred, target = _noisy_pair(2, shape=(32, 32, 3))
    pred[:5] = target[:5]  # a perfect top frame would raise a whole-map mean
    full_mean = metrics.ssim(pred, target, border=0)
    cropped = metrics.ssim(pred, target)
    assert cropped < full_mean
    with pytest.raises(ValueError, match="border"):
        metrics.ssim(pred[:10, :10], target[:10, :10])
    with pytest.raises(ValueError, match="at least 11x11"):
        metrics.ssim_map(pred[:10, :32], target[:10, :32])


def test_weighted_ssim_only_sees_mask_pixels() -> None:
    target = _noisy_pair(4, shape=(48, 48, 3))[1]
    pred = target.copy()
    pred[30:40, 30:40] = 255 - pred[30:40, 30:40]  # damage one corner only
    far = np.zeros((48, 48), bool)
    far[6:14, 6:14] = True  # more than a window radius away from the damage
    near = np.zeros((48, 48), bool)
    near[30:40, 30:40] = True
    assert metrics.weighted_ssim(pred, target, far) == pytest.approx(1.0, abs=1e-12)
    assert metrics.weighted_ssim(pred, target, near) < 0.5
    assert metrics.ssim(pred, target, mask=near) == metrics.weighted_ssim(pred, target, near)
    in_border_only = np.zeros((48, 48), bool)
    in_border_only[:5] = True
    assert math.isnan(metrics.ssim(pred, target, mask=in_border_only))


# --- masks ------------------------------------------------------------------------------------


def test_mask_iou_and_f1_by_hand() -> None:
    pred = np.array([[True, True], [False, False]])
    gt = np.array([[True, False], [True, False]])  # TP 1, FP 1, FN 1
    assert metrics.mask_iou(pred, gt) == pytest.approx(1 / 3)
    assert metrics.mask_f1(pred, gt) == pytest.approx(0.5)
    assert metrics.mask_iou(gt, gt) == 1.0 and metrics.mask_f1(gt, gt) == 1.0
    empty = np.zeros((2, 2), bool)
    assert metrics.mask_iou(empty, empty) == 1.0 and metrics.mask_f1(empty, empty) == 1.0
    assert metrics.mask_iou(empty, gt) == 0.0 and metrics.mask_f1(gt, empty) == 0.0
    with pytest.raises(ValueError, match="mask shapes differ"):
        metrics.mask_iou(empty, np.zeros((2, 3), bool))


# --- image_metrics and means -------------------------------------------------------------------


def test_image_metrics_of_a_restoration_that_only_touches_the_mask() -> None:
    sharp = _noisy_pair(6, shape=(32, 32, 3))[1]
    gt = np.zeros((32, 32), bool)
    gt[8:24, 8:24] = True  # a quarter of the image
    restored = sharp.copy()
    restored[gt] = np.clip(restored[gt].astype(int) + 4, 0, 255)
    pred = np.zeros((32, 32), bool)
    pred[8:24, 8:16] = True
    row = metrics.image_metrics(restored, sharp, gt, pred)
    assert set(metrics.METRIC_KEYS) <= set(row)
    assert row["psnr_sharp"] == math.inf
    assert row["psnr_w"] == metrics.psnr(restored, sharp, mask=gt)
    assert row["psnr_w"] < row["psnr"]  # same error, concentrated on fewer pixels
    assert row["fraction"] == 0.25 and row["pred_fraction"] == 0.125
    assert row["mask_iou"] == pytest.approx(0.5) and row["mask_f1"] == pytest.approx(2 / 3)


def test_image_metrics_without_masks() -> None:
    restored, sharp = _noisy_pair(7, shape=(24, 24, 3))
    row = metrics.image_metrics(restored, sharp, None)
    assert row["psnr_w"] == row["psnr"] and row["ssim_w"] == row["ssim"]
    assert math.isnan(row["psnr_sharp"]) and math.isnan(row["mask_iou"])
    assert row["fraction"] == 1.0 and "pred_fraction" not in row
    row = metrics.image_metrics(restored, sharp, None, pred_mask=np.ones((24, 24), bool))
    assert math.isnan(row["mask_f1"]) and row["pred_fraction"] == 1.0


def test_mean_metrics_handles_inf_and_nan() -> None:
    rows = [
        {"name": "a", "psnr": 30.0, "psnr_sharp": math.inf, "mask_iou": math.nan},
        {"name": "b", "psnr": 40.0, "psnr_sharp": math.inf, "mask_iou": math.nan},
        {"name": "c", "psnr": math.inf, "psnr_sharp": 50.0, "mask_iou": math.nan, "ms": 3},
    ]
    mean = metrics.mean_metrics(rows)
    assert mean["psnr"] == 35.0  # the perfect image is counted, not averaged
    assert mean["psnr_sharp"] == 50.0
    assert math.isnan(mean["mask_iou"])
    assert mean["ms"] == 3.0
    assert mean["n"] == 3
    assert mean["n_inf"] == {"psnr": 1, "psnr_sharp": 2}
    assert "name" not in mean
    all_inf = metrics.mean_metrics([{"psnr_sharp": math.inf}, {"psnr_sharp": math.inf}])
    assert all_inf["psnr_sharp"] == math.inf and all_inf["n_inf"] == {"psnr_sharp": 2}
    assert metrics.mean_metrics([]) == {"n": 0, "n_inf": {}}
