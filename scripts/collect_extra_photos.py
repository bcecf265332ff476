"""Gather the extra training pictures of the mask predictor from two Debian wallpaper packages.

    apt-get install gnome-backgrounds plasma-workspace-wallpapers
    python scripts/collect_extra_photos.py --out data/photos-extra
    m2aenet synth --sources data/photos-extra --out data/pool-extra --count 400 --size 512x512 \
        --split train --blur-length 3-60 --no-motion --seed 20

Why: the train split has 30 photos (mate-backgrounds and scikit-image), and the predictor
scored IoU 0.70 on new frames of them but 0.55 on val photos; more pictures, many of them
smooth renders that look blurred but are not, teach it what sharp looks like. They are
neither val nor test photos. Plasma ships each wallpaper at many sizes: the largest up to
3840 px wide is taken once; GNOME's bitmap backgrounds (not the few-KB placeholders) as they
are. Every picture is written as PNG with its long side at most 1920 px, so synthesis does not
decode 8K files again and again.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from PIL import Image

PLASMA = Path("/usr/share/wallpapers")
GNOME = Path("/usr/share/backgrounds/gnome")
SIZE = re.compile(r"^(\d+)x(\d+)$")
MAX_WIDTH = 3840
MIN_BYTES = 100_000  # GNOME's "vnc" placeholders are flat 4-KB files
LONG_SIDE = 1920


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    pictures = {**plasma_pictures(), **gnome_pictures()}
    if not pictures:
        raise SystemExit(f"no pictures under {PLASMA} or {GNOME}; install the packages first")
    args.out.mkdir(parents=True, exist_ok=True)
    for name, path in pictures.items():
        image = Image.open(path).convert("RGB")
        image.thumbnail((LONG_SIDE, LONG_SIDE), Image.LANCZOS)
        image.save(args.out / f"{name}.png")
    print(f"wrote {len(pictures)} pictures to {args.out}")


if __name__ == "__main__":
    main()
