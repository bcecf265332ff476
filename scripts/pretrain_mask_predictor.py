"""Train an M2AENet mask predictor on its own loss, fast, apart from the restoration network.

    python scripts/pretrain_mask_predictor.py --pool data/pool-train --val data/val-local \
        --init campaign/stage3/checkpoints/step_N/ema.safetensors --context-depth 3 \
        --out runs/mask-ctx3.safetensors --minutes 25
    python scripts/pretrain_mask_predictor.py --out runs/mask16.safetensors --steps 12000

The command line of `m2aenet.train.predictor.train_predictor` (its docstring says why apart,
and what `--pool` and `--val` do). Put the result into a model with
`scripts/swap_mask_predictor.py`; `m2aenet recipe` does both as a `kind: predictor` stage.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from m2aenet.errors import M2AENetError
from m2aenet.train.predictor import PredictorTraining, model_of, train_predictor
from m2aenet.train.predictor_weights import save_predictor


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model",
        default="m2aenet-s",
        help="its mask_width and mask_depth (--init model weights: theirs instead)",
    )
    parser.add_argument("--context-depth", type=int, default=0, help="context branch convs")
    parser.add_argument(
        "--cues", action="store_true", help="add the directional blur cues (zero at the start)"
    )
    parser.add_argument(
        "--edge-cues",
        action="store_true",
        help="add the edge widths per orientation (zero at the start)",
    )
    parser.add_argument(
        "--refine-width",
        type=int,
        help="add a refine branch of this width (cues + features; zero at the start)",
    )
    parser.add_argument(
        "--mask-width", type=int, help="channels (without --init; default: --model's)"
    )
    parser.add_argument("--mask-depth", type=int, help="full-resolution layers (without --init)")
    parser.add_argument("--init", help="start from the predictor in these model weights")
    parser.add_argument("--out", type=Path, required=True, help="write the trained predictor")
    parser.add_argument(
        "--pool", type=Path, action="append", default=[], help="synth folder(s) to crop from"
    )
    parser.add_argument("--centred-fraction", type=float, default=0.25)
    parser.add_argument("--no-hard-negatives", dest="hard_negatives", action="store_false")
    parser.add_argument(
        "--defocus-max-radius",
        type=float,
        default=5.0,
        help="largest defocus radius (px) among the hard negatives",
    )
    parser.add_argument(
        "--zoom-out",
        type=float,
        default=0.0,
        help="share of pool crops cut up to 2x larger and downscaled (crisper, shorter blur)",
    )
    parser.add_argument(
        "--zoom-keep-blur",
        type=float,
        default=0.0,
        help="px: a zoom keeps each frame's shortest blur at least this long (0: any zoom)",
    )
    parser.add_argument(
        "--min-blur",
        type=float,
        default=0.0,
        help="px: leave out pool frames whose shortest blur is shorter (0: all frames)",
    )
    parser.add_argument("--val", type=Path, action="append", default=[])
    parser.add_argument(
        "--sharp-photos",
        action="append",
        default=[],
        help="folder of whole sharp photos labelled sharp, or train-split (repeatable)",
    )
    parser.add_argument("--sharp-fraction", type=float, default=0.25, help="their batch share")
    parser.add_argument("--threshold", type=float, default=0.5, help="for the val scores")
    parser.add_argument("--steps", type=int, default=12000)
    parser.add_argument("--minutes", type=float, help="stop after this wall time instead")
    parser.add_argument("--samples", type=int, default=6000, help="synthetic crops (no --pool)")
    parser.add_argument("--crop", type=int, default=160)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--report-every", type=int, default=1000)
    args = parser.parse_args()
    try:
        shape = {
            key: value
            for key, value in (("mask_width", args.mask_width), ("mask_depth", args.mask_depth))
            if value is not None
        }
        if shape and args.init:
            raise SystemExit(
                "error: --mask-width/--mask-depth shape a new predictor; not with --init"
            )
        model = {"model": args.model, **(model_of(args.init) if args.init else {})}
        if shape:
            model["model_overrides"] = shape
        settings = PredictorTraining(
            **model,
            init=args.init,
            pools=tuple(str(pool) for pool in args.pool),
            val=tuple(str(folder) for folder in args.val),
            sharp_photos=tuple(args.sharp_photos),
            sharp_fraction=args.sharp_fraction,
            steps=None if args.minutes else args.steps,
            minutes=args.minutes or None,
            context_depth=args.context_depth,
            cues=True if args.cues else None,
            edge_cues=True if args.edge_cues else None,
            refine_width=args.refine_width,
            threshold=args.threshold,
            crop=args.crop,
            batch=args.batch,
            lr=args.lr,
            centred_fraction=args.centred_fraction,
            hard_negatives=args.hard_negatives,
            defocus_max_radius=args.defocus_max_radius,
            zoom_out=args.zoom_out,
            zoom_keep_blur=args.zoom_keep_blur,
            min_blur=args.min_blur,
            samples=args.samples,
            seed=args.seed,
            threads=args.threads,
            report_every=args.report_every,
        )
        result = train_predictor(settings)
        save_predictor(args.out, result.net)
    except M2AENetError as error:
        raise SystemExit(f"error: {error}") from None
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
