"""Put a separately trained mask predictor into M2AENet weights, and give the analyzer its own stem.

    python scripts/swap_mask_predictor.py WEIGHTS PREDICTOR --out NEW.safetensors

WEIGHTS: a shipped name or a model weights file (e.g. a checkpoint's ema.safetensors);
PREDICTOR: a file written by scripts/pretrain_mask_predictor.py. The command line of
`m2aenet.train.predictor_weights.swap_mask_predictor` (its docstrings say what changes). The
result loads with `load_model` / `--weights` and as `model.init_weights` of a run.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from m2aenet.errors import M2AENetError
from m2aenet.train.predictor_weights import swap_mask_predictor


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("weights", help="shipped name or model weights file")
    parser.add_argument("predictor", type=Path, help="from scripts/pretrain_mask_predictor.py")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    try:
        path = swap_mask_predictor(args.weights, args.predictor, args.out)
    except M2AENetError as error:
        raise SystemExit(f"error: {error}") from None
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
