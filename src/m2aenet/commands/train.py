"""`m2aenet train CONFIG.yaml [--resume] [--out DIR] [key=value ...]`.

Also runs under torchrun: `torchrun --nproc_per_node N -m m2aenet train CONFIG.yaml ...`.
"""

from __future__ import annotations

import argparse
import os

from m2aenet.errors import ConfigError


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the `train` sub-command."""
    parser = subparsers.add_parser(
        "train",
        help="train a model from a YAML config",
        description=(
            "Train a model from a YAML config. KEY=VALUE overrides after the config change "
            "single keys (optim.lr=1e-3 data.batch_size=2). Several processes: torchrun "
            "--nproc_per_node N -m m2aenet train CONFIG.yaml."
        ),
    )
    parser.add_argument("config", help="training config (YAML), e.g. configs/default.yaml")
    # argparse cannot take positionals after options (`CONFIG --out DIR key=value`), so
    # everything after the config is collected here and split by `split_rest`.
    parser.add_argument(
        "rest",
        nargs=argparse.REMAINDER,
        metavar="KEY=VALUE",
        help="config overrides (dotted keys), in any order with --out and --resume",
    )
    parser.add_argument("--out", help="run folder (default: the config's `out`)")
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --out from its last checkpoint (starts fresh if it has none)",
    )
    parser.set_defaults(func=run)


def split_rest(rest: list[str]) -> tuple[list[str], str | None, bool]:
    """(overrides, --out or None, --resume given) from the arguments after the config."""
    parser = argparse.ArgumentParser(prog="m2aenet train", add_help=False)
    parser.add_argument("--out")
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("overrides", nargs="*")
    namespace, unknown = parser.parse_known_intermixed_args(rest)
    if unknown:
        raise ConfigError(
            f"unknown option(s) {' '.join(unknown)}; usage: m2aenet train CONFIG [--out DIR] "
            "[--resume] [KEY=VALUE ...] (see m2aenet train --help)"
        )
    return namespace.overrides, namespace.out, namespace.resume


def command_line(args: argparse.Namespace) -> list[str]:
    """The command as parsed (recorded in the checkpoints), whoever called the CLI."""
    before = (["--out", args.out] if args.out else []) + (["--resume"] if args.resume else [])
    return ["m2aenet", "train", *before, args.config, *args.rest]


def run(args: argparse.Namespace) -> int:
    """Load and check the config, then train; returns the exit code."""
    from m2aenet.atomic import check_output_folder
    from m2aenet.recipe.datasets import check_data_roots, config_data_roots
    from m2aenet.train.config import load_config
    from m2aenet.train.trainer import train

    overrides, out, resume = split_rest(list(args.rest))
    config = load_config(args.config, overrides)
    out = out or args.out
    check_output_folder(out if out is not None else config.out, "--out")
    check_data_roots(config_data_roots(config))
    summary = train(
        config,
        out=out,
        resume=resume or args.resume,
        command=command_line(args),
    )
    metrics = summary.get("metrics") or {}
    is_main = os.environ.get("RANK", "0") == "0"
    if is_main and isinstance(metrics.get("psnr_w"), float):
        print(f"m2aenet train: {summary['final']} (val PSNR_w {metrics['psnr_w']:.2f} dB)")
    return 0
