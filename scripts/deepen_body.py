"""Append identity-initialized blocks to an M2AENet body: training resumes from the same function.

    python scripts/deepen_body.py WEIGHTS --blocks 10 --out NEW.safetensors

WEIGHTS: a shipped name or a model weights file (e.g. a checkpoint's ema.safetensors). A new
block's last linear layer is zero (as in a freshly built model), so y = x + M * F(x) = x and the
deeper model's output equals the old one's until training moves it. The result loads with
`load_model` / `--weights` and as `model.init_weights` of a run (with the same
`model.overrides.num_blocks`).
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from m2aenet.checkpoint import load_model, save_derived_model
from m2aenet.registry import create_model


def deepen(weights: str, blocks: int):
    """The model of `weights` with `blocks` body blocks, the added ones at the end."""
    old = load_model(weights)
    if blocks < old.config.num_blocks:
        raise SystemExit(f"--blocks {blocks}: the model already has {old.config.num_blocks}")
    config = dataclasses.replace(old.config, num_blocks=blocks)
    new = create_model(old.model_name, **dataclasses.asdict(config))
    state = new.state_dict()
    state.update(old.state_dict())  # the old blocks keep their indices; the new ones their init
    new.load_state_dict(state, strict=True)
    return new.eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("weights", help="shipped name or model weights file")
    parser.add_argument("--blocks", type=int, required=True, help="body blocks of the result")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    model = deepen(args.weights, args.blocks)
    made_by = f"deepen_body {args.weights} --blocks {args.blocks}"
    print(f"wrote {save_derived_model(args.out, model, args.weights, made_by)}")


if __name__ == "__main__":
    main()
