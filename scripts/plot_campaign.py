"""Draw the campaign's learning curve: val-local PSNR_w gain (true mask), stage after stage.

    python scripts/plot_campaign.py campaign/stage3 campaign/stage4 \
        --out docs/images/campaign_curve.png

Each run folder's log.jsonl gives its validation rows; a later stage continues the earlier one's
step count (stage 4 started from stage 3's step 9000 weights), so the x axis is the campaign's
total steps (batch 12 of 128-px crops, ~2 core-seconds each on this CPU). The true-mask figure
is the body's progress, comparable across stages whatever predictor each one carried.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from m2aenet.train.plots import read_log


def stage_points(folder: Path, offset: int) -> tuple[list[int], list[float], float | None]:
    """(campaign steps, true-mask PSNR_w, blurry input PSNR_w if logged) of one run folder."""
    rows = [r for r in read_log(folder / "log.jsonl") if r.get("kind") == "val"]
    inputs = [r["input_psnr_w"] for r in rows if r.get("input_psnr_w") is not None]
    steps = [offset + r["step"] for r in rows]
    return steps, [r["psnr_w_true_mask"] for r in rows], inputs[0] if inputs else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run folders, in campaign order")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8, 4), layout="constrained")
    axes = figure.subplots()
    offset, baseline = 0, None
    for folder in args.runs:
        steps, values, input_psnr_w = stage_points(folder, offset)
        baseline = baseline if baseline is not None else input_psnr_w
        if not steps:
            raise SystemExit(f"{folder}: no validation rows in log.jsonl")
        if baseline is None:
            raise SystemExit(f"{folder}: the first run's log must record input_psnr_w")
        gains = [value - baseline for value in values]
        axes.plot(steps, gains, marker="o", ms=3, lw=1, label=folder.name)
        offset = steps[-1]
    axes.set(
        title="val-local PSNR_w gain over the blurry input (true mask, EMA weights)",
        xlabel="campaign step (batch 12, 128-px crops)",
        ylabel="dB",
    )
    axes.grid(alpha=0.3)
    axes.legend(loc="lower right")
    figure.savefig(args.out, dpi=100)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
