"""Pixel pruning benchmark: dense vs pruned time, FLOPs, memory and exactness per kept fraction.

For each image size and kept fraction, one run measures on realistic blob-shaped masks
(`m2aenet.data.masks.blob_mask`, not aligned to any tile grid):
  - dense: the deployed model with an all-ones mask (every pixel through the body);
  - pruned: the deployed model with the blob mask, with the pixel executor, the tile
    executor, and `auto` (whichever the cost model picks);
  - FLOPs of each (`m2aenet.flops.count_flops`, gathers and sampling included);
  - peak memory of one forward pass: on CUDA `torch.cuda.max_memory_allocated`; on the CPU
    the peak resident set size of a fresh subprocess running that one forward (VmHWM after
    resetting it through /proc/self/clear_refs, else ru_maxrss), minus its size before;
  - max_abs_diff between the pruned output and the train-mode network's output for the
    same mask (they should agree to float32 rounding).
Times are medians over `repeats` interleaved runs after `warmup` runs, with `threads` CPU
threads; the dense time is measured again beside every fraction.
"""

from __future__ import annotations

import copy
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from m2aenet.data.masks import blob_mask
from m2aenet.flops import count_flops

PRUNED_EXECUTORS = ("pixel", "tile")


@dataclass
class BenchSettings:
    """What to measure: the `weights` (a shipped name or a file), or, with `weights` None,
    random weights of the registered architecture `model` (timing does not depend on them)."""

    sizes: tuple[int, ...] = (1024,)
    fractions: tuple[float, ...] = (0.05, 0.1, 0.25, 0.5)
    model: str = "m2aenet-s"
    weights: str | None = None
    threads: int = 2
    repeats: int = 5
    warmup: int = 1
    seed: int = 0
    device: str = "cpu"
    memory: bool = True


def build_model(settings: BenchSettings) -> torch.nn.Module:
    """The train-mode model to benchmark, deterministic for a given seed."""
    torch.manual_seed(settings.seed)
    if settings.weights is not None:
        from m2aenet.checkpoint import load_model

        return load_model(settings.weights).eval()
    from m2aenet.registry import create_model

    model = create_model(settings.model).eval()
    with torch.no_grad():
        # Untrained blocks are identities and untrained trajectories are points; give the
        # weights some spread so the body does work and trajectories reach a few pixels,
        # as a trained model's do (sampling far away touches more memory).
        for parameter in model.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.02)
        analyzer = getattr(model, "analyzer", None)
        if analyzer is not None:
            torch.nn.init.normal_(analyzer.motion_head.weight, std=0.05)
    return model


def make_mask(size: int, fraction: float, seed: int) -> torch.Tensor:
    """(1, 1, size, size) blob mask with the exact kept fraction."""
    rng = np.random.default_rng([seed, size, round(fraction * 1e6)])
    return torch.from_numpy(blob_mask(size, size, fraction, rng)).float()[None, None]


