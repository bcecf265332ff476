"""Tiled inference for images too large to process in one pass.

The image is cut into overlapping tiles; each tile goes through the model on its own and the
results are blended with a window that ramps linearly across each overlap, so no tile edge is
ever a hard seam. The blur masks of the tiles are combined with OR: a pixel is restored when
any tile covering it found it blurred, and its value is the window-weighted mean of the
restorations *from those tiles only*. Pixels no tile found blurred keep the input value, so
"outside the mask the output is the input" holds exactly in tiled mode too.

The image is processed one row of tiles at a time (`run_tiled_rows`): a band of rows is read,
its tiles are restored and blended, and the finished rows are handed on, so the blending
accumulators cover one band, not the image. Only one tile at a time goes to the model's
device, so device memory is bounded by the tile size.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from m2aenet.errors import ConfigError

# A tile function maps a (1, 3, h, w) float tile to (restored (1, 3, h, w), hard mask (1, 1, h, w)).
TileFunction = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def validate_tiling(
    tile: int, overlap: int, names: tuple[str, str] = ("tile", "tile_overlap")
) -> None:
    """Refuse tile settings that cannot cover an image (ConfigError naming the option).

    names: how the two settings are called in messages (the CLI passes its option names).
    """
    tile_name, overlap_name = names
    if tile < 16:
        raise ConfigError(f"{tile_name}={tile}: a tile must be at least 16 pixels wide")
    if overlap < 0:
        raise ConfigError(f"{overlap_name}={overlap}: must be >= 0")
    if overlap * 2 > tile:
        raise ConfigError(f"{overlap_name}={overlap}: must be at most half the tile size ({tile})")


def tile_starts(size: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles of length `tile` covering [0, size) with at least `overlap` shared.

    Tiles are spread evenly so the first starts at 0 and the last ends at `size`; a size
    that fits in one tile gives `[0]`.
    """
    if size <= tile:
        return [0]
    count = math.ceil((size - overlap) / (tile - overlap))
    # Integer division keeps every gap between starts <= tile - overlap.
    return [index * (size - tile) // (count - 1) for index in range(count)]


def _axis_weights(starts: list[int], length: int, size: int) -> list[torch.Tensor]:
    """Per-tile 1-D blend windows along one axis: linear ramps across each actual overlap."""
    windows = []
    for index, start in enumerate(starts):
        end = min(start + length, size)
        window = torch.ones(end - start)
        shared = starts[index - 1] + length - start if index > 0 else 0  # with the previous tile
        if shared > 0:
            ramp = (torch.arange(shared, dtype=torch.float32) + 0.5) / shared
            window[:shared] = torch.minimum(window[:shared], ramp)
        shared = end - starts[index + 1] if index < len(starts) - 1 else 0  # with the next tile
        if shared > 0:
            ramp = (torch.arange(shared, dtype=torch.float32) + 0.5) / shared
            window[-shared:] = torch.minimum(window[-shared:], ramp.flip(0))
        windows.append(window)
    return windows


#: read_rows(top, bottom) -> the input's rows [top, bottom), (1, 3, bottom - top, W) float.
RowReader = Callable[[int, int], torch.Tensor]
#: emit(top, bottom, restored (1, 3, rows, W), bool mask (1, 1, rows, W)): finished rows.
RowWriter = Callable[[int, int, torch.Tensor, torch.Tensor], None]


def run_tiled_rows(
    process: TileFunction,
    read_rows: RowReader,
    height: int,
    width: int,
    tile: int,
    overlap: int,
    emit: RowWriter,
) -> int:
    """Run `process` on overlapping tiles of an image read a band of rows at a time.

    The image is never held whole here: one row of tiles is read (`read_rows`), processed
    and blended, and the rows no later tile touches are handed to `emit`, finished, from top
    to bottom; only the rows shared with the next row of tiles are carried over. Memory is a
    band of `tile` rows, whatever the image's height. Where a row's mask is False its
    restored values are the input's exactly. Returns the tile count.
    """
    validate_tiling(tile, overlap)
    rows = tile_starts(height, tile, overlap)
    cols = tile_starts(width, tile, overlap)
    row_windows = _axis_weights(rows, tile, height)
    col_windows = _axis_weights(cols, tile, width)

    carried: tuple[torch.Tensor, torch.Tensor] | None = None  # rows shared with the last band
    for index, (top, row_window) in enumerate(zip(rows, row_windows, strict=True)):
        bottom = top + row_window.numel()
        band = read_rows(top, bottom).cpu()
        weighted_sum = torch.zeros(1, 3, bottom - top, width)
        weight_sum = torch.zeros(1, 1, bottom - top, width)  # weights of tiles that kept it
        if carried is not None:
            shared = carried[0].shape[2]
            weighted_sum[:, :, :shared] += carried[0]
            weight_sum[:, :, :shared] += carried[1]
        for left, col_window in zip(cols, col_windows, strict=True):
            right = left + col_window.numel()
            restored, mask = process(band[:, :, :, left:right])
            kept = mask.detach().to("cpu", torch.float32)
            weight = row_window[:, None] * col_window[None, :] * kept  # (1, 1, h, w)
            weighted_sum[:, :, :, left:right] += restored.detach().cpu() * weight
            weight_sum[:, :, :, left:right] += weight
        finished = rows[index + 1] - top if index + 1 < len(rows) else bottom - top
        mask = weight_sum[:, :, :finished] > 0
        blended = weighted_sum[:, :, :finished] / weight_sum[:, :, :finished].clamp_min(1e-12)
        emit(top, top + finished, torch.where(mask, blended, band[:, :, :finished]), mask)
        carried = (weighted_sum[:, :, finished:], weight_sum[:, :, finished:])
    return len(rows) * len(cols)


def run_tiled(
    process: TileFunction, image: torch.Tensor, tile: int, overlap: int
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Run `process` on overlapping tiles of `image` (1, 3, H, W) and blend the results.

    Returns (restored (1, 3, H, W) on the CPU, bool mask (1, 1, H, W) on the CPU, tile count).
    Where the mask is False the restored image equals `image` exactly.
    """
    _, _, height, width = image.shape
    image = image.cpu()
    restored = torch.empty(1, 3, height, width)
    mask = torch.empty(1, 1, height, width, dtype=torch.bool)

    def keep(top: int, bottom: int, rows: torch.Tensor, rows_mask: torch.Tensor) -> None:
        restored[:, :, top:bottom] = rows
        mask[:, :, top:bottom] = rows_mask

    tiles = run_tiled_rows(
        process, lambda top, bottom: image[:, :, top:bottom], height, width, tile, overlap, keep
    )
    return restored, mask, tiles
