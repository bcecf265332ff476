"""A self-contained folder that runs a recipe on another machine (a GPU box without apt or
network): the source photos, the recipe and its configs, the package, and `run.sh`.

The data sets are not copied (1.7 GB of frames); the photos they are made from are, downscaled
to the side the data engine would use anyway and stored as JPEG (quality 95, no chroma
subsampling), so the bundle stays at tens of MB and the far machine makes the data itself with
`--workers` processes. The frames made there are therefore not byte-identical to the ones made
here, only drawn the same way from the same photos.
"""

from __future__ import annotations

import shlex
import shutil
import stat
from pathlib import Path
from typing import Any

import yaml

from m2aenet.errors import InputError
from m2aenet.recipe.spec import PredictorStage, Recipe

JPEG_QUALITY = 95
SHARP_SIDE = 720  # px, short side of bundled sharp photos (the predictor crops 256 px)
RUN_SCRIPT = """\
#!/bin/sh
# Train this recipe here, in one command:   sh run.sh [MINUTES]   (default 10)
# Needs Python >= 3.10 with torch and the packages m2aenet depends on (pyproject.toml);
# no network. Makes the data from photos/ with one process per CPU core, trains for MINUTES
# (bf16 autocast and channels-last on a GPU), and leaves weights, resume state and log in
# out/ (out/STAGE/final_ema.safetensors; out/ship/ once every stage is finished). Run it
# again to continue where it stopped.
set -e
cd "$(dirname "$0")"
MINUTES="${1:-10}"
WORKERS="${WORKERS:-$(nproc 2>/dev/null || echo 4)}"
export GLIBC_TUNABLES=glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=68719476736
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
export M2AENET_NO_REEXEC=1
exec "${PYTHON:-python3}" -m m2aenet recipe recipe.yaml --out out --minutes "$MINUTES" \\
    --workers "$WORKERS" --no-progress
"""


def _photo_side(namespace: Any) -> int:
    """The short side the data engine downscales this data set's photos to."""
    from m2aenet.data.synth import SampleGenerator
    from m2aenet.data.synth_writer import parse_size

    generator = SampleGenerator(
        [Path("unread")], parse_size(namespace.size), namespace.mode, 0, namespace.split
    )
    return generator.cache.short_side


def _write_photo(source: Path, target: Path, short_side: int) -> None:
    from PIL import Image

    from m2aenet.data.sources import downscale_to_short_side
    from m2aenet.imageio import read_rgb

    pixels = downscale_to_short_side(read_rgb(source), short_side)
    target.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(target, quality=JPEG_QUALITY, subsampling=0)


def _pack_photos(recipe: Recipe, folder: Path) -> dict[str, list[str]]:
    """Copy every data set's photos into folder/photos/GROUP; returns its new synth args.

    A group is a split's default pool (or one set's own --sources); files are numbered in the
    pool's order, so the sorted folder lists them as the engine did here."""
    from m2aenet.data.sources import photo_pool
    from m2aenet.recipe.datasets import synth_namespace

    groups: dict[tuple[str, ...], str] = {}
    sides: dict[str, int] = {}
    members: dict[str, list[Path]] = {}
    new_args: dict[str, list[str]] = {}
    for spec in recipe.data:
        namespace = synth_namespace(spec)
        photos = photo_pool(namespace.split, namespace.sources)
        key = tuple(str(p) for p in photos)
        group = groups.setdefault(key, f"{namespace.split}-{len(groups)}")
        members[group] = photos
        sides[group] = max(sides.get(group, 0), _photo_side(namespace))
        args = list(spec.synth_args)
        if "--sources" in args:  # drop the old value(s): everything up to the next option
            start = args.index("--sources")
            stop = start + 1
            while stop < len(args) and not args[stop].startswith("--"):
                stop += 1
            del args[start:stop]
        new_args[spec.folder] = [*args, "--sources", f"photos/{group}"]
    for group, photos in members.items():
        for index, photo in enumerate(photos):
            _write_photo(
                photo, folder / "photos" / group / f"{index:04d}-{photo.stem}.jpg", sides[group]
            )
    return new_args


