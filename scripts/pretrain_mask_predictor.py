"""Train an M2AENet mask predictor on its own loss, fast, apart from the restoration network.

    python scripts/pretrain_mask_predictor.py --pool data/pool-train --val data/val-local \
        --init campaign/stage3/checkpoints/step_N/ema.safetensors --context-depth 3 \
        --out runs/mask-ctx3.safetensors --minutes 25
    python scripts/pretrain_mask_predictor.py --out runs/mask16.safetensors --steps 12000

Why apart: the motion analyzer does not train the predictor (it reads its features detached,
or has a trunk of its own), so the predictor learns from the mask loss alone. On its own it runs
tens of steps per second on one core instead of ~0.5 inside the full model.

Two sources of training images:
- `--pool DIR` (repeatable): crops of the frames of `m2aenet synth` folders, most of them
  uniform (so the predictor sees photos' real share of blur, 6-8%, not the restoration
  crops' ~50%; camera-shake folders teach it to mark whole frames), with
  sharp-labelled look-alikes of blur (`data.hard_negatives`: defocus, dark, noise, JPEG, gray);
- no `--pool`: on-the-fly synthetic crops (the stage-1 recipe).
`--val DIR` scores the predictor on full frames as the model uses it (hard mask at the model's
threshold and dilation): IoU with the true mask and marked / true pixels. Put the result into
a model with `scripts/swap_mask_predictor.py`.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file
from torch.utils.data import ConcatDataset

from m2aenet.atomic import atomic_path
from m2aenet.checkpoint import load_state_dict, resolve_weights
from m2aenet.data.blur_crops import BlurCentredCrops
from m2aenet.data.datasets import PairedImageDataset
from m2aenet.data.hard_negatives import HardNegatives
from m2aenet.data.synth_dataset import OnTheFlySynthDataset
from m2aenet.losses import mask_loss
from m2aenet.models.m2aenet import pad_to_multiple
from m2aenet.models.mask_predictor import MaskPredictor, blur_probability, hard_mask
from m2aenet.registry import model_config

PREFIX = "mask_predictor."


def synth_pool(split: str, size: int, count: int, mode: str, seed: int) -> dict[str, torch.Tensor]:
    """`count` synthetic (blur, mask) pairs of `size` px, stacked."""
    data = OnTheFlySynthDataset(split, (size, size), mode, seed, count, blur_reference_side=512)
    items = [data[index] for index in range(count)]
    return {key: torch.stack([item[key] for item in items]) for key in ("blur", "mask")}


class Batches:
    """Random training batches (blur, mask) from a synth folder or from synthetic crops."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.batch = args.batch
        self.step = 0
        self.generator = torch.Generator().manual_seed(args.seed)
        self.seed = args.seed
        if args.pool:
            self.crops = ConcatDataset(
                [
                    BlurCentredCrops(
                        root,
                        args.crop,
                        crops_per_frame=1,
                        centred_fraction=args.centred_fraction,
                        hard_negatives=HardNegatives() if args.hard_negatives else None,
                    )
                    for root in args.pool
                ]
            )
            self.tensors = None
        else:
            self.crops = None
            self.tensors = synth_pool("train", args.crop, args.samples, "mixed", args.seed)

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        self.step += 1
        if self.crops is not None:
            index = torch.randint(len(self.crops), (self.batch,), generator=self.generator)
            items = []
            for position, frame in enumerate(index.tolist()):
                np.random.seed((self.seed * 1_000_003 + self.step * 131 + position) % 2**31)
                items.append(self.crops[frame])  # crops, hard negatives, flips and turns
            return tuple(torch.stack([item[key] for item in items]) for key in ("blur", "mask"))
        index = torch.randint(len(self.tensors["blur"]), (self.batch,), generator=self.generator)
        blur, mask = self.tensors["blur"][index], self.tensors["mask"][index]
        if self.step % 2:  # flips: a small pool goes further
            blur, mask = blur.flip(-1), mask.flip(-1)
        if self.step % 4 >= 2:
            blur, mask = blur.flip(-2), mask.flip(-2)
        return blur, mask


def probabilities(net: MaskPredictor, x: torch.Tensor) -> torch.Tensor:
    """Full-resolution blur probability, as the model computes it (input padded to 8)."""
    padded = pad_to_multiple(x, 8)
    prob = blur_probability(net(padded)[0], padded.shape[-2:])
    return prob[..., : x.shape[-2], : x.shape[-1]]


def score(
    net: MaskPredictor, frames: PairedImageDataset, threshold: float, dilation: int
) -> dict[str, float]:
    """IoU over all pixels of the hard masks and marked / true pixels, over full frames."""
    inter = union = marked = true = 0
    with torch.no_grad():
        for item in frames:
            prob = probabilities(net, item["blur"][None])
            predicted = hard_mask(prob, threshold, dilation)[0, 0] > 0.5
            target = item["mask"][0] > 0.5
            inter += int((predicted & target).sum())
            union += int((predicted | target).sum())
            marked += int(predicted.sum())
            true += int(target.sum())
    return {"iou": inter / max(union, 1), "marked_over_true": marked / max(true, 1)}


