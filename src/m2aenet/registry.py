"""One registry of model architectures, created by name from a config dataclass."""

from __future__ import annotations

import dataclasses
import fnmatch
import importlib
import math
import typing
from collections.abc import Callable
from typing import Any

from torch import nn

from m2aenet.errors import ConfigError
from m2aenet.limits import MAX_CONFIG_INT, MAX_PARAMETERS

# name -> (config dataclass type, builder taking a config instance)
_MODELS: dict[str, tuple[type, Callable[[Any], nn.Module]]] = {}

# Modules that register models when imported; imported lazily on first lookup so that
# `m2aenet --help` does not pay for building the model zoo.
_MODEL_MODULES = (
    "m2aenet.models.m2aenet",
    "m2aenet.models.multiscale",
    "m2aenet.models.baselines",
)


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


def list_models(pattern: str = "*") -> list[str]:
    """Names of the registered architectures matching a shell-style `pattern`, sorted.

    `list_models("m2aenet*")` gives the M2AENet sizes, as `timm.list_models` does for its zoo.
    """
    _load_model_modules()
    return sorted(name for name in _MODELS if fnmatch.fnmatchcase(name, pattern))


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
    types = typing.get_type_hints(config_type)
    for key, value in overrides.items():
        _check_value(f"model_config.{key}", value, types[key])
    return dataclasses.replace(config, **overrides)


def _check_value(key: str, value: Any, expected: Any) -> None:
    """ConfigError naming `key` when `value` does not have the field's type (int, float, bool,
    str, tuple[int, ...]) or is an integer over `MAX_CONFIG_INT`.

    Configs come from YAML files and from the JSON beside weights files; a value of the wrong
    type (`channels: 8.5`, `mask_threshold: "high"`) would otherwise fail deep inside a layer
    constructor, and an absurd one (`channels: 10**9`) would try to allocate it.
    """
    origin = typing.get_origin(expected)
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{key} must be a list of integers, got {value!r}")
        for item in value:
            _check_value(key, item, typing.get_args(expected)[0])
        return
    if expected is bool:
        ok = isinstance(value, bool)
    elif expected is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
        if ok and value > MAX_CONFIG_INT:
            raise ConfigError(f"{key} = {value} is absurdly large (limit {MAX_CONFIG_INT})")
    elif expected is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        ok = ok and math.isfinite(value)
    elif expected is str:
        ok = isinstance(value, str)
    else:
        return  # a type this check does not know: the config's own validation decides
    if not ok:
        raise ConfigError(f"{key} must be {expected.__name__}, got {value!r}")


def parameter_count(name: str, config: Any) -> int:
    """Parameters of model `name` built from `config`, counted on the meta device (no memory)."""
    import torch

    _, builder = _MODELS[name]
    with torch.device("meta"):
        return sum(parameter.numel() for parameter in builder(config).parameters())


def _check_parameter_count(name: str, config: Any) -> None:
    """Refuse a model over MAX_PARAMETERS before it is allocated."""
    parameters = parameter_count(name, config)
    if parameters > MAX_PARAMETERS:
        raise ConfigError(
            f"model {name!r} with this config has {parameters:,} parameters "
            f"(limit {MAX_PARAMETERS:,}): a config value is absurdly large"
        )


def create_model(name: str, **overrides: Any) -> nn.Module:
    """Build model `name` (train mode, dense, multi-branch) with config `overrides`.

    The returned module carries `model_name` and `config` attributes so a checkpoint can
    record how to rebuild it.
    """
    config = model_config(name, **overrides)
    _check_parameter_count(name, config)
    model = _MODELS[name][1](config)
    model.model_name = name
    model.config = config
    return model
