"""Pictures for people: blur-mask overlays and labelled side-by-side comparisons.

Every function takes images as (H, W, 3) uint8 or float in [0, 1] (gray (H, W) is accepted too) and
returns a new (H, W, 3) uint8 array; inputs are never modified. Masks are (H, W) booleans.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from scipy import ndimage

Color = tuple[int, int, int]
#: A panel title: plain text, or (text, colour) segments drawn one after another (a legend).
Title = str | Sequence[tuple[str, Color]]

GT_COLOR: Color = (40, 220, 60)  # green: the ground-truth blur mask
PRED_COLOR: Color = (255, 40, 220)  # magenta: the predicted blur mask
BACKGROUND: Color = (28, 28, 30)
TEXT_COLOR: Color = (238, 238, 238)

_SQUARE = np.ones((3, 3), dtype=bool)  # 8-connected: outlines without gaps at diagonals


def as_rgb_u8(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 copy of an RGB or gray image; floats are read as [0, 1] and rounded."""
    image = np.asarray(image)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] not in (3, 4):
        raise ValueError(f"expected an (H, W), (H, W, 3) or (H, W, 4) image, got {image.shape}")
    image = image[..., :3]
    if image.dtype == np.uint8:
        return image.copy()
    if image.dtype == np.bool_:
        return image.astype(np.uint8) * 255
    return np.clip(np.round(image.astype(np.float32) * 255.0), 0, 255).astype(np.uint8)


def _check_mask(mask: np.ndarray, image: np.ndarray) -> np.ndarray:
    mask = np.asarray(mask).astype(bool, copy=False)
    if mask.shape != image.shape[:2]:
        raise ValueError(f"mask shape {mask.shape} does not match image shape {image.shape[:2]}")
    return mask


def default_line_width(height: int, width: int) -> int:
    """Outline width in px that stays visible without hiding detail: 1 px per ~150 px of side."""
    return max(1, round(min(height, width) / 150))


def mask_boundary(
    mask: np.ndarray, width: int = 2, side: Literal["inner", "outer"] = "inner"
) -> np.ndarray:
    """Boolean (H, W) band of `width` px along the edge of `mask`.

    "inner" lies inside the mask, "outer" just outside it, so two masks that coincide can be drawn
    together without one hiding the other. The image border is not an edge (a mask that touches
    it is not outlined there).
    """
    mask = np.asarray(mask).astype(bool, copy=False)
    if width < 1:
        raise ValueError(f"outline width must be >= 1, got {width}")
    if side == "inner":
        return mask & ~ndimage.binary_erosion(mask, _SQUARE, iterations=width, border_value=1)
    if side == "outer":
        return ndimage.binary_dilation(mask, _SQUARE, iterations=width) & ~mask
    raise ValueError(f"side must be 'inner' or 'outer', got {side!r}")


def mask_outline(
    rgb: np.ndarray,
    mask: np.ndarray,
    color: Color = GT_COLOR,
    width: int | None = None,
    side: Literal["inner", "outer"] = "inner",
) -> np.ndarray:
    """Draw the outline of `mask` over `rgb` in `color`; returns uint8 (H, W, 3).

    width: outline width in px (default: `default_line_width` of the image).
    """
    out = as_rgb_u8(rgb)
    mask = _check_mask(mask, out)
    width = width or default_line_width(*out.shape[:2])
    out[mask_boundary(mask, width, side)] = color
    return out


