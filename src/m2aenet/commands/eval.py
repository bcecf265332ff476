"""`m2aenet eval`: score a model on a paired data set (metrics table, JSON, comparison pictures)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from m2aenet.commands.arguments import (
    add_threads_option,
    device_name,
    positive_int,
    threshold,
    threshold_help,
)

LAYOUTS = ("generic", "gopro", "reloblur")  # m2aenet.data.datasets.LAYOUTS


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "eval",
        help="score a model on blurry/sharp pairs (PSNR, SSIM, weighted PSNR/SSIM, mask IoU)",
        description=(
            "Deblur every image of a paired data set and compare it with its sharp target, next "
            "to the blurry input's own scores. Weighted metrics (PSNR_w, SSIM_w) cover the "
            "ground-truth blur mask; PSNR sharp covers the rest of the image."
        ),
    )
    parser.add_argument("--data", required=True, metavar="DIR", help="data set folder")
    parser.add_argument(
        "--layout",
        default="generic",
        metavar="generic|gopro|reloblur|PATTERNS.yaml",
        help="folder layout: generic ROOT/{blur,sharp,mask}/NAME, GoPro ROOT/SCENE/{blur,sharp}/, "
        "ReLoBlur ROOT/SEQ/SEQ_{blur,gt,mask}_FRAME, or a YAML file of patterns "
        "(docs/usage.md; default: generic)",
    )
    parser.add_argument(
        "--weights", default="default", metavar="NAME|PATH", help="shipped weights name or file"
    )
    parser.add_argument(
        "--json", metavar="FILE", help="write the report (means and rows) as JSON (-: stdout)"
    )
    parser.add_argument(
        "--save-images",
        metavar="DIR",
        help="write restored PNGs and blur|restored|sharp|mask comparison pictures here",
    )
    parser.add_argument("--dense", action="store_true", help="run every pixel (no pruning)")
    parser.add_argument(
        "--threshold", type=threshold, metavar="T", help=threshold_help("blur-mask threshold")
    )
    parser.add_argument(
        "--device", type=device_name, default="auto", help="auto, cpu, cuda, cuda:N or mps"
    )
    add_threads_option(parser)
    parser.add_argument("--limit", type=positive_int, metavar="N", help="first N images only")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def load_layout(layout: str) -> str | dict[str, Any]:
    """A built-in layout name as it is; anything else is a YAML file of patterns, read as a dict."""
    if layout in LAYOUTS:
        return layout
    import yaml

    from m2aenet.errors import ConfigError

    path = Path(layout)
    if not path.is_file():
        raise ConfigError(f"--layout {layout}: not {', '.join(LAYOUTS)} or an existing YAML file")
    try:
        patterns = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise ConfigError(f"{path}: cannot read layout patterns ({error})") from error
    if not isinstance(patterns, dict):
        raise ConfigError(f"{path}: layout patterns must be a YAML mapping")
    return patterns


def run(args: argparse.Namespace) -> int:
    import sys

    from m2aenet.api import Deblurrer
    from m2aenet.atomic import (
        STDOUT,
        check_output_file,
        check_output_folder,
        write_text_or_stdout,
    )
    from m2aenet.data.datasets import open_dataset
    from m2aenet.evaluation import deblurrer_restore, evaluate

    if args.json:
        check_output_file(args.json, "--json")
    if args.save_images:
        check_output_folder(args.save_images, "--save-images")
    dataset = open_dataset(args.data, layout=load_layout(args.layout))
    deblurrer = Deblurrer.from_pretrained(
        args.weights,
        device=args.device,
        threshold=args.threshold,
        dense=args.dense,
        threads=args.threads,
    )
    report = evaluate(
        deblurrer_restore(deblurrer),
        dataset,
        save_dir=args.save_images,
        progress=not args.no_progress,
        limit=args.limit,
    )
    # With `--json -` standard output carries the JSON document only.
    text_out = sys.stderr if args.json == STDOUT else sys.stdout
    print(report.table(), file=text_out)
    if args.json:
        write_text_or_stdout(args.json, report.to_json())
        if args.json != STDOUT:
            print(f"report: {args.json}")
    if args.save_images:
        print(f"pictures: {Path(args.save_images) / 'compare'}", file=text_out)
    for message in report.failed:  # after the table: the others were scored
        print(f"m2aenet eval: error: {message}", file=sys.stderr)
    return 1 if report.failed else 0
