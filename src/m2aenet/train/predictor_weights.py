"""A mask predictor's tensors moved between files: warm start, predictor files, the swap.

A predictor file holds only the `mask_predictor.*` tensors of a model (what
`train.predictor.train_predictor` trains apart). `initial_weights` starts a predictor from the
one inside model weights (or another predictor file), `swap_mask_predictor` puts a predictor
file into model weights. Both M2AENet bodies (`m2aenet-s*`, `m2aenet-ms*`) share the front end
(`models/frontend.py`), so the same tensor names serve both.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
from torch import nn

from m2aenet.atomic import atomic_path
from m2aenet.checkpoint import load_model, load_state_dict, resolve_weights, save_derived_model
from m2aenet.errors import CheckpointError
from m2aenet.models.mask_predictor import MaskPredictor
from m2aenet.registry import create_model

PREFIX = "mask_predictor."


def predictor_tensors(path: str | Path) -> dict[str, torch.Tensor]:
    """The predictor's tensors (names without PREFIX) in a model or predictor weights file
    (or a shipped weights name)."""
    state = load_state_dict(resolve_weights(path))
    predictor = {k.removeprefix(PREFIX): v for k, v in state.items() if k.startswith(PREFIX)}
    if not predictor:
        raise CheckpointError(f"{path}: holds no {PREFIX}* tensors")
    return predictor


def save_predictor(path: str | Path, net: MaskPredictor) -> Path:
    """Write `net`'s tensors as a predictor file (names with PREFIX, as inside a model)."""
    from safetensors.torch import save_file

    path = Path(path)
    weights = {
        PREFIX + key: value.detach().cpu().contiguous() for key, value in net.state_dict().items()
    }
    with atomic_path(path) as temporary:
        save_file(weights, str(temporary))
    return path


def context_depth(predictor: dict[str, torch.Tensor]) -> int:
    """3x3 convs of the context branch, counted from the tensor names."""
    convs = {
        key.split(".")[2]
        for key, value in predictor.items()
        if key.startswith("context.layers.") and value.ndim == 4 and value.shape[-1] == 3
    }
    return len(convs)


def refine_width(predictor: dict[str, torch.Tensor]) -> int:
    """Channels of the refine branch (0 without one), from its first conv's tensor."""
    first = predictor.get("refine.layers.0.weight")
    return 0 if first is None else int(first.shape[0])


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


def initial_weights(net: MaskPredictor, source: str | Path) -> None:
    """Start `net` from the predictor inside `source` (model weights, a predictor file, or a
    shipped name); CheckpointError if it does not fit.

    The context branch may be new (it starts at zero) or deeper (`deepen_context`), and the
    cue inputs and the refine branch may be new (they start at zero): either way the
    warm-started predictor begins exactly where the source's was.
    """
    predictor = deepen_context(predictor_tensors(source), net)
    try:
        missing, unexpected = net.load_state_dict(predictor, strict=False)
    except RuntimeError as error:  # shapes
        raise CheckpointError(f"{source}: predictor does not fit ({error})") from error
    if unexpected or any(
        not key.startswith(("context.", "cues.", "refine.", "edge_cues.")) for key in missing
    ):
        raise CheckpointError(f"{source}: predictor does not fit ({missing=}, {unexpected=})")


def swap_predictor(weights: str | Path, predictor: dict[str, torch.Tensor]) -> nn.Module:
    """The model of `weights` with `predictor` (names without PREFIX) and an analyzer stem.

    Models whose analyzer still reads the predictor's features are first upgraded to
    `analyzer_stem: true`, with the stem a copy of the old predictor without its head (trunk,
    and context branch if it has one: `analyzer_stem_context_depth`), so the analyzer's input
    stays exactly what it was trained on; the config's `mask_context_depth`, `mask_cues`,
    `mask_refine_width` and `mask_edge_cues` become the new predictor's (read from its
    tensors). Every other tensor is kept as it was.
    """
    old = load_model(weights)
    changes = {
        "analyzer_stem": True,
        "mask_context_depth": context_depth(predictor),
        "mask_cues": "cues.weight" in predictor,
        "mask_refine_width": refine_width(predictor),
        "mask_edge_cues": "edge_cues.weight" in predictor,
    }
    if old.analyzer_stem is None:
        changes["analyzer_stem_context_depth"] = old.config.mask_context_depth
    config = dataclasses.replace(old.config, **changes)
    new = create_model(old.model_name, **dataclasses.asdict(config))
    state = old.state_dict()
    if old.analyzer_stem is None:  # the analyzer keeps reading what it was trained on
        trunk = old.mask_predictor.features
        for key, value in trunk.state_dict().items():
            state[f"analyzer_stem.{key}"] = value
        if old.mask_predictor.context is not None:  # appended after the trunk's layers
            for key, value in old.mask_predictor.context.state_dict().items():
                state[f"analyzer_stem.{len(trunk)}.{key}"] = value
    state = {key: value for key, value in state.items() if not key.startswith(PREFIX)}
    state.update({PREFIX + key: value for key, value in predictor.items()})
    try:
        new.load_state_dict(state, strict=True)
    except RuntimeError as error:
        first = str(error).splitlines()[0:3]
        raise CheckpointError(f"the predictor does not fit {weights}: {first}") from error
    return new


def swap_mask_predictor(
    model_weights: str | Path,
    predictor_weights: str | Path,
    out: str | Path,
    made_by: str | None = None,
) -> Path:
    """Write `model_weights` with the predictor of `predictor_weights` swapped in to `out`
    (.safetensors + .json sidecar keeping the source's training record and saying `made_by`);
    returns the path."""
    model = swap_predictor(model_weights, predictor_tensors(predictor_weights))
    made_by = made_by or f"swap_mask_predictor {model_weights} {predictor_weights}"
    return save_derived_model(out, model, model_weights, made_by)
