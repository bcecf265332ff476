"""The commands the README and docs/*.md show are ones the command line accepts.

Each `m2aenet ...` line of a bash block (also after `torchrun ... -m`) is parsed with the real
argument parser, so a renamed or removed option, a wrong value type or a value outside its
range (`--threshold 2`) fails here. Running them (models, data, training) is left to the
commands' own tests; this keeps the documentation in step with the parser at no cost.
Python blocks must at least compile.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from m2aenet import cli
from m2aenet.commands.train import split_rest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_BLOCK = re.compile(r"^```(\w+)\n(.*?)^```", re.MULTILINE | re.DOTALL)


def _blocks(kind: str) -> list[tuple[str, str]]:
    found = []
    for path in DOCS:
        for language, body in _BLOCK.findall(path.read_text(encoding="utf-8")):
            if language == kind:
                found.append((path.relative_to(ROOT).as_posix(), body))
    return found


def _command_lines() -> list[tuple[str, list[str]]]:
    """(where, argv after `m2aenet`) of every documented m2aenet command."""
    commands = []
    for where, body in _blocks("bash"):
        for line in body.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if "m2aenet" not in words:
                continue
            start = words.index("m2aenet")
            if start > 0 and words[start - 1] not in ("-m",):
                continue  # `pip install m2aenet`, not a command
            commands.append((f"{where}: {line.strip()}", words[start + 1 :]))
    return commands


COMMANDS = _command_lines()


def test_the_docs_show_commands_at_all() -> None:
    assert len(COMMANDS) > 20
    assert {argv[0] for _, argv in COMMANDS if argv} >= {"deblur", "train", "eval", "synth"}


@pytest.mark.parametrize(("where", "argv"), COMMANDS, ids=[where for where, _ in COMMANDS])
def test_documented_command_parses(where: str, argv: list[str]) -> None:
    parser = cli.build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_info:  # --help / --version exit 0; a bad argument exits 2
        assert exit_info.code == 0, where
        return
    if args.command == "train":
        split_rest(list(args.rest))


@pytest.mark.parametrize(
    ("where", "code"), _blocks("python"), ids=[where for where, _ in _blocks("python")]
)
def test_documented_python_compiles(where: str, code: str) -> None:
    compile(code, where, "exec")
