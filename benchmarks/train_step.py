"""Time training steps (forward, real loss, backward, AdamW) of training recipes, side by side.

A setting is `CONFIG:DTYPE:THREADS`: the model (name + overrides) and loss of a training
config, float32 (`fp32`) or bf16 autocast (`bf16`), and a thread count. Settings are
interleaved step by step in one process, so load from other processes hits them alike; the
table gives seconds per step, training samples per second and the median ratio of each
setting's samples/s to the first's. `--profile` adds, per setting, the share of the step's
CPU time by operator family (the instrument behind docs/training.md "Where a step's time goes").

    python benchmarks/train_step.py --settings configs/default.yaml:fp32:2 \
        configs/ms.yaml:bf16:2 --crop 128 --batch 12 --json runs/train_step.json
    python benchmarks/train_step.py --settings configs/ms.yaml:fp32:2 configs/ms.yaml:bf16:2 \
        --profile
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import torch

# Operator families of the profile table: the first pattern that matches an aten op's name.
FAMILIES = (
    ("conv", r"conv|mkldnn_convolution"),
    ("matmul", r"^aten::(mm|addmm|bmm|matmul|linear|baddbmm)$"),
    ("grid sample", r"grid_sampler"),
    ("upsample", r"upsample|interpolate"),
    ("pooling", r"pool"),
    ("layer norm", r"layer_norm"),
    ("copies and casts", r"copy_|clone|contiguous|^aten::to$|_to_copy|cat$|stack"),
    ("reductions", r"sum|mean|max$|norm"),
    ("optimizer", r"_foreach|adam"),
    ("elementwise", r"mul|add|sub|div|gelu|sigmoid|sqrt|pow|where|abs|log|exp|neg|clamp|rsub"),
)


@dataclass
class Setting:
    config: str
    dtype: str
    threads: int

    @property
    def label(self) -> str:
        return f"{self.config}:{self.dtype}:{self.threads}"


def parse_setting(text: str) -> Setting:
    config, dtype, threads = text.rsplit(":", 2)
    if dtype not in ("fp32", "bf16"):
        raise SystemExit(f"{text}: dtype must be fp32 or bf16")
    return Setting(config, dtype, int(threads))


def build(setting: Setting) -> dict[str, Any]:
    """Model, loss and optimizer of a setting's config (no initial weights: a step costs the
    same on any weights)."""
    from m2aenet.losses import M2AENetLoss
    from m2aenet.registry import create_model
    from m2aenet.train.config import load_config

    config = load_config(setting.config, [])
    torch.manual_seed(0)
    model = create_model(config.model.name, **config.model.overrides)
    for prefix in config.model.frozen:
        for name, parameter in model.named_parameters():
            if name == prefix or name.startswith(prefix + "."):
                parameter.requires_grad_(False)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, 1e-4, foreach=True)
    return {"model": model, "loss": M2AENetLoss(config.loss), "optimizer": optimizer}


def family(op: str) -> str:
    for name, pattern in FAMILIES:
        if re.search(pattern, op):
            return name
    return "other"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--settings", nargs="+", required=True, metavar="CONFIG:DTYPE:THREADS")
    parser.add_argument("--crop", type=int, default=128)
    parser.add_argument("--batch", type=int, default=12)
    parser.add_argument("--rounds", type=int, default=10, help="timed steps of every setting")
    parser.add_argument("--profile", action="store_true", help="CPU time by operator family")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()

    from m2aenet.data.synth_dataset import OnTheFlySynthDataset
    from m2aenet.train.trainer import forward_backward

    settings = [parse_setting(text) for text in args.settings]
    runs = {setting.label: build(setting) for setting in settings}
    data = OnTheFlySynthDataset("train", (args.crop, args.crop), "local", 0, args.batch, 0.0)
    samples = [data[i] for i in range(args.batch)]
    batch = {k: torch.stack([s[k] for s in samples]) for k in ("blur", "sharp", "mask")}

    def step(setting: Setting) -> float:
        torch.set_num_threads(setting.threads)
        run = runs[setting.label]
        dtype = torch.bfloat16 if setting.dtype == "bf16" else None
        start = time.perf_counter()
        run["optimizer"].zero_grad(set_to_none=True)
        # Teacher-forced, as probes and most of a run train: the true mask selects pixels.
        forward_backward(
            run["model"], run["loss"], [batch], torch.device("cpu"), dtype, teacher_forcing=True
        )
        run["optimizer"].step()
        return time.perf_counter() - start

    for setting in settings * 2:  # warm-up: oneDNN builds its kernels on first use
        step(setting)
    times: dict[str, list[float]] = {s.label: [] for s in settings}
    for round_index in range(args.rounds):
        order = settings if round_index % 2 == 0 else settings[::-1]
        for setting in order:
            times[setting.label].append(step(setting))

    first = times[settings[0].label]
    rows = []
    print(f"crop {args.crop}, batch {args.batch}, {args.rounds} rounds")
    print(f"{'setting':<34}{'median s':>10}{'min s':>8}{'samples/s':>11}{'ratio':>8}")
    for setting in settings:
        values = times[setting.label]
        # Ratio of samples/s to the first setting's, per round (same moment, same load).
        ratio = statistics.median(f / v for v, f in zip(values, first, strict=True))
        row = {
            "config": setting.config,
            "dtype": setting.dtype,
            "threads": setting.threads,
            "median_s": statistics.median(values),
            "min_s": min(values),
            "samples_per_s": args.batch / statistics.median(values),
            "speedup": ratio,
        }
        rows.append(row)
        print(
            f"{setting.label:<34}{row['median_s']:>10.3f}{row['min_s']:>8.3f}"
            f"{row['samples_per_s']:>11.1f}{ratio:>8.2f}"
        )
    result: dict[str, Any] = {"crop": args.crop, "batch": args.batch, "rows": rows}
    if args.profile:
        result["profile"] = {s.label: profile(step, s) for s in settings}
        for label, shares in result["profile"].items():
            print(f"\n{label}: share of CPU time by operator family")
            for name, share in sorted(shares.items(), key=lambda item: -item[1]):
                print(f"  {name:<18}{100 * share:6.1f}%")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(result, handle, indent=2)


def profile(step, setting: Setting, steps: int = 3) -> dict[str, float]:
    """Share of self CPU time per operator family over `steps` training steps."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step(setting)
    totals: dict[str, float] = defaultdict(float)
    for event in prof.key_averages():
        if event.key.startswith("aten::"):
            totals[family(event.key)] += event.self_cpu_time_total
    whole = sum(totals.values()) or 1.0
    return {name: value / whole for name, value in totals.items()}


if __name__ == "__main__":
    main()
