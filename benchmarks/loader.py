"""Training samples per second the data path delivers, by number of loader workers.

    python benchmarks/loader.py configs/campaign.yaml --workers 0 1 2 --batches 60 \
        [--json runs/loader.json]

Builds the config's training dataset and loader as `m2aenet train` does and times `--batches`
batches per worker count, twice: "cold" on the whole dataset, where most crops decode their
frame first (a fresh run's first epoch), and "cached" on the crops of `--frames` frames after
a few untimed epochs have filled every worker's frame cache (a long run's steady state).
Compare with the training
step's samples/s (benchmarks/train_step.py or the run's log): the loader must be faster, or the
accelerator waits. Each worker holds its own frame cache (about 1.1 MB per 512x512 frame).
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from torch.utils.data import Subset


def main() -> None:
    from m2aenet.train.config import load_config
    from m2aenet.train.data import build_dataset, train_loader

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--batches", type=int, default=60)
    parser.add_argument("--frames", type=int, default=64, help="frames of the cached pass")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    torch.set_num_threads(1)
    config = load_config(args.config)
    dataset = build_dataset(config.data.train, "train")  # for its size; rebuilt per count
    rows = []
    print(f"{args.config}: batch {config.data.batch_size}, {len(dataset)} crops")
    print("workers  cold samples/s  cached samples/s")
    warm_crops = min(len(dataset), args.frames * config.data.train.crops_per_frame)
    for workers in args.workers:
        config.data.num_workers = workers
        # A fresh dataset, so no frame cache filled by an earlier count reaches the workers.
        dataset = build_dataset(config.data.train, "train")
        rates = []
        for subset, warm_epochs in (
            (dataset, 0),
            (Subset(dataset, range(warm_crops)), 2 + workers),
        ):
            loader = iter(train_loader(subset, config.data, 0, 0, 1, 0))
            for _ in range(warm_epochs * len(subset) // config.data.batch_size):
                next(loader)
            start = time.perf_counter()
            for _ in range(args.batches):
                next(loader)
            rates.append(args.batches * config.data.batch_size / (time.perf_counter() - start))
            del loader
        rows.append({"workers": workers, "cold": rates[0], "cached": rates[1]})
        print(f"{workers:7d}  {rates[0]:14.1f}  {rates[1]:16.1f}")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"config": args.config, "rows": rows}, handle, indent=1)


if __name__ == "__main__":
    main()
