"""Training curves: loss and validation PSNR_w against step, drawn from log.jsonl."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from m2aenet.atomic import atomic_path


def read_log(path: Path) -> list[dict[str, Any]]:
    """Rows of a JSONL log; a torn last line (the process was killed mid-write) is skipped."""
    rows = []
    if not Path(path).is_file():
        return rows
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def plot_curves(log_path: Path, png_path: Path) -> None:
    """Write a PNG with training loss (left) and validation PSNR_w in dB (right) vs step."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    rows = read_log(log_path)
    train = [row for row in rows if row.get("kind") == "train"]
    val = [row for row in rows if row.get("kind") == "val"]
    figure = Figure(figsize=(10, 4), layout="constrained")
    loss_axes, psnr_axes = figure.subplots(1, 2)
    if train:
        loss_axes.plot([r["step"] for r in train], [r["loss"] for r in train], lw=1)
        if all(r["loss"] > 0 for r in train):
            loss_axes.set_yscale("log")
    loss_axes.set(title="training loss", xlabel="step", ylabel="loss")
    loss_axes.grid(alpha=0.3)
    points = [(r["step"], r["psnr_w"]) for r in val if r.get("psnr_w") is not None]
    if points:
        steps, values = zip(*points, strict=True)
        psnr_axes.plot(steps, values, marker="o", lw=1, label="EMA output")
    inputs = [r["input_psnr_w"] for r in val if r.get("input_psnr_w") is not None]
    if inputs:
        psnr_axes.axhline(inputs[-1], color="gray", ls="--", lw=1, label="blurry input")
    if points or inputs:
        psnr_axes.legend(loc="lower right")
    psnr_axes.set(title="validation PSNR_w (blurred region)", xlabel="step", ylabel="dB")
    psnr_axes.grid(alpha=0.3)
    with atomic_path(png_path) as tmp:
        figure.savefig(tmp, format="png", dpi=100)
