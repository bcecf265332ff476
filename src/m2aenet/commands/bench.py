"""`m2aenet bench`: benchmarks (`pruning`: dense vs pixel-pruned inference; `report`: the
comparison page of m2aenet-s against the dense baseline nafnet-s)."""

from __future__ import annotations

import argparse

from m2aenet.bench.report import ReportSettings, join_values
from m2aenet.commands.arguments import comma_list, device_name, positive_int

# Defaults of `bench report` (the module imports only the standard library: --help stays fast).
REPORT = ReportSettings()
# 8192 like the other size options: a 100000-pixel square would allocate 120 GB.
_sizes = comma_list(
    int, lambda value: 8 <= value <= 8192, "integers like 512,1024", "sizes must be in 8..8192"
)
_kept_fractions = comma_list(
    float, lambda value: 0.0 < value < 1.0, "fractions like 0.05,0.1", "fractions must be in (0, 1)"
)
_blurred_fractions = comma_list(
    float,
    lambda value: 0.0 <= value <= 1.0,
    "fractions like 0,0.1,1",
    "fractions must be in [0, 1]",
)
_thresholds = comma_list(
    float,
    lambda value: 0.0 < value < 1.0,
    "thresholds like 0.4,0.5",
    "thresholds must be in (0, 1)",
)


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
            "peak memory and the largest difference from the train-mode output. Measures the "
            "shipped weights unless --weights or --model says otherwise."
        ),
    )
    pruning.add_argument("--size", type=_sizes, default=(1024,), metavar="N[,N...]",
                         help="square image sizes in pixels (default: 1024)")  # fmt: skip
    pruning.add_argument(
        "--fractions",
        type=_kept_fractions,
        default=(0.05, 0.1, 0.25, 0.5),
        metavar="F[,F...]",
        help="kept-pixel fractions (default: 0.05,0.1,0.25,0.5)",
    )
    measured = pruning.add_mutually_exclusive_group()
    measured.add_argument(
        "--weights",
        metavar="NAME|PATH",
        help="shipped name or .safetensors to benchmark (default: default, the shipped model)",
    )
    measured.add_argument(
        "--model",
        metavar="NAME",
        help="benchmark random weights of this registered architecture instead (m2aenet-s, ...)",
    )
    pruning.add_argument("--threads", type=positive_int, default=2, help="CPU threads (default 2)")
    pruning.add_argument("--repeats", type=positive_int, default=5, help="timed runs (median)")
    pruning.add_argument("--warmup", type=int, default=1, help="untimed runs first (default 1)")
    pruning.add_argument("--seed", type=int, default=0, help="seed of masks, image and weights")
    pruning.add_argument(
        "--device", type=device_name, default="cpu", help="cpu (default), cuda, cuda:N, mps or auto"
    )
    pruning.add_argument("--no-memory", action="store_true", help="skip peak-memory probes")
    pruning.add_argument("--json", metavar="FILE", help="write the rows as JSON")
    pruning.set_defaults(func=run)
    _add_report_parser(benches)


