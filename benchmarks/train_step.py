"""Time training steps of a model (forward, real loss, backward, AdamW) under several settings.

Settings are interleaved in one process, step by step, so that load from other processes hits
them alike; the table gives the median and minimum seconds per step and the median ratio of
each setting to the first.

    python benchmarks/train_step.py --crop 192 --batch 4 --pairs 10            # fp32 vs bf16
    python benchmarks/train_step.py --settings fp32:2 fp32:1 --json out.json    # 2 vs 1 thread
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="m2aenet-s")
    parser.add_argument("--crop", type=int, default=192)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--pairs", type=int, default=10, help="timed rounds of every setting")
    parser.add_argument(
        "--settings",
        nargs="+",
        default=["fp32:2", "bf16:2"],
        help="DTYPE:THREADS, DTYPE fp32 or bf16 (autocast)",
    )
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()

    from m2aenet.data.synth_dataset import OnTheFlySynthDataset
    from m2aenet.losses import LossConfig, M2AENetLoss
    from m2aenet.registry import create_model
    from m2aenet.train.trainer import forward_backward

    torch.manual_seed(0)
    model = create_model(args.model)
    optimizer = torch.optim.AdamW(model.parameters(), 5e-4)
    loss = M2AENetLoss(LossConfig())
    data = OnTheFlySynthDataset("train", (args.crop, args.crop), "mixed", 0, args.batch, 0.2)
    samples = [data[i] for i in range(args.batch)]
    batch = {k: torch.stack([s[k] for s in samples]) for k in ("blur", "sharp", "mask")}
    settings = [(name.split(":")[0], int(name.split(":")[1])) for name in args.settings]

    def step(dtype_name: str, threads: int) -> float:
        torch.set_num_threads(threads)
        dtype = torch.bfloat16 if dtype_name == "bf16" else None
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        forward_backward(model, loss, [batch], torch.device("cpu"), dtype)
        optimizer.step()
        return time.perf_counter() - start

    for setting in settings * 2:  # warm-up: oneDNN builds its kernels on first use
        step(*setting)
    times: dict[tuple[str, int], list[float]] = {s: [] for s in settings}
    for round_index in range(args.pairs):
        order = settings if round_index % 2 == 0 else settings[::-1]
        for setting in order:
            times[setting].append(step(*setting))

    first = times[settings[0]]
    rows = []
    print(f"{args.model}, {args.crop}x{args.crop}, batch {args.batch}, {args.pairs} rounds")
    print(f"{'setting':<10}{'median s':>10}{'min s':>8}{'ratio':>8}")
    for (dtype_name, threads), values in times.items():
        ratio = statistics.median(v / f for v, f in zip(values, first, strict=True))
        row = {
            "dtype": dtype_name,
            "threads": threads,
            "median_s": statistics.median(values),
            "min_s": min(values),
            "ratio_to_first": ratio,
        }
        rows.append(row)
        print(f"{dtype_name}:{threads:<6}{row['median_s']:>10.2f}{row['min_s']:>8.2f}{ratio:>8.2f}")
    if args.json:
        result = {"model": args.model, "crop": args.crop, "batch": args.batch, "rows": rows}
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(result, handle, indent=2)


if __name__ == "__main__":
    main()
