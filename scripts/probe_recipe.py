"""A recipe probe: train for a fixed wall time, then score on fixed sets (docs/training.md).

    python scripts/probe_recipe.py configs/probe.yaml [KEY=VALUE overrides...] --out runs/a \
        --minutes 12 --score data/val-local --score data/val-moderate
    python scripts/probe_recipe.py --weights runs/a/final_ema.safetensors --out runs/a \
        --score data/val-local                       # score existing weights only

Two probes that differ in one knob, run for the same minutes on an otherwise idle machine (or
side by side with `threads=1` each), are an A/B test of that knob. Scores: per-image PSNR_w
gain through the true mask (body progress) and the predicted mask (product), by blur length.
Writes OUT/probe.json and prints one line per set.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", nargs="?", help="training config (YAML)")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE")
    parser.add_argument("--out", required=True, type=Path, help="run folder")
    parser.add_argument("--minutes", type=float, help="training wall time")
    parser.add_argument("--weights", type=Path, help="score these weights instead of training")
    parser.add_argument(
        "--score", action="append", type=Path, required=True, metavar="DIR", help="repeatable"
    )
    parser.add_argument("--limit", type=int, help="first N images of each set")
    args = parser.parse_intermixed_args()

    import torch

    from m2aenet.bench.probe import format_scores, score_set
    from m2aenet.checkpoint import load_model
    from m2aenet.data.datasets import open_dataset

    weights = args.weights
    if weights is None:
        if args.config is None or args.minutes is None:
            parser.error("give CONFIG and --minutes to train, or --weights to score")
        from m2aenet.train.config import load_config
        from m2aenet.train.trainer import train

        overrides = [*args.overrides, f"time_limit_minutes={args.minutes}"]
        config = load_config(args.config, overrides)
        summary = train(config, args.out, command=sys.argv)
        weights = Path(summary["final"])
    torch.set_num_threads(torch.get_num_threads())
    model = load_model(weights)
    scores = {}
    for root in args.score:
        dataset = open_dataset(root)
        if args.limit:
            dataset.samples = dataset.samples[: args.limit]
        scores[root.name] = score_set(model, dataset, root)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "probe.json").write_text(
        json.dumps({"weights": str(weights), "scores": scores}, indent=1, default=float) + "\n"
    )
    print(format_scores(args.out.name, scores))
    return 0


if __name__ == "__main__":
    sys.exit(main())
