"""report.md of `m2aenet bench report`: headlines, targets, tables and plots.

Every sentence that states a result is computed from the numbers in the result dict (what
`run_report` returns, or report.json read back), never written in advance.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from m2aenet.bench.report_rows import (
    SPEEDUP_EXECUTOR,
    TARGET_FRACTION,
    TARGET_SPEEDUP,
    dense_reference_ms,
    speed_row,
)


def number(value: Any) -> float:
    """A JSON value as a float: None -> nan, the strings "inf"/"-inf" (report.json) -> inf."""
    if value is None:
        return math.nan
    return float(value)


def _fmt(value: Any, digits: int = 2) -> str:
    value = number(value)
    if math.isnan(value):
        return "-"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return f"{value:.{digits}f}"


def _percent(value: Any) -> str:
    value = number(value)
    return "-" if math.isnan(value) else f"{100 * value:.1f}%"


def _quality(result: dict[str, Any], label: str, key: str = "quality") -> dict[str, Any]:
    return next((row for row in result[key] if row["model"] == label), {})


def targets(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The two targets of the comparison, judged from the numbers.

    Each: {"target": text, "met": True / False / None (not measured), "detail": text}.
    1. PSNR_w of the pruned model >= the baseline's on the local test set;
    2. the pruned model (`SPEEDUP_EXECUTOR`) >= TARGET_SPEEDUP x faster than the baseline at
       TARGET_FRACTION blurred (`speedup_vs_baseline_at_10pct`).
    """
    name, baseline = result["model"], result["baseline"]
    ours = number(_quality(result, f"{name} (pruned)").get("psnr_w"))
    theirs = number(_quality(result, baseline).get("psnr_w"))
    if math.isnan(ours) or math.isnan(theirs):
        quality_met, quality_detail = None, "not measured"
    else:
        quality_met = ours >= theirs
        change = ours - theirs
        difference = f"{change:+.2f} dB" if math.isfinite(change) else "-"
        quality_detail = f"{_fmt(ours)} vs {_fmt(theirs)} dB, difference {difference}"
    speedup = number(result.get("speedup_vs_baseline_at_10pct"))
    if math.isnan(speedup):
        speed_met, speed_detail = None, f"not measured ({TARGET_FRACTION:g} not in --fractions)"
    else:
        speed_met = speedup >= TARGET_SPEEDUP
        speed_detail = f"{_fmt(speedup)}x with the `{SPEEDUP_EXECUTOR}` executor"
    return [
        {
            "target": f"{name} (pruned) PSNR_w >= {baseline} PSNR_w on local blur",
            "met": quality_met,
            "detail": quality_detail,
        },
        {
            "target": f"{name} (pruned) >= {TARGET_SPEEDUP:g}x faster than {baseline} "
            f"at {TARGET_FRACTION:.0%} blurred",
            "met": speed_met,
            "detail": speed_detail,
        },
    ]


def _verdict(met: bool | None) -> str:
    return {True: "**met**", False: "**not met**", None: "**not measured**"}[met]


def _data_line(result: dict[str, Any], kind: str) -> str:
    data = result["data"][kind]
    rows = result["quality" if kind == "local" else "quality_global"]
    count = rows[0].get("n", 0) if rows else 0
    images = f"{count} image{'' if count == 1 else 's'}"
    if data.get("synthesized"):
        return (
            f"{images} of synthetic {kind} blur, {data['size']}x{data['size']} px (data "
            f"engine, split {data['split']}, seed {data['seed']}; `{data['root']}`)"
        )
    return f"{images} from `{data['root']}`"


