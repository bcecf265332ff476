"""Pixel pruning at inference: run the restoration blocks on kept pixels only.

The full-resolution feature map lives in one flat (B*H*W, C) tensor (channels-last). Each
block computes `x + F(x)` for the kept pixels from the block input -- all of them before any
is written, since a kept pixel's neighbours must be read before they change -- and copies
the results back in place (`index_copy_`, about 5x faster here than `index_add_`). Pixels
outside the mask are never touched, so they keep the block input, which is exactly what the
dense `y = x + M * F(x)` gives them. The full map is never copied per block (measured 2-3x
slower).

Two executors compute F's only spatial operation (the collapsed 3x3 conv):
  pixel: gather each kept pixel's 3x3 neighbourhood, one (n, 9C) x (9C, C) matmul;
  tile:  tiles (tile x tile pixels) filled at least `min_fill` by kept pixels are gathered
         with a 1-pixel halo and convolved densely as one batch, which is cheaper per pixel
         than gathering neighbourhoods; kept pixels in emptier tiles (blob borders) take the
         pixel path, so little arithmetic is spent on pixels that are not kept.
Trajectory samples, context and the pointwise tail are computed per kept pixel in both.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F

from m2aenet.models.blocks import PrunableBlock, accumulate_mm
from m2aenet.models.motion import sample_bilinear, sampling_grid

EXECUTORS = ("auto", "pixel", "tile", "dense")

# Cost model behind "auto", in units of one dense forward pass, fitted to timings of
# m2aenet-s at 1024x1024 on blob masks of 0.5-90% (docs/benchmarks/pruning.md):
#   pixel = PLAN_COST + (POINTWISE_COST + GATHER_COST) * kept
#   tile  = PLAN_COST + TILE_COST * tiled area + GATHER_COST * (kept outside tiles)
#           + POINTWISE_COST * kept
#   dense = 1
# The tile executor sends pixels outside well-filled tiles through the pixel path, so it is
# never worse than the pixel executor in this model; dense wins above ~85% kept.
PLAN_COST = 0.04
POINTWISE_COST = 0.55
GATHER_COST = 1.13
TILE_COST = 0.60


@dataclass
class KeptPixels:
    """Kept pixels: flat indices into B*H*W and their coordinates, all of shape (n,)."""

    index: torch.Tensor
    batch: torch.Tensor
    y: torch.Tensor
    x: torch.Tensor
    shape: tuple[int, int, int]  # (B, H, W)

    @property
    def count(self) -> int:
        return int(self.index.numel())

    def take(self, rows: torch.Tensor | slice) -> KeptPixels:
        """The kept pixels at `rows` (a permutation, subset or slice), in that order."""
        return replace(
            self, index=self.index[rows], batch=self.batch[rows], y=self.y[rows], x=self.x[rows]
        )


def find_kept_pixels(mask: torch.Tensor) -> KeptPixels:
    """Kept pixels of a (B, 1, H, W) {0, 1} mask, in batch-major row-major order."""
    batch_size, _, height, width = mask.shape
    batch, y, x = (mask[:, 0] > 0.5).nonzero().unbind(1)  # no divisions needed
    index = (batch * height + y) * width + x
    return KeptPixels(index, batch, y, x, (batch_size, height, width))


def neighbour_indices(kept: KeptPixels) -> tuple[torch.Tensor, torch.Tensor]:
    """Flat indices of each kept pixel's 3x3 neighbourhood, (n * 9,), offsets row-major.

    Neighbours outside the image are clamped to a valid index; their rows must be zeroed
    after the gather (the conv's zero padding) and are listed, sorted, in the second tensor.
    """
    _, height, width = kept.shape
    offsets = torch.arange(-1, 2, device=kept.index.device)
    ny = (kept.y[:, None] + offsets.repeat_interleave(3)[None]).flatten()  # (n*9,)
    nx = (kept.x[:, None] + offsets.repeat(3)[None]).flatten()
    inside = (ny >= 0) & (ny < height) & (nx >= 0) & (nx < width)
    base = kept.batch.repeat_interleave(9) * (height * width)
    index = base + ny.clamp(0, height - 1) * width + nx.clamp(0, width - 1)
    return index, (~inside).nonzero().squeeze(1)


def select_tiles(kept: KeptPixels, tile: int, min_fill: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Tiles holding at least `min_fill * tile^2` kept pixels (any kept pixel if min_fill is 0).

    Returns the sorted flat ids of those tiles (image-major, then row-major over the grid of
    ceil(H / tile) x ceil(W / tile) tiles) and a (n,) bool: which kept pixels lie in them.
    """
    batch_size, height, width = kept.shape
    rows, cols = -(-height // tile), -(-width // tile)
    tile_id = kept.batch * (rows * cols) + (kept.y // tile) * cols + kept.x // tile
    counts = torch.bincount(tile_id, minlength=batch_size * rows * cols)
    selected = counts >= max(min_fill * tile * tile, 1)
    return selected.nonzero().squeeze(1), selected[tile_id]


@dataclass
class TileBatch:
    """Selected tiles: every one of their pixels is computed, kept or not (where the mask is
    0 the result is x, as in the dense network), so nothing is gathered inside a tile."""

    tile: int
    count: int  # T
    gather: torch.Tensor  # (T * (tile+2)^2,) flat index of every cell (halo included), clamped
    outside: torch.Tensor  # cells outside the image, zeroed (the conv's zero padding)
    pixels: KeptPixels  # the T * tile^2 interior pixels (tile, y, x order), clamped indices
    inside: torch.Tensor | None  # interior rows inside the image; None when all are
    mask: torch.Tensor  # (T, tile, tile, 1) 1 where the pixel is kept


def tile_batch(mask: torch.Tensor, tiles: torch.Tensor, tile: int) -> TileBatch:
    """Indices of the tiles `tiles` (ids from `select_tiles`) of a (B, 1, H, W) mask."""
    batch_size, _, height, width = mask.shape
    device = tiles.device
    rows, cols = -(-height // tile), -(-width // tile)
    image = tiles // (rows * cols)
    top = (tiles % (rows * cols)) // cols * tile
    left = (tiles % cols) * tile
    count = int(tiles.numel())

    def grid(
        offsets: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        ys = (top[:, None] + offsets[None])[:, :, None].expand(-1, -1, offsets.numel())
        xs = (left[:, None] + offsets[None])[:, None, :].expand(-1, offsets.numel(), -1)
        inside = (ys >= 0) & (ys < height) & (xs >= 0) & (xs < width)
        ys, xs = ys.clamp(0, height - 1), xs.clamp(0, width - 1)
        index = (image[:, None, None] * height + ys) * width + xs
        return index.flatten(), inside.flatten(), ys.flatten(), xs.flatten()

    cells, cells_inside, _, _ = grid(torch.arange(-1, tile + 1, device=device))
    index, inside, ys, xs = grid(torch.arange(tile, device=device))
    pixels = KeptPixels(
        index, image.repeat_interleave(tile * tile), ys, xs, (batch_size, height, width)
    )
    values = mask.reshape(-1)[index] * inside
    return TileBatch(
        tile=tile,
        count=count,
        gather=cells,
        outside=(~cells_inside).nonzero().squeeze(1),
        pixels=pixels,
        inside=None if bool(inside.all()) else inside.nonzero().squeeze(1),
        mask=values.view(count, tile, tile, 1),
    )


def tile_statistics(mask: torch.Tensor, tile: int, min_fill: float) -> tuple[float, float]:
    """(area of the tiles the tile executor convolves, kept pixels inside them), as fractions."""
    fill = F.avg_pool2d(mask, tile, stride=tile, ceil_mode=True, divisor_override=tile * tile)
    selected = fill >= max(min_fill, 1.0 / (tile * tile))
    scale = tile * tile / mask.numel()
    return float(selected.sum()) * scale, float((fill * selected).sum()) * scale


def choose_executor(kept: float, tiled_area: float, tiled_kept: float) -> str:
    """Fastest executor by the fitted cost model; arguments are fractions of the image."""
    costs = {
        "pixel": PLAN_COST + (POINTWISE_COST + GATHER_COST) * kept,
        "tile": PLAN_COST
        + TILE_COST * tiled_area
        + GATHER_COST * (kept - tiled_kept)
        + POINTWISE_COST * kept,
        "dense": 1.0,
    }
    if tiled_area == 0:
        del costs["tile"]  # no tile qualifies: the tile executor would be the pixel one
    return min(costs, key=costs.get)


def sample_at_pixels(lowres: torch.Tensor, kept: KeptPixels, image: int) -> torch.Tensor:
    """Bilinear upsampling of lowres (B, C, h, w) evaluated at kept pixels of one image.

    Equals `F.interpolate(lowres, size=(H, W), mode="bilinear", align_corners=False)` at those
    pixels (all of `kept` must belong to `image`); returns (n, C).
    """
    _, height, width = kept.shape
    x = kept.x.to(lowres.dtype)
    y = kept.y.to(lowres.dtype)
    # Pixel centres in align_corners=False coordinates; border padding reproduces the
    # clamping F.interpolate does at the edges.
    grid = torch.stack(((2 * x + 1) / width - 1, (2 * y + 1) / height - 1), dim=-1)
    samples = F.grid_sample(
        lowres[image : image + 1],
        grid.view(1, -1, 1, 2),
        mode="bilinear",
        padding_mode="border",
        align_corners=False,
    )  # (1, C, n, 1)
    return samples[0, :, :, 0].t()


@dataclass
class Chunk:
    """A run of work items (untiled kept pixels, or tiles) from one image."""

    image: int
    start: int
    end: int


@dataclass
class PrunedPlan:
    """What the executors precompute once per forward and reuse in every block.

    `pixels` are the kept pixels outside convolved tiles (all kept pixels for the pixel
    executor); `tiles` the convolved tiles (tile executor). Each part has its trajectory
    sampling positions (K, 2 per pixel, grid_sample units) and analyzer context.
    """

    pixels: KeptPixels
    pixel_chunks: list[Chunk]
    pixel_grids: torch.Tensor  # (K, n, 2): point-major, see _add_trajectory_term
    pixel_context: torch.Tensor  # (n, Cctx)
    neighbours: tuple[torch.Tensor, torch.Tensor]
    tiles: TileBatch | None = None
    tile_chunks: list[Chunk] | None = None
    tile_grids: torch.Tensor | None = None  # (K, T * tile^2, 2)
    tile_context: torch.Tensor | None = None  # (T * tile^2, Cctx)


def _guides(
    pixels: KeptPixels, lowres: torch.Tensor, points: int
) -> tuple[torch.Tensor, torch.Tensor, list[tuple[int, int, int]]]:
    """Trajectory grids (K, n, 2) and context (n, Cctx) of pixels sorted by image."""
    _, height, width = pixels.shape
    counts = torch.bincount(pixels.batch, minlength=lowres.shape[0]).tolist()
    grids, contexts, ranges, start = [], [], [], 0
    for image, count in enumerate(counts):
        if count == 0:
            continue
        part = pixels.take(slice(start, start + count))
        values = sample_at_pixels(lowres, part, image)  # (count, 2K + Cctx)
        displacement = values[:, : 2 * points].view(-1, points, 2)
        base = torch.stack((part.x.to(values.dtype), part.y.to(values.dtype)), dim=-1)
        grids.append(sampling_grid(base[:, None], displacement, height, width))  # (n, K, 2)
        contexts.append(values[:, 2 * points :])
        ranges.append((image, start, start + count))
        start += count
    if not grids:
        empty = lowres.new_empty(points, 0, 2)
        return empty, lowres.new_empty(0, lowres.shape[1] - 2 * points), []
    grids = [grid.transpose(0, 1) for grid in grids]  # point-major (K, n, 2)
    if len(grids) == 1:  # one image: no copies (a strided context slice is fine for matmul)
        return grids[0].contiguous(), contexts[0], ranges
    return torch.cat(grids, dim=1), torch.cat(contexts), ranges


def _chunks(ranges: list[tuple[int, int, int]], size: int) -> list[Chunk]:
    return [
        Chunk(image, first, min(first + size, end))
        for image, start, end in ranges
        for first in range(start, end, size)
    ]


def make_plan(
    mask: torch.Tensor,
    kept: KeptPixels,
    trajectory: torch.Tensor,
    context: torch.Tensor,
    executor: str,
    tile: int,
    min_fill: float,
    chunk_pixels: int,
) -> PrunedPlan:
    """Precompute indices, trajectory grids and context for the pruned executors.

    mask (B, 1, H, W) and its kept pixels; trajectory (B, K, 2, h, w) and context
    (B, Cctx, h, w) at the analyzer's resolution, upsampled bilinearly to the pixels as the
    dense path upsamples them.
    """
    points = trajectory.shape[1]
    lowres = torch.cat((trajectory.flatten(1, 2), context), dim=1)
    pixels, tiles = kept, None
    if executor == "tile":
        tile_ids, in_tiles = select_tiles(kept, tile, min_fill)
        pixels = kept.take(~in_tiles)
        tiles = tile_batch(mask, tile_ids, tile)
    grids, contexts, ranges = _guides(pixels, lowres, points)
    plan = PrunedPlan(
        pixels=pixels,
        pixel_chunks=_chunks(ranges, chunk_pixels),
        pixel_grids=grids,
        pixel_context=contexts,
        neighbours=neighbour_indices(pixels),
    )
    if tiles is not None and tiles.count:
        grids, contexts, ranges = _guides(tiles.pixels, lowres, points)
        area = tile * tile  # a tile chunk holds whole tiles
        tile_ranges = [(image, start // area, end // area) for image, start, end in ranges]
        plan.tiles = tiles
        plan.tile_chunks = _chunks(tile_ranges, max(chunk_pixels // area, 1))
        plan.tile_grids, plan.tile_context = grids, contexts
    return plan


def _gather_neighbourhoods(
    features: torch.Tensor, neighbours: tuple[torch.Tensor, torch.Tensor], start: int, end: int
) -> torch.Tensor:
    """(end - start, 9C) neighbourhoods of pixels start:end, zero outside the image."""
    index, outside = neighbours
    rows = features.index_select(0, index[9 * start : 9 * end])
    bounds = torch.tensor([9 * start, 9 * end], device=outside.device)
    lo, hi = torch.searchsorted(outside, bounds).tolist()
    if hi > lo:
        rows.index_fill_(0, outside[lo:hi] - 9 * start, 0.0)
    return rows.view(end - start, -1)


def _add_trajectory_term(
    h: torch.Tensor, source: torch.Tensor, grids: torch.Tensor, image: int, weight: torch.Tensor
) -> torch.Tensor:
    """h (n, C) + samples @ weight: samples of source (B, c, H, W) at grids (K, n, 2).

    Point-major grids make grid_sample return (c, K, n), which is an (n, c*K) matrix in
    transposed layout that the matmul reads directly (no copy); `weight` (c*K, C) is in the
    matching channel-major order (`deploy_weights()["trajectory_by_channel"]`).
    """
    samples = sample_bilinear(source[image : image + 1], grids[None])[0]  # (c, K, n)
    return accumulate_mm(h, samples.reshape(-1, samples.shape[-1]).t(), weight)


def run_pruned_blocks(
    blocks: list[PrunableBlock],
    features: torch.Tensor,
    shape: tuple[int, int, int],
    plan: PrunedPlan,
) -> tuple[KeptPixels, torch.Tensor]:
    """Apply every (reparameterized) block to the planned pixels of `features` (B*H*W, C).

    Returns the kept pixels (in the executors' order) and their features after the last
    block, (n, C). `features` is updated in place with the output of every block but the
    last (nothing reads the last one there); pixels the plan does not cover are never touched.
    """
    batch_size, height, width = shape
    channels = features.shape[1]
    # A (B, C, H, W) view of the same memory, for bilinear trajectory sampling.
    image_view = features.view(batch_size, height, width, channels).permute(0, 3, 1, 2)
    pixels, tiles = plan.pixels, plan.tiles
    pixel_out = features.new_empty(pixels.count, channels)
    if tiles is not None:
        size = tiles.tile + 2
        tile_out = features.new_empty(tiles.count, tiles.tile, tiles.tile, channels)
    for index, block in enumerate(blocks):
        weights = block.deploy_weights()
        source = image_view[:, : block.trajectory_channels]
        for chunk in plan.pixel_chunks:
            start, end = chunk.start, chunk.end
            neighbourhoods = _gather_neighbourhoods(features, plan.neighbours, start, end)
            h = torch.mm(neighbourhoods, weights["matrix"]).add_(weights["bias"])
            if block.samples_trajectory:
                grids = plan.pixel_grids[:, start:end]
                h = _add_trajectory_term(
                    h, source, grids, chunk.image, weights["trajectory_by_channel"]
                )
            h = accumulate_mm(h, plan.pixel_context[start:end], weights["context"])
            centre = neighbourhoods[:, 4 * channels : 5 * channels]
            torch.add(centre, block.pointwise(h), out=pixel_out[start:end])  # y = x + F(x)
        if tiles is not None:
            cells = features.index_select(0, tiles.gather)  # tiles with their 1-pixel halo
            cells.index_fill_(0, tiles.outside, 0.0)
            cells = cells.view(tiles.count, size, size, channels)
        for chunk in plan.tile_chunks or ():
            first, last = chunk.start, chunk.end
            # (t, C, tile, tile) output of a channels-last view: permuting back is free.
            h = F.conv2d(cells[first:last].permute(0, 3, 1, 2), weights["kernel"], weights["bias"])
            h = h.permute(0, 2, 3, 1).reshape(-1, channels)
            rows = slice(first * tiles.tile**2, last * tiles.tile**2)
            if block.samples_trajectory:
                grids = plan.tile_grids[:, rows]
                h = _add_trajectory_term(
                    h, source, grids, chunk.image, weights["trajectory_by_channel"]
                )
            h = accumulate_mm(h, plan.tile_context[rows], weights["context"])
            update = block.pointwise(h).view(last - first, tiles.tile, tiles.tile, channels)
            # y = x + M * F(x) on every pixel of the tiles; where M = 0 this is x exactly.
            inputs = cells[first:last, 1:-1, 1:-1]
            torch.addcmul(inputs, tiles.mask[first:last], update, out=tile_out[first:last])
        if index == len(blocks) - 1:
            break
        # Every output is computed from the old map before any of them is written.
        if pixels.count:
            features.index_copy_(0, pixels.index, pixel_out)
        if tiles is not None:
            flat_out = tile_out.view(-1, channels)
            if tiles.inside is None:
                features.index_copy_(0, tiles.pixels.index, flat_out)
            else:
                inside = tiles.inside
                features.index_copy_(0, tiles.pixels.index[inside], flat_out[inside])
    if tiles is None:
        return pixels, pixel_out
    kept_rows = tiles.mask.view(-1).nonzero().squeeze(1)
    tiled = tiles.pixels.take(kept_rows)
    outputs = torch.cat((pixel_out, tile_out.view(-1, channels).index_select(0, kept_rows)))
    order = replace(
        pixels,
        index=torch.cat((pixels.index, tiled.index)),
        batch=torch.cat((pixels.batch, tiled.batch)),
        y=torch.cat((pixels.y, tiled.y)),
        x=torch.cat((pixels.x, tiled.x)),
    )
    return order, outputs
