"""Exceptions the CLI turns into one clear line and a non-zero exit code."""

from __future__ import annotations

import os
from pathlib import Path


class M2AENetError(Exception):
    """Base class: a user-facing problem (bad input, bad config, missing file)."""


class ConfigError(M2AENetError):
    """A configuration key or value is wrong; the message names the key."""


class InputError(M2AENetError):
    """An input file or folder cannot be used; the message names the file."""


class OutputError(M2AENetError):
    """An output file or folder cannot be written; the message names it (and the option)."""


class CheckpointError(M2AENetError):
    """A weights file is missing, not safetensors, or does not fit the model."""


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised so that it unwinds like Ctrl-C (code that cleans up on an interrupt,
    such as atomic writes, does the same for a terminate)."""


class InputWarning(UserWarning):
    """A file can be processed but the result may not be what its user expects (the CLI prints
    it as one `warning:` line and records it in the JSON summary)."""


def file_problem(path: str | os.PathLike) -> str | None:
    """Why `path` cannot be read as a file ("file not found", "is a folder ...", "not a regular
    file ..." for a FIFO, device or socket, which would block or never end), or None."""
    path = Path(path)
    if path.is_file():
        return None
    if path.is_dir():
        return "is a folder, not a file"
    if path.exists():
        return "not a regular file (a FIFO, device or socket); give a file"
    return "file not found"
