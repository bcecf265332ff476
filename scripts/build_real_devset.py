"""Build devset/real/ (run once; the result is committed and kept fixed).

Sources (offline, see devset/real/README.md):
- scikit-image's bundled `clock_motion.png` (a real motion-blurred photo of a clock);
- Debian's `opencv-doc` examples (`apt-get download opencv-doc` and `dpkg-deb -x` it; pass the
  `.../examples/data` folder as --opencv-data): two real camera-shake photos, sharp photos, and
  `vtest.avi`, a static camera filming people walking, whose consecutive frames are averaged in
  linear light into real local motion blur (the way GoPro-style sets are made);
- decoding `vtest.avi` needs PyAV (`pip install --target DIR av`; put DIR on PYTHONPATH).

The blurred regions of the video averages are where the averaged frames differ from each other
(the pixels the motion changed), traced as polygons; the clock's polygon is drawn by hand; the
camera-shake photos are blurred everywhere. All regions go to regions.json, which
`scripts/score_real_devset.py` rasterizes.

    PYTHONPATH=src:/tmp/av python scripts/build_real_devset.py --opencv-data DIR --out devset/real
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

# The clock moves left-right; its blurred outline, drawn by hand on a 50-px grid (x, y).
CLOCK_POLYGON = [
    [203, 92], [238, 96], [260, 108], [274, 130], [279, 158], [274, 186], [258, 206],
    [232, 217], [200, 220], [170, 214], [150, 199], [139, 172], [138, 142], [147, 116],
    [167, 100],
]  # fmt: skip
# (name, first frame, frames averaged): moments of vtest.avi with several walkers (10 fps).
VIDEO_AVERAGES = (("walkers_a", 50, 4), ("walkers_b", 200, 4), ("walkers_c", 350, 4))
CAMERA_SHAKE = {"licenseplate_motion.jpg": "car_shake", "text_motion.jpg": "text_shake"}
SHARP = {
    "messi5.jpg": "footballer",
    "fruits.jpg": "fruits",
    "home.jpg": "home",
    "building.jpg": "building",
    "butterfly.jpg": "butterfly",
    "squirrel_cls.jpg": "squirrel",
    "board.jpg": "board",
    "box_in_scene.png": "box_in_scene_gray",
}
LONG_SIDE = 640


def _fit(image: Image.Image) -> Image.Image:
    """Downscale (area) so the long side is at most LONG_SIDE px."""
    factor = LONG_SIDE / max(image.size)
    if factor >= 1.0:
        return image
    size = (round(image.width * factor), round(image.height * factor))
    return image.resize(size, Image.Resampling.BOX)


def _save(image: Image.Image, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".jpg":
        image.save(path, quality=92)
    else:
        image.save(path, optimize=True)


def _copy_or_fit(source: Path, stem: Path) -> tuple[int, int]:
    """Copy `source` byte for byte as STEM.suffix when small enough (no JPEG re-encoding),
    else write it downscaled; returns the (width, height) written."""
    with Image.open(source) as image:
        image.load()
    if max(image.size) <= LONG_SIDE:
        target = stem.with_suffix(source.suffix.lower())
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        return image.size
    fitted = _fit(image.convert("L" if image.mode == "L" else "RGB"))
    _save(fitted, stem.with_suffix(".png" if image.mode == "L" else ".jpg"))
    return fitted.size


def _video_frames(path: Path) -> np.ndarray:
    import av  # only this build step needs it

    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


def _moving_polygons(frames: np.ndarray, scale: float) -> list[list[list[int]]]:
    """Polygons (x, y at output scale) around the pixels where `frames` (n, H, W, 3) differ."""
    from skimage.measure import approximate_polygon, find_contours

    luma = ndimage.gaussian_filter(frames.astype(np.float32).mean(-1), sigma=(0, 1.5, 1.5))
    spread = luma.max(axis=0) - luma.min(axis=0)
    moving = ndimage.binary_closing(spread > 18.0, iterations=3)
    moving = ndimage.binary_fill_holes(ndimage.binary_opening(moving, iterations=1))
    labels, count = ndimage.label(moving)
    polygons = []
    for index in range(1, count + 1):
        piece = labels == index
        if piece.sum() < 60:  # sensor noise and flicker, not a walker
            continue
        piece = ndimage.binary_dilation(piece, iterations=2)
        contour = max(find_contours(np.pad(piece, 1).astype(float), 0.5), key=len) - 1
        simple = approximate_polygon(contour, tolerance=1.5)
        polygons.append([[round(x * scale), round(y * scale)] for y, x in simple])
    return polygons


def build(opencv_data: Path, out: Path) -> None:
    import skimage

    regions: dict[str, dict] = {}
    clock = Image.open(Path(skimage.__file__).parent / "data" / "clock_motion.png").convert("RGB")
    _save(clock, out / "blurred" / "clock.png")
    regions["clock"] = {"size": list(clock.size), "polygons": [CLOCK_POLYGON], "whole": False}
    frames = _video_frames(opencv_data / "vtest.avi")
    for name, start, count in VIDEO_AVERAGES:
        window = frames[start : start + count]
        linear = (window.astype(np.float64) / 255.0) ** 2.2  # average light, not sRGB values
        average = Image.fromarray(np.round(linear.mean(0) ** (1 / 2.2) * 255).astype(np.uint8))
        image = _fit(average)
        scale = image.width / average.width
        _save(image, out / "blurred" / f"{name}.png")
        regions[name] = {
            "size": list(image.size),
            "polygons": _moving_polygons(window, scale),
            "whole": False,
            "frames": [start, start + count - 1],
        }
    for source, name in CAMERA_SHAKE.items():
        size = _copy_or_fit(opencv_data / source, out / "blurred" / name)
        regions[name] = {"size": list(size), "polygons": [], "whole": True}
    for source, name in SHARP.items():
        _copy_or_fit(opencv_data / source, out / "sharp" / name)
    text = json.dumps(regions, indent=1)
    (out / "regions.json").write_text(text + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--opencv-data", type=Path, required=True, help="opencv-doc examples/data")
    parser.add_argument("--out", type=Path, default=Path("devset/real"))
    args = parser.parse_args()
    build(args.opencv_data, args.out)


if __name__ == "__main__":
    main()
