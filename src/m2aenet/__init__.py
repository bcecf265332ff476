"""m2aenet: motion-aware adaptive pixel pruning for efficient local motion deblurring.

Public API (imported lazily so `import m2aenet` stays cheap):
`create_model`, `list_models`, `load_model`, `Deblurrer`.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "create_model": ("m2aenet.registry", "create_model"),
    "list_models": ("m2aenet.registry", "list_models"),
    "load_model": ("m2aenet.checkpoint", "load_model"),
    "save_model": ("m2aenet.checkpoint", "save_model"),
    "Deblurrer": ("m2aenet.api", "Deblurrer"),
}

__all__ = [*_LAZY, "__version__"]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'm2aenet' has no attribute {name!r}")
    import importlib

    module_name, attribute = _LAZY[name]
    return getattr(importlib.import_module(module_name), attribute)