def _pack_sharp_photos(stage: PredictorStage, folder: Path) -> list[str]:
    """Copy a predictor stage's sharp photos into folder/photos/sharp-NAME (short side
    SHARP_SIDE); returns the stage's new `sharp_photos` ([] when it has none)."""
    from m2aenet.data.sharp_crops import sharp_photo_paths

    if not stage.sharp_photos:
        return []
    target = Path("photos") / f"sharp-{stage.name}"
    for index, photo in enumerate(sharp_photo_paths(stage.sharp_photos)):
        _write_photo(photo, folder / target / f"{index:04d}-{photo.stem}.jpg", SHARP_SIDE)
    return [target.as_posix()]


def _pack_init(stage: PredictorStage, folder: Path) -> str | None:
    """Copy the predictor a stage starts from into folder/weights; returns its new path."""
    if not stage.init:
        return None
    target = Path("weights") / Path(stage.init).name
    (folder / "weights").mkdir(exist_ok=True)
    shutil.copyfile(stage.init, folder / target)
    return target.as_posix()


def predictor_stage_entry(
    stage: PredictorStage, sharp_photos: list[str], init: str | None
) -> dict[str, Any]:
    """The recipe YAML mapping of a predictor stage (its folders are data sets of the recipe,
    made there as here; `sharp_photos` and `init` those packed by `_pack_sharp_photos` and
    `_pack_init`)."""
    entry: dict[str, Any] = {"name": stage.name, "kind": "predictor", "pools": list(stage.pools)}
    if stage.val:
        entry["val"] = list(stage.val)
    if sharp_photos:
        entry["sharp_photos"] = sharp_photos
    if init:
        entry["init"] = init
    if stage.steps is not None:
        entry["steps"] = stage.steps
    else:
        entry["minutes"] = stage.minutes
    if stage.overrides:
        entry["overrides"] = list(stage.overrides)
    return entry


def write_bundle(recipe: Recipe, folder: str | Path, package: str | Path | None = None) -> Path:
    """Write the bundle of `recipe` into `folder` (new or empty); returns the folder.

    `package`: the m2aenet source folder to copy (default: the running package)."""
    folder = Path(folder)
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise InputError(f"{folder}: must be a new or empty folder")
    if not recipe.stages:
        raise InputError(f"{recipe.path}: a bundle needs at least one stage")
    folder.mkdir(parents=True, exist_ok=True)
    document: dict[str, Any] = {"out": "out", "data": {}, "stages": [], "ship": {}}
    for spec_folder, args in _pack_photos(recipe, folder).items():
        document["data"][spec_folder] = shlex.join(args)
    for stage in recipe.stages:
        if isinstance(stage, PredictorStage):
            packed = _pack_sharp_photos(stage, folder), _pack_init(stage, folder)
            document["stages"].append(predictor_stage_entry(stage, *packed))
            continue
        config = Path(stage.config)
        if not config.is_file():
            raise InputError(f"{recipe.path}: stage {stage.name}: {config} not found")
        target = Path("configs") / config.name
        (folder / "configs").mkdir(exist_ok=True)
        shutil.copyfile(config, folder / target)
        entry: dict[str, Any] = {"name": stage.name, "config": target.as_posix()}
        if stage.overrides:
            entry["overrides"] = list(stage.overrides)
        if stage.init_from_previous:
            entry["init"] = "previous"
        document["stages"].append(entry)
    ship = recipe.ship
    document["ship"] = {"name": ship.name, "thresholds": list(ship.thresholds)}
    if ship.calibrate_on is not None:
        document["ship"]["calibrate_on"] = ship.calibrate_on
    if ship.whole_frame_on:
        document["ship"]["whole_frame_on"] = list(ship.whole_frame_on)
        document["ship"]["whole_frame_fractions"] = list(ship.whole_frame_fractions)
    if ship.whole_frame_extent is not None:
        document["ship"]["whole_frame_extent"] = ship.whole_frame_extent
    header = f"# Bundled from {recipe.path}: paths are relative to this folder (see run.sh).\n"
    (folder / "recipe.yaml").write_text(header + yaml.safe_dump(document, sort_keys=False))
    source = Path(package) if package else Path(__file__).resolve().parents[1]
    shutil.copytree(
        source,
        folder / "src" / "m2aenet",
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
    )
    script = folder / "run.sh"
    script.write_text(RUN_SCRIPT)
    script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return folder


def bundle_size(folder: str | Path) -> int:
    """Bytes of every file under `folder`."""
    return sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file())
