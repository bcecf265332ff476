"""Object shapes from real photo structure: merged image segments, straight edges, thin parts.

Real moving things (cars, people, hands, balls) have outlines that follow their own texture,
corners and straight edges, and thin parts. The shapes here are cut from the photo crop that
also gives the object its texture: the crop is over-segmented (Felzenszwalb's graph method,
scikit-image), neighbouring segments are merged from a seed segment until an object-sized
region is reached, and the region may be cut by or joined with a polygon (straight edges,
corners) and get a thin limb. Hard masks are bool (h, w); alphas float32 (h, w) in [0, 1].
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from m2aenet.data.synth_shapes import object_alpha

_SEGMENT_SIDE = 128  # segmentation runs at this longer side (fast; object outlines survive)


def feathered_alpha(hard: np.ndarray, feather: float) -> np.ndarray:
    """A hard mask (h, w) -> alpha with an edge softened by a Gaussian of `feather` px.

    The box border is cleared first (3 feather widths + 1 px), so a warped sprite never shows
    a hard edge; the Gaussian's far tail is dropped so the border stays exactly 0.
    """
    margin = math.ceil(3.0 * feather) + 1
    inner = np.zeros(hard.shape, dtype=np.float32)
    inner[margin:-margin, margin:-margin] = hard[margin:-margin, margin:-margin]
    alpha = ndimage.gaussian_filter(inner, sigma=feather, mode="constant", truncate=3.0)
    alpha[alpha < 1e-3] = 0.0
    return np.clip(alpha, 0.0, 1.0).astype(np.float32)


def _resize_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bool mask -> bool mask of `size` (h, w), bilinear then thresholded (smooth outlines)."""
    tensor = torch.from_numpy(mask.astype(np.float32))[None, None]
    resized = F.interpolate(tensor, size=size, mode="bilinear", align_corners=False)
    return resized[0, 0].numpy() >= 0.5


def _largest_piece(mask: np.ndarray) -> np.ndarray:
    """The largest 8-connected piece of `mask`, holes filled."""
    labels, count = ndimage.label(mask, structure=np.ones((3, 3)))
    if count > 1:
        sizes = np.bincount(labels.ravel())[1:]
        mask = labels == 1 + int(np.argmax(sizes))
    return ndimage.binary_fill_holes(mask)