def make_image(size: int, seed: int) -> torch.Tensor:
    """(1, 3, size, size) smooth random image in [0, 1]."""
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.rand(1, 3, max(size // 32, 2), max(size // 32, 2), generator=generator)
    image = torch.nn.functional.interpolate(coarse, size=(size, size), mode="bilinear")
    return (image + 0.05 * torch.rand(1, 3, size, size, generator=generator)).clamp(0, 1)


def deployed_forward(
    model: torch.nn.Module, image: torch.Tensor, executor: str, mask: torch.Tensor
) -> Callable[[], Any]:
    """A no-argument call of the deployed `model` on `image` through `mask` with `executor`
    (set at call time, so several closures can share one model)."""

    def forward() -> Any:
        model.executor = executor
        return model(image, mask=mask)

    return forward


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_ms(
    functions: dict[str, Callable[[], Any]], repeats: int, warmup: int, device: torch.device
) -> dict[str, float]:
    """Median wall time in milliseconds of each function.

    The functions are timed in interleaved rounds (one run of each per round), so that load
    from other processes on a shared machine affects them alike.
    """
    for _ in range(warmup):
        for function in functions.values():
            function()
    _synchronize(device)
    times: dict[str, list[float]] = {name: [] for name in functions}
    for _ in range(repeats):
        for name, function in functions.items():
            start = time.perf_counter()
            function()
            _synchronize(device)
            times[name].append((time.perf_counter() - start) * 1000)
    return {name: statistics.median(values) for name, values in times.items()}


def _status_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def peak_rss_delta_mb(function: Callable[[], Any]) -> tuple[float, str]:
    """Peak resident memory added by `function()` in this process, in MiB, and the method."""
    before = _status_kib("VmRSS")
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as handle:
            handle.write("5")  # resets the VmHWM high-water mark (Linux >= 4.0)
        method = "VmHWM"
    except OSError:
        method = "ru_maxrss"
    function()
    if method == "VmHWM" and before is not None:
        peak = _status_kib("VmHWM") or 0
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
        before = before or 0
    return max(peak - before, 0) / 1024, method


def _probe_memory(settings: BenchSettings, size: int, fraction: float, executor: str) -> dict:
    """Peak memory of one forward, in a fresh process on the CPU (one-time allocations count)."""
    payload = json.dumps(
        {"settings": asdict(settings), "size": size, "fraction": fraction, "executor": executor}
    )
    result = subprocess.run(
        [sys.executable, "-m", "m2aenet.bench.pruning", payload],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"memory probe failed: {result.stderr.strip()[-500:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def _probe_main(payload: str) -> None:
    request = json.loads(payload)
    settings = BenchSettings(**request["settings"])
    torch.set_num_threads(settings.threads)
    size, fraction, executor = request["size"], request["fraction"], request["executor"]
    model = build_model(settings).reparameterize()
    model.executor = executor
    image = make_image(size, settings.seed)
    mask = (
        torch.ones(1, 1, size, size) if fraction >= 1 else make_mask(size, fraction, settings.seed)
    )
    peak, method = peak_rss_delta_mb(lambda: model(image, mask=mask))
    print(json.dumps({"peak_mb": peak, "method": method}))


def _peak_cuda_mb(function: Callable[[], Any], device: torch.device) -> float:
    torch.cuda.synchronize(device)
    before = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    function()
    torch.cuda.synchronize(device)
    return (torch.cuda.max_memory_allocated(device) - before) / 2**20


def _memory_mb(
    settings: BenchSettings, size: int, fraction: float, executor: str, run: Callable[[], Any]
) -> tuple[float | None, str]:
    device = torch.device(settings.device)
    if not settings.memory:
        return None, "off"
    if device.type == "cuda":
        return _peak_cuda_mb(run, device), "cuda.max_memory_allocated"
    probe = _probe_memory(settings, size, fraction, executor)
    return probe["peak_mb"], f"subprocess {probe['method']}"


def benchmark_size(settings: BenchSettings, size: int) -> list[dict[str, Any]]:
    """All rows for one image size."""
    device = torch.device(settings.device)
    reference_model = build_model(settings).to(device)
    model = copy.deepcopy(reference_model).reparameterize()
    image = make_image(size, settings.seed).to(device)
    ones = torch.ones(1, 1, size, size, device=device)

    def run(executor: str, mask: torch.Tensor) -> Callable[[], Any]:
        return deployed_forward(model, image, executor, mask)

    dense_flops = count_flops(model, image, ones)
    dense_mb, memory_method = _memory_mb(settings, size, 1.0, "dense", run("dense", ones))
    rows = []
    for fraction in settings.fractions:
        mask = make_mask(size, fraction, settings.seed).to(device)
        with torch.no_grad():
            reference = reference_model(image, mask=mask).image
        # Dense is timed again next to every fraction: same conditions, and a spread to report.
        runs = {"dense": run("dense", ones)}
        runs.update({executor: run(executor, mask) for executor in (*PRUNED_EXECUTORS, "auto")})
        times = time_ms(runs, settings.repeats, settings.warmup, device)
        row: dict[str, Any] = {"size": size, "fraction": fraction, "dense_ms": times["dense"]}
        diffs = []
        for executor in (*PRUNED_EXECUTORS, "auto"):
            model.executor = executor
            flops = count_flops(model, image, mask)
            diffs.append(float((runs[executor]().image - reference).abs().max()))
            if executor == "auto":
                row["executor"] = model.last_executor
                row["pruned_ms"] = times["auto"]
                row["pruned_gflops"] = flops.gflops
                row["pruned_gathered_m"] = flops.gathered / 1e6
            else:
                row[f"{executor}_ms"] = times[executor]
                row[f"{executor}_gflops"] = flops.gflops
        row["time_ratio"] = row["pruned_ms"] / row["dense_ms"]
        row["dense_gflops"] = dense_flops.gflops
        row["flops_ratio"] = row["pruned_gflops"] / dense_flops.gflops
        row["max_abs_diff"] = max(diffs)
        # A multi-scale model reports one executor per level ("tile,tile,pixel"): its memory
        # probe runs "auto", which picks the same ones again.
        chosen = row["executor"] if "," not in row["executor"] else "auto"
        pruned_mb, _ = _memory_mb(settings, size, fraction, chosen, run("auto", mask))
        row.update(dense_peak_mb=dense_mb, pruned_peak_mb=pruned_mb, memory_method=memory_method)
        row.update(
            model=settings.model if settings.weights is None else settings.weights,
            threads=settings.threads,
            repeats=settings.repeats,
            device=str(device),
            malloc_tunables=os.environ.get("GLIBC_TUNABLES") is not None,
        )
        rows.append(row)
    return rows


def run_pruning_benchmark(
    settings: BenchSettings, progress: Callable[[str], None] | None = None
) -> list[dict[str, Any]]:
    """Measure every (size, fraction); returns the JSON rows (see the module docstring)."""
    if torch.device(settings.device).type == "cpu":
        torch.set_num_threads(settings.threads)
    rows = []
    for size in settings.sizes:
        if progress:
            progress(f"size {size}: measuring ...")
        rows += benchmark_size(settings, size)
    return rows


def format_table(rows: list[dict[str, Any]]) -> str:
    """A Markdown table of the rows."""
    header = (
        "| size | kept | executor | dense ms | pruned ms | time ratio | pixel ms | tile ms "
        "| dense GFLOPs | pruned GFLOPs | FLOPs ratio | max abs diff | peak MB dense / pruned |"
    )
    lines = [header, "|" + "---|" * 13]
    for row in rows:
        memory = "-"
        if row.get("dense_peak_mb") is not None:
            memory = f"{row['dense_peak_mb']:.0f} / {row['pruned_peak_mb']:.0f}"
        lines.append(
            f"| {row['size']} | {row['fraction']:.0%} | {row['executor']} "
            f"| {row['dense_ms']:.0f} | {row['pruned_ms']:.0f} | {row['time_ratio']:.3f} "
            f"| {row['pixel_ms']:.0f} | {row['tile_ms']:.0f} "
            f"| {row['dense_gflops']:.2f} | {row['pruned_gflops']:.2f} | {row['flops_ratio']:.3f} "
            f"| {row['max_abs_diff']:.1e} | {memory} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    _probe_main(sys.argv[1])
