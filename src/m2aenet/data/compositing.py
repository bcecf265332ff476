"""Linear-light rendering of moving layers over a static background, and their exposure average.

A camera integrates light: a motion-blurred pixel is the time average of the scene's linear
radiance over the exposure. We render S sub-frames of the moving layers (premultiplied RGBA in
linear light, warped with bilinear `grid_sample`), composite them over the background, average
them, and only then go back to sRGB. Tensors are float32 torch; images are (C, H, W).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from m2aenet.data.motion_paths import Motion, box_corners, exposure_times, point_positions

# Sub-frames rendered at once are capped so the working set (sampled RGBA, composite, grid:
# about 12 floats per pixel and sub-frame) stays around 64 MB at any image size.
_CHUNK_VALUES = 16_000_000


def srgb_to_linear(srgb: torch.Tensor) -> torch.Tensor:
    """The exact IEC 61966-2-1 sRGB decoding curve: [0, 1] sRGB values -> linear light."""
    srgb = srgb.clamp(0.0, 1.0)
    return torch.where(srgb <= 0.04045, srgb / 12.92, ((srgb + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(linear: torch.Tensor) -> torch.Tensor:
    """The exact sRGB encoding curve: linear light in [0, 1] -> sRGB values in [0, 1]."""
    linear = linear.clamp(0.0, 1.0)
    return torch.where(
        linear <= 0.0031308, linear * 12.92, 1.055 * linear.clamp_min(1e-12) ** (1 / 2.4) - 0.055
    )


_UINT8_TO_LINEAR = srgb_to_linear(torch.arange(256, dtype=torch.float32) / 255.0)


def image_to_linear(image: np.ndarray) -> torch.Tensor:
    """sRGB image (H, W, 3), uint8 or float in [0, 1] -> linear light (3, H, W) float32.

    uint8 goes through a 256-entry table (exact, and ~20x faster than the power law).
    """
    if image.dtype == np.uint8:
        return _UINT8_TO_LINEAR[torch.from_numpy(np.ascontiguousarray(image)).long()].permute(
            2, 0, 1
        )
    array = np.ascontiguousarray(image, dtype=np.float32)
    return srgb_to_linear(torch.from_numpy(array)).permute(2, 0, 1)


@dataclass
class Layer:
    """A moving sprite: premultiplied linear RGBA `rgba` (4, h, w) whose top-left pixel sits at
    frame pixel (`left`, `top`) at t = 0, moving about its centre with `motion`."""

    rgba: torch.Tensor
    top: int
    left: int
    motion: Motion

    @property
    def centre(self) -> np.ndarray:
        """(x, y) frame position of the sprite centre at t = 0 (pixel centres are integers)."""
        h, w = self.rgba.shape[-2:]
        return np.array([self.left + (w - 1) / 2.0, self.top + (h - 1) / 2.0])

    def swept_box(self, times: np.ndarray, height: int, width: int) -> tuple[int, int, int, int]:
        """(y0, y1, x0, x1) frame box (clipped) holding the sprite at every time; may be empty."""
        h, w = self.rgba.shape[-2:]
        corners = point_positions(self.motion, box_corners(w + 1, h + 1), times).reshape(-1, 2)
        corners = corners + self.centre
        x0, y0 = np.floor(corners.min(axis=0)).astype(int) - 1
        x1, y1 = np.ceil(corners.max(axis=0)).astype(int) + 2
        return max(y0, 0), min(y1, height), max(x0, 0), min(x1, width)

    def source_map(self, times: np.ndarray) -> np.ndarray:
        """Affine maps (n, 3, 2): frame pixel [x, y, 1] at each time @ map = where that content
        was at t = 0 (frame coordinates x0, y0), i.e. p0 = c + A^-1 (p - c - d)."""
        matrix, d = self.motion.transform(times)
        inverse = np.linalg.inv(matrix)  # (n, 2, 2)
        centre = self.centre
        shift = centre - np.einsum("nij,nj->ni", inverse, centre + d)  # (n, 2)
        return np.concatenate([inverse.transpose(0, 2, 1), shift[:, None, :]], axis=1)

    def sample(self, times: np.ndarray, box: tuple[int, int, int, int], alpha_only: bool = False):
        """Bilinear samples of the moved sprite over frame `box` at `times` -> (n, 4 or 1, bh, bw).

        Outside the sprite the result is 0 (transparent).
        """
        h, w = self.rgba.shape[-2:]
        # Frame coordinates -> grid_sample's [-1, 1] sprite coordinates (align_corners=True).
        scale = np.array([2.0 / max(w - 1, 1), 2.0 / max(h - 1, 1)])
        maps = self.source_map(times) * scale  # scales both columns (x and y) of each map
        maps[:, 2] -= np.array([self.left, self.top]) * scale + 1.0
        grid = apply_maps(maps, box)
        source = self.rgba[3:] if alpha_only else self.rgba
        source = source[None].expand(len(times), -1, -1, -1)
        return F.grid_sample(
            source, grid, mode="bilinear", padding_mode="zeros", align_corners=True
        )


def apply_maps(maps: np.ndarray, box: tuple[int, int, int, int]) -> torch.Tensor:
    """Evaluate affine maps (n, 3, 2) at every pixel [x, y, 1] of `box` -> (n, bh, bw, 2)."""
    y0, y1, x0, x1 = box
    ys = torch.arange(y0, y1, dtype=torch.float32)
    xs = torch.arange(x0, x1, dtype=torch.float32)
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    pixels = torch.stack([grid_x, grid_y, torch.ones_like(grid_x)], dim=-1).reshape(-1, 3)
    points = pixels @ torch.from_numpy(maps).float()  # float32 keeps ~1e-3 px up to 8k px
    return points.reshape(len(maps), y1 - y0, x1 - x0, 2)


Box = tuple[int, int, int, int]  # (y0, y1, x0, x1), end-exclusive frame rows and columns


def composite_at_rest(
    background: torch.Tensor, layers: list[Layer]
) -> tuple[torch.Tensor, torch.Tensor, list[Box]]:
    """The t = 0 frame: layers pasted unwarped (exact sprite pixels) over the background.

    background: linear (3, H, W). Returns the linear frame (3, H, W), the layers' coverage
    (H, W) and the boxes where the frame may differ from the background.
    """
    frame = background.clone()
    coverage = torch.zeros(background.shape[-2:])
    height, width = background.shape[-2:]
    boxes = []
    for layer in layers:
        h, w = layer.rgba.shape[-2:]
        y0, y1 = max(layer.top, 0), min(layer.top + h, height)
        x0, x1 = max(layer.left, 0), min(layer.left + w, width)
        if y0 >= y1 or x0 >= x1:
            continue
        sprite = layer.rgba[:, y0 - layer.top : y1 - layer.top, x0 - layer.left : x1 - layer.left]
        alpha = sprite[3:]
        frame[:, y0:y1, x0:x1] = frame[:, y0:y1, x0:x1] * (1.0 - alpha) + sprite[:3]
        coverage[y0:y1, x0:x1] = 1.0 - (1.0 - coverage[y0:y1, x0:x1]) * (1.0 - alpha[0])
        boxes.append((y0, y1, x0, x1))
    return frame, coverage, boxes


def _overlap_groups(boxes: list[Box]) -> list[list[int]]:
    """Indices of boxes grouped so that boxes in different groups never overlap."""
    groups: list[list[int]] = []
    for index in range(len(boxes)):
        touching = [g for g in groups if any(_overlaps(boxes[index], boxes[j]) for j in g)]
        merged = [index] + [j for g in touching for j in g]
        groups = [g for g in groups if g not in touching] + [sorted(merged)]
    return groups


def _overlaps(a: Box, b: Box) -> bool:
    return a[0] < b[1] and b[0] < a[1] and a[2] < b[3] and b[2] < a[3]


def _union_box(boxes: list[Box]) -> Box:
    return (
        min(b[0] for b in boxes),
        max(b[1] for b in boxes),
        min(b[2] for b in boxes),
        max(b[3] for b in boxes),
    )


def _is_empty(box: Box) -> bool:
    return box[0] >= box[1] or box[2] >= box[3]


def average_exposure(
    background: torch.Tensor, layers: list[Layer], sub_frames: list[int]
) -> tuple[torch.Tensor, torch.Tensor, list[Box]]:
    """Average of the moving scene over the exposure, in linear light.

    background: linear (3, H, W), static. layers: bottom to top. sub_frames: per layer, how many
    evenly spaced sub-frames its motion needs (layers whose swept boxes overlap are rendered
    together with the largest count, so their occlusion order is right at every instant).
    Returns the blurred linear frame (3, H, W), the swept coverage (H, W) (the largest alpha
    the layers reach at each pixel over the sub-frames) and the boxes that may have changed.
    """
    height, width = background.shape[-2:]
    blurred = background.clone()
    swept = torch.zeros(height, width)
    probe = np.linspace(-0.5, 0.5, 65)
    boxes = [layer.swept_box(probe, height, width) for layer in layers]
    changed = []
    for group in _overlap_groups(boxes):
        members = [i for i in group if not _is_empty(boxes[i])]
        if not members:
            continue
        y0, y1, x0, x1 = box = _union_box([boxes[i] for i in members])
        count = max(sub_frames[i] for i in members)
        times = exposure_times(count)
        chunk = max(1, min(count, _CHUNK_VALUES // (12 * (y1 - y0) * (x1 - x0))))
        base = background[:, y0:y1, x0:x1]
        if len(members) == 1:
            # One layer over a static background: the average of bg (1 - a_t) + rgb_t is
            # bg (1 - mean a) + mean rgb, so only the layer's samples need summing.
            total = torch.zeros(4, y1 - y0, x1 - x0)
            peak = torch.zeros(y1 - y0, x1 - x0)
            for start in range(0, count, chunk):
                rgba = layers[members[0]].sample(times[start : start + chunk], box)
                total += rgba.sum(dim=0)
                peak = torch.maximum(peak, rgba[:, 3].amax(dim=0))
            mean = total / count
            blurred[:, y0:y1, x0:x1] = base * (1.0 - mean[3:]) + mean[:3]
        else:
            total = torch.zeros(3, y1 - y0, x1 - x0)
            peak = torch.zeros(y1 - y0, x1 - x0)
            for start in range(0, count, chunk):
                chunk_times = times[start : start + chunk]
                frames = base[None].expand(len(chunk_times), -1, -1, -1)
                clear = torch.ones(len(chunk_times), 1, y1 - y0, x1 - x0)  # product of 1 - a
                for index in members:
                    rgba = layers[index].sample(chunk_times, box)
                    alpha = rgba[:, 3:]
                    frames = frames * (1.0 - alpha) + rgba[:, :3]
                    clear = clear * (1.0 - alpha)
                total += frames.sum(dim=0)
                peak = torch.maximum(peak, (1.0 - clear).amax(dim=(0, 1)))
            blurred[:, y0:y1, x0:x1] = total / count
        swept[y0:y1, x0:x1] = torch.maximum(swept[y0:y1, x0:x1], peak)
        changed.append(box)
    return blurred, swept, changed


def motion_field(
    layers: list[Layer], height: int, width: int, times: np.ndarray, cover: float = 0.5
) -> np.ndarray:
    """Per-pixel motion ground truth (H, W, K, 2) float32 for the K `times`.

    motion[y, x, k] = (dx, dy) such that the content seen at pixel (x, y) at time t_k is the
    content of the sharp (t = 0) frame at (x + dx, y + dy). The content at a pixel is the
    top-most layer whose alpha there is >= `cover` at that time; where no layer covers the
    pixel it is the static background and the motion is 0.
    """
    motion = torch.zeros(height, width, len(times), 2)
    probe = np.linspace(-0.5, 0.5, 65)
    for layer in layers:  # bottom to top: later layers overwrite
        box = layer.swept_box(probe, height, width)
        if _is_empty(box):
            continue
        y0, y1, x0, x1 = box
        alpha = layer.sample(times, box, alpha_only=True)[:, 0]  # (K, bh, bw)
        maps = layer.source_map(times)
        maps[:, 0, 0] -= 1.0  # p0 - p: subtract the identity
        maps[:, 1, 1] -= 1.0
        offsets = apply_maps(maps, box).permute(1, 2, 0, 3)  # (bh, bw, K, 2)
        covered = (alpha >= cover).permute(1, 2, 0)[..., None]  # (bh, bw, K, 1)
        motion[y0:y1, x0:x1] = torch.where(covered, offsets, motion[y0:y1, x0:x1])
    return motion.numpy()
