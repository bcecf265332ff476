"""Command-line entry point: parses arguments and hands them to one command module.

Each sub-command lives in `m2aenet/commands/<name>.py` with `add_parser(subparsers)` (which
sets `func`) and imports its heavy dependencies inside its run function, so `--help` is fast.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import platform
import signal
import sys
import threading
from collections.abc import Iterator

from m2aenet import __version__
from m2aenet.errors import M2AENetError, Terminated

COMMANDS = ("synth", "train", "recipe", "eval", "deblur", "bench", "export", "web")

# glibc hands freed memory back to the OS too eagerly for torch's allocation pattern; these
# tunables made torch ops 1.3-5x faster on a 2-core machine (docs/decisions.md). glibc reads
# them only at process start, so the console script re-executes itself once with them set.
FAST_MALLOC_TUNABLES = "glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=68719476736"
_NO_REEXEC = "M2AENET_NO_REEXEC"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="m2aenet",
        description="Local motion deblurring with motion-aware adaptive pixel pruning.",
    )
    parser.add_argument("--version", action="version", version=f"m2aenet {__version__}")
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


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated()


@contextlib.contextmanager
def _sigterm_unwinds() -> Iterator[None]:
    """Turn SIGTERM into `Terminated` so it unwinds like Ctrl-C: temp files are removed.

    Python's default for SIGTERM ends the process at once, without running `finally` blocks,
    so an atomic write killed by `kill` or a job scheduler would leave its temp file behind.
    """
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set from the main thread
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_command(args: argparse.Namespace) -> int:
    """Run a parsed command: user errors become one line and exit 2, signals 130 / 143."""
    try:
        with _sigterm_unwinds():
            return int(args.func(args) or 0)
    except M2AENetError as error:
        print(f"m2aenet {args.command}: error: {error}", file=sys.stderr)
        return 2
    except Terminated:
        print(f"m2aenet {args.command}: terminated", file=sys.stderr)
        return 128 + signal.SIGTERM
    except KeyboardInterrupt:
        print(f"m2aenet {args.command}: interrupted", file=sys.stderr)
        return 130


def main(argv: list[str] | None = None) -> int:
    return run_command(build_parser().parse_args(argv))


def _reexec_with_fast_malloc() -> None:
    """Restart this process with FAST_MALLOC_TUNABLES unless the user set their own tunables."""
    if (
        os.environ.get("GLIBC_TUNABLES") is not None
        or os.environ.get(_NO_REEXEC)
        or sys.platform != "linux"
        or platform.libc_ver()[0] != "glibc"
    ):
        return
    env = {**os.environ, "GLIBC_TUNABLES": FAST_MALLOC_TUNABLES, _NO_REEXEC: "1"}
    try:
        os.execve(sys.executable, [sys.executable, "-m", "m2aenet", *sys.argv[1:]], env)
    except OSError:
        return  # cannot re-exec (unusual interpreter set-up): run as we are


def entry() -> int:
    """Console-script and `python -m m2aenet` entry point."""
    _reexec_with_fast_malloc()
    return main()
