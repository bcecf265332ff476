"""Score a deblurring function on a paired data set, next to the do-nothing baseline.

`evaluate(restore, dataset)` runs `restore` on every blurry image, quantizes the result to 8 bits
exactly as a saved PNG would be, and computes `m2aenet.metrics.image_metrics` for the restored image
and for the blurry input itself, so every number has its baseline beside it.
"""

from __future__ import annotations

import functools
import itertools
import json
import math
import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from m2aenet.atomic import write_text_atomic
from m2aenet.errors import InputError
from m2aenet.imageio import to_uint8, write_png
from m2aenet.metrics import METRIC_KEYS, image_metrics, mean_metrics
from m2aenet.visualize import fit_width, mask_comparison, side_by_side

#: restore(blur (H, W, 3) float32 in [0, 1]) -> (restored (H, W, 3) float32, predicted blur mask
#: (H, W) bool or None, stats such as {"ms", "fraction", "dense_gflops", "pruned_gflops"}).
Restore = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray | None, Mapping[str, float]]]

#: Stats passed through from `restore` into the report when present.
STAT_KEYS = ("dense_gflops", "pruned_gflops")
COMPARE_PANEL_WIDTH = 768  # px per panel of the comparison picture; restored PNGs stay full size

_TABLE_ROWS = (
    ("psnr", "PSNR (dB)", 2),
    ("ssim", "SSIM", 4),
    ("psnr_w", "PSNR_w (dB)", 2),
    ("ssim_w", "SSIM_w", 4),
    ("psnr_sharp", "PSNR sharp (dB)", 2),
    ("mask_iou", "mask IoU", 3),
    ("mask_f1", "mask F1", 3),
)


@dataclass
class EvalReport:
    """Per-image and mean metrics of a restoration and of its blurry input.

    rows: one dict per image: `name`, the `METRIC_KEYS` of the restored image, `ms`, `pred_fraction`
    and any gflops stats, plus `input`: the same metrics for the blurry input.
    mean / input_mean: `m2aenet.metrics.mean_metrics` of the restored rows / the input rows.
    """

    rows: list[dict[str, Any]] = field(default_factory=list)
    mean: dict[str, Any] = field(default_factory=dict)
    input_mean: dict[str, Any] = field(default_factory=dict)
    #: One message (naming the file) per sample that could not be read; the means leave it out.
    failed: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """{"mean": {...}, "input": {...}, "rows": [...]} (and "failed": [...] when a sample
        could not be read), as written by `to_json`."""
        document = {"mean": self.mean, "input": self.input_mean, "rows": self.rows}
        if self.failed:
            document["failed"] = self.failed
        return document

    def to_json(self) -> str:
        """Strict JSON: +inf / -inf become the strings "inf" / "-inf" and nan becomes null.

        (Python's `json` would write the non-standard Infinity/NaN tokens that most other readers
        reject; an infinite PSNR is a real, expected result here, so it is kept as text.)
        """
        return json.dumps(jsonable(self.to_dict()), indent=2, allow_nan=False) + "\n"

    def save_json(self, path: str | os.PathLike) -> None:
        """Write `to_json()` to `path` atomically."""
        write_text_atomic(path, self.to_json())

    def table(self) -> str:
        """A plain-text table of the mean metrics: input, restored and the change."""
        lines = [f"{'metric':<16}{'input':>10}{'restored':>10}{'change':>10}"]
        for key, label, digits in _TABLE_ROWS:
            before = self.input_mean.get(key, math.nan)
            after = self.mean.get(key, math.nan)
            if math.isnan(before) and math.isnan(after):
                continue
            change = after - before if math.isfinite(before) and math.isfinite(after) else math.nan
            lines.append(
                f"{label:<16}{_fmt(before, digits):>10}{_fmt(after, digits):>10}"
                f"{_fmt(change, digits, signed=True):>10}"
            )
        count = self.mean.get("n", 0)
        notes = [f"{count} image{'' if count == 1 else 's'}"]
        for label, key in (("blurred (GT)", "fraction"), ("kept (pred)", "pred_fraction")):
            if math.isfinite(self.mean.get(key, math.nan)):
                notes.append(f"{label} {100 * self.mean[key]:.1f}%")
        if math.isfinite(self.mean.get("ms", math.nan)):
            notes.append(f"{self.mean['ms']:.1f} ms/image")
        for key in STAT_KEYS:
            if math.isfinite(self.mean.get(key, math.nan)):
                notes.append(f"{key} {self.mean[key]:.2f}")
        if self.failed:
            notes.append(f"{len(self.failed)} could not be read (left out)")
        inf_counts = self.mean.get("n_inf", {})
        if inf_counts:
            counted = ", ".join(f"{key} {count}" for key, count in inf_counts.items())
            notes.append(f"infinite (left out of means): {counted}")
        return "\n".join(lines + ["; ".join(notes)])


