"""Contact sheets of synthetic sets: one row per image, (blur | sharp | mask over blur)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from m2aenet.data.synth_writer import image_records, list_samples
from m2aenet.imageio import read_mask, read_rgb, to_uint8, write_png

COLUMNS = ("blur", "sharp", "mask on blur")
_HEADER = 18  # px of the column-title strip
_GAP = 4  # px between tiles


def mask_overlay(image: np.ndarray, mask: np.ndarray, strength: float = 0.45) -> np.ndarray:
    """Tint the masked pixels of a uint8 (H, W, 3) image red and outline the mask in yellow."""
    tinted = image.astype(np.float32)
    red = np.array([255.0, 32.0, 32.0])
    tinted[mask] = tinted[mask] * (1.0 - strength) + red * strength
    inner = mask.copy()  # a 4-neighbour erosion: the outline is mask minus its interior
    inner[1:, :] &= mask[:-1, :]
    inner[:-1, :] &= mask[1:, :]
    inner[:, 1:] &= mask[:, :-1]
    inner[:, :-1] &= mask[:, 1:]
    tinted[mask & ~inner] = (255.0, 230.0, 0.0)
    return tinted.astype(np.uint8)


def _fit(image: np.ndarray, tile: int) -> np.ndarray:
    """Resize a uint8 image so its longer side is `tile` px (Lanczos)."""
    height, width = image.shape[:2]
    factor = tile / max(height, width)
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    return np.asarray(Image.fromarray(image).resize(size, Image.Resampling.LANCZOS))


def contact_sheet(
    rows: Sequence[tuple[str, np.ndarray, np.ndarray, np.ndarray]], tile: int = 256
) -> np.ndarray:
    """A uint8 (H, W, 3) sheet; each row is (label, blur, sharp, mask) with uint8 (h, w, 3)
    images and a bool (h, w) mask, shown as blur | sharp | mask over blur, `tile` px wide."""
    if not rows:
        raise ValueError("contact_sheet needs at least one row")
    tiles = []
    for label, blur, sharp, mask in rows:
        small_blur = _fit(blur, tile)
        overlay = mask_overlay(small_blur, _fit(mask.astype(np.uint8) * 255, tile) > 127)
        tiles.append((label, [small_blur, _fit(sharp, tile), overlay]))
    row_h = max(t[1][0].shape[0] for t in tiles)
    width = 3 * tile + 4 * _GAP
    height = _HEADER + len(tiles) * (row_h + _GAP) + _GAP
    sheet = Image.new("RGB", (width, height), (24, 24, 24))
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default()
    for column, title in enumerate(COLUMNS):
        draw.text((_GAP + column * (tile + _GAP) + 4, 3), title, fill=(230, 230, 230), font=font)
    for row, (label, images) in enumerate(tiles):
        top = _HEADER + row * (row_h + _GAP)
        for column, image in enumerate(images):
            sheet.paste(Image.fromarray(image), (_GAP + column * (tile + _GAP), top))
        box = draw.textbbox((_GAP + 4, top + 3), label, font=font)
        draw.rectangle((box[0] - 2, box[1] - 2, box[2] + 2, box[3] + 2), fill=(0, 0, 0))
        draw.text((_GAP + 4, top + 3), label, fill=(255, 255, 255), font=font)
    return np.asarray(sheet)


def _describe(params: dict | None) -> str:
    """Short label text: mode, blur lengths and mask coverage from an image's meta entry."""
    if not params:
        return ""
    if params.get("mode") == "global":
        return f"global  shake {params.get('blur_px', 0):.0f}px"
    objects = params.get("objects", [])
    lengths = "/".join(f"{o.get('blur_px', 0):.0f}" for o in objects)
    kinds = ",".join(_object_label(o) for o in objects)
    return f"local {kinds} {lengths}px  mask {100 * params.get('mask_fraction', 0):.0f}%"


def _object_label(described: dict) -> str:
    """'line' for a default-engine object; 'segm*:line' (shape, * = cut from the background
    photo itself, then motion) for a realistic one."""
    motion = described.get("motion", {}).get("kind", "?")[:4]
    if "shape" not in described:
        return motion
    return f"{described['shape'][:4]}{'*' if described.get('same_photo') else ''}:{motion}"


def load_preview_rows(root: str | os.PathLike, limit: int = 6) -> list[tuple]:
    """The first `limit` pairs of a synthetic set as rows (label, blur, sharp, mask)."""
    root = Path(root)
    params = image_records(root)
    rows = []
    for name in list_samples(root)[:limit]:
        blur = to_uint8(read_rgb(root / "blur" / f"{name}.png"))
        sharp = to_uint8(read_rgb(root / "sharp" / f"{name}.png"))
        mask_path = root / "mask" / f"{name}.png"
        mask = read_mask(mask_path) > 0.5 if mask_path.is_file() else np.ones(blur.shape[:2], bool)
        rows.append((f"{name}  {_describe(params.get(name))}".strip(), blur, sharp, mask))
    return rows


def write_preview(
    out_file: str | os.PathLike,
    roots: str | os.PathLike | Sequence[str | os.PathLike],
    rows_per_set: int = 6,
    tile: int = 256,
) -> Path:
    """Write a PNG contact sheet of the first `rows_per_set` images of each synthetic set."""
    if isinstance(roots, str | os.PathLike):
        roots = [roots]
    rows = [row for root in roots for row in load_preview_rows(root, rows_per_set)]
    out_file = Path(out_file)
    write_png(out_file, contact_sheet(rows, tile))
    return out_file
