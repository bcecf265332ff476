"""Put a separately trained mask predictor into M2AENet weights, and give the analyzer its own stem.

    python scripts/swap_mask_predictor.py WEIGHTS PREDICTOR --out NEW.safetensors

WEIGHTS: a shipped name or a model weights file (e.g. a checkpoint's ema.safetensors);
PREDICTOR: a file written by scripts/pretrain_mask_predictor.py. Models whose analyzer still
reads the predictor's features are first upgraded to `analyzer_stem: true`, with the stem set
to a copy of the old predictor's trunk, so the analyzer's input stays exactly what it was
trained on; the new predictor (its context depth read from its tensors) replaces the old one.
The result loads with `load_model` / `--weights` and as `model.init_weights` of a run.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from safetensors.torch import load_file

from m2aenet.checkpoint import load_model, save_derived_model
from m2aenet.registry import create_model

PREFIX = "mask_predictor."


def context_depth(predictor: dict) -> int:
    """3x3 convs of the context branch, counted from the tensor names."""
    convs = {
        key.split(".")[2]
        for key, value in predictor.items()
        if key.startswith("context.layers.") and value.ndim == 4 and value.shape[-1] == 3
    }
    return len(convs)


def swap(weights: str, predictor_path: Path):
    """The model of `weights` with the predictor of `predictor_path` and an analyzer stem."""
    old = load_model(weights)
    predictor = {
        key.removeprefix(PREFIX): value
        for key, value in load_file(str(predictor_path)).items()
        if key.startswith(PREFIX)
    }
    config = dataclasses.replace(
        old.config, analyzer_stem=True, mask_context_depth=context_depth(predictor)
    )
    new = create_model(old.model_name, **dataclasses.asdict(config))
    state = old.state_dict()
    if old.analyzer_stem is None:  # the analyzer keeps reading what it was trained on
        for key, value in old.mask_predictor.features.state_dict().items():
            state[f"analyzer_stem.{key}"] = value
    state = {key: value for key, value in state.items() if not key.startswith(PREFIX)}
    state.update({PREFIX + key: value for key, value in predictor.items()})
    new.load_state_dict(state, strict=True)
    return new


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("weights", help="shipped name or model weights file")
    parser.add_argument("predictor", type=Path, help="from scripts/pretrain_mask_predictor.py")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    model = swap(args.weights, args.predictor)
    path = save_derived_model(
        args.out, model, args.weights, f"swap_mask_predictor {args.weights} {args.predictor}"
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
