"""Writing synthetic sets: DIR/{blur,sharp,mask}/NAME.png, DIR/motion/NAME.npy, DIR/meta.json."""

from __future__ import annotations

import json
import os
import re
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np

from m2aenet.atomic import atomic_path, write_text_atomic
from m2aenet.data.motion_paths import motion_times
from m2aenet.data.realism import Realism
from m2aenet.data.sources import photo_pool
from m2aenet.data.synth import (
    FORMAT_VERSION,
    MOTION_SAMPLES,
    SampleGenerator,
    SynthSample,
    check_blur_length,
    check_size,
)
from m2aenet.errors import InputError
from m2aenet.imageio import write_png

SUBFOLDERS = ("blur", "sharp", "mask", "motion")
META_NAME = "meta.json"
MOTION_CONVENTION = (
    "motion[y, x, k] = (dx, dy) in pixels: the content seen at pixel (x, y) at exposure time "
    "times[k] is the content of the sharp image at (x + dx, y + dy); 0 where that content is "
    "the static background"
)
_NAME = re.compile(r"^\d{6}$")


def parse_size(text: str) -> tuple[int, int]:
    """'WxH' (e.g. '512x384') -> (height, width); InputError naming the value when malformed."""
    match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", str(text))
    if not match:
        raise InputError(f"bad --size {text!r}: expected WxH, e.g. 512x512")
    size = (int(match[2]), int(match[1]))
    try:
        check_size(size)
    except InputError as error:
        raise InputError(f"bad --size {text!r}: each side must be 32..8192 px") from error
    return size


def parse_blur_length(text: str) -> tuple[float, float]:
    """'LOW-HIGH' (e.g. '3-15') or one length '8' -> (low, high) in px; InputError if malformed."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(?:-\s*(\d+(?:\.\d+)?)\s*)?", str(text))
    if not match:
        raise InputError(f"bad --blur-length {text!r}: expected LOW-HIGH in px, e.g. 3-15")
    low = float(match[1])
    high = float(match[2]) if match[2] else low
    try:
        return check_blur_length((low, high))
    except InputError as error:
        raise InputError(f"bad --blur-length {text!r}: {error}") from error


def sample_name(index: int) -> str:
    """File stem of image `index`: zero-padded so files sort in generation order."""
    return f"{index:06d}"


def write_sample(
    out_dir: str | os.PathLike, name: str, sample: SynthSample, motion: bool = True
) -> None:
    """Write one sample's files atomically (mask as 0/255 uint8 PNG; motion unless False)."""
    out_dir = Path(out_dir)
    # zlib level 1: 3.1x faster than the default 6 for 13% larger files (512x512); writing dominated
    # the engine's time (docs/decisions.md).
    write_png(out_dir / "blur" / f"{name}.png", sample.blur, compress_level=1)
    write_png(out_dir / "sharp" / f"{name}.png", sample.sharp, compress_level=1)
    write_png(
        out_dir / "mask" / f"{name}.png", sample.mask.astype(np.uint8) * 255, compress_level=1
    )
    if motion:
        with atomic_path(out_dir / "motion" / f"{name}.npy") as tmp:
            np.save(tmp, np.ascontiguousarray(sample.motion, dtype=np.float16))


def _generate(generator: SampleGenerator, out_dir: Path, indices, write_motion: bool, bar=None):
    """Generate and write `indices` in this process; yields (index, params) in order."""
    import torch

    threads = torch.get_num_threads()
    # The engine's ops are a few ms each: one thread avoids the thread pool's spin-waiting,
    # which cost 3-8x CPU time here when the other core was busy. PNG encoding (about 2/3 of
    # the work) releases the GIL, so writer threads run it beside the generator instead.
    torch.set_num_threads(1)
    pending: deque[Future] = deque()
    try:
        with ThreadPoolExecutor(max_workers=max(1, min(2, os.cpu_count() or 1))) as writers:
            for index in indices:
                sample = generator(index)
                name = sample_name(index)
                pending.append(writers.submit(write_sample, out_dir, name, sample, write_motion))
                yield index, sample.params
                while len(pending) > 4:  # bounds the samples held in memory
                    pending.popleft().result()
                if bar is not None:
                    bar.update(1)
            while pending:
                pending.popleft().result()
    finally:
        torch.set_num_threads(threads)


def _generate_chunk(
    engine: dict, out_dir: Path, start: int, stop: int, write_motion: bool
) -> list[tuple[int, dict]]:
    """A worker process's share: images start..stop-1."""
    return list(_generate(SampleGenerator(**engine), out_dir, range(start, stop), write_motion))


