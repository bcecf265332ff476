"""Device selection shared by every command: `auto` picks CUDA when present."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

from m2aenet.errors import ConfigError

#: What a `--device` may name; anything else (`gpu`, `tpu`, `cuda:x`) is refused by name.
DEVICE_CHOICES = "auto, cpu, cuda, cuda:N or mps"
_DEVICE_TYPES = ("cpu", "cuda", "mps")


def resolve_device(name: str = "auto") -> torch.device:
    """Map `auto|cpu|cuda|cuda:N|mps` to a torch.device, refusing devices absent here.

    Raises ConfigError naming the value for an unknown name (torch's own error for `gpu` is a
    long RuntimeError), for CUDA without a GPU or with too few GPUs, and for MPS off macOS.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError, ValueError):
        device = None
    if device is None or device.type not in _DEVICE_TYPES:
        raise ConfigError(f"--device {name}: not a device name; use {DEVICE_CHOICES}")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"--device {name}: CUDA is not available on this machine")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(
                f"--device {name}: this machine has {torch.cuda.device_count()} CUDA device(s)"
            )
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"--device {name}: MPS (Apple GPU) is not available on this machine")
    return device


def check_threads(threads: int | None) -> int | None:
    """`threads` as given when it is None or an integer >= 1; ConfigError otherwise."""
    if threads is None:
        return None
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ConfigError(f"threads must be an integer >= 1 or None, got {threads!r}")
    return threads


@contextmanager
def cpu_threads(threads: int | None) -> Iterator[None]:
    """Run the body with `threads` intra-op CPU threads, then restore torch's setting.

    None leaves torch's choice (one per core). The setting is process-wide while it lasts.
    """
    if threads is None:
        yield
        return
    saved = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(saved)
