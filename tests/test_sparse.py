"""Pruned execution: gathers, tiles and both executors against the dense computation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from m2aenet.data.masks import blob_mask
from m2aenet.models.blocks import PrunableBlock
from m2aenet.models.motion import (
    motion_to_trajectory,
    trajectory_grid,
    trajectory_times,
    upsample_trajectory,
)
from m2aenet.models.sparse import (
    choose_executor,
    find_kept_pixels,
    make_plan,
    neighbour_indices,
    run_pruned_blocks,
    sample_at_pixels,
    select_tiles,
    tile_batch,
    tile_statistics,
)


def _masks(batch: int, height: int, width: int, fractions=(0.2, 0.35), seed: int = 0):
    rng = np.random.default_rng(seed)
    masks = [blob_mask(height, width, fractions[i % len(fractions)], rng) for i in range(batch)]
    return torch.from_numpy(np.stack(masks)[:, None].astype(np.float32))


def test_kept_pixels_are_the_mask() -> None:
    mask = _masks(2, 11, 13)
    kept = find_kept_pixels(mask)
    rebuilt = torch.zeros_like(mask)
    rebuilt[kept.batch, 0, kept.y, kept.x] = 1
    assert torch.equal(rebuilt, mask)
    assert torch.equal(kept.index, mask.flatten().nonzero().squeeze(1))  # row-major order
    reversed_kept = kept.take(torch.arange(kept.count - 1, -1, -1))
    assert torch.equal(reversed_kept.index, kept.index.flip(0))
    assert torch.equal(reversed_kept.y, kept.y.flip(0))


def test_neighbourhood_gather_equals_unfold_with_zero_padding() -> None:
    height, width, channels = 9, 10, 3
    mask = torch.ones(2, 1, height, width)  # border pixels included
    kept = find_kept_pixels(mask)
    features = torch.randn(2, height, width, channels)
    index, outside = neighbour_indices(kept)
    rows = features.reshape(-1, channels)[index]
    rows[outside] = 0
    rows = rows.view(kept.count, 9 * channels)
    unfolded = F.unfold(features.permute(0, 3, 1, 2), 3, padding=1)  # (B, C*9, H*W), c-major
    unfolded = unfolded.view(2, channels, 9, -1).permute(0, 3, 2, 1).reshape(-1, 9 * channels)
    torch.testing.assert_close(rows, unfolded)


@pytest.mark.parametrize(("tile", "min_fill"), [(4, 0.0), (16, 0.0), (4, 0.5), (16, 0.5)])
def test_tiles_cover_the_kept_pixels_they_select(tile: int, min_fill: float) -> None:
    height, width = 21, 30  # partial tiles at the right and bottom
    mask = _masks(2, height, width)
    kept = find_kept_pixels(mask)
    tile_ids, in_tiles = select_tiles(kept, tile, min_fill)
    # A kept pixel is tiled exactly when its tile holds at least min_fill * tile^2 of them.
    counts = F.avg_pool2d(mask, tile, stride=tile, ceil_mode=True, divisor_override=1)
    own_count = counts[kept.batch, 0, kept.y // tile, kept.x // tile]
    assert torch.equal(in_tiles, own_count >= max(min_fill * tile * tile, 1))
    if (tile, min_fill) == (4, 0.5):
        assert 0 < in_tiles.sum() < kept.count
    batch = tile_batch(mask, tile_ids, tile)
    inside = batch.inside if batch.inside is not None else slice(None)
    covered = torch.zeros(2 * height * width)
    covered[batch.pixels.index[inside]] = 1
    assert torch.equal(covered[kept.index], in_tiles.float())  # tiles hold the tiled pixels
    assert batch.mask.sum() == in_tiles.sum()  # and know which of their pixels are kept
    area, tiled_kept = tile_statistics(mask, tile, min_fill)
    assert area == batch.count * tile * tile / mask.numel()
    assert tiled_kept == pytest.approx(int(in_tiles.sum()) / mask.numel())


def test_tile_cells_convolve_like_the_dense_map() -> None:
    height, width, channels, tile = 21, 30, 4, 8
    mask = _masks(2, height, width)
    tile_ids, _ = select_tiles(find_kept_pixels(mask), tile, 0.0)
    batch = tile_batch(mask, tile_ids, tile)
    features = torch.randn(2, height, width, channels)
    kernel, bias = torch.randn(channels, channels, 3, 3), torch.randn(channels)
    cells = features.reshape(-1, channels)[batch.gather]
    cells[batch.outside] = 0
    cells = cells.view(batch.count, tile + 2, tile + 2, channels).permute(0, 3, 1, 2)
    out = F.conv2d(cells, kernel, bias).permute(0, 2, 3, 1).reshape(-1, channels)
    dense = F.conv2d(features.permute(0, 3, 1, 2), kernel, bias, padding=1)
    expected = dense.permute(0, 2, 3, 1).reshape(-1, channels)[batch.pixels.index]
    inside = batch.inside
    torch.testing.assert_close(out[inside], expected[inside], atol=1e-5, rtol=1e-5)


def test_sampling_at_pixels_equals_bilinear_upsampling() -> None:
    lowres = torch.randn(2, 5, 6, 8)
    mask = _masks(2, 24, 32)
    kept = find_kept_pixels(mask)
    dense = F.interpolate(lowres, size=(24, 32), mode="bilinear", align_corners=False)
    dense = dense.permute(0, 2, 3, 1).reshape(-1, 5)[kept.index]
    sampled = torch.cat(
        [sample_at_pixels(lowres, kept.take(kept.batch == image), image) for image in range(2)]
    )
    torch.testing.assert_close(sampled, dense, atol=1e-6, rtol=1e-6)


def _blocks(count: int, channels: int, context: int) -> list[PrunableBlock]:
    torch.manual_seed(3)
    blocks = [
        PrunableBlock(channels, context, 3, 4, trajectory=index % 2 == 0, batch_norm=True)
        for index in range(count)
    ]
    with torch.no_grad():
        for block in blocks:
            for parameter in block.parameters():
                parameter.add_(torch.randn_like(parameter) * 0.2)
            for norm in (block.mixer.norm3, block.mixer.norm1, block.mixer.norm_identity):
                norm.running_mean = torch.randn(channels) * 0.3
                norm.running_var = torch.rand(channels) + 0.5
            block.eval()
    return blocks


@pytest.mark.parametrize(
    ("executor", "min_fill"), [("pixel", 0.0), ("tile", 0.0), ("tile", 0.5), ("tile", 2.0)]
)
def test_pruned_blocks_equal_dense_blocks(executor: str, min_fill: float) -> None:
    batch, height, width, channels, ctx = 2, 21, 30, 8, 5
    mask = _masks(batch, height, width)
    generator = torch.Generator().manual_seed(4)
    motion = torch.randn(batch, 4, 6, 8, generator=generator) * 3  # displacements of pixels
    context = torch.randn(batch, ctx, 6, 8, generator=generator)
    stem = torch.randn(batch, height, width, channels, generator=generator)
    blocks = _blocks(3, channels, ctx)

    size = (height, width)
    trajectory = motion_to_trajectory(motion, trajectory_times(3, stem))  # (B, K, 2, h, w)
    grid = trajectory_grid(upsample_trajectory(trajectory, size))
    full_context = F.interpolate(context, size=size, mode="bilinear", align_corners=False)
    rows = stem
    with torch.no_grad():
        for block in blocks:
            rows = block(rows, mask.permute(0, 2, 3, 1), grid, full_context.permute(0, 2, 3, 1))
        for block in blocks:
            block.reparameterize()
        kept = find_kept_pixels(mask)
        plan = make_plan(mask, kept, trajectory, context, executor, 8, min_fill, 50)
        chunks = plan.pixel_chunks + (plan.tile_chunks or [])
        assert len(chunks) > 2  # several chunks per image are exercised
        if executor == "tile" and min_fill == 0.5:
            assert 0 < plan.pixels.count < kept.count  # both paths are exercised
        features = stem.clone().reshape(-1, channels)
        out_pixels, out_rows = run_pruned_blocks(blocks, features, (batch, height, width), plan)
        assert torch.equal(out_pixels.index.sort().values, kept.index)  # every kept pixel
        features.index_copy_(0, out_pixels.index, out_rows)
    pruned = features.view(batch, height, width, channels)
    assert (pruned - stem).abs().max() > 0.1
    torch.testing.assert_close(pruned, rows, atol=1e-5, rtol=1e-5)
    untouched = mask.permute(0, 2, 3, 1).expand_as(stem) == 0
    assert torch.equal(pruned[untouched], stem[untouched])


def test_auto_choice_follows_the_cost_model() -> None:
    assert choose_executor(0.01, 0.0, 0.0) == "pixel"  # scattered pixels, no full tiles
    assert choose_executor(0.3, 0.3, 0.28) == "tile"
    assert choose_executor(1.0, 1.0, 1.0) == "dense"


def test_plan_upsamples_guides_to_tile_pixels_like_interpolate() -> None:
    height, width = 40, 56  # multiples of 8 but not of 16: partial tiles
    mask = _masks(2, height, width)
    kept = find_kept_pixels(mask)
    generator = torch.Generator().manual_seed(7)
    trajectory = torch.randn(2, 3, 2, height // 4, width // 4, generator=generator) * 4
    context = torch.randn(2, 5, height // 4, width // 4, generator=generator)
    plan = make_plan(mask, kept, trajectory, context, "tile", 16, 0.0, 1000)
    tiles = plan.tiles
    inside = tiles.inside if tiles.inside is not None else slice(None)
    pixels = tiles.pixels.index[inside]
    size = (height, width)
    dense_context = F.interpolate(context, size=size, mode="bilinear", align_corners=False)
    dense_context = dense_context.permute(0, 2, 3, 1).reshape(-1, 5)[pixels]
    torch.testing.assert_close(plan.tile_context[inside], dense_context, atol=1e-5, rtol=1e-5)
    dense_grid = trajectory_grid(upsample_trajectory(trajectory, size))  # (B, H, W*K, 2)
    dense_grid = dense_grid.view(2 * height * width, 3, 2)[pixels]
    grids = plan.tile_grids.transpose(0, 1)  # (K, n, 2) -> (n, K, 2)
    torch.testing.assert_close(grids[inside], dense_grid, atol=1e-6, rtol=1e-6)
