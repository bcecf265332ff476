"""Turn a finished run into weights a user loads: threshold calibrated on val, training summary.

Used by `m2aenet recipe` (its last step), `scripts/ship_weights.py` (into the package) and
`benchmarks/calibrate_threshold.py` (the table alone).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

IDLE_GAP_S = 300  # a longer pause between log rows is a stop, not training time
TIE_DB = 0.01  # PSNR_w differences this small are noise, not quality


@dataclass(frozen=True)
class ThresholdRow:
    """One threshold's result on the validation set (pruned deploy model)."""

    threshold: float
    psnr_w: float
    input_psnr_w: float
    mask_iou: float
    pred_fraction: float
    ms: float
    true_fraction: float = float("nan")  # the val set's blurred share (its true masks)

    @property
    def marked_over_true(self) -> float:
        return self.pred_fraction / self.true_fraction if self.true_fraction > 0 else float("nan")


def training_seconds(log: Path) -> float:
    """Seconds between consecutive log rows, leaving out stops longer than IDLE_GAP_S."""
    times = [json.loads(line)["time"] for line in log.read_text().splitlines() if line.strip()]
    return sum(b - a for a, b in zip(times, times[1:], strict=False) if b - a < IDLE_GAP_S)


def threshold_table(
    weights: str | Path, val_dir: str | Path, thresholds: Sequence[float]
) -> list[ThresholdRow]:
    """Deblur `val_dir` (generic layout) once per threshold with the pruned deploy model."""
    from m2aenet.api import Deblurrer
    from m2aenet.data.datasets import open_dataset
    from m2aenet.evaluation import deblurrer_restore, evaluate

    dataset = open_dataset(val_dir, "generic", crop_size=None, augment=False)
    deblurrer = Deblurrer.from_pretrained(weights, device="cpu", count_flops=False)
    rows = []
    for threshold in sorted(float(t) for t in thresholds):
        deblurrer.model.mask_threshold = threshold
        report = evaluate(deblurrer_restore(deblurrer), dataset, progress=False)
        mean, before = report.mean, report.input_mean
        rows.append(
            ThresholdRow(
                threshold,
                float(mean["psnr_w"]),
                float(before["psnr_w"]),
                float(mean.get("mask_iou", float("nan"))),
                float(mean.get("pred_fraction", float("nan"))),
                float(mean["ms"]),
                float(mean.get("fraction", float("nan"))),
            )
        )
    return rows


def choose_threshold(rows: Sequence[ThresholdRow], max_marked: float | None = None) -> float:
    """The highest threshold (fewest pixels processed, fastest) whose PSNR_w is within TIE_DB
    of the best one, among the thresholds that mark at most `max_marked` times the truly
    blurred share (all of them without a cap; the one marking least where none qualifies).

    Why a cap: PSNR_w is measured on the blurred pixels only, so marking sharp ones costs it
    nothing and it alone always favours the lowest threshold, while every marked pixel costs
    time and, on real photos, a chance of changing what was sharp."""
    if not rows:
        raise ValueError("no thresholds were scored")
    allowed = list(rows)
    if max_marked is not None:
        allowed = [row for row in rows if row.marked_over_true <= max_marked]
        if not allowed:
            allowed = [min(rows, key=lambda row: row.pred_fraction)]
    top = max(row.psnr_w for row in allowed)
    return max(row.threshold for row in allowed if row.psnr_w >= top - TIE_DB)


@dataclass(frozen=True)
class WholeFrameRow:
    """One whole-frame share's mean PSNR_w gain (dB, output - input) per validation folder,
    and the share of the folders' sharp images it would restore whole (it should be none)."""

    fraction: float
    gains: dict[str, float]
    sharp_whole: float = 0.0

    @property
    def total(self) -> float:
        return sum(self.gains.values())


def whole_frame_table(
    weights: str | Path,
    threshold: float | None,
    val_dirs: Sequence[str | Path],
    fractions: Sequence[float],
) -> list[WholeFrameRow]:
    """Deblur every folder once per `whole_frame_fraction` (1.0: the decision off) with the
    pruned deploy model at `threshold` (None: the weights' own)."""
    from m2aenet.api import Deblurrer
    from m2aenet.data.datasets import open_dataset
    from m2aenet.evaluation import deblurrer_restore, evaluate

    deblurrer = Deblurrer.from_pretrained(weights, device="cpu", count_flops=False)
    if threshold is not None:
        deblurrer.model.mask_threshold = threshold
    datasets = {
        str(folder): open_dataset(folder, "generic", crop_size=None, augment=False)
        for folder in val_dirs
    }
    sharp = _sharp_image_shares(deblurrer, datasets.values())
    rows = []
    for fraction in sorted(float(f) for f in fractions):
        deblurrer.model.whole_frame_fraction = fraction
        gains = {}
        for folder, dataset in datasets.items():
            report = evaluate(deblurrer_restore(deblurrer), dataset, progress=False)
            gains[folder] = float(report.mean["psnr_w"] - report.input_mean["psnr_w"])
        whole = sum(share >= fraction for share in sharp) / max(len(sharp), 1)
        rows.append(WholeFrameRow(fraction, gains, whole if fraction < 1.0 else 0.0))
    return rows


