"""The command-line dispatcher: help, error reporting and the fast-malloc re-exec."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from m2aenet import cli
from m2aenet.errors import InputError


def test_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for name in ("synth", "train", "eval", "deblur", "bench"):
        assert name in out


def test_user_error_becomes_one_line_and_exit_code_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def failing(args) -> int:
        raise InputError("photo.png: cannot read image")

    parser = cli.build_parser()
    args = parser.parse_args(["synth", "--out", "x"])
    monkeypatch.setattr(cli, "build_parser", lambda: _Fixed(args, failing))
    assert cli.main([]) == 2
    err = capsys.readouterr().err
    assert err.strip() == "m2aenet synth: error: photo.png: cannot read image"


class _Fixed:
    """A parser stand-in that returns prepared arguments with a chosen command function."""

    def __init__(self, args, func) -> None:
        self.args = args
        self.args.func = func

    def parse_args(self, argv):
        return self.args


@pytest.mark.skipif(sys.platform != "linux", reason="glibc tunables exist on Linux only")
def test_console_entry_reexecs_with_fast_malloc_tunables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GLIBC_TUNABLES", raising=False)
    monkeypatch.delenv("M2AENET_NO_REEXEC", raising=False)
    monkeypatch.setattr(sys, "argv", ["m2aenet", "deblur", "a.png"])
    calls = []
    monkeypatch.setattr(os, "execve", lambda path, argv, env: calls.append((path, argv, env)))
    cli._reexec_with_fast_malloc()
    assert len(calls) == 1
    path, argv, env = calls[0]
    assert argv == [sys.executable, "-m", "m2aenet", "deblur", "a.png"]
    assert env["GLIBC_TUNABLES"] == cli.FAST_MALLOC_TUNABLES
    assert env["M2AENET_NO_REEXEC"] == "1"  # the restarted process must not loop


def test_reexec_really_sets_the_tunables_in_a_child() -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("GLIBC_TUNABLES", "M2AENET_NO_REEXEC")}
    code = (
        "import os, sys\n"
        "if os.environ.get('M2AENET_NO_REEXEC'):\n"
        "    print(os.environ['GLIBC_TUNABLES']); sys.exit(0)\n"
        "from m2aenet import cli\n"
        "os.execve = (lambda real: lambda p, a, e: real(p, [p, '-c', sys.argv[1], sys.argv[1]], e))"
        "(os.execve)\n"
        "cli._reexec_with_fast_malloc()\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, code], env=env, capture_output=True, text=True, timeout=60
    )
    if sys.platform == "linux" and __import__("platform").libc_ver()[0] == "glibc":
        assert result.stdout.strip() == cli.FAST_MALLOC_TUNABLES, result.stderr


def test_user_tunables_are_respected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.arena_max=1")
    called = []
    monkeypatch.setattr(os, "execve", lambda *a: called.append(a))
    cli._reexec_with_fast_malloc()
    assert called == []


def test_sigterm_removes_the_temp_file_of_an_atomic_write(tmp_path) -> None:
    import signal

    target = tmp_path / "result.png"
    code = (
        "import argparse, sys, time\n"
        "from m2aenet import cli\n"
        "from m2aenet.atomic import atomic_path\n"
        "def slow(args):\n"
        "    with atomic_path(sys.argv[1]) as tmp:\n"
        "        tmp.write_text('half')\n"
        "        print('writing', flush=True)\n"
        "        time.sleep(60)\n"
        "sys.exit(cli.run_command(argparse.Namespace(command='deblur', func=slow)))\n"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", code, str(target)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert child.stdout.readline().strip() == "writing"
    assert len(list(tmp_path.iterdir())) == 1  # the temp file exists while writing
    child.send_signal(signal.SIGTERM)
    _, err = child.communicate(timeout=30)
    assert child.returncode == 128 + signal.SIGTERM
    assert err.strip() == "m2aenet deblur: terminated"
    assert list(tmp_path.iterdir()) == []


def test_version_is_the_installed_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    from importlib.metadata import version

    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"m2aenet {version('m2aenet')}"