def _fmt(value: float, digits: int, signed: bool = False) -> str:
    if math.isnan(value):
        return "-"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def jsonable(value: Any) -> Any:
    """Plain JSON data of nested metrics: NaN becomes null and infinities "inf"/"-inf" (a
    perfect PSNR), which strict JSON cannot hold."""
    if isinstance(value, Mapping):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(item) for item in value]
    if isinstance(value, bool | str | int) or value is None:
        return value
    number = float(value)
    if math.isnan(number):
        return None
    if math.isinf(number):
        return "inf" if number > 0 else "-inf"
    return number


def _image_hwc(value: Any, key: str, name: str) -> np.ndarray:
    """A sample's (C, H, W) tensor or array -> float32 (H, W, C) numpy."""
    array = np.asarray(value.detach().cpu() if hasattr(value, "detach") else value)
    if array.ndim != 3:
        raise InputError(f"sample {name!r}: {key} should be (C, H, W), got shape {array.shape}")
    return np.ascontiguousarray(array.transpose(1, 2, 0), dtype=np.float32)


def _check_mask_shape(mask: np.ndarray, image: np.ndarray, what: str, name: str) -> None:
    if mask.shape != image.shape[:2]:
        raise InputError(f"sample {name!r}: {what} {mask.shape} does not match image {image.shape}")


def _output_path(save_dir: Path, folder: str, name: str) -> Path:
    """save_dir/folder/NAME.png; a name may hold sub-folders (scene/frame), never leave save_dir."""
    relative = PurePosixPath(name.replace("\\", "/"))
    if relative.is_absolute() or ".." in relative.parts or not relative.parts:
        raise InputError(f"sample name {name!r} cannot be used as an output file name")
    return save_dir / folder / f"{relative}.png"


def _samples(dataset: Iterable[Mapping[str, Any]], limit: int | None) -> Iterable:
    """Readers of the first `limit` samples (all when None): each call returns one sample.

    Map-style data sets are read by index when the reader is called, so a file that cannot
    be decoded fails its own sample only, not the iteration.
    """
    if hasattr(dataset, "__len__") and hasattr(dataset, "__getitem__"):
        count = len(dataset) if limit is None else min(limit, len(dataset))
        return _Indexed(dataset, count)
    samples = dataset if limit is None else itertools.islice(dataset, limit)
    return (functools.partial(_given, sample) for sample in samples)


def _given(sample: Mapping[str, Any]) -> Mapping[str, Any]:
    return sample


class _Indexed:
    """Lazy readers of the first `count` items of a map-style data set (keeps len for the bar)."""

    def __init__(self, dataset: Any, count: int) -> None:
        self.dataset, self.count = dataset, count

    def __len__(self) -> int:
        return self.count

    def __iter__(self):
        return (functools.partial(self.dataset.__getitem__, index) for index in range(self.count))


def _progress(items: Iterable, enabled: bool) -> Iterable:
    if not enabled:
        return items
    from tqdm import tqdm

    total = len(items) if hasattr(items, "__len__") else None
    return tqdm(items, total=total, desc="eval", unit="image", leave=False)