def _add_report_parser(benches: argparse._SubParsersAction) -> None:
    report = benches.add_parser(
        "report",
        help="compare m2aenet-s (dense, pruned) with the dense baseline nafnet-s: report.md",
        description=(
            "Measure, in one run on the same data, quality on local and global blur, time, "
            "FLOPs and memory against the blurred fraction, and PSNR_w/time against the mask "
            "threshold; write report.md, report.json and PNG plots into --out. Test sets not "
            "given are synthesized by the data engine (split test; local seed 100, global "
            "seed 101) into --work and reused while they match."
        ),
    )
    report.add_argument("--out", required=True, metavar="DIR", help="output folder")
    report.add_argument(
        "--weights",
        default=REPORT.weights,
        metavar="NAME|PATH",
        help="m2aenet weights: shipped name or .safetensors (default: default)",
    )
    report.add_argument(
        "--baseline-weights",
        default=REPORT.baseline_weights,
        metavar="PATH",
        help=f"nafnet-s weights (default: {REPORT.baseline_weights})",
    )
    report.add_argument(
        "--data",
        metavar="DIR",
        help="local-blur test set DIR/{blur,sharp,mask}/NAME (default: synthesize)",
    )
    report.add_argument(
        "--global-data",
        metavar="DIR",
        help="global-blur test set, same layout (default: synthesize)",
    )
    report.add_argument(
        "--work",
        default=REPORT.work,
        metavar="DIR",
        help=f"where synthesized sets are kept and reused (default: {REPORT.work})",
    )
    report.add_argument(
        "--sources",
        nargs="+",
        metavar="PATH",
        help="photos for the synthesized sets (default: the test split's)",
    )
    for flag, parse, default, text in (
        ("--count", positive_int, REPORT.count, "synthesized local-blur images"),
        ("--global-count", positive_int, REPORT.global_count, "synthesized global-blur images"),
        ("--image-size", _image_size, REPORT.image_size, "side of the synthesized images in px"),
        ("--size", _speed_size, REPORT.size, "side of the speed image in px"),
    ):
        report.add_argument(
            flag, type=parse, default=default, metavar="N", help=f"{text} (default {default})"
        )
    report.add_argument(
        "--fractions",
        type=_blurred_fractions,
        metavar="F[,F...]",
        default=REPORT.fractions,
        help=f"blurred fractions for speed (default {join_values(REPORT.fractions)})",
    )
    report.add_argument(
        "--thresholds",
        type=_thresholds,
        default=REPORT.thresholds,
        metavar="T[,T...]",
        help=f"mask thresholds of the curve (default {join_values(REPORT.thresholds)})",
    )
    report.add_argument(
        "--threads", type=positive_int, default=REPORT.threads, help="CPU threads (default 2)"
    )
    report.add_argument(
        "--repeats", type=positive_int, default=REPORT.repeats, help="timed runs (median; 3)"
    )
    report.add_argument(
        "--device", type=device_name, default=REPORT.device, help="cpu (default), cuda or auto"
    )
    report.add_argument("--no-memory", action="store_true", help="skip peak-memory probes")
    report.add_argument("--no-progress", action="store_true", help="no progress bars")
    report.set_defaults(func=run_report)


def _image_size(text: str) -> int:
    value = positive_int(text)
    if not 32 <= value <= 8192:
        raise argparse.ArgumentTypeError(f"must be in 32..8192, got {value}")
    return value


def _speed_size(text: str) -> int:
    value = positive_int(text)
    if value < 8:
        raise argparse.ArgumentTypeError(f"must be >= 8, got {value}")
    return value


def run(args: argparse.Namespace) -> int:
    import json
    import sys

    from m2aenet.atomic import STDOUT, check_output_file, write_text_or_stdout
    from m2aenet.bench.pruning import BenchSettings, format_table, run_pruning_benchmark
    from m2aenet.device import resolve_device

    if args.json:
        check_output_file(args.json, "--json")
    to_stdout = args.json == STDOUT
    text_out = sys.stderr if to_stdout else sys.stdout

    settings = BenchSettings(
        sizes=args.size,
        fractions=args.fractions,
        model=args.model or BenchSettings.model,
        weights=None if args.model else (args.weights or "default"),
        threads=args.threads,
        repeats=args.repeats,
        warmup=args.warmup,
        seed=args.seed,
        device=str(resolve_device(args.device)),
        memory=not args.no_memory,
    )
    rows = run_pruning_benchmark(
        settings, progress=lambda text: print(text, file=text_out, flush=True)
    )
    print(format_table(rows), file=text_out)
    if args.json:
        write_text_or_stdout(args.json, json.dumps(rows, indent=2) + "\n")
        if not to_stdout:
            print(f"wrote {args.json}")
    return 0


def run_report(args: argparse.Namespace) -> int:
    from m2aenet.atomic import check_output_folder
    from m2aenet.bench.report import ReportSettings, write_report
    from m2aenet.bench.report import run_report as measure

    check_output_folder(args.out, "--out")

    settings = ReportSettings(
        out=args.out,
        weights=args.weights,
        baseline_weights=args.baseline_weights,
        data=args.data,
        global_data=args.global_data,
        work=args.work,
        sources=tuple(args.sources) if args.sources else None,
        count=args.count,
        global_count=args.global_count,
        image_size=args.image_size,
        size=args.size,
        fractions=args.fractions,
        thresholds=args.thresholds,
        threads=args.threads,
        repeats=args.repeats,
        device=args.device,
        memory=not args.no_memory,
        progress=not args.no_progress,
    )
    result = measure(settings, log=lambda text: print(text, flush=True))
    for path in write_report(result, args.out):
        print(f"wrote {path}")
    return 0