def _sharp_image_shares(deblurrer: Any, datasets: Any) -> list[float]:
    """The share of each sharp (ground-truth) image the model marks, with the whole-frame
    decision off: a frame at or above the whole-frame share would be restored whole."""
    import torch

    model, saved = deblurrer.model, deblurrer.model.whole_frame_fraction
    model.whole_frame_fraction = 1.0
    shares = []
    try:
        with torch.no_grad():
            for dataset in datasets:
                for item in dataset:
                    output = model(item["sharp"][None].to(deblurrer.device))
                    shares.append(float(output.mask.float().mean()))
    finally:
        model.whole_frame_fraction = saved
    return shares


def choose_whole_frame(rows: Sequence[WholeFrameRow]) -> float:
    """The highest share (fewest frames restored whole) whose summed gain over the folders is
    within TIE_DB of the best, among the shares that restore none of the folders' sharp images
    whole (a predictor that marks a third of a sharp photo must not turn it into camera shake;
    1.0, the decision off, always qualifies)."""
    if not rows:
        raise ValueError("no whole-frame shares were scored")
    allowed = [row for row in rows if row.sharp_whole == 0.0] or [WholeFrameRow(1.0, {}, 0.0)]
    top = max(row.total for row in allowed)
    return max(row.fraction for row in allowed if row.total >= top - TIE_DB)


def format_whole_frame_table(rows: Sequence[WholeFrameRow]) -> str:
    """One row per share: its PSNR_w gain on each folder and their sum."""
    folders = list(rows[0].gains) if rows else []
    lines = ["whole_frame_fraction  " + "  ".join(folders) + "  sum  sharp_images_whole"]
    for row in rows:
        gains = "  ".join(f"{row.gains[f]:+.3f}".rjust(len(f)) for f in folders)
        lines.append(f"{row.fraction:20.2f}  {gains}  {row.total:+.3f}  {row.sharp_whole:.2f}")
    return "\n".join(lines)


def format_threshold_table(rows: Sequence[ThresholdRow]) -> str:
    """The table `calibrate_threshold.py` prints, one row per threshold."""
    lines = ["threshold  psnr_w  input_psnr_w  mask_iou  pred_fraction  marked/true  ms"]
    for row in rows:
        lines.append(
            f"{row.threshold:9.2f}  {row.psnr_w:6.3f}  {row.input_psnr_w:12.3f}  "
            f"{row.mask_iou:8.3f}  {row.pred_fraction:13.4f}  {row.marked_over_true:10.2f}x  "
            f"{row.ms:5.0f}"
        )
    return "\n".join(lines)


def ship_run(
    run: str | Path,
    target: str | Path,
    threshold: float | None = None,
    note: str = "",
    whole_frame_fraction: float | None = None,
    registered_as: str | None = None,
    whole_frame_extent: float | None = None,
) -> Path:
    """Write RUN/final_ema as `target` (.safetensors + .json sidecar): the threshold, the
    whole-frame share and blur extent in the config (so a lone .safetensors loads with them
    too) and a `training` summary (steps, compute hours from log.jsonl, command, note). A run
    without a log.jsonl holds weights derived from others (a predictor swap): its summary keeps
    the compute hours of the weights it came from, and `note` follows their note.
    `registered_as` names the weights' architecture by another registered name of the same
    model class (the shipped architecture's own name). Returns the weights path."""
    from m2aenet.checkpoint import load_model, model_record, read_record, save_model

    run = Path(run)
    source = run / "final_ema.safetensors"
    record = read_record(source)
    model = load_model(source)
    if registered_as is not None:
        model = _renamed(model, registered_as)
    calibrated = {
        key: value
        for key, value in (
            ("mask_threshold", threshold),
            ("whole_frame_fraction", whole_frame_fraction),
            ("whole_frame_extent", whole_frame_extent),
        )
        if value is not None
    }
    model.config = dataclasses.replace(model.config, **calibrated)
    for key, value in calibrated.items():  # the live model reads its own copies
        setattr(model, key, value)
    extra: dict[str, Any] = {
        key: value for key, value in record.items() if key not in model_record(model)
    }
    log = run / "log.jsonl"
    if log.is_file():
        hours = round(training_seconds(log) / 3600, 2)
    else:  # derived weights: what they were trained with is the record they inherited
        inherited = record.get("training") or {}
        hours = inherited.get("compute_hours")
        note = "; ".join(part for part in (inherited.get("note"), note) if part)
    extra["training"] = {
        "steps": record.get("step"),
        "compute_hours": hours,
        "command": record.get("command"),
        "note": note,
    }
    return save_model(target, model, extra)


def _renamed(model: Any, name: str) -> Any:
    """`model` under the registered `name`: the same class and tensors, its config re-made as
    `name`'s config class (ConfigError if `name` builds another kind of model)."""
    from m2aenet.errors import ConfigError
    from m2aenet.registry import create_model

    renamed = create_model(name, **dataclasses.asdict(model.config))
    if type(renamed) is not type(model):
        raise ConfigError(
            f"{name} builds a {type(renamed).__name__}, the weights are a {type(model).__name__}"
        )
    renamed.load_state_dict(model.state_dict())
    return renamed