def _headlines(result: dict[str, Any]) -> list[str]:
    name, baseline = result["model"], result["baseline"]
    pruned, dense = _quality(result, f"{name} (pruned)"), _quality(result, f"{name} (dense)")
    base, source = _quality(result, baseline), _quality(result, "input")
    lines = [
        f"- Local blur: PSNR_w {name} (pruned) {_fmt(pruned.get('psnr_w'))} dB, "
        f"{name} (dense) {_fmt(dense.get('psnr_w'))} dB, {baseline} "
        f"{_fmt(base.get('psnr_w'))} dB, blurry input {_fmt(source.get('psnr_w'))} dB.",
        f"- {name} (pruned) processed {_percent(pruned.get('pred_fraction'))} of the pixels "
        f"at threshold {result['mask_threshold']:g} (truly blurred: "
        f"{_percent(source.get('fraction'))}; mask IoU {_fmt(pruned.get('mask_iou'), 3)}).",
    ]
    auto = speed_row(result["speed"], f"{name} ({SPEEDUP_EXECUTOR})", TARGET_FRACTION)
    base_speed = speed_row(result["speed"], baseline, TARGET_FRACTION)
    if auto and base_speed:
        lines.append(
            f"- At {TARGET_FRACTION:.0%} blurred, {auto['size']}x{auto['size']} px: {name} "
            f"{_fmt(auto['ms'], 0)} ms ({SPEEDUP_EXECUTOR} ran `{auto['ran']}`, "
            f"{_fmt(auto['gflops'])} GFLOPs) vs {baseline} {_fmt(base_speed['ms'], 0)} ms "
            f"({_fmt(base_speed['gflops'])} GFLOPs): "
            f"{_fmt(result['speedup_vs_baseline_at_10pct'])}x faster."
        )
    global_pruned = _quality(result, f"{name} (pruned)", "quality_global")
    global_base = _quality(result, baseline, "quality_global")
    global_input = _quality(result, "input", "quality_global")
    lines.append(
        f"- Global blur: PSNR {name} (pruned) {_fmt(global_pruned.get('psnr'))} dB "
        f"(processed {_percent(global_pruned.get('pred_fraction'))}), {baseline} "
        f"{_fmt(global_base.get('psnr'))} dB, input {_fmt(global_input.get('psnr'))} dB."
    )
    return lines


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def _quality_table(rows: Sequence[dict[str, Any]]) -> list[str]:
    header = [
        "model",
        "PSNR",
        "SSIM",
        "PSNR_w",
        "SSIM_w",
        "PSNR sharp",
        "mask IoU",
        "processed",
        "ms/image",
        "GFLOPs",
    ]
    lines = []
    for row in rows:
        sharp = _fmt(row.get("psnr_sharp"))
        infinite = row.get("n_inf", {}).get("psnr_sharp", 0)
        if infinite and sharp != "inf":
            sharp += f" ({infinite}/{row.get('n', '?')} inf)"
        lines.append(
            [
                row["model"],
                _fmt(row.get("psnr")),
                _fmt(row.get("ssim"), 4),
                _fmt(row.get("psnr_w")),
                _fmt(row.get("ssim_w"), 4),
                sharp,
                _fmt(row.get("mask_iou"), 3),
                _percent(row.get("pred_fraction")),
                _fmt(row.get("ms"), 1),
                _fmt(row.get("gflops")),
            ]
        )
    return _table(header, lines)


def _speed_tables(result: dict[str, Any]) -> list[str]:
    name, baseline, speed = result["model"], result["baseline"], result["speed"]
    labels = [baseline] + [f"{name} ({kind})" for kind in ("dense", "pixel", "tile", "auto")]
    fractions = sorted({row["fraction"] for row in speed})
    dense_ms = dense_reference_ms(speed, f"{name} (dense)")
    times, costs = [], []
    for fraction in fractions:
        rows = [speed_row(speed, label, fraction) or {} for label in labels]
        auto, base = rows[-1], rows[0]
        speedup = number(base.get("ms")) / number(auto.get("ms")) if auto.get("ms") else math.nan
        times.append(
            [_percent(fraction)]
            + [_fmt(row.get("ms"), 0) for row in rows[:-1]]
            + [
                f"{_fmt(auto.get('ms'), 0)} ({auto.get('ran', '-')})",
                _fmt(fraction * dense_ms, 0),
                _fmt(speedup) + "x",
            ]
        )
        costs.append(
            [_percent(fraction)]
            + [_fmt(row.get("gflops")) for row in rows]
            + [_fmt(row.get("peak_mb"), 0) for row in rows[:-1]]
        )
    short = [baseline, "dense", "pixel", "tile"]
    time_header = [
        "blurred",
        *(f"{label} ms" for label in short),
        "auto ms (ran)",
        "ideal ms",
        f"speedup vs {baseline}",
    ]
    cost_header = [
        "blurred",
        *(f"{label} GFLOPs" for label in [*short, "auto"]),
        *(f"{label} peak MB" for label in short),
    ]
    return _table(time_header, times) + [""] + _table(cost_header, costs)