def mask_overlay(
    rgb: np.ndarray,
    mask: np.ndarray,
    color: Color = PRED_COLOR,
    alpha: float = 0.4,
    outline_width: int | None = None,
) -> np.ndarray:
    """Tint the pixels of `mask` with `color` (opacity `alpha`) and outline them; uint8 (H, W, 3).

    outline_width: px (default `default_line_width`); 0 draws no outline.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    out = as_rgb_u8(rgb)
    mask = _check_mask(mask, out)
    tinted = (1.0 - alpha) * out[mask] + alpha * np.asarray(color, dtype=np.float64)
    out[mask] = np.round(tinted).astype(np.uint8)
    if outline_width is None:
        outline_width = default_line_width(*out.shape[:2])
    if outline_width > 0:
        out[mask_boundary(mask, outline_width)] = color
    return out


def fit_width(image: np.ndarray, max_width: int, max_height: int | None = None) -> np.ndarray:
    """Downscale an image or (H, W) bool mask to at most `max_width` px wide (and `max_height`
    px high when given), keeping its aspect.

    Images use Lanczos filtering; masks use nearest neighbour so they stay binary. Smaller inputs
    are returned unchanged (a copy). A side never shrinks below 1 px.
    """
    image = np.asarray(image)
    height, width = image.shape[:2]
    scale = min(1.0, max_width / width, 1.0 if max_height is None else max_height / height)
    if scale >= 1.0:
        return image.copy()
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    if image.dtype == np.bool_:
        small = Image.fromarray(image.astype(np.uint8) * 255).resize(size, Image.Resampling.NEAREST)
        return np.asarray(small) > 127
    return np.asarray(Image.fromarray(as_rgb_u8(image)).resize(size, Image.Resampling.LANCZOS))


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)  # Pillow's bundled scalable font (FreeType)
    except (TypeError, OSError, ImportError):
        return ImageFont.load_default()  # old Pillow or no FreeType: the fixed bitmap font


def _segments(title: Title) -> list[tuple[str, Color]]:
    if isinstance(title, str):
        return [(title, TEXT_COLOR)]
    return [(str(text), tuple(color)) for text, color in title]


def _text_length(segments: list[tuple[str, Color]], font, draw: ImageDraw.ImageDraw) -> float:
    return sum(draw.textlength(text, font=font) for text, _ in segments)


def _fitting_size(
    segments: list[tuple[str, Color]], width: int, size: int, draw: ImageDraw.ImageDraw
) -> int:
    """Largest font size from `size` down to 10 px in which the title fits `width` px."""
    for candidate in range(size, 10, -1):
        if _text_length(segments, _font(candidate), draw) <= width:
            return candidate
    return 10


def _truncate(
    segments: list[tuple[str, Color]], width: int, font, draw: ImageDraw.ImageDraw
) -> list[tuple[str, Color]]:
    """The title itself if it fits `width`, else its longest prefix that fits with an ellipsis."""
    if _text_length(segments, font, draw) <= width:
        return segments
    for keep in range(sum(len(text) for text, _ in segments) - 1, -1, -1):
        cut = _first_characters(segments, keep)
        cut.append(("\u2026", cut[-1][1] if cut else TEXT_COLOR))  # an ellipsis
        if _text_length(cut, font, draw) <= width:
            return cut
    return []


def _first_characters(segments: list[tuple[str, Color]], count: int) -> list[tuple[str, Color]]:
    kept = []
    for text, color in segments:
        if count <= 0:
            break
        kept.append((text[:count], color))
        count -= len(text)
    return kept


def side_by_side(
    panels: Sequence[tuple[Title, np.ndarray]],
    gap: int = 6,
    font_size: int | None = None,
) -> np.ndarray:
    """Place images left to right, each under its title; returns one uint8 (H, W, 3) picture.

    panels: (title, image) pairs; a title is a string or (text, colour) segments. Images may differ
    in size (they are top-aligned on a dark background). font_size defaults to a size that suits
    the narrowest panel (14-28 px); all titles share one font, shrunk (down to 10 px) until each
    fits its panel, and a title that still does not fit is cut with an ellipsis.
    """
    if not panels:
        raise ValueError("side_by_side needs at least one panel")
    images = [as_rgb_u8(image) for _, image in panels]
    narrowest = min(image.shape[1] for image in images)
    if font_size is None:
        font_size = int(np.clip(round(narrowest / 24), 14, 28))
    bar = round(font_size * 1.7)  # title strip height, with room for descenders
    height = bar + max(image.shape[0] for image in images)
    width = sum(image.shape[1] for image in images) + gap * (len(images) + 1)
    canvas = Image.new("RGB", (width, height + gap), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    titles = [_segments(title) for title, _ in panels]
    room = [image.shape[1] - 4 for image in images]  # keep text off the panel edges
    # One font for every title (shrunk so that the longest fits, down to 10 px): mixed sizes
    # side by side look like a mistake. Titles still too long are cut with an ellipsis.
    sizes = [_fitting_size(t, w, font_size, draw) for t, w in zip(titles, room, strict=True)]
    font = _font(min(sizes))
    left = gap
    for segments, image, space in zip(titles, images, room, strict=True):
        canvas.paste(Image.fromarray(image), (left, bar))
        segments = _truncate(segments, space, font, draw)
        x = left + max(0.0, (image.shape[1] - _text_length(segments, font, draw)) / 2)
        for text, color in segments:
            draw.text((x, bar / 2), text, fill=color, font=font, anchor="lm")
            x += draw.textlength(text, font=font)
        left += image.shape[1] + gap
    return np.asarray(canvas)


def mask_comparison(
    rgb: np.ndarray,
    gt_mask: np.ndarray | None,
    pred_mask: np.ndarray | None,
    width: int | None = None,
) -> tuple[list[tuple[str, Color]], np.ndarray]:
    """A labelled panel comparing the ground-truth and predicted blur masks over `rgb`.

    Outlines: ground truth in green just outside its mask, prediction in magenta just inside its
    own, so both stay visible where they agree. Returns (title segments, uint8 image), ready for
    `side_by_side`; either mask may be None (left out of the picture and of the legend).
    """
    out = as_rgb_u8(rgb)
    title: list[tuple[str, Color]] = []
    if gt_mask is not None:
        out = mask_outline(out, gt_mask, GT_COLOR, width, side="outer")
        title.append(("true", GT_COLOR))
    if pred_mask is not None:
        out = mask_outline(out, pred_mask, PRED_COLOR, width, side="inner")
        title.extend([(" vs " if title else "", TEXT_COLOR), ("predicted", PRED_COLOR)])
    title.append((" mask" if title else "no mask", TEXT_COLOR))
    return title, out


def most_changed_window(change: np.ndarray, size: int) -> tuple[int, int]:
    """(top, left) of the `size` x `size` window of (H, W) `change` with the largest sum.

    Used to zoom on the region a restoration changed most; ties go to the first window in
    row-major order (the top-left one for an image with no change at all). `size` is clipped
    to the image.
    """
    change = np.asarray(change, dtype=np.float64)
    height, width = change.shape
    rows, cols = min(size, height), min(size, width)
    # Summed-area table: every window sum in O(1), whatever the window size.
    table = np.zeros((height + 1, width + 1))
    table[1:, 1:] = change.cumsum(axis=0).cumsum(axis=1)
    sums = table[rows:, cols:] - table[:-rows, cols:] - table[rows:, :-cols] + table[:-rows, :-cols]
    top, left = np.unravel_index(int(np.argmax(sums)), sums.shape)
    return int(top), int(left)


def _zoom(image: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour enlargement: every pixel becomes a `factor` x `factor` block."""
    return np.repeat(np.repeat(image, factor, axis=0), factor, axis=1)


