"""Speed, FLOPs and peak memory of the dense baseline and of M2AENet per blurred fraction.

One square image (`make_image`) and, per fraction, one blob mask (`make_mask`, exact fraction,
not tile-aligned) are run through:
  - the baseline, densely (`baseline(image)`: it has no mask);
  - M2AENet deployed with an all-ones mask and `executor="dense"` (the reference for the
    ideal line `fraction x dense time`);
  - M2AENet deployed with the blob mask and the `pixel`, `tile` and `auto` executors.
The mask predictor always runs, so fraction 0 costs the predictor alone. Every function is
timed beside every fraction in interleaved rounds (`pruning.time_ms`): the dense rows are
measured again at each fraction, under the same load as the pruned runs they are compared
with. FLOPs: `m2aenet.flops.count_flops`. Peak memory: on CUDA `max_memory_allocated`; on the
CPU a fresh subprocess per configuration (`peak_rss_delta_mb`), because one-time allocations
and glibc's kept heap would hide every peak after the first in one process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from m2aenet.bench.pruning import (
    deployed_forward,
    make_image,
    make_mask,
    peak_rss_delta_mb,
    time_ms,
)
from m2aenet.flops import count_flops

#: Keys of a speed row, besides `size` (px).
SPEED_KEYS = ("model", "executor", "ran", "fraction", "ms", "gflops", "peak_mb")
#: Executors of the deployed M2AENet timed on the blob masks.
PRUNED_EXECUTORS = ("pixel", "tile", "auto")


@dataclass
class SpeedSettings:
    """What to time: square `size` px images, blurred `fractions` in [0, 1], medians of
    `repeats` runs after `warmup` runs; `memory` False skips the peak-memory probes."""

    size: int = 1024
    fractions: tuple[float, ...] = (0.0, 0.05, 0.1, 0.25, 0.5, 1.0)
    repeats: int = 3
    warmup: int = 1
    seed: int = 0
    device: str = "cpu"
    threads: int = 2
    memory: bool = True


@dataclass
class SpeedModels:
    """The two networks, with the weight files the memory probes load again.

    baseline: a dense network called as `baseline(x)`; model: a deployed M2AENet
    (`executor`, `last_executor`). Labels become the `model` column of the rows.
    """

    baseline: nn.Module
    baseline_weights: Path
    baseline_label: str
    model: nn.Module
    model_weights: Path
    model_label: str


def measure_speed(
    models: SpeedModels, settings: SpeedSettings, log: Callable[[str], None] = lambda _: None
) -> list[dict[str, Any]]:
    """Rows {model, executor, ran, fraction, ms, gflops, peak_mb, size} per fraction: the
    baseline, `LABEL (dense)` and `LABEL (pixel|tile|auto)`; `ran` is what the deployed model
    actually executed (`auto`'s choice; "none" when no pixel is kept). ms: median wall time;
    gflops: 1e9 FLOPs of one forward; peak_mb: MiB added by one forward (None without memory).
    """
    device = torch.device(settings.device)
    size, seed = settings.size, settings.seed
    baseline, model = models.baseline, models.model
    image = make_image(size, seed).to(device)
    ones = torch.ones(1, 1, size, size, device=device)

    def deployed(executor: str, mask: torch.Tensor) -> Callable[[], Any]:
        return deployed_forward(model, image, executor, mask)

    def memory(weights: Path, executor: str | None, fraction: float, run: Callable) -> float | None:
        if not settings.memory:
            return None
        if device.type == "cuda":
            return _peak_cuda_mb(run, device)
        request = {
            "weights": str(weights),
            "executor": executor,
            "size": size,
            "fraction": fraction,
            "seed": seed,
            "threads": settings.threads,
        }
        return probe_peak_mb(request)

    with torch.inference_mode():
        model.executor = "dense"
        baseline_cost = (
            count_flops(baseline, image).gflops,
            memory(models.baseline_weights, None, 1.0, lambda: baseline(image)),
        )
        dense_cost = (
            count_flops(model, image, ones).gflops,
            memory(models.model_weights, "dense", 1.0, deployed("dense", ones)),
        )
    rows: list[dict[str, Any]] = []

    def add(*values: Any) -> None:
        rows.append({**dict(zip(SPEED_KEYS, values, strict=True)), "size": size})

    for fraction in settings.fractions:
        log(f"speed: {size}x{size}, {fraction:.0%} blurred")
        mask = make_mask(size, fraction, seed).to(device)
        runs = {"baseline": lambda: baseline(image), "dense": deployed("dense", ones)}
        runs.update({executor: deployed(executor, mask) for executor in PRUNED_EXECUTORS})
        with torch.inference_mode():
            times = time_ms(runs, settings.repeats, settings.warmup, device)
        dense_label = f"{models.model_label} (dense)"
        add(models.baseline_label, "dense", "dense", fraction, times["baseline"], *baseline_cost)
        add(dense_label, "dense", "dense", fraction, times["dense"], *dense_cost)
        peaks: dict[str, float | None] = {}
        for executor in PRUNED_EXECUTORS:
            model.executor = executor
            with torch.inference_mode():
                gflops = count_flops(model, image, mask).gflops  # also sets last_executor
            ran = model.last_executor or executor
            if executor != "auto" or ran not in ("pixel", "tile", "none"):
                peaks[executor] = memory(models.model_weights, executor, fraction, runs[executor])
            else:  # auto ran a configuration measured just before: same memory
                peaks[executor] = peaks["pixel" if ran == "none" else ran]
            label = f"{models.model_label} ({executor})"
            add(label, executor, ran, fraction, times[executor], gflops, peaks[executor])
    model.executor = "auto"
    return rows


def _peak_cuda_mb(function: Callable[[], Any], device: torch.device) -> float:
    """MiB allocated on `device` by `function()` above what was allocated before."""
    torch.cuda.synchronize(device)
    before = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    with torch.inference_mode():
        function()
    torch.cuda.synchronize(device)
    return (torch.cuda.max_memory_allocated(device) - before) / 2**20


def probe_peak_mb(request: dict[str, Any]) -> float:
    """Peak resident MiB added by one forward pass, measured in a fresh CPU subprocess.

    request: {"weights": .safetensors path, "executor": None for a dense network called
    without a mask, else the deployed model's executor, "size": px, "fraction", "seed",
    "threads"}. Raises RuntimeError with the subprocess's last error lines when it fails.
    """
    result = subprocess.run(
        [sys.executable, "-m", "m2aenet.bench.report_speed", json.dumps(request)],
        capture_output=True,
        text=True,
        env=os.environ.copy(),  # keeps GLIBC_TUNABLES: the allocator behaves as in the timing
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"memory probe failed: {result.stderr.strip()[-500:]}")
    return float(json.loads(result.stdout.strip().splitlines()[-1])["peak_mb"])


def _probe_main(payload: str) -> None:
    from m2aenet.checkpoint import load_model

    request = json.loads(payload)
    torch.set_num_threads(int(request["threads"]))
    model = load_model(request["weights"])
    if hasattr(model, "reparameterize"):
        model = model.reparameterize() or model
    size, executor = int(request["size"]), request["executor"]
    image = make_image(size, int(request["seed"]))
    if executor is None:

        def run() -> Any:
            return model(image)
    else:
        model.executor = executor
        mask = make_mask(size, float(request["fraction"]), int(request["seed"]))

        def run() -> Any:
            return model(image, mask=mask)

    with torch.inference_mode():
        peak, method = peak_rss_delta_mb(run)
    print(json.dumps({"peak_mb": peak, "method": method}))


if __name__ == "__main__":
    _probe_main(sys.argv[1])
