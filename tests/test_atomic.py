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
