"""One registry of model architectures, created by name from a config dataclass."""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable
from typing import Any

from torch import nn

from m2aenet.errors import ConfigError

# name -> (config dataclass type, builder taking a config instance)
_MODELS: dict[str, tuple[type, Callable[[Any], nn.Module]]] = {}

# Modules that register models when imported; imported lazily on first lookup so that
# `m2aenet --help` does not pay for building the model zoo.
_MODEL_MODULES = ("m2aenet.models.m2aenet", "m2aenet.models.baselines")


def register_model(name: str, config_type: type) -> Callable:
    """Decorator: `@register_model("m2aenet-s", M2AENetConfig)` on `build(config) -> nn.Module`.

    `config_type()` with no arguments must give that model's default configuration, so a
    size variant is registered with a `functools.partial` or a subclass holding its defaults.
    """

    def decorator(builder: Callable[[Any], nn.Module]) -> Callable[[Any], nn.Module]:
        if name in _MODELS:
            raise ValueError(f"model {name!r} registered twice")
        _MODELS[name] = (config_type, builder)
        return builder

    return decorator


def _load_model_modules() -> None:
    for module in _MODEL_MODULES:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as error:
            if error.name != module:  # a real import error inside the module
                raise


def list_models() -> list[str]:
    """Names of every registered architecture, sorted."""
    _load_model_modules()
    return sorted(_MODELS)


def model_config(name: str, **overrides: Any) -> Any:
    """The config dataclass of `name` with `overrides` applied; unknown keys are an error."""
    _load_model_modules()
    if name not in _MODELS:
        raise ConfigError(f"unknown model {name!r}; known: {', '.join(sorted(_MODELS))}")
    config_type, _ = _MODELS[name]
    config = config_type()
    known = {field.name for field in dataclasses.fields(config)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ConfigError(f"unknown key(s) {unknown} for model {name!r}; known: {sorted(known)}")
    return dataclasses.replace(config, **overrides)


def create_model(name: str, **overrides: Any) -> nn.Module:
    """Build model `name` (train mode, dense, multi-branch) with config `overrides`.

    The returned module carries `model_name` and `config` attributes so a checkpoint can
    record how to rebuild it.
    """
    config = model_config(name, **overrides)
    _, builder = _MODELS[name]
    model = builder(config)
    model.model_name = name
    model.config = config
    return model