def _box(image: np.ndarray, top: int, left: int, size: tuple[int, int], color: Color) -> np.ndarray:
    """A copy of uint8 `image` with a frame (2 px where it fits) around a (rows, cols) box."""
    out = image.copy()
    bottom, right = min(top + size[0], out.shape[0]), min(left + size[1], out.shape[1])
    frame = np.zeros(out.shape[:2], dtype=bool)
    frame[top:bottom, left:right] = True
    frame[top + 2 : bottom - 2, left + 2 : right - 2] = False
    out[frame] = color
    return out


#: Pixels of the change map searched for the zoom window; larger images are searched on
#: block sums, so the search costs the same memory whatever the image size.
_CHANGE_SEARCH_PIXELS = 2048 * 2048


def _change_blocks(before: np.ndarray, after: np.ndarray, block: int) -> np.ndarray:
    """Sum over `block` x `block` blocks of |after - before| (all channels), as int64 (h, w).

    Computed a band of rows at a time: a full-size difference of a large image would cost
    several bytes per pixel more than the images themselves.
    """
    height, width = before.shape[:2]
    rows, cols = -(-height // block), -(-width // block)
    sums = np.zeros((rows, cols), dtype=np.int64)
    band = block * max(1, 1024 // block)
    for top in range(0, height, band):
        diff = np.abs(
            after[top : top + band].astype(np.int16) - before[top : top + band].astype(np.int16)
        ).sum(axis=2, dtype=np.int32)
        pad_rows, pad_cols = -diff.shape[0] % block, -width % block
        diff = np.pad(diff, ((0, pad_rows), (0, pad_cols)))
        blocks = diff.reshape(diff.shape[0] // block, block, -1, block).sum(axis=(1, 3))
        sums[top // block : top // block + blocks.shape[0]] = blocks
    return sums


def restoration_comparison(
    original: np.ndarray,
    restored: np.ndarray,
    mask: np.ndarray,
    max_width: int = 512,
) -> np.ndarray:
    """One picture to judge a restoration: input | restored | mask | zoomed input | zoomed restored.

    original, restored: (H, W, 3) images; mask: (H, W) bool, the restored pixels. The zoom is
    the square (a quarter of the shorter side, at least 32 px, at most `max_width`) where the
    restoration changed the image most (`most_changed_window`), framed in the input panel and
    enlarged with nearest neighbour to the height of the full panels. Every panel fits in
    `max_width` x 2 `max_width` px, so the picture's size is bounded whatever the image's
    size or aspect (a 1 x 20000 image once gave a 40039 x 20030 picture).
    """
    before, after = as_rgb_u8(original), as_rgb_u8(restored)
    mask = _check_mask(mask, before)
    height, width = before.shape[:2]
    max_height = 2 * max_width
    side = min(height, width, max(32, min(height, width) // 4), max_width)
    block = max(1, math.ceil(math.sqrt(height * width / _CHANGE_SEARCH_PIXELS)))
    change = _change_blocks(before, after, block)
    top, left = most_changed_window(change, max(1, side // block))
    top, left = min(top * block, height - side), min(left * block, width - side)
    full = [fit_width(image, max_width, max_height) for image in (before, after)]
    small_mask = fit_width(mask, max_width, max_height)
    panel_height, panel_width = full[0].shape[:2]
    # Enlarged to the panels' height, and to at least 64 px for very flat images.
    factor = max(1, min(max(panel_height, 64), max_width) // side)
    zoomed = [
        _zoom(image[top : top + side, left : left + side], factor) for image in (before, after)
    ]
    scale_y, scale_x = panel_height / height, panel_width / width
    box = (max(1, round(side * scale_y)), max(1, round(side * scale_x)))
    framed = _box(full[0], round(top * scale_y), round(left * scale_x), box, PRED_COLOR)
    panels: list[tuple[Title, np.ndarray]] = [
        ("input", framed),
        ("restored", full[1]),
        (f"mask ({100.0 * mask.mean():.1f}% restored)", mask_overlay(full[0], small_mask)),
        (f"input, zoom x{factor}", zoomed[0]),
        (f"restored, zoom x{factor}", zoomed[1]),
    ]
    return side_by_side(panels)
