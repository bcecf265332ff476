"""Overlays and side-by-side pictures: exact pixels where they are defined, layout and labels."""

from __future__ import annotations

import numpy as np
import pytest

from m2aenet import visualize as vis


def _square_mask(size: int = 9, lo: int = 2, hi: int = 7) -> np.ndarray:
    mask = np.zeros((size, size), bool)
    mask[lo:hi, lo:hi] = True
    return mask


def test_as_rgb_u8_converts_floats_gray_and_bool() -> None:
    floats = np.array([[[0.0, 0.5, 1.0]]], dtype=np.float32)
    np.testing.assert_array_equal(vis.as_rgb_u8(floats), [[[0, 128, 255]]])
    gray = np.array([[0, 200]], dtype=np.uint8)
    assert vis.as_rgb_u8(gray).shape == (1, 2, 3)
    np.testing.assert_array_equal(vis.as_rgb_u8(gray)[0, 1], [200, 200, 200])
    np.testing.assert_array_equal(vis.as_rgb_u8(np.array([[True]]))[0, 0], [255, 255, 255])
    rgba = np.zeros((1, 1, 4), dtype=np.uint8)
    assert vis.as_rgb_u8(rgba).shape == (1, 1, 3)
    with pytest.raises(ValueError, match="image"):
        vis.as_rgb_u8(np.zeros((2, 2, 5)))


def test_mask_boundary_inner_and_outer_rings() -> None:
    mask = _square_mask()  # 5x5 square
    inner = vis.mask_boundary(mask, 1, "inner")
    outer = vis.mask_boundary(mask, 1, "outer")
    assert inner.sum() == 25 - 9 and not (inner & ~mask).any()
    assert outer.sum() == 49 - 25 and not (outer & mask).any()
    assert vis.mask_boundary(mask, 2, "inner").sum() == 25 - 1
    with pytest.raises(ValueError, match="side"):
        vis.mask_boundary(mask, 1, "middle")


def test_image_border_is_not_outlined() -> None:
    mask = np.zeros((6, 6), bool)
    mask[:, :3] = True  # touches three image edges; only the edge at column 2 is a real boundary
    inner = vis.mask_boundary(mask, 1, "inner")
    assert inner[:, 2].all() and inner.sum() == 6


def test_mask_outline_colours_only_the_boundary_and_keeps_the_input() -> None:
    rgb = np.full((9, 9, 3), 0.5, dtype=np.float32)
    before = rgb.copy()
    out = vis.mask_outline(rgb, _square_mask(), color=(1, 2, 3), width=1)
    ring = vis.mask_boundary(_square_mask(), 1)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out[ring], np.tile([1, 2, 3], (ring.sum(), 1)))
    assert (out[~ring] == 128).all()
    np.testing.assert_array_equal(rgb, before)


def test_mask_overlay_tints_inside_and_leaves_outside() -> None:
    rgb = np.full((9, 9, 3), 100, dtype=np.uint8)
    mask = _square_mask()
    out = vis.mask_overlay(rgb, mask, color=(255, 0, 0), alpha=0.25, outline_width=1)
    # 0.75 * 100 + 0.25 * 255 = 138.75 -> 139; 0.75 * 100 = 75.
    np.testing.assert_array_equal(out[4, 4], [139, 75, 75])
    assert (out[~mask] == 100).all()
    np.testing.assert_array_equal(out[2, 2], [255, 0, 0])  # the outline
    no_outline = vis.mask_overlay(rgb, mask, color=(255, 0, 0), alpha=0.25, outline_width=0)
    np.testing.assert_array_equal(no_outline[2, 2], [139, 75, 75])
    with pytest.raises(ValueError, match="mask shape"):
        vis.mask_overlay(rgb, np.ones((3, 3), bool))
    with pytest.raises(ValueError, match="alpha"):
        vis.mask_overlay(rgb, mask, alpha=1.5)


def test_fit_width_keeps_aspect_and_binary_masks() -> None:
    image = np.zeros((100, 200, 3), dtype=np.uint8)
    assert vis.fit_width(image, 50).shape == (25, 50, 3)
    assert vis.fit_width(image, 400).shape == (100, 200, 3)
    mask = np.zeros((100, 200), bool)
    mask[:, 100:] = True
    small = vis.fit_width(mask, 50)
    assert small.dtype == np.bool_ and small.shape == (25, 50)
    assert small[:, 25:].all() and not small[:, :25].any()


