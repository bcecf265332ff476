"""Command-line entry point: parses arguments and hands them to one command module.

Each sub-command lives in `m2aenet/commands/<name>.py` with `add_parser(subparsers)` (which
sets `func`) and imports its heavy dependencies inside its run function, so `--help` is fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from m2aenet.errors import M2AENetError

COMMANDS = ("synth", "train", "eval", "deblur", "bench", "export")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="m2aenet",
        description="Local motion deblurring with motion-aware adaptive pixel pruning.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"m2aenet.commands.{name}")
        except ModuleNotFoundError as error:
            if error.name == f"m2aenet.commands.{name}":
                continue  # command not built yet
            raise
        module.add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except M2AENetError as error:
        print(f"m2aenet {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"m2aenet {args.command}: interrupted", file=sys.stderr)
        return 130
