"""Score weights the way recipe probes are compared: per-image PSNR_w gains on fixed sets.

Two numbers per set answer two questions: through the ground-truth mask (`true_mask`) the
body's progress alone; through the predicted mask (`predicted`) what a user gets. Gains are
split by the longest blur path of each image (from the set's meta.json), because whether the
body's reach matches the blur is the first design question (docs/training.md).
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from m2aenet.imageio import to_uint8
from m2aenet.metrics import mask_iou, psnr

#: Upper edges (px) of the blur-length buckets gains are split into.
BLUR_BUCKETS = (8.0, 20.0, 40.0, math.inf)


def blur_lengths(root: Path) -> dict[str, float]:
    """Longest blur path (px) of each image of a synthetic set, by name; {} without meta."""
    meta_path = Path(root) / "meta.json"
    if not meta_path.is_file():
        return {}
    meta = json.loads(meta_path.read_text())
    lengths = {}
    for image in meta.get("images", []):
        paths = [obj.get("blur_px", 0.0) for obj in image.get("objects", [])]
        lengths[image["name"]] = max(paths) if paths else float(image.get("blur_px", 0.0))
    return lengths


def bucket_name(length: float) -> str:
    """'<8', '8-20', '20-40' or '>40' for a blur length in px."""
    edges = (0.0, *BLUR_BUCKETS)
    for low, high in zip(edges, edges[1:], strict=False):
        if length < high:
            if low == 0:
                return f"<{high:g}"
            return f">{low:g}" if math.isinf(high) else f"{low:g}-{high:g}"
    return f">{edges[-2]:g}"  # nan


def summarize(gains: Sequence[float]) -> dict[str, float]:
    """Mean, median, share of images made worse (gain < 0) and count of per-image gains."""
    values = [g for g in gains if math.isfinite(g)]
    if not values:
        return {"mean": math.nan, "median": math.nan, "worse": math.nan, "n": 0}
    return {
        "mean": statistics.fmean(values),
        "median": statistics.median(values),
        "worse": sum(g < 0 for g in values) / len(values),
        "n": len(values),
    }


def _psnr_w(image: torch.Tensor, sharp_u8: np.ndarray, blur_mask: np.ndarray) -> float:
    """PSNR over the blur mask of a (1, 3, H, W) float image, after 8-bit rounding."""
    restored = to_uint8(image[0].clamp(0, 1).permute(1, 2, 0).numpy())
    return psnr(restored, sharp_u8, mask=blur_mask)


@torch.no_grad()
def score_set(model: nn.Module, dataset: Any, root: Path) -> dict[str, Any]:
    """Per-image PSNR_w gains over the input through the true and the predicted mask.

    dataset: items with "blur", "sharp", "mask" (C, H, W) float tensors and "name".
    Returns {"true_mask": summary, "predicted": summary, "by_blur": {bucket: summary of
    true-mask gains}, "mask_iou", "marked_over_true", "rows": per-image rows}.
    """
    lengths = blur_lengths(root)
    model.eval()
    rows = []
    for index in range(len(dataset)):
        item = dataset[index]
        blur, mask = item["blur"][None], item["mask"][None]
        sharp_u8 = to_uint8(item["sharp"].permute(1, 2, 0).numpy())
        true = item["mask"][0].numpy() > 0.5
        row: dict[str, Any] = {"name": item["name"], "blur_px": lengths.get(item["name"], math.nan)}

        row["input"] = _psnr_w(blur, sharp_u8, true)
        row["true_mask"] = _psnr_w(model(blur, mask=mask).image, sharp_u8, true) - row["input"]
        predicted = model(blur)
        row["predicted"] = _psnr_w(predicted.image, sharp_u8, true) - row["input"]
        marked = predicted.mask[0, 0].numpy() > 0.5
        row["mask_iou"] = mask_iou(marked, true)
        row["marked_over_true"] = float(marked.mean() / max(true.mean(), 1e-9))
        rows.append(row)
    by_blur: dict[str, list[float]] = {}
    for row in rows:
        if math.isfinite(row["blur_px"]):
            by_blur.setdefault(bucket_name(row["blur_px"]), []).append(row["true_mask"])
    return {
        "true_mask": summarize([r["true_mask"] for r in rows]),
        "predicted": summarize([r["predicted"] for r in rows]),
        "by_blur": {name: summarize(values) for name, values in sorted(by_blur.items())},
        "mask_iou": float(np.mean([r["mask_iou"] for r in rows])),
        "marked_over_true": float(np.mean([r["marked_over_true"] for r in rows])),
        "rows": rows,
    }


def format_scores(name: str, scores: dict[str, Any]) -> str:
    """One line per set: gains through the true / predicted mask and by blur length."""
    lines = []
    for set_name, result in scores.items():
        true, pred = result["true_mask"], result["predicted"]
        buckets = " ".join(
            f"{bucket}:{summary['mean']:+.2f}({summary['n']})"
            for bucket, summary in result["by_blur"].items()
        )
        lines.append(
            f"{name} {set_name}: true-mask {true['mean']:+.3f} dB (median {true['median']:+.3f}, "
            f"worse {true['worse']:.0%}) | predicted {pred['mean']:+.3f} dB (worse "
            f"{pred['worse']:.0%}, IoU {result['mask_iou']:.2f}, marked/true "
            f"{result['marked_over_true']:.2f}x) | by blur px {buckets}"
        )
    return "\n".join(lines)
