"""Device selection shared by every command: `auto` picks CUDA when present."""

from __future__ import annotations

import torch

from m2aenet.errors import M2AENetError


def resolve_device(name: str = "auto") -> torch.device:
    """Map `auto|cpu|cuda|cuda:N` to a torch.device, refusing CUDA when it is absent."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise M2AENetError(f"--device {name}: CUDA is not available on this machine")
    return device