def evaluate(
    restore: Restore,
    dataset: Iterable[Mapping[str, Any]],
    save_dir: str | os.PathLike | None = None,
    progress: bool = True,
    limit: int | None = None,
) -> EvalReport:
    """Run `restore` on every sample and score it and the blurry input against the sharp target.

    dataset: sample dicts {"blur", "sharp": (3, H, W) in [0, 1], "mask": (1, H, W) in {0, 1},
    "has_mask": bool, "name": str} (tensors or arrays). Full images: no crop, no padding.
    The restored image is quantized to 8 bits (`to_uint8`) before scoring, as it would be saved.
    `ms` comes from the restore stats, or is the wall time of the call when they have none; it
    includes the first (cold) call, so use `m2aenet bench` for timings to report.
    save_dir: when given, writes `restored/NAME.png` and `compare/NAME.png` (blur | restored |
    sharp | true vs predicted mask outlines) beneath it. limit: only the first `limit` samples.
    """
    save_path = Path(save_dir) if save_dir is not None else None
    rows: list[dict[str, Any]] = []
    input_rows: list[dict[str, Any]] = []
    failed: list[str] = []
    for read_sample in _progress(_samples(dataset, limit), progress):
        try:
            sample = read_sample()
        except InputError as error:  # a truncated or mismatched file: score the others
            failed.append(str(error))
            continue
        name = str(sample["name"])
        blur = _image_hwc(sample["blur"], "blur", name)
        sharp = _image_hwc(sample["sharp"], "sharp", name)
        if blur.shape != sharp.shape or blur.shape[2] != 3:
            raise InputError(f"sample {name!r}: blur {blur.shape} and sharp {sharp.shape} differ")
        gt_mask = None
        if sample.get("has_mask", True):
            gt_mask = _image_hwc(sample["mask"], "mask", name)[..., 0] > 0.5
            _check_mask_shape(gt_mask, blur, "mask", name)

        start = time.perf_counter()
        restored, pred_mask, stats = restore(blur)
        elapsed_ms = 1000.0 * (time.perf_counter() - start)
        stats = stats or {}
        restored = np.asarray(restored)
        if restored.shape != blur.shape:
            raise InputError(f"sample {name!r}: restored shape {restored.shape} != {blur.shape}")
        if pred_mask is not None:
            pred_mask = np.asarray(pred_mask).astype(bool, copy=False)
            _check_mask_shape(pred_mask, blur, "predicted mask", name)

        restored_u8, sharp_u8, blur_u8 = to_uint8(restored), to_uint8(sharp), to_uint8(blur)
        row: dict[str, Any] = {"name": name}
        row.update(image_metrics(restored_u8, sharp_u8, gt_mask, pred_mask))
        # Stats that are missing or None (e.g. FLOP counting switched off) are left out.
        row["ms"] = float(stats["ms"]) if stats.get("ms") is not None else elapsed_ms
        if "pred_fraction" not in row and stats.get("fraction") is not None:
            row["pred_fraction"] = float(stats["fraction"])
        row.update({key: float(stats[key]) for key in STAT_KEYS if stats.get(key) is not None})
        input_row = image_metrics(blur_u8, sharp_u8, gt_mask)
        row["input"] = input_row
        rows.append(row)
        input_rows.append(input_row)

        if save_path is not None:
            _save_pictures(save_path, name, blur_u8, restored_u8, sharp_u8, gt_mask, pred_mask, row)
    if not rows:
        if failed:
            raise InputError(f"no sample could be read; the first: {failed[0]}")
        raise InputError("the data set has no samples to evaluate")
    return EvalReport(rows, mean_metrics(rows), mean_metrics(input_rows), failed)


def _save_pictures(
    save_dir: Path,
    name: str,
    blur_u8: np.ndarray,
    restored_u8: np.ndarray,
    sharp_u8: np.ndarray,
    gt_mask: np.ndarray | None,
    pred_mask: np.ndarray | None,
    row: Mapping[str, Any],
) -> None:
    write_png(_output_path(save_dir, "restored", name), restored_u8)
    small = [fit_width(image, COMPARE_PANEL_WIDTH) for image in (blur_u8, restored_u8, sharp_u8)]
    masks = [None if m is None else fit_width(m, COMPARE_PANEL_WIDTH) for m in (gt_mask, pred_mask)]
    key = "psnr_w" if gt_mask is not None else "psnr"
    label = "PSNR_w" if gt_mask is not None else "PSNR"
    panels = [
        (f"blur  {label} {_fmt(row['input'][key], 2)} dB", small[0]),
        (f"restored  {label} {_fmt(row[key], 2)} dB", small[1]),
        ("sharp", small[2]),
        mask_comparison(small[0], *masks),
    ]
    write_png(_output_path(save_dir, "compare", name), side_by_side(panels))


def deblurrer_restore(deblurrer: Callable[[np.ndarray], Any]) -> Restore:
    """Adapt `m2aenet.api.Deblurrer` (result.image, result.mask, result.stats) to `Restore`."""

    def restore(blur: np.ndarray) -> tuple[np.ndarray, np.ndarray | None, Mapping[str, float]]:
        result = deblurrer(blur)
        return result.image, result.mask, dict(result.stats or {})

    return restore


__all__ = [
    "METRIC_KEYS", "STAT_KEYS", "EvalReport", "Restore", "deblurrer_restore", "evaluate",
    "jsonable",
]  # fmt: skip
