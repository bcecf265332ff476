"""`m2aenet export --weights NAME|PATH --out model.onnx`: ONNX graph of the deploy model."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from m2aenet.commands.arguments import positive_int, threshold, threshold_help


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the `export` sub-command."""
    parser = subparsers.add_parser(
        "export",
        help="export the deploy model to ONNX",
        description=(
            "Write the deploy model (reparameterized) as an ONNX graph: input `image` "
            "(B, 3, H, W) float32 in [0, 1], outputs `restored` (B, 3, H, W) and `mask` "
            "(B, 1, H, W). The graph is then run with onnxruntime and compared with torch. "
            "Needs: pip install 'm2aenet[onnx]'."
        ),
    )
    parser.add_argument(
        "--weights",
        default="default",
        metavar="NAME|PATH",
        help="shipped weights name or a .safetensors file (default: %(default)s)",
    )
    parser.add_argument("--out", required=True, type=Path, metavar="FILE.onnx", help="output file")
    parser.add_argument("--height", type=positive_int, default=256, help="example input height")
    parser.add_argument("--width", type=positive_int, default=256, help="example input width")
    parser.add_argument(
        "--dynamic",
        action="store_true",
        help="leave batch, height and width free in the graph (dynamo exporter)",
    )
    parser.add_argument(
        "--form",
        choices=("dense", "pruned"),
        default="dense",
        help="dense: every op on the whole image, output x + M * F(x); pruned: only masked "
        "pixels are gathered and processed (default: %(default)s)",
    )
    parser.add_argument(
        "--exporter",
        choices=("dynamo", "torchscript"),
        default="dynamo",
        help="torch.onnx exporter (default: %(default)s)",
    )
    parser.add_argument("--opset", type=positive_int, default=18, help="ONNX opset (default: 18)")
    parser.add_argument(
        "--threshold",
        type=threshold,
        default=None,
        metavar="T",
        help=threshold_help("blur-mask threshold baked into the graph"),
    )
    parser.add_argument(
        "--check",
        nargs="*",
        default=[],
        metavar="IMAGE",
        help="also compare onnxruntime with torch on these images (cropped to the export size "
        "unless --dynamic); random inputs are always compared, and the file is written only "
        "if onnxruntime reproduces torch",
    )
    parser.add_argument("--no-check", action="store_true", help="skip the onnxruntime check")
    parser.add_argument(
        "--json", type=Path, default=None, metavar="FILE", help="write a summary (-: stdout)"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Export, check, print a summary; 0 on success."""
    from m2aenet.atomic import STDOUT, check_output_file, write_text_or_stdout
    from m2aenet.errors import ConfigError
    from m2aenet.export import export_checked, load_deploy_model, restoration_checked

    if args.out.suffix != ".onnx":
        raise ConfigError(f"--out {args.out}: the file name must end in .onnx")
    check_output_file(args.out, "--out")
    if args.json:
        check_output_file(args.json, "--json")
    if args.out.exists() and not args.overwrite:
        raise ConfigError(f"--out {args.out}: exists; pass --overwrite to replace it")
    if args.no_check and args.check:
        raise ConfigError("--check and --no-check contradict each other")

    model = load_deploy_model(args.weights, threshold=args.threshold)
    result, report = export_checked(
        model,
        args.out,
        images=args.check,
        check=not args.no_check,
        form=args.form,
        height=args.height,
        width=args.width,
        dynamic=args.dynamic,
        exporter=args.exporter,
        opset=args.opset,
    )
    summary = {**result.as_dict(), "check": report or "skipped (--no-check)"}
    if report:
        summary["restoration_checked"] = restoration_checked(report)
        if not summary["restoration_checked"]:
            print(
                "m2aenet export: warning: no check input had blurred pixels, so only the "
                "copy of the input was compared; add --check with a motion-blurred photo",
                file=sys.stderr,
            )
    text = json.dumps(summary, indent=2)
    if args.json is None or str(args.json) != STDOUT:
        print(text)
    if args.json:
        write_text_or_stdout(args.json, text + "\n")
    return 0
