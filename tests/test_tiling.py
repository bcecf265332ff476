"""Tiled inference: tile layout, seamless blending, and the mask rule (tiling.py)."""

from __future__ import annotations

import pytest
import torch

from m2aenet.errors import ConfigError
from m2aenet.tiling import _axis_weights, run_tiled, tile_starts, validate_tiling


@pytest.mark.parametrize(
    ("size", "tile", "overlap"),
    [(48, 64, 8), (64, 64, 8), (65, 64, 8), (200, 64, 16), (1000, 256, 32), (97, 32, 0)],
)
def test_tiles_cover_the_axis_with_at_least_the_overlap(size: int, tile: int, overlap: int) -> None:
    starts = tile_starts(size, tile, overlap)
    assert starts[0] == 0
    assert min(starts[-1] + tile, size) == size  # the last tile ends at the border
    for previous, current in zip(starts, starts[1:], strict=False):
        assert previous + tile - current >= overlap  # shared pixels
        assert current > previous
    assert all(start + tile <= size for start in starts) or len(starts) == 1


@pytest.mark.parametrize(("size", "tile"), [(200, 64), (130, 64), (64, 64), (300, 100)])
def test_blend_windows_sum_to_one_everywhere(size: int, tile: int) -> None:
    starts = tile_starts(size, tile, 16)
    total = torch.zeros(size)
    for start, window in zip(starts, _axis_weights(starts, tile, size), strict=True):
        assert window.min() > 0  # every tile contributes to every pixel it covers
        total[start : start + window.numel()] += window
    torch.testing.assert_close(total, torch.ones(size))


def _pointwise(tile: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A 'model' that needs no context: restored = 1 - x, every pixel masked."""
    return 1.0 - tile, torch.ones_like(tile[:, :1], dtype=torch.bool)


def test_a_context_free_model_gives_the_same_result_tiled() -> None:
    image = torch.rand(1, 3, 150, 170)
    restored, mask, tiles = run_tiled(_pointwise, image, tile=64, overlap=16)
    assert tiles == len(tile_starts(150, 64, 16)) * len(tile_starts(170, 64, 16)) == 12
    assert mask.all()
    torch.testing.assert_close(restored, 1.0 - image, atol=1e-6, rtol=0)


def test_unmasked_pixels_are_the_input_exactly() -> None:
    image = torch.rand(1, 3, 100, 90)

    def left_half_only(tile: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.zeros_like(tile), torch.zeros_like(tile[:, :1], dtype=torch.bool)

    restored, mask, _ = run_tiled(left_half_only, image, tile=48, overlap=8)
    assert not mask.any()
    assert torch.equal(restored, image)


def test_a_pixel_is_restored_when_any_tile_masks_it_with_only_those_tiles_blended() -> None:
    image = torch.rand(1, 3, 40, 100)
    calls = []

    def first_tile_masks_everything(tile: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        calls.append(tile.shape)
        keep = len(calls) == 1
        return torch.full_like(tile, 0.25), torch.full_like(tile[:, :1], keep, dtype=torch.bool)

    restored, mask, tiles = run_tiled(first_tile_masks_everything, image, tile=64, overlap=16)
    assert tiles == 2
    assert mask[..., :64].all() and not mask[..., 64:].any()
    # Inside the first tile every pixel is the first tile's restoration alone, even in the
    # overlap where the second tile (which found nothing) also had weight.
    assert torch.equal(restored[..., :64], torch.full_like(restored[..., :64], 0.25))
    assert torch.equal(restored[..., 64:], image[..., 64:])


@pytest.mark.parametrize(
    ("tile", "overlap", "key"), [(8, 0, "tile"), (64, -1, "tile_overlap"), (64, 40, "tile_overlap")]
)
def test_bad_tile_settings_are_refused_naming_the_option(tile: int, overlap: int, key: str) -> None:
    with pytest.raises(ConfigError, match=rf"^{key}="):
        validate_tiling(tile, overlap)
