"""How much memory this process may still take, and up-front refusals of work that cannot fit.

A job that needs more memory than the machine has is killed by the kernel part-way through, with
no message; checking an estimate first turns that into one line before anything is allocated.
"""

from __future__ import annotations

from pathlib import Path

_MEMINFO = Path("/proc/meminfo")
_CGROUP = Path("/sys/fs/cgroup")


def _meminfo_available() -> int | None:
    try:
        for line in _MEMINFO.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _cgroup_room() -> int | None:
    """Bytes left under this cgroup's (v2) memory limit; None without a limit."""
    try:
        limit = (_CGROUP / "memory.max").read_text().strip()
        if limit == "max":
            return None
        return max(int(limit) - int((_CGROUP / "memory.current").read_text()), 0)
    except (OSError, ValueError):
        return None


def available_memory() -> int | None:
    """Bytes of memory a new allocation can still get (RAM and container limit), or None when
    this system does not say (then nothing is refused)."""
    known = [value for value in (_meminfo_available(), _cgroup_room()) if value is not None]
    return min(known) if known else None


def format_bytes(count: float) -> str:
    """`1.5 GB` style (powers of 1000, as `free -h --si` and most tools print)."""
    for unit in ("B", "kB", "MB", "GB"):
        if abs(count) < 1000.0:
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1000.0
    return f"{count:.1f} TB"


def fits(needed: float) -> tuple[bool, int | None]:
    """(whether `needed` bytes fit in `available_memory()`, the available bytes)."""
    available = available_memory()
    return available is None or needed <= available, available
