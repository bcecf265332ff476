"""Object shapes from photo structure: merged segments, polygons, limbs, inpainted holes."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from m2aenet.data.segment_shapes import (
    feathered_alpha,
    fill_behind,
    polygon_mask,
    segment_region,
    thin_part,
    with_straight_edges,
)


def _patchwork(height: int = 96, width: int = 96) -> tuple[np.ndarray, np.ndarray]:
    """A photo made of 6x6 flat, clearly different tiles, and its tile labels."""
    rng = np.random.default_rng(0)
    rows, cols = np.arange(height)[:, None] // (height // 6), np.arange(width)[None] // (width // 6)
    labels = rows * 6 + cols
    colours = rng.integers(0, 256, (36, 3)).astype(np.uint8)
    colours[:, 0] = np.arange(36) * 7  # all distinct
    return colours[labels], labels


def test_a_segment_region_is_made_of_whole_segments_of_the_photo() -> None:
    photo, labels = _patchwork()
    for seed in range(4):
        region = segment_region(photo, np.random.default_rng(seed), fill=(0.3, 0.3))
        assert 0.15 <= region.mean() <= 0.6
        # The outline follows the photo's own edges: it runs along tile borders.
        outline = region & ~ndimage.binary_erosion(region, border_value=1)
        tile_edges = ndimage.morphological_gradient(labels, size=3) > 0
        near_edges = ndimage.binary_dilation(tile_edges, iterations=2)
        assert outline.any() and near_edges[outline].mean() > 0.95


def test_polygons_and_straight_edges_stay_in_the_box() -> None:
    rng = np.random.default_rng(1)
    for _ in range(6):
        shape = polygon_mask(60, 80, rng)
        assert shape.shape == (60, 80) and 0.05 < shape.mean() < 0.95
    photo, _ = _patchwork()
    region = segment_region(photo, rng, fill=(0.4, 0.4))
    edged = with_straight_edges(region, rng)
    assert edged.any() and not np.array_equal(edged, region)


def test_a_limb_is_thin_and_starts_on_the_region_edge() -> None:
    region = np.zeros((100, 100), dtype=bool)
    region[30:70, 30:70] = True
    for seed in range(5):
        limb, (x, y) = thin_part(region, np.random.default_rng(seed))
        assert region[int(y), int(x)]  # the joint is on the body ...
        assert not region[int(y) - 1 : int(y) + 2, int(x) - 1 : int(x) + 2].all()  # ... at its edge
        length = np.hypot(*(np.array(np.nonzero(limb)) - [[y], [x]])).max()
        assert length >= 15  # long (or cut by the box) ...
        assert ndimage.distance_transform_edt(limb).max() <= 6  # ... and at most ~10 px wide


def test_feathered_alpha_is_soft_and_clear_at_the_border() -> None:
    hard = np.ones((40, 50), dtype=bool)
    alpha = feathered_alpha(hard, 1.2)
    assert alpha.dtype == np.float32 and alpha.max() == 1.0
    assert not alpha[0].any() and not alpha[:, -1].any()
    assert ((alpha > 0) & (alpha < 1)).any()


def test_fill_behind_continues_the_surroundings_and_touches_only_the_hole() -> None:
    ys, xs = np.mgrid[0:80, 0:120].astype(np.float32)
    image = np.stack([xs * 2, ys * 3, np.full_like(xs, 90)], -1).astype(np.uint8)
    damaged = image.copy()
    damaged[30:50, 40:70] = (255, 0, 255)  # the object that will move away
    hole = np.zeros((30, 40), dtype=bool)
    hole[5:25, 5:35] = True
    filled = fill_behind(damaged, hole, top=25, left=35)
    changed = np.any(filled != damaged, axis=-1)
    assert not changed[:20].any() and not changed[:, :30].any()  # far from the hole: untouched
    error = np.abs(filled[30:50, 40:70].astype(int) - image[30:50, 40:70]).mean()
    assert error < 6  # a smooth gradient is continued into the hole


def test_a_flat_crop_gets_an_object_outline_not_the_box() -> None:
    flat = np.full((80, 100, 3), 120, dtype=np.uint8)
    region = segment_region(flat, np.random.default_rng(0), fill=(0.4, 0.6))
    assert 0.2 < region.mean() < 0.85
    assert not region[0].all() and not region[:, 0].all()
