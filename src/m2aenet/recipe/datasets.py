"""Make the data sets a recipe names, and say which command makes a missing one.

A data set counts as made when its folder holds the meta.json that `m2aenet synth` writes last,
for the count and seed the recipe asks for. A folder without it is left alone (it may be a
user's, or a synth run that was stopped): the error says what to do.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

from m2aenet.errors import InputError
from m2aenet.recipe.spec import DataSpec, load_recipe, synth_parser

PACKAGED_RECIPE = Path(__file__).resolve().parents[1] / "configs" / "recipe.yaml"

DataState = Literal["made", "missing"]

# The photo sets the shipped recipe reads besides the splits' own photos (set name of
# scripts/collect_extra_photos.py: the folder it is gathered into, its Debian packages).
PHOTO_SETS = {
    "extra": ("data/photos-extra", "gnome-backgrounds plasma-workspace-wallpapers"),
    "more": ("data/photos-more", "enlightenment-data lxqt-themes"),
}
DEFAULT_PHOTO_SET = "extra"


def gather_command(name: str) -> str:
    """The shell command that gathers a photo set into the recipe's folder."""
    folder, packages = PHOTO_SETS[name]
    choice = "" if name == DEFAULT_PHOTO_SET else f" --set {name}"
    return (
        f"apt-get install {packages} && "
        f"python scripts/collect_extra_photos.py{choice} --out {folder}"
    )


def check_photo_folder(folder: str | Path, use: str) -> None:
    """InputError naming a missing photo folder and, for the recipe's own, how it is gathered."""
    if Path(folder).exists():
        return
    wanted = Path(folder).as_posix().rstrip("/")
    name = next((name for name, (known, _) in PHOTO_SETS.items() if known == wanted), None)
    hint = f"; the recipe's is gathered with: {gather_command(name)}" if name else ""
    raise InputError(f"{folder}: {use} not found{hint}")


def synth_namespace(spec: DataSpec):
    """The synth command's parsed arguments for one data set."""
    return synth_parser().parse_args(["--out", spec.folder, *spec.synth_args])


def data_state(spec: DataSpec) -> DataState:
    """ "made" or "missing"; InputError if the folder holds something else."""
    folder = Path(spec.folder)
    if not folder.exists():
        return "missing"
    meta_path = folder / "meta.json"
    if not meta_path.is_file():
        if folder.is_dir() and not any(folder.iterdir()):
            return "missing"
        raise InputError(
            f"{folder}: exists but holds no finished data set (no meta.json); remove it, or "
            f"make it again with: {spec.command} --overwrite"
        )
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise InputError(f"{meta_path}: unreadable ({error})") from None
    wanted = synth_namespace(spec)
    found = (meta.get("count"), meta.get("seed"))
    if found != (wanted.count, wanted.seed):
        raise InputError(
            f"{folder}: holds a different data set (count {found[0]}, seed {found[1]}; the "
            f"recipe wants count {wanted.count}, seed {wanted.seed}); move it away or make it "
            f"with: {spec.command} --overwrite"
        )
    return "made"


def make_data(specs: Iterable[DataSpec], progress: bool = True, workers: int = 1) -> list[str]:
    """Make every missing data set, in order, each in `workers` processes; returns the
    folders made."""
    from m2aenet.commands import synth

    made = []
    for spec in specs:
        if data_state(spec) == "made":
            continue
        args = synth_namespace(spec)
        for folder in args.sources or []:
            check_photo_folder(folder, f"photo folder of {spec.folder}")
        print(f"recipe: making {spec.folder}: {spec.command}", flush=True)
        args.no_progress = args.no_progress or not progress
        args.workers = max(args.workers, workers)
        synth.run(args)
        made.append(spec.folder)
    return made


def command_making(folder: str | Path, recipe: str | Path = PACKAGED_RECIPE) -> str | None:
    """The `m2aenet synth` command of the recipe that makes `folder`, or None."""
    try:
        specs = load_recipe(recipe).data
    except Exception:  # a missing or broken recipe must not hide the original error
        return None
    wanted = Path(folder).as_posix().rstrip("/")
    for spec in specs:
        if Path(spec.folder).as_posix().rstrip("/") == wanted:
            return spec.command
    return None


def check_data_roots(roots: Iterable[str | None]) -> None:
    """InputError naming the first missing data root and, where the shipped recipe makes it,
    the command that does."""
    for root in roots:
        if root is None or Path(root).exists():
            continue
        command = command_making(root)
        hint = (
            f"; make it with: {command} (or every data set of the recipe: m2aenet recipe "
            "configs/recipe.yaml --data-only)"
            if command
            else ""
        )
        raise InputError(f"{root}: dataset root not found{hint}")


def config_data_roots(config) -> list[str | None]:
    """The folders a training config reads (`folder` and `blur_crops` sources)."""
    roots: list[str | None] = []
    train, val = config.data.train, config.data.val
    if train.source != "synth":
        roots += [train.root, *train.extra_roots]
    if config.validation.enabled and val.source != "synth":
        roots.append(val.root)
    return roots