def test_side_by_side_places_panels_under_titles() -> None:
    red = np.zeros((40, 60, 3), dtype=np.uint8)
    red[..., 0] = 255
    blue = np.zeros((30, 50, 3), dtype=np.uint8)
    blue[..., 2] = 255
    gap = 4
    picture = vis.side_by_side([("red", red), ("blue", blue)], gap=gap, font_size=14)
    bar = round(14 * 1.7)
    assert picture.dtype == np.uint8
    assert picture.shape == (bar + 40 + gap, 60 + 50 + 3 * gap, 3)
    np.testing.assert_array_equal(picture[bar : bar + 40, gap : gap + 60], red)
    left = gap + 60 + gap
    np.testing.assert_array_equal(picture[bar : bar + 30, left : left + 50], blue)
    # The shorter panel is padded with background, and each title strip holds light text.
    assert (picture[bar + 30 :, left : left + 50] == vis.BACKGROUND).all()
    for start, width in ((gap, 60), (left, 50)):
        strip = picture[:bar, start : start + width].astype(int)
        assert (strip.min(axis=2) > 200).any(), "no title text drawn"
    with pytest.raises(ValueError, match="at least one panel"):
        vis.side_by_side([])


def test_coloured_title_segments_and_mask_comparison() -> None:
    rgb = np.full((64, 96, 3), 90, dtype=np.uint8)
    gt = np.zeros((64, 96), bool)
    gt[16:48, 20:60] = True
    pred = np.zeros((64, 96), bool)
    pred[20:44, 40:80] = True
    title, panel = vis.mask_comparison(rgb, gt, pred, width=1)
    assert "".join(text for text, _ in title) == "true vs predicted mask"
    assert tuple(panel[15, 30]) == vis.GT_COLOR  # ground truth: just outside its mask
    assert tuple(panel[20, 70]) == vis.PRED_COLOR  # prediction: just inside its own
    assert tuple(panel[30, 30]) == (90, 90, 90)
    picture = vis.side_by_side([(title, panel)], font_size=14)
    strip = picture[: round(14 * 1.7)].reshape(-1, 3)
    for color in (vis.GT_COLOR, vis.PRED_COLOR):
        assert (np.abs(strip.astype(int) - color).sum(axis=1) < 30).any(), f"no {color} text"
    assert "".join(t for t, _ in vis.mask_comparison(rgb, None, None)[0]) == "no mask"
    assert "".join(t for t, _ in vis.mask_comparison(rgb, None, pred)[0]) == "predicted mask"


def test_most_changed_window_finds_the_changed_square() -> None:
    from m2aenet.visualize import most_changed_window

    change = np.zeros((40, 60))
    change[22:30, 41:49] = 1.0  # an 8x8 changed patch
    change[0, 0] = 5.0  # one strong pixel weighs less than the patch
    assert most_changed_window(change, 8) == (22, 41)
    assert most_changed_window(np.zeros((40, 60)), 8) == (0, 0)
    assert most_changed_window(change, 100) == (0, 0)  # clipped to the whole image


def test_restoration_comparison_shows_five_panels_with_the_zoom() -> None:
    from m2aenet.visualize import restoration_comparison

    rng = np.random.default_rng(0)
    before = rng.integers(0, 256, (96, 128, 3), dtype=np.uint8)
    after = before.copy()
    after[60:90, 90:120] = 255  # the restoration changed this corner
    mask = np.zeros((96, 128), dtype=bool)
    mask[60:90, 90:120] = True
    picture = restoration_comparison(before, after, mask)
    assert picture.dtype == np.uint8 and picture.ndim == 3
    # Three full panels of 128 px, two zooms of 32 px x3 = 96 px, and 6 gaps of 6 px.
    assert picture.shape[1] == 3 * 128 + 2 * 96 + 6 * 6
    # The zoomed restored panel (last) is mostly the white patch.
    zoom = picture[-6 - 96 : -6, -6 - 96 : -6]
    assert (zoom == 255).all(axis=2).mean() > 0.5


@pytest.mark.parametrize("shape", [(20000, 1), (1, 20000), (3000, 2000), (7, 5000)])
def test_restoration_comparison_has_a_bounded_size_whatever_the_aspect(
    shape: tuple[int, int],
) -> None:
    from m2aenet.visualize import restoration_comparison

    before = np.zeros((*shape, 3), dtype=np.uint8)
    after = before.copy()
    after[shape[0] // 2 :, shape[1] // 2 :] = 200  # a changed corner for the zoom to find
    mask = np.zeros(shape, dtype=bool)
    picture = restoration_comparison(before, after, mask, max_width=256)
    # A 1 x 20000 image gave a 40039 x 20030 picture (12.9 GB to build): every panel now
    # fits 256 x 512 px, so five panels, their gaps and the title strip bound the picture.
    assert picture.shape[0] <= 2 * 256 + 60 and picture.shape[1] <= 5 * 256 + 6 * 6, picture.shape
    last_columns = picture[:, -6 - 8 : -6]  # inside the zoomed restored panel
    assert (last_columns == 200).all(axis=2).sum() > 8 * 4  # the zoom shows the changed corner
