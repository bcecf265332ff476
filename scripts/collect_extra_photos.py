"""Gather extra training photos from Debian wallpaper packages (two sets, two folders).

    apt-get install gnome-backgrounds plasma-workspace-wallpapers
    python scripts/collect_extra_photos.py --out data/photos-extra
    apt-get install enlightenment-data lxqt-themes
    python scripts/collect_extra_photos.py --set more --out data/photos-more
    m2aenet synth --sources data/photos-extra --out data/pool-extra --count 400 --size 512x512 \
        --split train --blur-length 3-60 --no-motion --seed 20

Why: the train split has 30 photos (mate-backgrounds and scikit-image), and the predictor
scored IoU 0.70 on new frames of them but 0.55 on val photos; more pictures, many of them
smooth renders that look blurred but are not, teach it what sharp looks like. They are
neither val nor test photos. Plasma ships each wallpaper at many sizes: the largest up to
3840 px wide is taken once; GNOME's bitmap backgrounds (not the few-KB placeholders) as they
are. Every picture is written as PNG with its long side at most 1920 px, so synthesis does not
decode 8K files again and again.

The `more` set (session 11) adds the photographs of Enlightenment's and LXQt's wallpapers: the
body's validation gain grew most with more photos (docs/training.md, session 10). Their renders
and logos are left out by name. Enlightenment keeps each background inside an `.edj` archive
as JPEG streams at several sizes; the largest that decodes is taken. The sets stay apart so
that data sets made from `photos-extra` remain reproducible.
"""

from __future__ import annotations

import argparse
import io
import re
from pathlib import Path

from PIL import Image

from m2aenet.recipe.datasets import DEFAULT_PHOTO_SET, PHOTO_SETS

PLASMA = Path("/usr/share/wallpapers")
GNOME = Path("/usr/share/backgrounds/gnome")
SIZE = re.compile(r"^(\d+)x(\d+)$")
MAX_WIDTH = 3840
MIN_BYTES = 100_000  # GNOME's "vnc" placeholders are flat 4-KB files
LONG_SIDE = 1920
ENLIGHTENMENT = Path("/usr/share/enlightenment/data/backgrounds")
LXQT = Path("/usr/share/lxqt/wallpapers")
# Photographs only: the other files of both folders are flat renders, patterns and logos.
ENLIGHTENMENT_PHOTOS = (
    "Bamboo Dunes Foggy-Trees God-Rays Green-Maple Lichen-Branches Mountain Peaks Red-Maple "
    "Sea-of-Lanterns Snow-Trees Spruce-Needles Sunset-Clouds Sunset-Hills White-Flower "
    "Yellow-Flower"
).split()
LXQT_PHOTOS = (
    "Butterfly-Kenneth-Wimer Valendas after-the-rain appleflower beam butterfly cloud drop "
    "flowers fog this-is-not-windows"
).split()
JPEG_START = b"\xff\xd8\xff"


def plasma_pictures() -> dict[str, Path]:
    """One file per Plasma wallpaper: its largest size no wider than MAX_WIDTH."""
    chosen = {}
    for folder in sorted(PLASMA.glob("*/contents/images")):
        sizes = [
            (int(match[1]), path)
            for path in folder.iterdir()
            if path.suffix in (".jpg", ".png")
            and (match := SIZE.match(path.stem))
            and int(match[1]) <= MAX_WIDTH
        ]
        if sizes:
            chosen[f"plasma-{folder.parents[1].name}"] = max(sizes)[1]
    return chosen


def gnome_pictures() -> dict[str, Path]:
    return {
        f"gnome-{path.stem}": path
        for path in sorted(GNOME.glob("*.webp"))
        if path.stat().st_size > MIN_BYTES
    }


def largest_embedded_jpeg(path: Path) -> Image.Image | None:
    """The largest image among the JPEG streams inside an archive file (None if none decodes)."""
    data = path.read_bytes()
    best = None
    start = data.find(JPEG_START)
    while start != -1:
        try:
            image = Image.open(io.BytesIO(data[start:]))
            image.load()
        except OSError:  # a marker inside other data, or a truncated stream
            image = None
        if image and (best is None or image.width * image.height > best.width * best.height):
            best = image
        start = data.find(JPEG_START, start + len(JPEG_START))
    return best


def enlightenment_pictures() -> dict[str, Image.Image]:
    chosen = {}
    for stem in ENLIGHTENMENT_PHOTOS:
        path = ENLIGHTENMENT / f"{stem}.edj"
        if path.exists() and (image := largest_embedded_jpeg(path)) is not None:
            chosen[f"enlightenment-{stem}"] = image
    return chosen


def lxqt_pictures() -> dict[str, Path]:
    return {
        f"lxqt-{path.stem}": path
        for path in sorted(LXQT.iterdir() if LXQT.exists() else [])
        if path.stem in LXQT_PHOTOS and path.suffix in (".jpg", ".png")
    }


def pictures_of(which: str) -> dict[str, Path | Image.Image]:
    if which == DEFAULT_PHOTO_SET:
        return {**plasma_pictures(), **gnome_pictures()}
    return {**enlightenment_pictures(), **lxqt_pictures()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument(
        "--set",
        choices=sorted(PHOTO_SETS),
        default=DEFAULT_PHOTO_SET,
        dest="which",
        help="extra: GNOME and Plasma (default); more: Enlightenment and LXQt",
    )
    args = parser.parse_args()
    pictures = pictures_of(args.which)
    if not pictures:
        raise SystemExit(
            f"no pictures found; install first: apt-get install {PHOTO_SETS[args.which][1]}"
        )
    args.out.mkdir(parents=True, exist_ok=True)
    for name, source in pictures.items():
        image = source if isinstance(source, Image.Image) else Image.open(source)
        image = image.convert("RGB")
        image.thumbnail((LONG_SIDE, LONG_SIDE), Image.LANCZOS)
        image.save(args.out / f"{name}.png")
    print(f"wrote {len(pictures)} pictures to {args.out}")


if __name__ == "__main__":
    main()