def _threshold_table(curve: Sequence[dict[str, Any]]) -> list[str]:
    header = ["threshold", "PSNR_w", "SSIM_w", "processed", "mask IoU", "ms/image", "GFLOPs"]
    rows = [
        [
            f"{row['threshold']:g}",
            _fmt(row.get("psnr_w")),
            _fmt(row.get("ssim_w"), 4),
            _percent(row.get("pred_fraction")),
            _fmt(row.get("mask_iou"), 3),
            _fmt(row.get("ms"), 1),
            _fmt(row.get("gflops")),
        ]
        for row in curve
    ]
    return _table(header, rows)


def format_markdown(
    result: dict[str, Any], speed_plot: str = "speed.png", threshold_plot: str = "threshold.png"
) -> str:
    """The whole report.md; plots are linked by the given relative file names."""
    name, baseline, settings = result["model"], result["baseline"], result["settings"]
    machine = (
        f"{settings['cpu']} ({settings['cpu_count']} logical CPUs), "
        f"{settings['torch_threads']} torch threads, device `{settings['device']}`"
        + (f" ({settings['gpu']})" if settings.get("gpu") else "")
        + f", torch {settings['torch']}, Python {settings['python']}, {settings['date']}"
    )
    size = settings["size"]
    lines = [
        f"# {name} vs the dense baseline {baseline}",
        "",
        "Generated by:",
        "",
        "```",
        settings["command"],
        "```",
        "",
        f"Machine: {machine}.",
        "",
        f"Weights: {name} `{settings['weights_path']}`; {baseline} "
        f"`{settings['baseline_weights_path']}`.",
        "",
        "## Headlines",
        "",
        *_headlines(result),
        "",
        "## Targets",
        "",
        *(
            f"- {item['target']}: {_verdict(item['met'])} ({item['detail']})."
            for item in targets(result)
        ),
        "",
        "## Quality on local blur",
        "",
        f"{_data_line(result, 'local')}. {name} (pruned) uses the mask it predicts at "
        f"threshold {result['mask_threshold']:g}; (dense) runs every pixel.",
        "",
        *_quality_table(result["quality"]),
        "",
        "## Quality on global blur (sanity check)",
        "",
        f"{_data_line(result, 'global')}. Every pixel is blurred: PSNR_w equals PSNR.",
        "",
        *_quality_table(result["quality_global"]),
        "",
        f"## Speed and FLOPs vs blurred fraction ({size}x{size} px)",
        "",
        f"![time vs blurred fraction]({speed_plot})",
        "",
        *_speed_tables(result),
        "",
        f"ms: median per image. Ideal: blurred fraction x the median time of {name} run "
        "densely (`dense`: every pixel, all-ones mask). At 0% only the mask predictor runs; at "
        "100% every pixel is kept. `auto` picks an executor per image (`ran`: its choice; "
        "`none`: nothing kept). Peak MB: memory added by one forward pass.",
        "",
        "## Threshold curve (local blur)",
        "",
        f"![PSNR_w and time vs threshold]({threshold_plot})",
        "",
        *_threshold_table(result["threshold_curve"]),
        "",
        "## How it was measured",
        "",
        "- Quality: `m2aenet.evaluation.evaluate`: outputs quantized to 8 bits as saved PNGs; "
        "PSNR/SSIM on RGB; PSNR_w/SSIM_w over the true blur mask; PSNR sharp over the rest "
        "(infinite where untouched: such images are counted and left out of the mean). "
        "ms/image: network time (`Deblurrer` stats), mean over the images after one warm-up.",
        f"- Speed: a smooth synthetic {size}x{size} image and blob masks of exact fractions "
        "(`m2aenet.bench.pruning.make_image`/`make_mask`); medians of "
        f"{settings['repeats']} interleaved runs after {settings['warmup']} warm-up; the dense "
        "rows are measured again at every fraction. GFLOPs: `m2aenet.flops.count_flops`. "
        "Peak MB: one forward pass in a fresh process (CPU resident set) or "
        "`torch.cuda.max_memory_allocated`.",
        f"- Speedup: {baseline} ms / {name} ms with the `{SPEEDUP_EXECUTOR}` executor (what "
        "`Deblurrer` runs by default) at the same fraction.",
        "",
    ]
    return "\n".join(lines)
