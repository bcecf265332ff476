"""Training configuration: YAML mapped onto typed dataclasses, with dotted command-line overrides.

Every key is checked: an unknown key (at any depth) or a value of the wrong type is a
ConfigError naming the full dotted key (`optim.lrr`) and, for YAML files, the file.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union

import yaml

from m2aenet.errors import ConfigError

AmpMode = Literal["none", "bf16", "fp16", "auto"]


def _loss_config_type() -> type:
    # The loss config belongs to the loss module; imported late so that reading a config
    # does not import torch until a field actually needs it.
    from m2aenet.losses import LossConfig

    return LossConfig


@dataclass
class ModelSection:
    """Which registered architecture to train, and overrides of its config dataclass.

    `init_weights`: start from these weights (a shipped name such as `default`, or a
    `.safetensors` path) instead of a random initialization: fine-tuning. They must fit the
    architecture exactly, except that parts which start as the identity may be added (the
    model's `grown_parts`, e.g. m2aenet-ms's full-resolution level); optimizer and schedule
    start fresh.
    """

    name: str = "m2aenet-s"
    overrides: dict[str, Any] = field(default_factory=dict)
    init_weights: str | None = None
    frozen: list[str] = field(default_factory=list)  # parameter-name prefixes not trained


@dataclass
class TeacherMaskSection:
    """How the true mask is widened while teacher forcing (`train/teacher_mask.py`)."""

    max_dilation: int = 0
    false_blob_probability: float = 0.0


@dataclass
class DataSource:
    """One source of samples: a dataset folder or the on-the-fly synthetic generator.

    `source: folder` reads `root` through `m2aenet.data.datasets.open_dataset(root, layout, ...)`
    (`layout`: generic, gopro, reloblur, or a mapping of blur/sharp/mask patterns);
    `source: synth` generates pairs with `OnTheFlySynthDataset` (the role picks its split, so
    training and validation never draw the same photos). `crop_size` is the training crop,
    or the side of generated images; `null` means full images (validation folders).
    `blur_reference_side` (synth only): draw blur lengths as for frames of this side, so small
    crops carry the blur of full-size photos; `null` scales blur with `crop_size`.
    `blur_length` (synth only): [shortest, longest] blur path in px of the generated images.
    `source: blur_crops` (training): `crops_per_frame` crops of `crop_size` from every frame of
    the synthetic set in `root` (written by `m2aenet synth`), a share `centred_fraction` of
    them centred on blurred pixels (`data.blur_crops.BlurCentredCrops`), plus the frames of
    the sets in `extra_roots` (e.g. camera-shake frames beside the local ones); `hard_negatives`
    adds sharp-labelled look-alikes of blur (defocus, dark, noise, JPEG, gray) for the mask
    predictor (`data.hard_negatives`).
    """

    source: Literal["synth", "folder", "blur_crops"] = "synth"
    root: str | None = None
    extra_roots: list[str] = field(default_factory=list)
    layout: str | dict[str, Any] = "generic"
    crop_size: int | None = 128
    mode: Literal["local", "global", "mixed"] = "mixed"
    global_fraction: float = 0.2
    blur_reference_side: int | None = None
    blur_length: list[float] | None = None
    crops_per_frame: int = 4
    centred_fraction: float = 0.9
    hard_negatives: bool = False
    length: int = 10000
    seed: int = 0
    max_items: int | None = None


def _default_val_source() -> DataSource:
    return DataSource(length=32, seed=1)


@dataclass
class DataSection:
    """Training and validation sources and the loader settings (batch size is per process)."""

    train: DataSource = field(default_factory=DataSource)
    val: DataSource = field(default_factory=_default_val_source)
    batch_size: int = 8
    num_workers: int = 1


@dataclass
class OptimSection:
    """AdamW with linear warm-up then cosine decay to `min_lr`; `grad_clip: 0` disables clipping.

    `accumulation` micro-batches are summed into one optimizer step.
    """

    lr: float = 5e-4
    weight_decay: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.99)
    eps: float = 1e-8
    warmup_steps: int = 200
    min_lr: float = 1e-6
    grad_clip: float = 1.0
    accumulation: int = 1


@dataclass
class EmaSection:
    """Exponential moving average of weights and buffers (what gets exported)."""

    enabled: bool = True
    decay: float = 0.999
    warmup: bool = True


@dataclass
class CheckpointSection:
    """Checkpoint every `every` optimizer steps, keeping the newest `keep`."""

    every: int = 500
    keep: int = 3


@dataclass
class ValidationSection:
    """Evaluate the EMA weights on the fixed validation set every `every` steps."""

    enabled: bool = True
    every: int = 500


@dataclass
class LogSection:
    """A training row in log.jsonl every `every` steps; tqdm progress bar on the main process."""

    every: int = 10
    progress: bool = True


@dataclass
class TrainConfig:
    """Everything `m2aenet train` needs; `steps` counts optimizer steps.

    `threads`: CPU threads for torch ops in each process (None: torch's default).
    `time_limit_minutes`: stop (validating and checkpointing as at the last step) once this
    process has trained this long, so a run fits a session; `--resume` continues it.
    """

    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection = field(default_factory=DataSection)
    optim: OptimSection = field(default_factory=OptimSection)
    loss: Any = field(
        default_factory=lambda: _loss_config_type()(), metadata={"section": _loss_config_type}
    )
    ema: EmaSection = field(default_factory=EmaSection)
    checkpoint: CheckpointSection = field(default_factory=CheckpointSection)
    validation: ValidationSection = field(default_factory=ValidationSection)
    log: LogSection = field(default_factory=LogSection)
    steps: int = 10000
    seed: int = 0
    device: str = "auto"
    threads: int | None = None
    amp: AmpMode = "auto"
    teacher_forcing_steps: int = 0
    teacher_mask: TeacherMaskSection = field(default_factory=TeacherMaskSection)
    time_limit_minutes: float | None = None
    deterministic: bool = True
    out: str = "runs/m2aenet"


# ---------------------------------------------------------------------------------------------
# Mapping plain data onto the dataclasses


def _dotted(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


def _type_name(tp: Any) -> str:
    if isinstance(tp, type):
        return tp.__name__
    return str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check `value` against the annotation `tp`; return it converted (lists -> tuples...)."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for option in args:
            if option is type(None):
                continue
            try:
                return _coerce(value, option, key)
            except ConfigError:
                continue
        raise ConfigError(f"{key}: expected {_type_name(tp)}, got {value!r}")
    if origin is Literal:
        if value not in args:
            choices = ", ".join(repr(choice) for choice in args)
            raise ConfigError(f"{key}: {value!r} is not one of {choices}")
        return value
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, key)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        return value
    if tp is float:
        # YAML 1.1 reads `1e-3` (no dot) as a string; accept any string Python reads as a float.
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return value
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(item, args[0], f"{key}[{i}]") for i, item in enumerate(value))
        if len(value) != len(args):
            raise ConfigError(f"{key}: expected a list of {len(args)} items, got {value!r}")
        return tuple(
            _coerce(item, arg, f"{key}[{i}]")
            for i, (item, arg) in enumerate(zip(value, args, strict=True))
        )
    if origin is list:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        item_type = args[0] if args else Any
        return [_coerce(item, item_type, f"{key}[{i}]") for i, item in enumerate(value)]
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        value_type = args[1] if len(args) == 2 else Any
        return {str(k): _coerce(v, value_type, _dotted(key, str(k))) for k, v in value.items()}
    if isinstance(tp, type):
        if not isinstance(value, tp):
            raise ConfigError(f"{key}: expected {_type_name(tp)}, got {value!r}")
        return value
    return value


def from_dict(cls: type, data: Any, prefix: str = "") -> Any:
    """Build dataclass `cls` from a mapping, checking every key and value type.

    `prefix` is the dotted path of this section, used in error messages.
    """
    if data is None:
        data = {}
    if dataclasses.is_dataclass(data) and not isinstance(data, type):
        data = dataclasses.asdict(data)
    if not isinstance(data, dict):
        where = prefix or "the config"
        raise ConfigError(f"{where}: expected a mapping of keys, got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in data.items():
        key = str(key)
        dotted = _dotted(prefix, key)
        if key not in fields:
            close = difflib.get_close_matches(key, list(fields), n=1)
            hint = f"; did you mean {_dotted(prefix, close[0])!r}?" if close else ""
            raise ConfigError(
                f"unknown key {dotted!r}{hint} (known keys here: {', '.join(fields)})"
            )
        section = fields[key].metadata.get("section")
        field_type = section() if section is not None else hints[key]
        kwargs[key] = _coerce(value, field_type, dotted)
    return cls(**kwargs)


def to_dict(config: Any) -> dict[str, Any]:
    """Plain JSON/YAML-ready data of a config (tuples become lists)."""

    def plain(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [plain(v) for v in value]
        return value

    return plain(dataclasses.asdict(config))


# ---------------------------------------------------------------------------------------------
# Overrides, files, validation


def parse_override(text: str) -> tuple[list[str], Any]:
    """`optim.lr=1e-3` -> (["optim", "lr"], "1e-3"); the value is read with yaml.safe_load."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise ConfigError(
            f"override {text!r}: expected KEY=VALUE with a dotted key, e.g. optim.lr=1e-3"
        )
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as error:
        raise ConfigError(f"override {text!r}: value is not valid YAML ({error})") from error
    return key.split("."), value


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Return a copy of the raw config mapping with each `a.b.c=value` override set."""
    import copy

    data = copy.deepcopy(data)
    for text in overrides:
        path, value = parse_override(text)
        node = data
        for depth, part in enumerate(path[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                where = ".".join(path[: depth + 1])
                raise ConfigError(f"override {text!r}: {where!r} is a value, not a section")
            node = child
        node[path[-1]] = value
    return data


def _check(condition: bool, key: str, message: str) -> None:
    if not condition:
        raise ConfigError(f"{key}: {message}")


def validate(config: TrainConfig) -> TrainConfig:
    """Range checks that types alone cannot express; returns `config` unchanged."""
    _check(config.steps >= 1, "steps", "must be >= 1")
    _check(config.teacher_forcing_steps >= 0, "teacher_forcing_steps", "must be >= 0")
    _check(config.teacher_mask.max_dilation >= 0, "teacher_mask.max_dilation", "must be >= 0")
    _check(
        0.0 <= config.teacher_mask.false_blob_probability <= 1.0,
        "teacher_mask.false_blob_probability",
        "must be in [0, 1]",
    )
    _check(config.threads is None or config.threads >= 1, "threads", "must be >= 1 or null")
    _check(
        config.device == "auto" or config.device.split(":")[0] in ("cpu", "cuda"),
        "device",
        f"expected auto, cpu, cuda or cuda:N, got {config.device!r}",
    )
    optim = config.optim
    _check(optim.lr > 0 and math.isfinite(optim.lr), "optim.lr", "must be a positive number")
    _check(0 <= optim.min_lr <= optim.lr, "optim.min_lr", "must be between 0 and optim.lr")
    _check(optim.weight_decay >= 0, "optim.weight_decay", "must be >= 0")
    _check(all(0 <= b < 1 for b in optim.betas), "optim.betas", "each beta must be in [0, 1)")
    _check(optim.warmup_steps >= 0, "optim.warmup_steps", "must be >= 0")
    _check(optim.grad_clip >= 0, "optim.grad_clip", "must be >= 0 (0 disables clipping)")
    _check(optim.accumulation >= 1, "optim.accumulation", "must be >= 1")
    data = config.data
    _check(data.batch_size >= 1, "data.batch_size", "must be >= 1")
    _check(data.num_workers >= 0, "data.num_workers", "must be >= 0")
    for role in ("train", "val"):
        source: DataSource = getattr(data, role)
        prefix = f"data.{role}"
        if source.source in ("folder", "blur_crops"):
            _check(
                source.root is not None, f"{prefix}.root", f"a {source.source} source needs a root"
            )
        if source.source == "blur_crops":
            _check(role == "train", f"{prefix}.source", "blur_crops is a training source")
            _check(source.crops_per_frame >= 1, f"{prefix}.crops_per_frame", "must be >= 1")
            _check(
                0 <= source.centred_fraction <= 1, f"{prefix}.centred_fraction", "must be in [0, 1]"
            )
        _check(
            not source.extra_roots or source.source == "blur_crops",
            f"{prefix}.extra_roots",
            "only a blur_crops source takes extra roots",
        )
        if source.blur_length is not None:
            _check(
                len(source.blur_length) == 2
                and 1 <= source.blur_length[0] <= source.blur_length[1],
                f"{prefix}.blur_length",
                "must be [shortest, longest] px with 1 <= shortest <= longest",
            )
        if source.crop_size is not None:
            _check(source.crop_size >= 8, f"{prefix}.crop_size", "must be >= 8 pixels")
        _check(source.length >= 1, f"{prefix}.length", "must be >= 1")
        _check(0 <= source.global_fraction <= 1, f"{prefix}.global_fraction", "must be in [0, 1]")
        if source.max_items is not None:
            _check(source.max_items >= 1, f"{prefix}.max_items", "must be >= 1")
    _check(data.train.crop_size is not None, "data.train.crop_size", "training needs a crop size")
    for role in ("train", "val"):
        if getattr(data, role).source == "synth":
            _check(
                getattr(data, role).crop_size is not None,
                f"data.{role}.crop_size",
                "the synthetic source needs an image size",
            )
    _check(0 <= config.ema.decay < 1, "ema.decay", "must be in [0, 1)")
    _check(config.checkpoint.every >= 1, "checkpoint.every", "must be >= 1")
    _check(config.checkpoint.keep >= 1, "checkpoint.keep", "must be >= 1")
    _check(config.validation.every >= 1, "validation.every", "must be >= 1")
    _check(config.log.every >= 1, "log.every", "must be >= 1")
    return config


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> TrainConfig:
    """Read a YAML config (or the defaults when `path` is None), apply overrides, validate.

    Errors name the file and the dotted key.
    """
    data: Any = {}
    if path is not None:
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as error:
            raise ConfigError(f"{path}: cannot read config ({error.strerror or error})") from error
        try:
            data = yaml.safe_load(text) or {}
        except yaml.YAMLError as error:
            raise ConfigError(f"{path}: not valid YAML ({error})") from error
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: the top level must be a mapping of sections")
    try:
        data = apply_overrides(data, list(overrides or []))
        config = validate(from_dict(TrainConfig, data))
        check_model_section(config.model)
    except ConfigError as error:
        if path is None:
            raise
        raise ConfigError(f"{path}: {error}") from error
    return config


def check_model_section(model: ModelSection) -> None:
    """Check that the model exists and that its overrides are fields of its config."""
    from m2aenet.registry import model_config

    try:
        config = model_config(model.name, **model.overrides)
    except ConfigError as error:
        raise ConfigError(f"model: {error}") from error
    except TypeError as error:  # a dataclass refusing a value
        raise ConfigError(f"model.overrides: {error}") from error
    check_training_memory(model, config)


#: Bytes per parameter while training: float32 weights, gradients, two Adam moments and the EMA
#: copy. Activations come on top, so this is a floor: a model over it can never train here.
TRAINING_BYTES_PER_PARAMETER = 5 * 4


def check_training_memory(model: ModelSection, config: Any) -> None:
    """ConfigError naming the widened `model.overrides` keys when the model's training state
    alone (`TRAINING_BYTES_PER_PARAMETER`) exceeds the memory available now; the kernel would
    otherwise kill the run part-way through allocating it."""
    from m2aenet.memory import fits, format_bytes
    from m2aenet.registry import model_config, parameter_count

    needed = parameter_count(model.name, config) * TRAINING_BYTES_PER_PARAMETER
    ok, available = fits(needed)
    if ok:
        return
    defaults = model_config(model.name)
    widened = [
        f"model.overrides.{key}={value}"
        for key, value in model.overrides.items()
        if isinstance(value, int | float) and value > getattr(defaults, key)
    ]
    raise ConfigError(
        f"{', '.join(widened) or 'model'}: training this model needs at least "
        f"{format_bytes(needed)} (weights, gradients, optimizer and EMA state) but only "
        f"{format_bytes(available or 0)} of memory is available"
    )