def segment_region(
    crop: np.ndarray, rng: np.random.Generator, fill: tuple[float, float] = (0.3, 0.7)
) -> np.ndarray:
    """An object-sized region of photo `crop` (h, w, 3) uint8 made of whole segments: bool (h, w).

    Segments (Felzenszwalb, random scale) are merged, starting from the one under a random
    point near the centre and adding neighbours (more likely the longer their shared border),
    until the region covers a random share of the crop drawn from `fill`; kept to its largest
    piece with holes filled. A region that fills the crop (one flat segment) is cut to a blob.
    """
    from skimage.segmentation import felzenszwalb  # heavy import, only for this engine

    height, width = crop.shape[:2]
    factor = min(1.0, _SEGMENT_SIDE / max(height, width))
    small_size = (max(8, round(height * factor)), max(8, round(width * factor)))
    small = crop
    if small_size != (height, width):
        tensor = torch.from_numpy(crop).permute(2, 0, 1)[None].float()
        small = F.interpolate(tensor, size=small_size, mode="area")[0].permute(1, 2, 0).numpy()
        small = small.astype(np.uint8)
    labels = felzenszwalb(
        small, scale=float(rng.uniform(50, 400)), sigma=0.8, min_size=max(8, small.size // 3 // 400)
    )
    target = rng.uniform(*fill) * labels.size
    sy = int(rng.integers(small_size[0] // 4, max(small_size[0] * 3 // 4, small_size[0] // 4 + 1)))
    sx = int(rng.integers(small_size[1] // 4, max(small_size[1] * 3 // 4, small_size[1] // 4 + 1)))
    region = labels == labels[sy, sx]
    edge_labels = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    for _ in range(200):
        if region.sum() >= target:
            break
        ring = ndimage.binary_dilation(region) & ~region
        neighbours, border = np.unique(labels[ring], return_counts=True)
        if len(neighbours) == 0:
            break
        # Segments cut by the box edge would give the object the crop's straight border: take
        # them only when nothing else touches the region, and then only while the region is
        # still under half its size (or rarely after that).
        inside = ~np.isin(neighbours, edge_labels)
        if inside.any():
            neighbours, border = neighbours[inside], border[inside]
        elif region.sum() >= 0.5 * target and rng.random() < 0.7:
            break
        choice = neighbours[int(rng.choice(len(neighbours), p=border / border.sum()))]
        region |= labels == choice
    region = _largest_piece(region)
    if region.mean() > min(0.9, 1.5 * fill[1]):
        # One segment filled the crop (sky, a wall): its outline would be the box itself.
        # Give it the outline of a blob instead, as the default engine would.
        region &= object_alpha(*small_size, rng, feather=1.0) >= 0.5
    return _resize_mask(region, (height, width)) if small_size != (height, width) else region


def polygon_mask(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """A random polygon filling much of a (h, w) box: a rotated rectangle or a convex 3-8-gon."""
    from skimage.draw import polygon

    cy, cx = (height - 1) / 2.0, (width - 1) / 2.0
    if rng.random() < 0.5:  # rectangle: the straight sides and right angles of made things
        half_h, half_w = rng.uniform(0.25, 0.48) * height, rng.uniform(0.25, 0.48) * width
        angle = rng.uniform(-0.35, 0.35)
        corners = np.array(
            [[-half_w, -half_h], [half_w, -half_h], [half_w, half_h], [-half_w, half_h]]
        )
    else:
        sides = int(rng.integers(3, 9))
        angles = np.sort(rng.uniform(0.0, 2.0 * math.pi, sides))
        radius = rng.uniform(0.3, 0.48, sides)[:, None]
        corners = np.stack([np.cos(angles), np.sin(angles)], -1) * radius * [width, height]
        angle = 0.0
    rotation = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    points = corners @ rotation.T + [cx, cy]
    mask = np.zeros((height, width), dtype=bool)
    rows, cols = polygon(points[:, 1], points[:, 0], shape=(height, width))
    mask[rows, cols] = True
    return mask


def with_straight_edges(
    region: np.ndarray, rng: np.random.Generator, min_pixels: int = 16
) -> np.ndarray:
    """`region` cut by a random polygon (straight edges inside real texture) or joined with one
    (a boxy body with a segment's outline); falls back to the union if the cut leaves too little."""
    shape = polygon_mask(*region.shape, rng)
    if rng.random() < 0.5:
        cut = region & shape
        if cut.sum() >= max(min_pixels, 0.3 * region.sum()):
            return _largest_piece(cut)
    return _largest_piece(region | shape)


def thin_part(
    region: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, tuple[float, float]]:
    """A thin limb attached to `region`: (bool mask (h, w) of the limb, joint (x, y) in px).

    The joint is a random pixel on the region's edge; the limb is a bar 3-10% of the box side wide,
    25-60% long, pointing away from the region's centre (so most of it sticks out), clipped to
    the box.
    """
    from skimage.draw import polygon

    height, width = region.shape
    ys, xs = np.nonzero(region & ~ndimage.binary_erosion(region))
    if len(xs) == 0:
        ys, xs = np.array([height // 2]), np.array([width // 2])
    pick = int(rng.integers(len(xs)))
    joint = np.array([xs[pick], ys[pick]], dtype=np.float64)
    centre = np.array([xs.mean(), ys.mean()])
    outward = joint - centre
    base_angle = (
        math.atan2(outward[1], outward[0]) if np.hypot(*outward) > 1 else rng.uniform(0, 6.3)
    )
    angle = base_angle + rng.uniform(-0.6, 0.6)
    side = min(height, width)
    length = rng.uniform(0.25, 0.6) * side
    half = max(1.0, rng.uniform(0.015, 0.05) * side)
    direction = np.array([math.cos(angle), math.sin(angle)])
    normal = np.array([-direction[1], direction[0]])
    start = joint - direction * half  # overlap the body a little at the joint
    end = joint + direction * length
    corners = np.stack(
        [start + normal * half, end + normal * half, end - normal * half, start - normal * half]
    )
    limb = np.zeros((height, width), dtype=bool)
    rows, cols = polygon(corners[:, 1], corners[:, 0], shape=(height, width))
    limb[rows, cols] = True
    return limb, (float(joint[0]), float(joint[1]))


def fill_behind(image: np.ndarray, hole: np.ndarray, top: int, left: int) -> np.ndarray:
    """`image` (H, W, 3) uint8 with the `hole` (h, w) bool at (top, left) filled plausibly.

    What a moving object uncovers must look like background: the box around the hole is
    downscaled to at most 48 px, filled by biharmonic inpainting (smooth continuation of the
    surrounding colours; scikit-image), upscaled back and pasted into the hole only.
    """
    from skimage.restoration import inpaint_biharmonic

    height, width = image.shape[:2]
    h, w = hole.shape
    pad = max(4, max(h, w) // 8)
    y0, y1 = max(top - pad, 0), min(top + h + pad, height)
    x0, x1 = max(left - pad, 0), min(left + w + pad, width)
    full = np.zeros((height, width), dtype=bool)
    iy0, ix0 = max(top, 0), max(left, 0)
    iy1, ix1 = min(top + h, height), min(left + w, width)
    if iy0 >= iy1 or ix0 >= ix1:
        return image.copy()
    full[iy0:iy1, ix0:ix1] = hole[iy0 - top : iy1 - top, ix0 - left : ix1 - left]
    full = ndimage.binary_dilation(full, iterations=2)
    window_hole = full[y0:y1, x0:x1]
    if window_hole.all() or not window_hole.any():
        return image.copy()
    factor = min(1.0, 48.0 / max(y1 - y0, x1 - x0))
    small_size = (max(4, round((y1 - y0) * factor)), max(4, round((x1 - x0) * factor)))
    window = torch.from_numpy(image[y0:y1, x0:x1]).permute(2, 0, 1)[None].float() / 255.0
    small = F.interpolate(window, size=small_size, mode="area")[0].permute(1, 2, 0).numpy()
    small_hole = _resize_mask(window_hole, small_size)
    small_hole = ndimage.binary_dilation(small_hole) if small_hole.any() else small_hole
    if small_hole.all():
        filled_small = np.broadcast_to(small.reshape(-1, 3).mean(0), small.shape)
    else:
        filled_small = inpaint_biharmonic(small, small_hole, channel_axis=-1)
    tensor = torch.from_numpy(np.ascontiguousarray(filled_small, dtype=np.float32))
    filled = F.interpolate(
        tensor.permute(2, 0, 1)[None], size=(y1 - y0, x1 - x0), mode="bilinear", align_corners=False
    )[0].permute(1, 2, 0)
    out = image.copy()
    values = np.clip(np.round(filled.numpy() * 255.0), 0, 255).astype(np.uint8)
    out[y0:y1, x0:x1][window_hole] = values[window_hole]
    return out
