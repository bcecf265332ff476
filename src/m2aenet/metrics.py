"""Image-quality and mask metrics, as the deblurring literature reports them.

Pure numpy functions. Images are (H, W, 3) RGB arrays on the 8-bit scale (uint8, or floats in
[0, 255]); all maths is float64. Masks are (H, W) booleans (anything non-zero counts as True).

Conventions
- PSNR and SSIM are computed on RGB at 8-bit range (data_range 255), SSIM with an 11-tap Gaussian
  window (sigma 1.5) and population covariance, averaged over channels: the same numbers as
  scikit-image's ``structural_similarity(gaussian_weights=True, sigma=1.5,
  use_sample_covariance=False, data_range=255, channel_axis=2)``, whose mean also skips a 5-px
  frame.
- Local motion deblurring is scored with *weighted* metrics over the ground-truth blur mask:
  PSNR_w is the PSNR of the pixels where the mask is 1, SSIM_w the mean of the SSIM map over those
  pixels. This follows the convention of the ReLoBlur benchmark (Li et al., AAAI 2023) and LMD-ViT
  (ICLR 2024), which the M2AENet paper also uses, so that a large untouched background cannot hide
  a poor restoration.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import numpy as np

SSIM_SIGMA = 1.5
SSIM_RADIUS = 5  # int(3.5 * 1.5 + 0.5): the window has exactly 2 * 5 + 1 = 11 taps
SSIM_BORDER = SSIM_RADIUS  # the frame scikit-image leaves out of its mean

# ITU-R BT.601 luma on the 8-bit "studio" scale [16, 235], as MATLAB's rgb2ycbcr computes it (the
# field's habit for Y-channel PSNR).
_BT601_Y = np.array([65.481, 128.553, 24.966]) / 255.0
_BT601_OFFSET = 16.0

#: Keys of `image_metrics`, in table order.
METRIC_KEYS = ("psnr", "ssim", "psnr_w", "ssim_w", "psnr_sharp", "mask_iou", "mask_f1", "fraction")


def _pair(pred: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred = np.asarray(pred, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    if pred.shape != target.shape:
        raise ValueError(f"image shapes differ: {pred.shape} vs {target.shape}")
    if pred.ndim not in (2, 3):
        raise ValueError(f"expected an (H, W) or (H, W, C) image, got shape {pred.shape}")
    return pred, target


def _mask(mask: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    mask = np.asarray(mask)
    if mask.shape != shape[:2]:
        raise ValueError(f"mask shape {mask.shape} does not match image shape {shape[:2]}")
    return mask.astype(bool, copy=False)


def psnr(
    pred: np.ndarray,
    target: np.ndarray,
    mask: np.ndarray | None = None,
    data_range: float = 255.0,
) -> float:
    """Peak signal-to-noise ratio in dB.

    pred, target: (H, W, C) or (H, W) on the scale of `data_range`. With `mask` (H, W), the mean
    squared error is taken over the pixels where the mask is True (all channels of them).
    Returns `math.inf` for identical pixels and `math.nan` for an empty mask.
    """
    pred, target = _pair(pred, target)
    squared = (pred - target) ** 2
    if mask is not None:
        squared = squared[_mask(mask, pred.shape)]
    if squared.size == 0:
        return math.nan
    mse = float(squared.mean())
    if mse == 0.0:
        return math.inf
    return 10.0 * math.log10(data_range**2 / mse)


def weighted_psnr(pred: np.ndarray, target: np.ndarray, blur_mask: np.ndarray) -> float:
    """PSNR_w: PSNR over the pixels of the ground-truth blur mask (ReLoBlur/LMD-ViT convention)."""
    return psnr(pred, target, mask=blur_mask)


def rgb_to_y(image: np.ndarray) -> np.ndarray:
    """BT.601 luma (H, W) in [16, 235] of an 8-bit-scale RGB image (H, W, 3); not rounded."""
    image = np.asarray(image, dtype=np.float64)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) RGB image, got shape {image.shape}")
    return image @ _BT601_Y + _BT601_OFFSET


def psnr_y(pred: np.ndarray, target: np.ndarray, mask: np.ndarray | None = None) -> float:
    """PSNR in dB of the BT.601 Y channel (peak 255), as some deblurring papers report it."""
    return psnr(rgb_to_y(pred), rgb_to_y(target), mask=mask)


def ssim_map(pred: np.ndarray, target: np.ndarray, data_range: float = 255.0) -> np.ndarray:
    """Per-pixel SSIM (H, W) float64, averaged over channels.

    scikit-image's map (``structural_similarity(..., gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, full=True)``: an 11x11 Gaussian window, reflect padding,
    C1 = (0.01 L)^2, C2 = (0.03 L)^2), computed channel by channel so the peak memory stays at
    a few planes even for 4K images. Images need at least 11 pixels on each side.
    """
    from skimage.metrics import structural_similarity

    pred, target = _pair(pred, target)
    if pred.ndim == 2:
        pred, target = pred[..., None], target[..., None]
    if min(pred.shape[:2]) < 2 * SSIM_RADIUS + 1:
        raise ValueError(f"SSIM needs images of at least 11x11 pixels, got {pred.shape[:2]}")
    total = np.zeros(pred.shape[:2])
    for channel in range(pred.shape[2]):
        _, plane = structural_similarity(
            np.ascontiguousarray(pred[..., channel]),
            np.ascontiguousarray(target[..., channel]),
            gaussian_weights=True,
            sigma=SSIM_SIGMA,
            use_sample_covariance=False,
            data_range=data_range,
            full=True,
        )
        total += plane
    return total / pred.shape[2]


def ssim(
    pred: np.ndarray,
    target: np.ndarray,
    mask: np.ndarray | None = None,
    border: int = SSIM_BORDER,
    data_range: float = 255.0,
) -> float:
    """Mean SSIM of `ssim_map`, leaving out a `border`-pixel frame (5 px, as scikit-image does).

    With `mask` (H, W): the mean over the mask pixels inside that frame (SSIM_w); `math.nan` when
    none are left. Raises ValueError when the frame leaves no pixel at all.
    """
    pred, target = _pair(pred, target)
    height, width = pred.shape[:2]
    if border < 0 or 2 * border >= min(height, width):
        raise ValueError(f"a {border}-px border leaves nothing of a {height}x{width} image")
    inner = np.s_[border : height - border, border : width - border]
    values = ssim_map(pred, target, data_range=data_range)[inner]
    if mask is not None:
        values = values[_mask(mask, pred.shape)[inner]]
    if values.size == 0:
        return math.nan
    return float(values.mean())


def weighted_ssim(pred: np.ndarray, target: np.ndarray, blur_mask: np.ndarray) -> float:
    """SSIM_w: mean SSIM map over the ground-truth blur mask (ReLoBlur / LMD-ViT convention)."""
    return ssim(pred, target, mask=blur_mask)


def _confusion(pred_mask: np.ndarray, gt_mask: np.ndarray) -> tuple[int, int, int]:
    pred_mask = np.asarray(pred_mask).astype(bool, copy=False)
    gt_mask = np.asarray(gt_mask).astype(bool, copy=False)
    if pred_mask.shape != gt_mask.shape:
        raise ValueError(f"mask shapes differ: {pred_mask.shape} vs {gt_mask.shape}")
    true_pos = int(np.count_nonzero(pred_mask & gt_mask))
    false_pos = int(np.count_nonzero(pred_mask & ~gt_mask))
    false_neg = int(np.count_nonzero(~pred_mask & gt_mask))
    return true_pos, false_pos, false_neg


def mask_iou(pred_mask: np.ndarray, gt_mask: np.ndarray) -> float:
    """Intersection over union of two (H, W) boolean masks; 1.0 when both are empty."""
    true_pos, false_pos, false_neg = _confusion(pred_mask, gt_mask)
    union = true_pos + false_pos + false_neg
    return 1.0 if union == 0 else true_pos / union


def mask_f1(pred_mask: np.ndarray, gt_mask: np.ndarray) -> float:
    """F1 score (Dice) of a predicted (H, W) bool mask against the truth; 1.0 when both empty."""
    true_pos, false_pos, false_neg = _confusion(pred_mask, gt_mask)
    total = 2 * true_pos + false_pos + false_neg
    return 1.0 if total == 0 else 2 * true_pos / total


def image_metrics(
    restored_u8: np.ndarray,
    sharp_u8: np.ndarray,
    gt_mask: np.ndarray | None,
    pred_mask: np.ndarray | None = None,
) -> dict[str, float]:
    """All per-image metrics of one restored (H, W, 3) 8-bit image against its sharp target.

    Keys (`METRIC_KEYS`, plus `pred_fraction` when `pred_mask` is given):
      psnr, ssim          whole image;
      psnr_w, ssim_w      over the ground-truth blur mask;
      psnr_sharp          PSNR over the pixels outside that mask (inf when they match the target
                          exactly, which a pruned model does wherever the input was already sharp);
      mask_iou, mask_f1   predicted mask against the ground truth (nan without a prediction);
      fraction            share of pixels the ground truth marks as blurred.
    `gt_mask=None` means the data has no masks (global blur, GoPro): the whole frame counts as
    blurred, so psnr_w == psnr, psnr_sharp is nan and the mask scores are nan (nothing to score).
    """
    restored_u8, sharp_u8 = _pair(restored_u8, sharp_u8)
    has_gt = gt_mask is not None
    gt = _mask(gt_mask, restored_u8.shape) if has_gt else np.ones(restored_u8.shape[:2], bool)
    row = {
        "psnr": psnr(restored_u8, sharp_u8),
        "ssim": ssim(restored_u8, sharp_u8),
        "psnr_w": weighted_psnr(restored_u8, sharp_u8, gt),
        "ssim_w": weighted_ssim(restored_u8, sharp_u8, gt),
        "psnr_sharp": psnr(restored_u8, sharp_u8, mask=~gt),
        "mask_iou": math.nan,
        "mask_f1": math.nan,
        "fraction": float(gt.mean()),
    }
    if pred_mask is not None:
        pred = _mask(pred_mask, restored_u8.shape)
        row["pred_fraction"] = float(pred.mean())
        if has_gt:
            row["mask_iou"] = mask_iou(pred, gt)
            row["mask_f1"] = mask_f1(pred, gt)
    return row


def mean_metrics(rows: Iterable[Mapping[str, object]]) -> dict[str, object]:
    """Average per-image metrics over a data set.

    Every numeric key present in any row is averaged per image (the field's convention for PSNR
    and SSIM). Non-finite values need a rule: nan (metric undefined for that image, e.g. psnr_w on
    an image with an empty mask) is skipped; +inf (a perfect match, e.g. psnr_sharp of an untouched
    background) is counted in ``n_inf[key]`` and left out of the mean, so one perfect image does
    not make a data-set mean infinite. A key whose every defined value is inf averages to inf; one
    with no defined value to nan. ``n`` is the number of rows. Non-numeric values (names, nested
    dicts) are ignored.
    """
    rows = list(rows)
    keys: list[str] = []
    for row in rows:
        for key, value in row.items():
            numeric = isinstance(value, int | float) and not isinstance(value, bool)
            if numeric and key not in keys:
                keys.append(key)
    means: dict[str, object] = {}
    n_inf: dict[str, int] = {}
    for key in keys:
        values = np.array([row[key] for row in rows if key in row], dtype=np.float64)
        finite = values[np.isfinite(values)]
        infinite = int(np.count_nonzero(np.isposinf(values)))
        if infinite:
            n_inf[key] = infinite
        if finite.size:
            means[key] = float(finite.mean())
        elif infinite:
            means[key] = math.inf
        else:
            means[key] = math.nan
    means["n"] = len(rows)
    means["n_inf"] = n_inf
    return means
