"""The plots of `m2aenet bench report`: time vs blurred fraction, and the threshold curve."""

from __future__ import annotations

import math
import os
from typing import Any

from m2aenet.atomic import atomic_path
from m2aenet.bench.report_rows import dense_reference_ms


def _figure(columns: int) -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    figure = Figure(figsize=(5.5 * columns, 4), layout="constrained")
    return figure, figure.subplots(1, columns)


def _save(figure: Any, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=110)


def _series(speed: list[dict[str, Any]], label: str, key: str) -> tuple[list, list]:
    points = sorted((row["fraction"], row[key]) for row in speed if row["model"] == label)
    return [100 * fraction for fraction, _ in points], [value for _, value in points]


def plot_speed(result: dict[str, Any], path: str | os.PathLike) -> None:
    """PNG: ms (left) and GFLOPs (right) against the blurred fraction in %, for the baseline,
    the model's executors, and the ideal `fraction x dense time` line."""
    name, baseline, speed = result["model"], result["baseline"], result["speed"]
    figure, (time_axes, flops_axes) = _figure(2)
    styles = {baseline: "k-", f"{name} (dense)": "C7--"}
    styles.update({f"{name} ({kind})": f"C{i}-o" for i, kind in enumerate(("pixel", "tile"))})
    styles[f"{name} (auto)"] = "C2:^"
    for label, style in styles.items():
        for axes, key in ((time_axes, "ms"), (flops_axes, "gflops")):
            xs, ys = _series(speed, label, key)
            if xs:
                axes.plot(xs, ys, style, label=label, lw=1.2, ms=4)
    fractions = sorted({row["fraction"] for row in speed})
    dense_ms = dense_reference_ms(speed, f"{name} (dense)")
    time_axes.plot(
        [100 * f for f in fractions],
        [f * dense_ms for f in fractions],
        color="C3",
        lw=1,
        label=f"ideal: fraction x {name} dense",
    )
    size = speed[0]["size"] if speed else "?"
    time_axes.set(
        title=f"time per {size}x{size} image", xlabel="blurred pixels (%)", ylabel="ms (median)"
    )
    flops_axes.set(title="arithmetic", xlabel="blurred pixels (%)", ylabel="GFLOPs")
    for axes in (time_axes, flops_axes):
        axes.set_ylim(bottom=0)
        axes.grid(alpha=0.3)
    time_axes.legend(fontsize=8)
    _save(figure, path)


def plot_threshold_curve(result: dict[str, Any], path: str | os.PathLike) -> None:
    """PNG: PSNR_w (left, with the baseline's and the input's) and ms per image with the
    processed fraction (right) against the mask threshold."""
    name, baseline, curve = result["model"], result["baseline"], result["threshold_curve"]
    figure, (psnr_axes, time_axes) = _figure(2)
    thresholds = [row["threshold"] for row in curve]
    psnr_axes.plot(thresholds, [row["psnr_w"] for row in curve], "C0-o", label=name)
    for label, color, line in ((baseline, "k", "--"), ("input", "C7", ":")):
        row = next((row for row in result["quality"] if row["model"] == label), {})
        if math.isfinite(row.get("psnr_w") or math.nan):
            psnr_axes.axhline(row["psnr_w"], color=color, linestyle=line, lw=1, label=label)
    psnr_axes.set(title="quality (local blur)", xlabel="mask threshold", ylabel="PSNR_w (dB)")
    psnr_axes.legend(fontsize=8)
    time_axes.plot(thresholds, [row["ms"] for row in curve], "C1-o", label="ms / image")
    base = next((row for row in result["quality"] if row["model"] == baseline), {})
    if math.isfinite(base.get("ms") or math.nan):
        time_axes.axhline(base["ms"], color="k", linestyle="--", lw=1, label=baseline)
    time_axes.set(title="time (local blur)", xlabel="mask threshold", ylabel="ms per image")
    time_axes.set_ylim(bottom=0)
    kept_axes = time_axes.twinx()
    kept = [100 * (row["pred_fraction"] or 0.0) for row in curve]
    kept_axes.plot(thresholds, kept, "C2--s", ms=4, label="processed pixels (%)")
    kept_axes.set(ylabel="processed pixels (%)", ylim=(0, 100))
    handles = time_axes.get_legend_handles_labels()
    more = kept_axes.get_legend_handles_labels()
    time_axes.legend(handles[0] + more[0], handles[1] + more[1], fontsize=8)
    for axes in (psnr_axes, time_axes):
        axes.grid(alpha=0.3)
    _save(figure, path)
