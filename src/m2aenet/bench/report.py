"""The comparison report: M2AENet (dense and pruned) against the dense baseline nafnet-s.

`run_report(settings)` measures, in one run and on the same data:
  1. quality on a local-blur test set (`m2aenet.evaluation.evaluate`: the project's metrics);
  2. speed, FLOPs and peak memory against the blurred fraction (`report_speed`);
  3. PSNR_w and time as the mask threshold varies;
  4. quality on a global-blur set (a sanity check: there every pixel is blurred).
Test sets not given are synthesized deterministically by the data engine (split `test`) into
a work folder and reused while their meta.json matches. `write_report(result, out)` writes
report.json, report.md and the plots (`report_plots`). This module imports only the standard
library at load time, so the CLI reads its defaults without slowing `m2aenet --help`.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from m2aenet.bench.report_rows import SPEEDUP_EXECUTOR, speedup_at

BASELINE_MODEL = "nafnet-s"
BASELINE_WEIGHTS = "benchmarks/weights/nafnet-s.safetensors"
BASELINE_TRAIN_COMMAND = "m2aenet train configs/nafnet-s.yaml"
DEFAULT_WORK = "runs/report-data"
LOCAL_SEED, GLOBAL_SEED = 100, 101
#: Mean metrics copied into a quality row (`pruned_gflops` becomes `gflops`).
QUALITY_KEYS = ("psnr", "ssim", "psnr_w", "ssim_w", "psnr_sharp", "mask_iou", "mask_f1")
QUALITY_KEYS += ("pred_fraction", "fraction", "ms", "pruned_gflops")


@dataclass
class ReportSettings:
    """The command line of `m2aenet bench report` (see `commands/bench.py` for each option).

    data / global_data: generic-layout folders; None synthesizes `count` / `global_count`
    images of `image_size` px into `work` (from `sources` photos, or the test split's).
    """

    out: str = "docs/benchmarks"
    weights: str = "default"
    baseline_weights: str = BASELINE_WEIGHTS
    data: str | None = None
    global_data: str | None = None
    work: str = DEFAULT_WORK
    sources: tuple[str, ...] | None = None
    count: int = 30
    global_count: int = 10
    image_size: int = 512
    size: int = 1024
    fractions: tuple[float, ...] = (0.0, 0.05, 0.1, 0.25, 0.5, 1.0)
    thresholds: tuple[float, ...] = (0.3, 0.5, 0.7, 0.8, 0.9)  # the shipped weights use 0.8
    threads: int = 2
    repeats: int = 3
    warmup: int = 1
    device: str = "cpu"
    memory: bool = True
    progress: bool = True


def command_line(settings: ReportSettings) -> str:
    """The full `m2aenet bench report ...` command that reproduces these settings."""
    words = ["m2aenet", "bench", "report", "--out", settings.out, "--weights", settings.weights]
    words += ["--baseline-weights", settings.baseline_weights]
    words += ["--data", settings.data] if settings.data else ["--count", str(settings.count)]
    if settings.global_data:
        words += ["--global-data", settings.global_data]
    else:
        words += ["--global-count", str(settings.global_count)]
    if not (settings.data and settings.global_data):
        words += ["--work", settings.work, "--image-size", str(settings.image_size)]
        words += ["--sources", *settings.sources] if settings.sources else []
    words += ["--size", str(settings.size), "--fractions", join_values(settings.fractions)]
    words += ["--thresholds", join_values(settings.thresholds), "--threads", str(settings.threads)]
    words += ["--repeats", str(settings.repeats), "--device", settings.device]
    words += [] if settings.memory else ["--no-memory"]
    return shlex.join(words)


def join_values(values: Sequence[float]) -> str:
    """1,0.5,0.25: values as a command line lists them."""
    return ",".join(f"{value:g}" for value in values)


# -- inputs -------------------------------------------------------------------------------------


def load_models(settings: ReportSettings, device: Any) -> tuple[Any, Path, Any, Path]:
    """(baseline, its weights path, deployed M2AENet, its weights path) on `device`.

    Raises CheckpointError naming the file when the baseline weights are missing (with the
    command that trains them) or a file holds the wrong kind of model.
    """
    from m2aenet.checkpoint import load_model, resolve_weights
    from m2aenet.errors import CheckpointError

    baseline_path = Path(settings.baseline_weights)
    if not baseline_path.is_file():
        raise CheckpointError(
            f"{baseline_path}: baseline weights not found. Train {BASELINE_MODEL} with "
            f"`{BASELINE_TRAIN_COMMAND}` and copy its final_ema.safetensors (+ .json) there, "
            "or pass --baseline-weights PATH"
        )
    baseline_path = resolve_weights(baseline_path)
    baseline = load_model(baseline_path, device=device)
    if baseline.model_name != BASELINE_MODEL:
        raise CheckpointError(
            f"{baseline_path}: holds a {baseline.model_name} model, expected {BASELINE_MODEL}"
        )
    model_path = resolve_weights(settings.weights)
    model = load_model(model_path, device=device)
    if not hasattr(model, "last_executor"):
        raise CheckpointError(
            f"{model_path}: holds a {model.model_name} model, not a pixel-pruning M2AENet"
        )
    return baseline, baseline_path, model.reparameterize(), model_path


def synthesized_set(
    root: Path,
    mode: str,
    seed: int,
    count: int,
    size: int,
    sources: Sequence[str] | None,
    progress: bool,
) -> Path:
    """A test-split synthetic set in `root`, generated unless its meta.json already matches.

    Only a folder the data engine wrote (a meta.json, or nothing but its sub-folders, as an
    interrupted run leaves) is regenerated; anything else is an InputError naming it.
    """
    from m2aenet.data.sources import photo_pool
    from m2aenet.data.synth import FORMAT_VERSION
    from m2aenet.data.synth_writer import META_NAME, SUBFOLDERS, generate_dataset
    from m2aenet.errors import InputError

    wanted = {
        "format": "m2aenet-synth",
        "version": FORMAT_VERSION,
        "seed": seed,
        "split": "test",
        "mode": mode,
        "count": count,
        "size": {"width": size, "height": size},
        "noise": False,
        "jpeg": None,
        "sources": [str(path) for path in photo_pool("test", sources)],
    }
    meta_path = root / META_NAME
    ours = meta_path.is_file() or (
        root.is_dir() and all(entry.name in SUBFOLDERS for entry in root.iterdir())
    )
    if root.exists() and not ours and any(root.iterdir()):
        raise InputError(
            f"{root}: exists and is not a synthetic set (no {META_NAME}); pass another --work"
        )
    if meta_path.is_file():
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            meta = {}
        if all(meta.get(key) == value for key, value in wanted.items()):
            return root
    generate_dataset(
        root,
        count,
        seed=seed,
        size=(size, size),
        mode=mode,
        split="test",
        sources=sources,
        overwrite=ours,
        progress=progress,
        write_motion=False,
    )
    return root


def prepare_data(settings: ReportSettings, log: Callable[[str], None]) -> dict[str, dict]:
    """{"local": {...}, "global": {...}}: each {"root", "synthesized", and the synthesis
    parameters when synthesized}; sets not given are synthesized into `settings.work`."""
    sets = {}
    for kind, given, seed, count in (
        ("local", settings.data, LOCAL_SEED, settings.count),
        ("global", settings.global_data, GLOBAL_SEED, settings.global_count),
    ):
        if given:
            sets[kind] = {"root": str(given), "synthesized": False}
            continue
        root = Path(settings.work) / f"{kind}-seed{seed}-{count}x{settings.image_size}px"
        log(f"data: {kind} test set in {root}")
        synthesized_set(
            root, kind, seed, count, settings.image_size, settings.sources, settings.progress
        )
        sets[kind] = {
            "root": str(root),
            "synthesized": True,
            "split": "test",
            "mode": kind,
            "seed": seed,
            "count": count,
            "size": settings.image_size,
        }
    return sets


# -- quality ------------------------------------------------------------------------------------


def _restore(deblurrer: Any, keeps_mask: bool) -> Callable:
    """`deblurrer_restore`, dropping the mask of runs that did not predict one (dense runs)."""
    from m2aenet.evaluation import deblurrer_restore

    restore = deblurrer_restore(deblurrer)
    if keeps_mask:
        return restore

    def restore_without_mask(blur: Any) -> tuple:
        image, _, stats = restore(blur)
        return image, None, stats

    return restore_without_mask


def _evaluate(deblurrer: Any, dataset: Any, keeps_mask: bool, progress: bool) -> Any:
    """EvalReport of one configuration, after one untimed warm-up call on the first image."""
    from m2aenet.evaluation import evaluate

    deblurrer.restore(dataset[0]["blur"].permute(1, 2, 0).numpy())
    return evaluate(_restore(deblurrer, keeps_mask), dataset, progress=progress)


def _quality_row(label: str, mean: dict[str, Any]) -> dict[str, Any]:
    row: dict[str, Any] = {"model": label}
    for key in QUALITY_KEYS:
        row["gflops" if key == "pruned_gflops" else key] = mean.get(key)
    row.update(n=mean.get("n", 0), n_inf=dict(mean.get("n_inf", {})))
    return row


def quality_table(
    configurations: Sequence[tuple[str, Any, bool]], dataset: Any, progress: bool
) -> list[dict[str, Any]]:
    """Rows {model, psnr, ssim, psnr_w, ssim_w, psnr_sharp, mask_iou, mask_f1, pred_fraction,
    ms, gflops, n, n_inf}: first `input` (the blurry image itself), then each
    (label, Deblurrer, predicts a mask) configuration. Means as `metrics.mean_metrics` takes
    them (infinite values counted in n_inf and left out)."""
    rows = []
    for label, deblurrer, keeps_mask in configurations:
        report = _evaluate(deblurrer, dataset, keeps_mask, progress)
        if not rows:
            rows.append(_quality_row("input", {**report.input_mean, "ms": None}))
        rows.append(_quality_row(label, report.mean))
    return rows


def threshold_curve(
    deblurrer: Any, dataset: Any, thresholds: Sequence[float], progress: bool
) -> list[dict[str, Any]]:
    """Rows {threshold, psnr_w, ssim_w, ms, pred_fraction, mask_iou, gflops} of the pruned
    model at each mask threshold; the model's own threshold is restored afterwards."""
    model = deblurrer.model
    default = model.mask_threshold
    rows = []
    try:
        for threshold in thresholds:
            model.mask_threshold = float(threshold)
            report = _evaluate(deblurrer, dataset, True, progress)
            row = _quality_row("", report.mean)
            keys = ("psnr_w", "ssim_w", "ms", "pred_fraction", "mask_iou", "gflops")
            rows.append({"threshold": float(threshold), **{key: row[key] for key in keys}})
    finally:
        model.mask_threshold = default
    return rows


# -- the whole run ------------------------------------------------------------------------------


def _machine(device: Any, threads: int) -> dict[str, Any]:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            names = [
                line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")
            ]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else None
    return {
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "gpu": gpu,
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads() if device.type == "cpu" else threads,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "glibc_tunables": os.environ.get("GLIBC_TUNABLES"),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }


def run_report(
    settings: ReportSettings, log: Callable[[str], None] = lambda _: None
) -> dict[str, Any]:
    """Measure everything; returns the content of report.json (see the module docstring)."""
    import torch

    from m2aenet.api import Deblurrer
    from m2aenet.bench.report_markdown import targets
    from m2aenet.bench.report_speed import SpeedModels, SpeedSettings, measure_speed
    from m2aenet.data.datasets import open_dataset
    from m2aenet.device import resolve_device

    device = resolve_device(settings.device)
    threads = torch.get_num_threads()
    if device.type == "cpu":
        torch.set_num_threads(settings.threads)
    try:
        baseline, baseline_path, model, model_path = load_models(settings, device)
        data = prepare_data(settings, log)
        local = open_dataset(
            data["local"]["root"], "generic", crop_size=None, augment=False, require_mask=True
        )
        global_set = open_dataset(data["global"]["root"], "generic", crop_size=None, augment=False)
        name = model.model_name
        configurations = [
            (BASELINE_MODEL, Deblurrer(baseline, device=device), False),
            (f"{name} (dense)", Deblurrer(model, device=device, dense=True), False),
            (f"{name} (pruned)", Deblurrer(model, device=device), True),
        ]
        quality = {}
        for kind, dataset in (("local", local), ("global", global_set)):
            log(f"quality: {kind} blur, {len(dataset)} images")
            quality[kind] = quality_table(configurations, dataset, settings.progress)
        log(f"threshold curve: {join_values(settings.thresholds)}")
        curve = threshold_curve(configurations[2][1], local, settings.thresholds, settings.progress)
        speed_settings = SpeedSettings(
            size=settings.size,
            fractions=tuple(settings.fractions),
            repeats=settings.repeats,
            warmup=settings.warmup,
            device=str(device),
            threads=settings.threads,
            memory=settings.memory,
        )
        models = SpeedModels(baseline, baseline_path, BASELINE_MODEL, model, model_path, name)
        speed = measure_speed(models, speed_settings, log)
        machine = _machine(device, settings.threads)
    finally:
        torch.set_num_threads(threads)
    pruned = f"{name} ({SPEEDUP_EXECUTOR})"
    result = {
        "baseline": BASELINE_MODEL,
        "model": name,
        "quality": quality["local"],
        "quality_global": quality["global"],
        "speed": speed,
        "threshold_curve": curve,
        "speedup_vs_baseline_at_10pct": speedup_at(speed, BASELINE_MODEL, pruned),
        "speedup_executor": SPEEDUP_EXECUTOR,
        "mask_threshold": float(model.mask_threshold),
        "data": data,
        "settings": {
            **{key: value for key, value in vars(settings).items() if key != "progress"},
            "device": str(device),
            "weights_path": str(model_path),
            "baseline_weights_path": str(baseline_path),
            "command": command_line(settings),
            **machine,
        },
    }
    result["targets"] = targets(result)
    return result


def write_report(result: dict[str, Any], out: str | os.PathLike) -> list[Path]:
    """Write report.json, report.md, speed.png and threshold.png into `out`; returns the paths."""
    from m2aenet.atomic import write_text_atomic
    from m2aenet.bench.report_markdown import format_markdown
    from m2aenet.bench.report_plots import plot_speed, plot_threshold_curve
    from m2aenet.evaluation import jsonable

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / name for name in ("speed.png", "threshold.png", "report.json", "report.md")]
    plot_speed(result, paths[0])
    plot_threshold_curve(result, paths[1])
    write_text_atomic(paths[2], json.dumps(jsonable(result), indent=2, allow_nan=False) + "\n")
    write_text_atomic(
        paths[3], format_markdown(result, speed_plot=paths[0].name, threshold_plot=paths[1].name)
    )
    return paths
