"""Append identity-initialized blocks to an M2AENet body: training resumes from the same function.

    python scripts/deepen_body.py WEIGHTS --blocks 10 --out NEW.safetensors          # m2aenet
    python scripts/deepen_body.py WEIGHTS --encoder-blocks 3,2 --decoder-blocks 3,2 \
        --out NEW.safetensors                                                       # m2aenet-ms

WEIGHTS: a shipped name or a model weights file (e.g. a checkpoint's ema.safetensors). A new
block's last linear layer is zero (as in a freshly built model), so y = x + M * F(x) = x and the
deeper model's output equals the old one's until training moves it. The result loads with
`load_model` / `--weights` and as `model.init_weights` of a run (with the same
`model.overrides.num_blocks`, or `encoder_blocks` / `decoder_blocks`: per level, finest first,
the new blocks after each level's old ones).
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from m2aenet.checkpoint import load_model, save_derived_model
from m2aenet.registry import create_model


def _checked_counts(old_config, wanted: dict[str, object]) -> dict[str, object]:
    """The wanted block counts; SystemExit where one has fewer blocks than the model."""
    for key, value in wanted.items():
        if not hasattr(old_config, key):
            raise SystemExit(f"--{key.replace('_', '-')}: the model has no {key}")
        have = getattr(old_config, key)
        new_counts = tuple(value) if isinstance(value, tuple) else (value,)
        old_counts = tuple(have) if isinstance(have, (tuple, list)) else (have,)
        fewer = len(new_counts) != len(old_counts) or any(
            new < old for new, old in zip(new_counts, old_counts, strict=True)
        )
        if fewer:
            raise SystemExit(f"--{key.replace('_', '-')} {value}: the model already has {have}")
    return wanted


def deepen(weights: str, blocks: int | None = None, **level_blocks: tuple[int, ...]):
    """The model of `weights` with `blocks` body blocks (m2aenet) or per-level counts
    (`encoder_blocks=(3, 2)`, m2aenet-ms), the added ones after the old ones."""
    old = load_model(weights)
    wanted = {"num_blocks": blocks} if blocks is not None else {}
    wanted.update({key: tuple(value) for key, value in level_blocks.items() if value is not None})
    config = dataclasses.replace(old.config, **_checked_counts(old.config, wanted))
    new = create_model(old.model_name, **dataclasses.asdict(config))
    state = new.state_dict()
    state.update(old.state_dict())  # the old blocks keep their indices; the new ones their init
    new.load_state_dict(state, strict=True)
    return new.eval()


def _counts(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(","))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("weights", help="shipped name or model weights file")
    parser.add_argument("--blocks", type=int, help="body blocks of the result (m2aenet)")
    parser.add_argument("--encoder-blocks", type=_counts, help="per level, e.g. 3,2 (m2aenet-ms)")
    parser.add_argument("--decoder-blocks", type=_counts, help="per level, e.g. 3,2 (m2aenet-ms)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    model = deepen(
        args.weights,
        args.blocks,
        encoder_blocks=args.encoder_blocks,
        decoder_blocks=args.decoder_blocks,
    )
    made_by = f"deepen_body {args.weights}" + "".join(
        f" --{key.replace('_', '-')} {value}"
        for key, value in (
            ("blocks", args.blocks),
            ("encoder_blocks", args.encoder_blocks),
            ("decoder_blocks", args.decoder_blocks),
        )
        if value is not None
    )
    print(f"wrote {save_derived_model(args.out, model, args.weights, made_by)}")


if __name__ == "__main__":
    main()
