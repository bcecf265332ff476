"""FLOP counts against hand counts, dense and pruned."""

from __future__ import annotations

import torch

from m2aenet.flops import count_flops
from m2aenet.models.sparse import find_kept_pixels, select_tiles
from m2aenet.registry import create_model

C, CTX, K, SAMPLED, HIDDEN = 8, 4, 3, 4, 8
CONFIG = dict(
    channels=C,
    analyzer_width=CTX,
    trajectory_points=K,
    trajectory_channels=SAMPLED,
    trajectory_every=1,
    mask_width=4,
    mlp_ratio=1.0,
)
HEIGHT, WIDTH = 32, 40


def _model(blocks: int, deployed: bool, executor: str = "auto"):
    torch.manual_seed(0)
    model = create_model("m2aenet-s", num_blocks=blocks, **CONFIG).eval()
    if deployed:
        model.reparameterize()
        model.executor = executor
    return model


def _block_flops(pixels: int, conv_pixels: int) -> int:
    """One block by hand: 2 FLOPs per MAC, 8 per bilinear sample and channel.

    The residual add is elementwise and not counted, dense (addcmul) or pruned (add + copy).
    """
    mixer = 2 * 9 * C * C * conv_pixels
    trajectory = 8 * SAMPLED * K * pixels + 2 * (K * SAMPLED + CTX) * C * pixels
    mlp = 2 * C * 2 * HIDDEN * pixels + 2 * HIDDEN * C * pixels
    return mixer + trajectory + mlp


def _mask() -> torch.Tensor:
    mask = torch.zeros(1, 1, HEIGHT, WIDTH)
    mask[..., 5:19, 7:30] = 1  # n = 14 * 23
    return mask


def test_one_dense_block_matches_the_hand_count() -> None:
    x = torch.rand(1, 3, HEIGHT, WIDTH)
    ones = torch.ones(1, 1, HEIGHT, WIDTH)
    one, two = count_flops(_model(1, False), x, ones), count_flops(_model(2, False), x, ones)
    pixels = HEIGHT * WIDTH
    assert two.flops - one.flops == _block_flops(pixels, pixels)
    # The deployed model run densely counts the same.
    assert count_flops(_model(2, True, "dense"), x, ones).flops == two.flops


def test_one_pruned_block_matches_the_hand_count() -> None:
    x = torch.rand(1, 3, HEIGHT, WIDTH)
    mask = _mask()
    kept = int(mask.sum())
    one = count_flops(_model(1, True, "pixel"), x, mask)
    two = count_flops(_model(2, True, "pixel"), x, mask)
    assert two.flops - one.flops == _block_flops(kept, kept)
    assert two.gathered > one.gathered >= 9 * C * kept  # neighbourhoods are gathered, not counted
    tile_ids, _ = select_tiles(find_kept_pixels(mask), 16, 0.0)
    tile_pixels = tile_ids.numel() * 16 * 16  # every pixel of a tile is computed
    one, two = _model(1, True, "tile"), _model(2, True, "tile")
    for model in (one, two):
        model.tile_min_fill = 0.0  # every tile holding a kept pixel is convolved
    one, two = count_flops(one, x, mask), count_flops(two, x, mask)
    assert two.flops - one.flops == _block_flops(tile_pixels, tile_pixels)


def test_empty_mask_costs_only_the_mask_predictor() -> None:
    x = torch.rand(1, 3, HEIGHT, WIDTH)
    model = _model(2, True)
    count = count_flops(model, x, torch.zeros(1, 1, HEIGHT, WIDTH))
    upsample_logits = 8 * HEIGHT * WIDTH
    assert count.flops == count.by_module["mask_predictor"] + upsample_logits
    assert set(count.by_module) == {"mask_predictor"}
    dense = count_flops(model, x, torch.ones(1, 1, HEIGHT, WIDTH))
    assert count.flops < 0.1 * dense.flops
    assert {"mask_predictor", "analyzer"} <= set(dense.by_module)
    assert count.macs == count.flops / 2
