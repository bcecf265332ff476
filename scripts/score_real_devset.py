"""Score a model's blur mask on the real development set (devset/real) and draw its pictures.

For every blurred photo: mask recall (share of the hand-marked blurred region that the model
marks) and precision (share of the model's marks that lie on the region or within --near px of
it); for every sharp photo: the share of pixels marked (a good mask marks nearly none). Writes
OUT/NAME.png (input | restored | mask | zooms, plus the true-vs-predicted mask outlines),
OUT/scores.json and prints a table. `--regions-only` draws the hand-marked regions over the
photos without running a model (to check the polygons by eye).

    PYTHONPATH=src OMP_NUM_THREADS=1 nice -n 19 python scripts/score_real_devset.py --out scores
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

DEVSET = Path(__file__).resolve().parents[1] / "devset" / "real"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def rasterize(region: dict) -> np.ndarray:
    """A regions.json entry -> bool (H, W) mask: its polygons filled, or all True if "whole"."""
    from skimage.draw import polygon

    width, height = region["size"]
    mask = np.full((height, width), bool(region.get("whole")), dtype=bool)
    for points in region.get("polygons", []):
        xy = np.asarray(points, dtype=np.float64)
        rows, cols = polygon(xy[:, 1], xy[:, 0], shape=(height, width))
        mask[rows, cols] = True
    return mask


def mask_scores(predicted: np.ndarray, truth: np.ndarray, near: int) -> dict:
    """Recall of `truth` by `predicted` and precision against `truth` grown by `near` px.

    Precision is NaN when nothing is marked (undefined: the table shows "-").
    """
    grown = ndimage.binary_dilation(truth, iterations=near) if near > 0 else truth
    marked = int(predicted.sum())
    return {
        "recall": float((predicted & truth).sum() / max(int(truth.sum()), 1)),
        "precision": float((predicted & grown).sum() / marked) if marked else math.nan,
        "marked": float(predicted.mean()),
        "true_fraction": float(truth.mean()),
    }


def _photos(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def _read(path: Path) -> np.ndarray:
    from m2aenet.imageio import read_rgb, to_uint8

    return to_uint8(read_rgb(path))


def _picture(image: np.ndarray, restored: np.ndarray, predicted, truth) -> np.ndarray:
    from m2aenet.visualize import (
        fit_width,
        mask_comparison,
        restoration_comparison,
        side_by_side,
    )

    title, outlines = mask_comparison(image, truth, predicted)
    top = restoration_comparison(image, restored, predicted)
    bottom = side_by_side([(title, fit_width(outlines, 512))])
    width = max(top.shape[1], bottom.shape[1])
    pad = [np.pad(p, ((0, 0), (0, width - p.shape[1]), (0, 0))) for p in (top, bottom)]
    return np.concatenate(pad, axis=0)


def _format(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.2f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devset", type=Path, default=DEVSET)
    parser.add_argument("--out", type=Path, required=True, help="folder for pictures and scores")
    parser.add_argument("--weights", default="default", help="shipped name or .safetensors")
    parser.add_argument("--threshold", type=float, help="mask threshold (default: the model's)")
    parser.add_argument("--near", type=int, default=4, help="px around the region that count")
    parser.add_argument("--regions-only", action="store_true", help="draw the regions only")
    args = parser.parse_args()

    from m2aenet.imageio import write_png

    regions = json.loads((args.devset / "regions.json").read_text())
    args.out.mkdir(parents=True, exist_ok=True)
    blurred = {p.stem: p for p in _photos(args.devset / "blurred")}
    if set(blurred) != set(regions):
        raise SystemExit(
            f"regions.json and blurred/ disagree: {sorted(set(blurred) ^ set(regions))}"
        )
    if args.regions_only:
        from m2aenet.visualize import mask_overlay

        for name, path in blurred.items():
            truth = rasterize(regions[name])
            write_png(args.out / f"{name}_regions.png", mask_overlay(_read(path), truth))
        print(f"wrote {len(blurred)} region pictures to {args.out}")
        return 0

    import torch

    from m2aenet.api import Deblurrer

    torch.set_num_threads(1)
    deblurrer = Deblurrer.from_pretrained(
        args.weights, device="cpu", threshold=args.threshold, count_flops=False
    )
    rows, scores = [], {"blurred": {}, "sharp": {}}
    for name, path in blurred.items():
        image = _read(path)
        truth = rasterize(regions[name])
        if truth.shape != image.shape[:2]:
            raise SystemExit(
                f"{path}: size {image.shape[1::-1]} but regions.json says {regions[name]['size']}"
            )
        start = time.perf_counter()
        result = deblurrer(image)
        seconds = time.perf_counter() - start
        found = mask_scores(result.mask, truth, args.near) | {"seconds": round(seconds, 2)}
        scores["blurred"][name] = found
        write_png(args.out / f"{name}.png", _picture(image, result.image, result.mask, truth))
        rows.append(
            f"| {name} | blurred | {100 * found['true_fraction']:.1f}% | "
            f"{100 * found['marked']:.1f}% | {_format(found['recall'])} | "
            f"{_format(found['precision'])} |"
        )
    for path in _photos(args.devset / "sharp"):
        image = _read(path)
        result = deblurrer(image)
        marked = float(result.mask.mean())
        scores["sharp"][path.stem] = {"marked": marked}
        write_png(
            args.out / f"sharp_{path.stem}.png",
            _picture(image, result.image, result.mask, np.zeros_like(result.mask)),
        )
        rows.append(f"| {path.stem} | sharp | 0% | {100 * marked:.1f}% | | |")
    scores["settings"] = {
        "weights": str(args.weights),
        "threshold": args.threshold,
        "near": args.near,
    }
    (args.out / "scores.json").write_text(json.dumps(scores, indent=1) + "\n")
    print(f"| photo | kind | truly blurred | marked | recall | precision (within {args.near} px) |")
    print("|---|---|---|---|---|---|")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
