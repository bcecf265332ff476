"""How well `frame_blur_extent` tells camera-shaken frames from the rest, per threshold.

    python scripts/calibrate_frame_blur.py --frames data/pool-more-realism \
        --frames data/pool-realism --photos data/photos-more --json runs/frame_blur.json

Synth sets (`--frames`): their camera-shake frames are the positives (recall by blur length),
their local frames and every frame's sharp image the negatives. Photo folders (`--photos`):
sharp photos, negatives. Prints, per threshold, the share of each group at or above it; the
model restores a frame whole when its extent reaches `whole_frame_extent`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

BLUR_BINS = ((0.0, 8.0), (8.0, 20.0), (20.0, 40.0), (40.0, float("inf")))
THRESHOLDS = (2.5, 2.75, 3.0, 3.25, 3.5, 3.75, 4.0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", action="append", type=Path, default=[], metavar="DIR")
    parser.add_argument("--photos", action="append", type=Path, default=[], metavar="DIR")
    parser.add_argument("--limit", type=int, help="first N frames of each kind per set")
    parser.add_argument("--json", type=Path, help="also write every extent here")
    args = parser.parse_args()
    if not args.frames and not args.photos:
        parser.error("give at least one --frames or --photos folder")

    import torch

    torch.set_num_threads(1)
    groups: dict[str, list[float]] = {}
    for root in args.frames:
        for group, extent in _frame_extents(root, args.limit):
            groups.setdefault(group, []).append(extent)
    for root in args.photos:
        groups.setdefault("sharp photos", []).extend(_photo_extents(root))
    print(_table(groups))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(groups, indent=1), encoding="utf-8")
    return 0


def _extent(path: Path) -> float:
    import torch

    from m2aenet.imageio import load_image
    from m2aenet.models.frame_blur import frame_blur_extent

    image = torch.from_numpy(load_image(path).rgb).permute(2, 0, 1)[None]
    return float(frame_blur_extent(image))


def _frame_extents(root: Path, limit: int | None):
    meta = json.loads((root / "meta.json").read_text(encoding="utf-8"))
    shaken = [i for i in meta["images"] if i["mode"] == "global"][:limit]
    local = [i for i in meta["images"] if i["mode"] == "local"][:limit]
    for image in shaken:
        low, high = next(b for b in BLUR_BINS if b[0] <= float(image["blur_px"]) < b[1])
        yield f"shaken {low:g}-{high:g} px", _extent(root / "blur" / f"{image['name']}.png")
    for image in local:
        yield "local frames", _extent(root / "blur" / f"{image['name']}.png")
    for image in shaken + local:
        yield "sharp crops", _extent(root / "sharp" / f"{image['name']}.png")


def _photo_extents(root: Path) -> list[float]:
    from m2aenet.imageio import is_image_path

    return [_extent(path) for path in sorted(root.iterdir()) if is_image_path(path)]


def _table(groups: dict[str, list[float]]) -> str:
    names = sorted(groups)
    header = "| extent >= | " + " | ".join(f"{n} ({len(groups[n])})" for n in names) + " |"
    lines = [header, "|---" * (len(names) + 1) + "|"]
    for threshold in THRESHOLDS:
        shares = [sum(v >= threshold for v in groups[n]) / len(groups[n]) for n in names]
        lines.append(f"| {threshold:g} | " + " | ".join(f"{s:.0%}" for s in shares) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