def deepen_context(predictor: dict[str, torch.Tensor], net: MaskPredictor) -> dict:
    """Map a shallower context branch's tensors onto `net`'s deeper one.

    The branch is `Sequential(down conv, ReLU, (3x3 conv, ReLU) x depth, 1x1 conv)`: existing
    convs keep their places, the final 1x1 moves to the end, and each added 3x3 conv is the
    identity (centre tap = I, zero bias). Its input is a ReLU output (>= 0), so conv + ReLU
    passes it through unchanged: the deeper predictor starts as the shallower one.
    """
    convs = sorted({int(k.split(".")[2]) for k in predictor if k.startswith("context.layers.")})
    if net.context is None or not convs:
        return predictor
    layers = net.context.layers
    source_depth, target_depth = (convs[-1] - 2) // 2, (len(layers) - 3) // 2
    if source_depth >= target_depth:
        return predictor
    mapped = {k: v for k, v in predictor.items() if not k.startswith("context.layers.")}
    for key, value in predictor.items():
        if key.startswith("context.layers."):
            index = int(key.split(".")[2])
            index = 2 + 2 * target_depth if index == convs[-1] else index
            mapped[f"context.layers.{index}.{key.split('.')[3]}"] = value
    for depth in range(source_depth, target_depth):
        conv = layers[2 + 2 * depth]
        weight = torch.zeros_like(conv.weight)
        weight[:, :, 1, 1] = torch.eye(weight.shape[0])
        mapped[f"context.layers.{2 + 2 * depth}.weight"] = weight
        mapped[f"context.layers.{2 + 2 * depth}.bias"] = torch.zeros_like(conv.bias)
    return mapped


def initial_weights(net: MaskPredictor, source: str) -> None:
    """Start from the predictor inside a model's weights (a shipped name or a file).

    The context branch may be new (it starts at zero) or deeper (`deepen_context`): either
    way the warm-started predictor begins exactly where the model's was.
    """
    state = load_state_dict(resolve_weights(source))
    predictor = {k.removeprefix(PREFIX): v for k, v in state.items() if k.startswith(PREFIX)}
    predictor = deepen_context(predictor, net)
    try:
        missing, unexpected = net.load_state_dict(predictor, strict=False)
    except RuntimeError as error:  # shapes
        raise SystemExit(f"{source}: predictor does not fit ({error})") from error
    if unexpected or any(not key.startswith("context.") for key in missing):
        raise SystemExit(f"{source}: predictor does not fit ({missing=}, {unexpected=})")


def train(args: argparse.Namespace) -> MaskPredictor:
    config = model_config(args.model)
    torch.manual_seed(args.seed)
    net = MaskPredictor(config.mask_width, config.mask_depth, args.context_depth)
    if args.init:
        initial_weights(net, args.init)
    start = time.time()
    batches = Batches(args)
    val = [PairedImageDataset(root, require_mask=True) for root in args.val]
    optimizer = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=1e-4)
    deadline = start + 60.0 * args.minutes if args.minutes else math.inf
    steps = args.steps

    def report(step: int, loss: float) -> None:
        scores = [score(net, frames, args.threshold, config.mask_dilation) for frames in val]
        text = ", ".join(
            f"{Path(root).name} IoU {s['iou']:.3f} x{s['marked_over_true']:.2f}"
            for root, s in zip(args.val, scores, strict=True)
        )
        print(f"step {step}: loss {loss:.3f}, {text}, {time.time() - start:.0f} s", flush=True)

    step = 0
    while step < steps and time.time() < deadline:
        # Cosine over the step budget or the wall-time budget, whichever is given.
        progress = (time.time() - start) / (deadline - start) if args.minutes else step / steps
        lr = args.lr * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))
        for group in optimizer.param_groups:
            group["lr"] = lr
        blur, mask = batches.next()
        loss = mask_loss(probabilities(net, blur), mask)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        step += 1
        if step % args.report_every == 0:
            report(step, loss.item())
    report(step, loss.item())
    return net


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="m2aenet-s", help="its mask_width and mask_depth")
    parser.add_argument("--context-depth", type=int, default=0, help="context branch convs")
    parser.add_argument("--init", help="start from the predictor in these model weights")
    parser.add_argument("--out", type=Path, required=True, help="write the trained predictor")
    parser.add_argument(
        "--pool", type=Path, action="append", default=[], help="synth folder(s) to crop from"
    )
    parser.add_argument("--centred-fraction", type=float, default=0.25)
    parser.add_argument("--no-hard-negatives", dest="hard_negatives", action="store_false")
    parser.add_argument("--val", type=Path, action="append", default=[])
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
    if args.minutes:
        args.steps = 10**9
    torch.set_num_threads(args.threads)
    net = train(args)
    weights = {PREFIX + key: value.contiguous() for key, value in net.state_dict().items()}
    with atomic_path(args.out) as temporary:
        save_file(weights, str(temporary))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