def _generate_in_processes(
    engine: dict,
    out_dir: Path,
    count: int,
    write_motion: bool,
    workers: int,
    params: list[dict],
    bar,
) -> None:
    """Images in chunks over `workers` spawned processes (no fork: torch's thread pools do not
    survive it); params filled in by index."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    chunk = max(1, min(16, count // (4 * workers) or 1))
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        futures = [
            pool.submit(
                _generate_chunk, engine, out_dir, start, min(count, start + chunk), write_motion
            )
            for start in range(0, count, chunk)
        ]
        for future in as_completed(futures):
            done = future.result()
            for index, found in done:
                params[index] = found
            bar.update(len(done))


def _prepare_output(out_dir: Path, names: set[str], overwrite: bool) -> None:
    """Refuse a non-empty folder unless `overwrite`; then drop the files of an older set that
    the new one will not replace (only our NNNNNN files in our sub-folders, nothing else)."""
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"{out_dir}: exists and is not a folder")
    if out_dir.is_dir() and any(out_dir.iterdir()):
        if not overwrite:
            raise InputError(f"{out_dir}: folder exists and is not empty (pass --overwrite)")
        (out_dir / META_NAME).unlink(missing_ok=True)  # stale until the new set is complete
        for sub in SUBFOLDERS:
            for path in (out_dir / sub).glob("*"):
                if path.is_file() and _NAME.match(path.stem) and path.stem not in names:
                    path.unlink()
    out_dir.mkdir(parents=True, exist_ok=True)


def generate_dataset(
    out_dir: str | os.PathLike,
    count: int,
    seed: int = 0,
    size: tuple[int, int] = (512, 512),
    mode: str = "local",
    split: str = "train",
    sources: Sequence[str | os.PathLike] | None = None,
    noise: bool = False,
    jpeg: int | None = None,
    global_fraction: float = 0.2,
    overwrite: bool = False,
    progress: bool = True,
    write_motion: bool = True,
    blur_length: tuple[float, float] | None = None,
    realism: Realism | None = None,
    workers: int = 1,
) -> dict:
    """Generate `count` images into `out_dir` and return the meta.json content.

    size is (height, width). Image i depends only on (seed, split, i) and the other arguments.
    The photo pool is the split's (see `sources`) unless `sources` lists files or folders.
    `write_motion=False` skips DIR/motion (8 MB per 512x512 image). `blur_length`: (shortest,
    longest) blur path in px of the output images (default: 4-60 px scaled from 512 px).
    `realism`: the realistic scene mix and camera (`realism.Realism`); None keeps the original
    engine. `workers` > 1 generates in that many processes; the files and meta.json are the
    same byte for byte (each image depends only on its index).
    """
    from tqdm import tqdm

    if count < 1:
        raise InputError(f"--count must be >= 1, got {count}")
    if workers < 1:
        raise InputError(f"--workers must be >= 1, got {workers}")
    photos = photo_pool(split, sources)
    engine = dict(  # SampleGenerator's arguments, also sent to worker processes
        photos=photos,
        size=size,
        mode=mode,
        seed=seed,
        split=split,
        global_fraction=global_fraction,
        noise=noise,
        jpeg=jpeg,
        blur_length=blur_length,
        realism=realism,
    )
    generator = SampleGenerator(**engine)  # also checks the arguments before anything is written
    out_dir = Path(out_dir)
    names = [sample_name(i) for i in range(count)]
    _prepare_output(out_dir, set(names), overwrite)
    params: list[dict] = [{} for _ in range(count)]
    with tqdm(total=count, desc="synth", unit="img", disable=not progress) as bar:
        if workers == 1:
            for index, found in _generate(generator, out_dir, range(count), write_motion, bar):
                params[index] = found
        else:
            _generate_in_processes(engine, out_dir, count, write_motion, workers, params, bar)
    images = [{"name": name, **found} for name, found in zip(names, params, strict=True)]
    used = sorted(
        {image["background"]["source"] for image in images}
        | {obj["source"] for image in images for obj in image.get("objects", [])}
    )
    meta = {
        "format": "m2aenet-synth",
        "version": FORMAT_VERSION,
        "seed": int(seed),
        "split": split,
        "mode": mode,
        "count": int(count),
        "size": {"width": size[1], "height": size[0]},
        "global_fraction": global_fraction if mode == "mixed" else None,
        "noise": bool(noise),
        "jpeg": jpeg,
        "blur_length_px": list(generator.blur_length) if generator.blur_length else None,
        "motion": None
        if not write_motion
        else {
            "shape": "(H, W, K, 2)",
            "dtype": "float16",
            "times": [round(float(t), 6) for t in motion_times(MOTION_SAMPLES)],
            "convention": MOTION_CONVENTION,
        },
        "sources": [str(p) for p in photos],
        "sources_used": used,
        "images": images,
    }
    if realism is not None:  # left out otherwise, so sets made without it keep their bytes
        meta["realism"] = realism.to_dict()
    write_text_atomic(out_dir / META_NAME, json.dumps(meta, indent=1) + "\n")
    return meta


def list_samples(root: str | os.PathLike) -> list[str]:
    """Names (stems) of the pairs in a synthetic set, sorted; InputError if there are none."""
    root = Path(root)
    blur = root / "blur"
    names = sorted(p.stem for p in blur.glob("*.png")) if blur.is_dir() else []
    if not names:
        raise InputError(f"{root}: no synthetic set here (expected {blur}/NAME.png)")
    return names


def image_records(root: str | os.PathLike) -> dict[str, dict]:
    """A synthetic set's meta.json records of its images, by name; {} when it has no
    meta.json; InputError when the file is not a synth meta.json."""
    path = Path(root) / META_NAME
    if not path.is_file():
        return {}
    try:
        return {str(image["name"]): image for image in json.loads(path.read_text())["images"]}
    except (ValueError, KeyError, TypeError) as error:
        raise InputError(f"{path}: not a synth meta.json ({error})") from error
