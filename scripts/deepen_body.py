"""Append identity-initialized blocks to an M2AENet body: training resumes from the same function.

    python scripts/deepen_body.py WEIGHTS --blocks 10 --out NEW.safetensors          # m2aenet
    python scripts/deepen_body.py WEIGHTS --encoder-blocks 3,2 --decoder-blocks 3,2 \
        --out NEW.safetensors                                                       # m2aenet-ms
    python scripts/deepen_body.py WEIGHTS --trajectory-from-level 0 --out NEW.safetensors  # ms

WEIGHTS: a shipped name or a model weights file (e.g. a checkpoint's ema.safetensors). A new
block's last linear layer is zero (as in a freshly built model), so y = x + M * F(x) = x and the
deeper model's output equals the old one's until training moves it. The result loads with
`load_model` / `--weights` and as `model.init_weights` of a run (with the same
`model.overrides.num_blocks`, or `encoder_blocks` / `decoder_blocks`: per level, finest first,
the new blocks after each level's old ones).

`--trajectory-from-level L` (m2aenet-ms) makes the blocks of level L and deeper sample along
the motion trajectory: a block that did not gets zero weights for its samples (the first
columns of its `guide_proj`), so its output is again unchanged until training moves it.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import torch

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


def _checked_trajectory_level(old_config, level: int | None) -> dict[str, int]:
    """{"trajectory_from_level": level}, or {} for None; SystemExit unless it moves it finer."""
    if level is None:
        return {}
    if not hasattr(old_config, "trajectory_from_level"):
        raise SystemExit("--trajectory-from-level: the model has no trajectory_from_level")
    if level >= old_config.trajectory_from_level:
        raise SystemExit(
            f"--trajectory-from-level {level}: the model samples from level "
            f"{old_config.trajectory_from_level} already"
        )
    return {"trajectory_from_level": level}


def _grown_tensor(key: str, new: torch.Tensor, old: torch.Tensor) -> torch.Tensor:
    """`old` placed in a tensor shaped like `new`: a guide projection that gained trajectory
    samples keeps its context columns (the last ones) and gets zero sample columns."""
    if new.shape == old.shape:
        return old
    if key.endswith("guide_proj.weight") and new.shape[0] == old.shape[0]:
        grown = torch.zeros_like(new)
        grown[:, -old.shape[1] :] = old
        return grown
    raise SystemExit(f"{key}: cannot grow {tuple(old.shape)} into {tuple(new.shape)}")


def deepen(
    weights: str,
    blocks: int | None = None,
    trajectory_from_level: int | None = None,
    **level_blocks: tuple[int, ...],
):
    """The model of `weights` with `blocks` body blocks (m2aenet) or per-level counts
    (`encoder_blocks=(3, 2)`, m2aenet-ms), the added ones after the old ones, and trajectory
    sampling from `trajectory_from_level` on (m2aenet-ms)."""
    old = load_model(weights)
    wanted = {"num_blocks": blocks} if blocks is not None else {}
    wanted.update({key: tuple(value) for key, value in level_blocks.items() if value is not None})
    changes = _checked_counts(old.config, wanted)
    changes.update(_checked_trajectory_level(old.config, trajectory_from_level))
    config = dataclasses.replace(old.config, **changes)
    new = create_model(old.model_name, **dataclasses.asdict(config))
    state = new.state_dict()
    # The old blocks keep their indices; the new ones their init.
    state.update(
        {key: _grown_tensor(key, state[key], value) for key, value in old.state_dict().items()}
    )
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
    parser.add_argument(
        "--trajectory-from-level", type=int, help="sample the trajectory from this level on (ms)"
    )
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    model = deepen(
        args.weights,
        args.blocks,
        args.trajectory_from_level,
        encoder_blocks=args.encoder_blocks,
        decoder_blocks=args.decoder_blocks,
    )
    made_by = f"deepen_body {args.weights}" + "".join(
        f" --{key.replace('_', '-')} {value}"
        for key, value in (
            ("blocks", args.blocks),
            ("encoder_blocks", args.encoder_blocks),
            ("decoder_blocks", args.decoder_blocks),
            ("trajectory_from_level", args.trajectory_from_level),
        )
        if value is not None
    )
    print(f"wrote {save_derived_model(args.out, model, args.weights, made_by)}")


if __name__ == "__main__":
    main()
