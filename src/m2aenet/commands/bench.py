"""`m2aenet bench`: performance benchmarks (`pruning`: dense vs pixel-pruned inference)."""

from __future__ import annotations

import argparse

from m2aenet.commands.arguments import positive_int


def _int_list(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError as error:
        raise argparse.ArgumentTypeError(
            f"expected integers like 512,1024, got {text!r}"
        ) from error
    if not values or min(values) < 8:
        raise argparse.ArgumentTypeError(f"sizes must be >= 8, got {text!r}")
    return values


def _fraction_list(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError as error:
        raise argparse.ArgumentTypeError(
            f"expected fractions like 0.05,0.1, got {text!r}"
        ) from error
    if not values or not all(0.0 < value < 1.0 for value in values):
        raise argparse.ArgumentTypeError(f"fractions must be in (0, 1), got {text!r}")
    return values


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "bench", help="performance benchmarks", description="Performance benchmarks."
    )
    benches = parser.add_subparsers(dest="bench", required=True, metavar="BENCH")
    pruning = benches.add_parser(
        "pruning",
        help="dense vs pixel-pruned inference: time, FLOPs, memory, exactness",
        description=(
            "For each image size and kept fraction (blob-shaped masks), time the deployed "
            "model densely and pruned (pixel, tile and auto executors), count FLOPs, measure "
            "peak memory and the largest difference from the train-mode output."
        ),
    )
    pruning.add_argument("--size", type=_int_list, default=(1024,), metavar="N[,N...]",
                         help="square image sizes in pixels (default: 1024)")  # fmt: skip
    pruning.add_argument(
        "--fractions",
        type=_fraction_list,
        default=(0.05, 0.1, 0.25, 0.5),
        metavar="F[,F...]",
        help="kept-pixel fractions (default: 0.05,0.1,0.25,0.5)",
    )
    pruning.add_argument("--model", default="m2aenet-s", help="registered model (random weights)")
    pruning.add_argument("--weights", metavar="NAME|PATH", help="benchmark these weights instead")
    pruning.add_argument("--threads", type=positive_int, default=2, help="CPU threads (default 2)")
    pruning.add_argument("--repeats", type=positive_int, default=5, help="timed runs (median)")
    pruning.add_argument("--warmup", type=int, default=1, help="untimed runs first (default 1)")
    pruning.add_argument("--seed", type=int, default=0, help="seed of masks, image and weights")
    pruning.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:N or auto")
    pruning.add_argument("--no-memory", action="store_true", help="skip peak-memory probes")
    pruning.add_argument("--json", metavar="FILE", help="write the rows as JSON")
    pruning.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json

    from m2aenet.atomic import write_text_atomic
    from m2aenet.bench.pruning import BenchSettings, format_table, run_pruning_benchmark
    from m2aenet.device import resolve_device

    settings = BenchSettings(
        sizes=args.size,
        fractions=args.fractions,
        model=args.model,
        weights=args.weights,
        threads=args.threads,
        repeats=args.repeats,
        warmup=args.warmup,
        seed=args.seed,
        device=str(resolve_device(args.device)),
        memory=not args.no_memory,
    )
    rows = run_pruning_benchmark(settings, progress=lambda text: print(text, flush=True))
    print(format_table(rows))
    if args.json:
        write_text_atomic(args.json, json.dumps(rows, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0
