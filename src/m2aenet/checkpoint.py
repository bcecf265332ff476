"""Model weights on disk: `NAME.safetensors` + `NAME.json` (architecture and provenance).

Weights are read with safetensors only, so loading a file never runs code from it. The JSON
sidecar says which registered model to build and with which config; the same information is
also stored in the safetensors metadata so a lone `.safetensors` file still loads.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from m2aenet.atomic import atomic_path, write_text_atomic
from m2aenet.errors import CheckpointError, ConfigError, file_problem

WEIGHTS_DIR = Path(__file__).parent / "weights"
_META_KEY = "m2aenet"


def shipped_weights() -> list[str]:
    """Names of the weights that ship inside the package (`default`, ...)."""
    return sorted(path.stem for path in WEIGHTS_DIR.glob("*.safetensors"))


def resolve_weights(name_or_path: str | Path) -> Path:
    """A shipped weights name (`default`) or a path to a `.safetensors` file."""
    candidate = Path(name_or_path)
    if candidate.suffix == "" and not candidate.exists():
        shipped = WEIGHTS_DIR / f"{name_or_path}.safetensors"
        if shipped.exists():
            return shipped
        raise CheckpointError(
            f"no shipped weights named {str(name_or_path)!r}; "
            f"shipped: {shipped_weights() or 'none'}"
        )
    problem = file_problem(candidate)
    if problem is not None:
        raise CheckpointError(f"{candidate}: weights {problem}")
    if candidate.suffix != ".safetensors":
        raise CheckpointError(
            f"{candidate}: only .safetensors weights are loaded "
            "(other formats can run code on load)"
        )
    return candidate


def model_record(model: nn.Module) -> dict[str, Any]:
    """How to rebuild `model`: its registered name and config as plain JSON values."""
    return {"model": model.model_name, "model_config": dataclasses.asdict(model.config)}


def save_model(path: str | Path, model: nn.Module, extra: dict[str, Any] | None = None) -> Path:
    """Write `model`'s state dict to `path` (.safetensors) and a `.json` sidecar, atomically.

    `extra` (step, metrics, training command...) goes into the sidecar only.
    """
    from safetensors.torch import save_file

    path = Path(path).with_suffix(".safetensors")
    record = model_record(model)
    state = {key: value.detach().cpu().contiguous() for key, value in model.state_dict().items()}
    with atomic_path(path) as tmp:
        save_file(state, str(tmp), metadata={_META_KEY: json.dumps(record)})
    sidecar = {**record, **(extra or {})}
    write_text_atomic(path.with_suffix(".json"), json.dumps(sidecar, indent=2) + "\n")
    return path


def save_derived_model(
    path: str | Path, model: nn.Module, source: str | Path, made_by: str
) -> Path:
    """Save weights made from `source` weights (a swap, a surgery), keeping its training record.

    The source's record (step, metrics, command) stays, minus what describes the model itself;
    `made_by` says what was done to it.
    """
    own = model_record(model)
    record = read_record(resolve_weights(source))
    extra = {key: value for key, value in record.items() if key not in own}
    extra.pop("source", None)
    extra["made_by"] = made_by
    return save_model(path, model, extra)


def read_record(weights_path: Path) -> dict[str, Any]:
    """The architecture record of a weights file: sidecar JSON if present, else its metadata."""
    from safetensors import safe_open

    sidecar = weights_path.with_suffix(".json")
    if sidecar.is_file():
        source = sidecar
        try:
            record = json.loads(sidecar.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise CheckpointError(f"{sidecar}: not valid JSON ({error})") from error
        except RecursionError as error:  # json recurses once per nesting level
            raise CheckpointError(
                f"{sidecar}: JSON nested too deeply to be a model record"
            ) from error
    else:
        source = weights_path
        try:
            with safe_open(str(weights_path), framework="pt") as handle:
                metadata = handle.metadata() or {}
        except Exception as error:  # safetensors raises its own error types
            raise CheckpointError(f"{weights_path}: not a safetensors file ({error})") from error
        if _META_KEY not in metadata:
            raise CheckpointError(
                f"{weights_path}: no {sidecar.name} beside it and no model record"
            )
        try:
            record = json.loads(metadata[_META_KEY])
        except (json.JSONDecodeError, RecursionError) as error:
            raise CheckpointError(
                f"{weights_path}: model record in the metadata is not valid JSON "
                f"({error or 'nested too deeply'})"
            ) from error
    if not isinstance(record, dict) or "model" not in record:
        raise CheckpointError(f"{source}: model record lacks the 'model' key")
    if not isinstance(record["model"], str):
        raise CheckpointError(f"{source}: 'model' must be a model name, got {record['model']!r}")
    if not isinstance(record.get("model_config", {}), dict):
        raise CheckpointError(
            f"{source}: 'model_config' must be a mapping of config keys, "
            f"got {type(record['model_config']).__name__}"
        )
    record["source"] = str(source)
    return record


def load_state_dict(weights_path: Path) -> dict[str, torch.Tensor]:
    """Tensors of a safetensors file on the CPU; anything else is refused."""
    from safetensors.torch import load_file

    try:
        return load_file(str(weights_path), device="cpu")
    except Exception as error:
        raise CheckpointError(
            f"{weights_path}: not a readable safetensors file ({error})"
        ) from error


def load_weights_into(
    model: nn.Module, name_or_path: str | Path, architecture: str, grow: bool = False
) -> nn.Module:
    """Load a weights file (shipped name or path) into `model`; shapes must match exactly.

    `architecture` names the model in the error message (a registered name, usually). With
    `grow`, the file may lack the parameters under the model's `grown_parts` prefixes (parts
    that start as the identity, so a warm start keeps the old model's output); every other
    parameter must still be there.
    """
    weights_path = resolve_weights(name_or_path)
    state = load_state_dict(weights_path)
    try:
        if not grow:
            model.load_state_dict(state, strict=True)
            return model
        prefixes = tuple(getattr(model, "grown_parts", ()))
        missing, unexpected = model.load_state_dict(state, strict=False)
        absent = [key for key in missing if not key.startswith(prefixes)]  # () matches none
        if absent or unexpected:
            raise RuntimeError(f"missing {absent[:3]}, unexpected {unexpected[:3]}")
    except RuntimeError as error:
        first = str(error).splitlines()[0:3]
        raise CheckpointError(
            f"{weights_path}: weights do not fit {architecture}: {first}"
        ) from error
    return model


def load_model(
    name_or_path: str | Path = "default", device: str | torch.device = "cpu"
) -> nn.Module:
    """Build the recorded architecture and load its weights (strict shapes), in eval mode."""
    from m2aenet.registry import create_model

    weights_path = resolve_weights(name_or_path)
    record = read_record(weights_path)
    try:  # types and sizes are checked before anything is allocated
        model = create_model(record["model"], **record.get("model_config", {}))
    except ConfigError as error:
        raise CheckpointError(f"{record['source']}: {error}") from error
    return load_weights_into(model, weights_path, record["model"]).to(device).eval()
