"""Atomic file writes: a crash or a full disk never leaves a half-written output.

Also the checks every command runs on its output paths before any work, so that a path that
cannot be written (a folder where a file should go, a file where a folder should be) is one
line at the start rather than a traceback, or a failure per image, at the end.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from m2aenet.errors import OutputError

#: `--json -` and the like: write to standard output instead of a file.
STDOUT = "-"


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success rename it over `path`.

    The temporary file keeps the final suffix so writers that pick a format from the
    extension (Pillow, safetensors, numpy) behave as they would on the final name.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(
            prefix=f".{path.name}.", suffix=f".tmp{path.suffix}", dir=path.parent
        )
    except OSError as error:
        raise OutputError(f"{path}: cannot write ({error.strerror or error})") from error
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        # mkstemp creates 0600 files; give the output the permissions a plain open() would.
        os.chmod(tmp, 0o666 & ~_current_umask())
        os.replace(tmp, path)
    except OSError as error:  # a full disk, a quota, a folder in the way
        tmp.unlink(missing_ok=True)
        raise OutputError(f"{path}: cannot write ({error.strerror or error})") from error
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write a text file atomically (UTF-8)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write a binary file atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text_or_stdout(target: str | os.PathLike, text: str) -> None:
    """Write `text` to the file `target` atomically, or to standard output for `-`."""
    if os.fspath(target) == STDOUT:
        sys.stdout.write(text)
        sys.stdout.flush()
    else:
        write_text_atomic(target, text)


def _blocking_ancestor(path: Path) -> Path | None:
    """The nearest existing ancestor of `path` when it is not a folder (a file in the way)."""
    for ancestor in path.parents:
        if ancestor.exists():
            return None if ancestor.is_dir() else ancestor
    return None


def _nearest_existing(path: Path) -> Path:
    """`path` itself if it exists, else its nearest existing ancestor."""
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return Path(".")


def _check_writable(path: Path, option: str, folder: Path | None = None) -> None:
    """OutputError naming `option` and `path` unless a file can be created in `folder`
    (default: `path` itself, a folder to be), or where it will be made.

    A real temporary file is created and removed in the nearest existing folder: permission
    bits do not tell (root ignores them, a read-only mount or an ACL overrides them).
    """
    folder = _nearest_existing(path if folder is None else folder)
    try:
        fd, probe = tempfile.mkstemp(prefix=".m2aenet-write-check.", dir=folder)
    except OSError as error:
        raise OutputError(
            f"{option} {path}: cannot write in {folder} ({error.strerror or error})"
        ) from error
    os.close(fd)
    os.unlink(probe)


def check_output_file(path: str | os.PathLike, option: str) -> None:
    """OutputError naming `option` unless `path` can become a file (`-`, standard output, can).

    Refused: an existing folder, and a path below an existing regular file.
    """
    if os.fspath(path) == STDOUT:
        return
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{option} {path}: is a folder; give a file name")
    blocking = _blocking_ancestor(path)
    if blocking is not None:
        raise OutputError(f"{option} {path}: {blocking} is a file, not a folder")
    _check_writable(path, option, path.parent)


def check_output_folder(path: str | os.PathLike, option: str) -> None:
    """OutputError naming `option` unless `path` is a folder or can be created as one."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputError(f"{option} {path}: exists and is not a folder")
    blocking = _blocking_ancestor(path)
    if blocking is not None:
        raise OutputError(f"{option} {path}: {blocking} is a file, not a folder")
    _check_writable(path, option)
