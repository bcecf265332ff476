"""Copy a finished run's EMA weights into the package as shipped weights.

    python scripts/ship_weights.py RUN_DIR [--name default] [--threshold T] [--note TEXT]

Writes src/m2aenet/weights/NAME.safetensors and NAME.json: the run's final_ema record, with
`model_config.mask_threshold` set to the calibrated threshold (benchmarks/calibrate_threshold.py)
and a `training` summary (steps, compute time from log.jsonl, commands) for docs and users.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from m2aenet.checkpoint import WEIGHTS_DIR, load_model, model_record, read_record, save_model

IDLE_GAP_S = 300  # a longer pause between log rows is a stop, not training time


def training_seconds(log: Path) -> float:
    """Seconds between consecutive log rows, leaving out stops longer than IDLE_GAP_S."""
    times = [json.loads(line)["time"] for line in log.read_text().splitlines() if line.strip()]
    return sum(b - a for a, b in zip(times, times[1:], strict=False) if b - a < IDLE_GAP_S)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--name", default="default")
    parser.add_argument("--threshold", type=float)
    parser.add_argument("--note", default="")
    args = parser.parse_args()
    source = args.run / "final_ema.safetensors"
    record = read_record(source)
    model = load_model(source)
    if args.threshold is not None:
        # In the config too, so the threshold is in the safetensors metadata as well as in
        # the sidecar: a lone .safetensors file then loads with the calibrated threshold.
        model.config = dataclasses.replace(model.config, mask_threshold=args.threshold)
        model.mask_threshold = args.threshold
    extra = {key: value for key, value in record.items() if key not in model_record(model)}
    extra["training"] = {
        "steps": record.get("step"),
        "compute_hours": round(training_seconds(args.run / "log.jsonl") / 3600, 2),
        "command": record.get("command"),
        "note": args.note,
    }
    target = save_model(WEIGHTS_DIR / f"{args.name}.safetensors", model, extra)
    shipped = load_model(args.name)  # the shipped pair must load as users will load it
    print(f"shipped {target} ({target.stat().st_size / 1e6:.1f} MB), threshold "
          f"{shipped.mask_threshold}")  # fmt: skip


if __name__ == "__main__":
    main()
