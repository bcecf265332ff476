"""Atomic writes: complete file or nothing, normal permissions, no temp files left behind."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from m2aenet.atomic import atomic_path, write_text_atomic


def test_write_replaces_whole_file_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "out.json"
    target.write_text("old")
    write_text_atomic(target, "new")
    assert target.read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]


def test_failure_keeps_old_file_and_removes_temp(tmp_path: Path) -> None:
    target = tmp_path / "out.png"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("disk full")
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png"]


def test_temp_keeps_suffix_and_output_gets_umask_permissions(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        with atomic_path(tmp_path / "sub" / "x.png") as tmp:
            assert tmp.suffix == ".png"
            tmp.write_bytes(b"data")
    finally:
        os.umask(old)
    mode = stat.S_IMODE((tmp_path / "sub" / "x.png").stat().st_mode)
    assert mode == 0o644


def test_a_full_disk_is_one_error_naming_the_file_and_leaves_no_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    from m2aenet import atomic
    from m2aenet.errors import OutputError

    def full(*args: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(atomic.os, "replace", full)
    target = tmp_path / "summary.json"
    with pytest.raises(
        OutputError, match=r"summary.json: cannot write \(No space left on device\)"
    ):
        atomic.write_text_atomic(target, "{}")
    assert list(tmp_path.iterdir()) == []


def test_output_paths_are_checked_before_any_work(tmp_path: Path) -> None:
    from m2aenet.atomic import check_output_file, check_output_folder
    from m2aenet.errors import OutputError

    (tmp_path / "file").write_text("x")
    (tmp_path / "folder").mkdir()
    check_output_file("-", "--json")  # standard output
    check_output_file(tmp_path / "new" / "deep" / "a.json", "--json")
    check_output_folder(tmp_path / "folder", "-o")
    with pytest.raises(OutputError, match="--json .*folder: is a folder"):
        check_output_file(tmp_path / "folder", "--json")
    with pytest.raises(OutputError, match=r"--json .*: .*file is a file, not a folder"):
        check_output_file(tmp_path / "file" / "sub" / "a.json", "--json")
    with pytest.raises(OutputError, match="-o .*file: exists and is not a folder"):
        check_output_folder(tmp_path / "file", "-o")
    with pytest.raises(OutputError, match="is a file, not a folder"):
        check_output_folder(tmp_path / "file" / "out", "-o")


def refuse_files_in(monkeypatch: pytest.MonkeyPatch, folder: Path, error: OSError) -> None:
    """Make creating a temporary file in `folder` fail with `error`, as a read-only folder
    does for a user who is not root (root writes through permission bits)."""
    from m2aenet import atomic

    real_mkstemp = atomic.tempfile.mkstemp

    def refusing_mkstemp(*args: object, **kwargs: object) -> tuple[int, str]:
        if Path(str(kwargs.get("dir"))).resolve() == folder.resolve():
            raise error
        return real_mkstemp(*args, **kwargs)

    monkeypatch.setattr(atomic.tempfile, "mkstemp", refusing_mkstemp)


def test_an_output_folder_that_cannot_be_written_is_refused_before_any_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from m2aenet import atomic
    from m2aenet.errors import OutputError

    locked = tmp_path / "locked"
    locked.mkdir()
    if os.geteuid() != 0:  # root writes through permission bits: simulate the refusal instead
        locked.chmod(0o555)
    else:
        refuse_files_in(monkeypatch, locked, PermissionError(13, "Permission denied"))
    try:
        with pytest.raises(OutputError, match=r"-o .*locked: cannot write in .*Permission denied"):
            atomic.check_output_folder(locked, "-o")
        with pytest.raises(OutputError, match=r"-o .*locked/new/out: cannot write in .*locked"):
            atomic.check_output_folder(locked / "new" / "out", "-o")
        with pytest.raises(OutputError, match=r"--json .*s.json: cannot write in"):
            atomic.check_output_file(locked / "s.json", "--json")
        atomic.check_output_folder(tmp_path / "open", "-o")  # a writable place passes
        assert sorted(path.name for path in tmp_path.iterdir()) == ["locked"]  # no probe left
    finally:
        locked.chmod(0o755)
