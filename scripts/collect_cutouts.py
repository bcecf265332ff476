"""Gather photographed objects with alpha (animals, vehicles, people, tools) as cut-outs.

    bash scripts/apt_install.sh "cut-outs" tuxpaint-stamps-default
    python scripts/collect_cutouts.py --out data/cutouts
    m2aenet synth --realism --realism-set cutout=0.4 --realism-set cutouts=data/cutouts ...

Tux Paint's stamps are RGBA pictures of things; about half are photographs freed from their
background (a bear, a fire truck, a fireman, a guitar), the rest drawings. Drawings are left
out: those under a `cartoon` folder, and those whose opaque part is flat (at least
FLAT_LIMIT of its neighbouring pixel pairs differ by less than 2 levels; photographs have
texture and noise everywhere: 0-13% in a hand-checked sample, drawings 39-91%). Stamps with
less than MIN_OPAQUE opaque pixels are too small to carry motion. Each kept stamp is written
as `CATEGORY_..._NAME.png`, cropped to its opaque part. No val, test or devset picture comes
from this package.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

STAMPS = Path("/usr/share/tuxpaint/stamps")
FLAT_LIMIT = 0.15
MIN_OPAQUE = 5000
MIN_SIDE = 96


def flat_share(rgba: np.ndarray) -> float:
    """Share of neighbouring opaque pixel pairs whose colours differ by < 2 levels."""
    opaque = rgba[..., 3] > 200
    colour = rgba[..., :3].astype(np.int16)
    down = np.abs(np.diff(colour, axis=0))[:, :-1].max(axis=-1)
    right = np.abs(np.diff(colour, axis=1))[:-1].max(axis=-1)
    inner = opaque[:-1, :-1] & opaque[1:, :-1] & opaque[:-1, 1:]
    if not inner.any():
        return 1.0
    return float((np.maximum(down, right)[inner] < 2).mean())


def photographed(path: Path) -> np.ndarray | None:
    """The stamp as RGBA uint8 cropped to its opaque part, or None if it is not a
    photographed object of useful size."""
    if "cartoon" in path.parts:
        return None
    with Image.open(path) as image:
        if image.mode != "RGBA" or min(image.size) < MIN_SIDE:
            return None
        rgba = np.asarray(image)
    if int((rgba[..., 3] > 200).sum()) < MIN_OPAQUE or flat_share(rgba) >= FLAT_LIMIT:
        return None
    ys, xs = np.nonzero(rgba[..., 3] > 5)
    return rgba[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--stamps", type=Path, default=STAMPS)
    args = parser.parse_args()
    if not args.stamps.is_dir():
        raise SystemExit(
            f"error: {args.stamps} not found; run: bash scripts/apt_install.sh cut-outs "
            "tuxpaint-stamps-default"
        )
    args.out.mkdir(parents=True, exist_ok=True)
    kept = 0
    for path in sorted(args.stamps.rglob("*.png")):
        rgba = photographed(path)
        if rgba is None:
            continue
        name = "_".join(path.relative_to(args.stamps).with_suffix("").parts) + ".png"
        Image.fromarray(rgba, mode="RGBA").save(args.out / name)
        kept += 1
    print(f"wrote {kept} cut-outs to {args.out}")


if __name__ == "__main__":
    main()
