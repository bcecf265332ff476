"""Train an M2AENet mask predictor on its own loss, fast, and optionally put it into a run.

    python scripts/pretrain_mask_predictor.py --out runs/mask16.safetensors [--steps 12000]
    python scripts/pretrain_mask_predictor.py --load runs/mask16.safetensors --into CHECKPOINT_DIR

Why: the motion analyzer reads the predictor's features detached, so the predictor learns from
the mask loss alone (and, after teacher forcing, the straight-through gradient). On its own it
runs ~40 steps/s on one core instead of ~0.5 steps/s inside the full model, and it needed
thousands of steps before it found any blur (docs/decisions.md). `--into` replaces the
predictor in a checkpoint's model and EMA weights, so a run resumed from it (`--resume`)
continues with the trained predictor.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from m2aenet.atomic import atomic_path
from m2aenet.checkpoint import load_model, model_record, read_record, save_model
from m2aenet.data.synth_dataset import OnTheFlySynthDataset
from m2aenet.losses import mask_loss
from m2aenet.metrics import mask_iou
from m2aenet.models.mask_predictor import MaskPredictor, blur_probability
from m2aenet.registry import model_config

PREFIX = "mask_predictor."


def pool(split: str, size: int, count: int, mode: str, seed: int) -> dict[str, torch.Tensor]:
    """`count` synthetic (blur, mask) pairs of `size` px, stacked."""
    data = OnTheFlySynthDataset(split, (size, size), mode, seed, count, blur_reference_side=512)
    items = [data[index] for index in range(count)]
    return {key: torch.stack([item[key] for item in items]) for key in ("blur", "mask")}


def probabilities(net: MaskPredictor, x: torch.Tensor) -> torch.Tensor:
    """Full-resolution blur probability, as the model computes it."""
    return blur_probability(net(x)[0], x.shape[-2:])


def iou(net: MaskPredictor, val: dict[str, torch.Tensor], threshold: float = 0.5) -> float:
    """Mask IoU over all validation pixels at `threshold`."""
    with torch.no_grad():
        predicted = probabilities(net, val["blur"]) > threshold
    return mask_iou(predicted.numpy(), (val["mask"] > 0.5).numpy())


def train(args: argparse.Namespace) -> MaskPredictor:
    config = model_config(args.model)
    torch.manual_seed(args.seed)
    net = MaskPredictor(config.mask_width, config.mask_depth)
    start = time.time()
    train_set = pool("train", args.crop, args.samples, "mixed", args.seed)
    val_set = pool("val", 256, 24, "local", 1)
    print(f"data: {args.samples} crops in {time.time() - start:.0f} s", flush=True)
    optimizer = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=1e-4)
    generator = torch.Generator().manual_seed(args.seed)
    for step in range(args.steps):
        lr = args.lr * 0.5 * (1 + math.cos(math.pi * step / args.steps))  # cosine to 0
        for group in optimizer.param_groups:
            group["lr"] = lr
        index = torch.randint(args.samples, (args.batch,), generator=generator)
        blur, mask = train_set["blur"][index], train_set["mask"][index]
        if step % 2:  # flips: a small pool goes further
            blur, mask = blur.flip(-1), mask.flip(-1)
        if step % 4 >= 2:
            blur, mask = blur.flip(-2), mask.flip(-2)
        loss = mask_loss(probabilities(net, blur), mask)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if (step + 1) % args.report_every == 0 or step + 1 == args.steps:
            print(f"step {step + 1}: loss {loss.item():.3f}, val IoU {iou(net, val_set):.3f}, "
                  f"{time.time() - start:.0f} s", flush=True)  # fmt: skip
    return net


def inject(weights: dict[str, torch.Tensor], checkpoint: Path) -> None:
    """Replace the predictor's tensors in CHECKPOINT/{model,ema}.safetensors (atomically)."""
    predictor = {key.removeprefix(PREFIX): value for key, value in weights.items()}
    for name in ("model", "ema"):
        path = checkpoint / f"{name}.safetensors"
        record = read_record(path)
        model = load_model(path)
        try:
            model.mask_predictor.load_state_dict(predictor)  # strict: names and shapes
        except RuntimeError as error:
            raise SystemExit(f"{path}: predictor tensors do not fit ({error})") from error
        save_model(path, model, {k: v for k, v in record.items() if k not in model_record(model)})
        print(f"replaced the mask predictor in {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="m2aenet-s")
    parser.add_argument("--out", type=Path, help="write the trained predictor here")
    parser.add_argument("--load", type=Path, help="a predictor written by --out, not retrained")
    parser.add_argument("--into", type=Path, help="checkpoint folder to put the predictor into")
    parser.add_argument("--steps", type=int, default=12000)
    parser.add_argument("--samples", type=int, default=6000)
    parser.add_argument("--crop", type=int, default=160)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--report-every", type=int, default=1000)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.load:
        weights = load_file(str(args.load))
    else:
        net = train(args)
        weights = {PREFIX + key: value.contiguous() for key, value in net.state_dict().items()}
        if args.out:
            with atomic_path(args.out) as temporary:
                save_file(weights, str(temporary))
            print(f"wrote {args.out}")
    if args.into:
        inject(weights, args.into)


if __name__ == "__main__":
    main()
