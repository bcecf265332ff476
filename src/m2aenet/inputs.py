"""Which files a batch reads and where each result goes, with the rules that protect inputs.

`collect_inputs` turns command-line arguments (files, folders, globs) into a sorted list of
`InputFile`s; `plan_outputs` maps each one to its output paths under the output folder and
refuses, before any work starts, a plan that would write over an input. `shard` gives each
process of a multi-process run (`torchrun`) its own disjoint share of the list.

Nothing here touches image pixels, so everything is cheap and testable without a model.
"""

from __future__ import annotations

import fnmatch
import glob
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from m2aenet.atomic import check_output_folder
from m2aenet.errors import InputError, file_problem

_GLOB_CHARACTERS = frozenset("*?[")


@dataclass(frozen=True)
class InputFile:
    """One image to process.

    `path` is where it is read from; `relative` is where its result goes, relative to the
    output folder: the file name for a file given by name, and the path below the searched
    folder for files found in a folder or by a glob (so `--recursive` keeps sub-folders apart).
    """

    path: Path
    relative: Path


@dataclass(frozen=True)
class OutputJob:
    """One input and the files written for it (`mask` and `overlay` only with `--save-mask`,
    `compare` only with `--compare`)."""

    source: InputFile
    image: Path
    mask: Path | None = None
    overlay: Path | None = None
    compare: Path | None = None

    @property
    def outputs(self) -> tuple[Path, ...]:
        """Every path this job writes, the image last."""
        paths = (self.mask, self.overlay, self.compare, self.image)
        return tuple(path for path in paths if path is not None)

    @property
    def done(self) -> bool:
        """True when the restored image exists.

        The image is written last, so it marks a finished job: a mask or overlay without it
        is what an interrupted run left behind, and the job runs again (replacing them). A
        folder in the image's place is not a result: the job runs and fails naming it.
        """
        return self.image.is_file()


def _is_image_path(path: Path) -> bool:
    from m2aenet.imageio import is_image_path

    return is_image_path(path)


def _has_glob_characters(text: str) -> bool:
    return any(character in _GLOB_CHARACTERS for character in text)


def _glob_base(pattern: str) -> Path:
    """The longest leading part of `pattern` without glob characters (a folder)."""
    parts = Path(pattern).parts
    base: list[str] = []
    for part in parts[:-1]:
        if _has_glob_characters(part):
            break
        base.append(part)
    return Path(*base) if base else Path(".")


def walk_files(root: Path) -> Iterator[Path]:
    """Every file below `root`, in sorted order, following folder symlinks but entering each
    real folder once.

    `glob('**')` follows symlinks without memory, so two links that point back up the tree
    make it enumerate paths without end; here a folder reached again (same device and inode)
    is not entered a second time, whichever way it was reached.
    """
    entered: set[tuple[int, int]] = set()
    for folder, subfolders, files in os.walk(root, followlinks=True):
        try:
            stat = os.stat(folder)
        except OSError:
            subfolders[:] = []
            continue
        if (stat.st_dev, stat.st_ino) in entered:
            subfolders[:] = []
            continue
        entered.add((stat.st_dev, stat.st_ino))
        subfolders.sort()
        for name in sorted(files):
            yield Path(folder) / name


def _matches(pattern: Sequence[str], parts: Sequence[str]) -> bool:
    """Glob matching of path `parts` against `pattern` parts, `**` being any number of folders.

    As in `glob`, wildcards do not match names starting with a dot unless the pattern does.
    """
    if not pattern:
        return not parts
    head, rest = pattern[0], pattern[1:]
    if head == "**":
        for skipped in range(len(parts) + 1):
            if _matches(rest, parts[skipped:]):
                return True
            if skipped < len(parts) and parts[skipped].startswith("."):
                return False
        return False
    if not parts or (parts[0].startswith(".") and not head.startswith(".")):
        return False
    return fnmatch.fnmatchcase(parts[0], head) and _matches(rest, parts[1:])


def _recursive_glob(pattern: str) -> list[Path]:
    """Files matching a `**` pattern, each real folder searched once (see `walk_files`)."""
    base = _glob_base(pattern)
    wanted = Path(pattern).parts[len(base.parts) if str(base) != "." else 0 :]
    if not base.is_dir():
        return []
    return [path for path in walk_files(base) if _matches(wanted, path.relative_to(base).parts)]


def _folder_images(folder: Path, recursive: bool) -> list[InputFile]:
    candidates = walk_files(folder) if recursive else folder.iterdir()
    found = []
    for path in candidates:
        if path.is_file() and _is_image_path(path):
            found.append(InputFile(path, path.relative_to(folder)))
    return found


def collect_inputs(specs: Iterable[str | os.PathLike], recursive: bool = False) -> list[InputFile]:
    """Expand files, folders and glob patterns into a sorted, de-duplicated list of inputs.

    - A file named explicitly is always taken (if it is not an image, reading it fails later
      with a message naming it, like any other bad file).
    - A folder contributes the images directly inside it (`recursive=True`: at any depth,
      following folder symlinks but each real folder once, `walk_files`); hidden files and
      files without an image extension (`imageio.is_image_path`) are left out.
    - A pattern with `*`, `?` or `[` is expanded here, so quoted patterns work on every shell;
      `**` matches sub-folders when `recursive=True`. Only image files are taken.

    Raises InputError naming the argument when it does not exist, when a pattern matches no
    image, or when nothing at all is found.
    """
    found: dict[Path, InputFile] = {}
    for spec in specs:
        text = os.fspath(spec)
        path = Path(text)
        if path.is_file():
            entries = [InputFile(path, Path(path.name))]
        elif path.is_dir():
            entries = _folder_images(path, recursive)
        elif _has_glob_characters(text):
            base = _glob_base(text)
            if recursive and "**" in text:
                matches = _recursive_glob(text)
            else:
                matches = [Path(match) for match in glob.glob(text)]
            entries = [
                InputFile(match, match.relative_to(base))
                for match in matches
                if match.is_file() and _is_image_path(match)
            ]
            if not entries:
                raise InputError(f"{text}: pattern matches no image file")
        elif path.exists():
            raise InputError(f"{text}: {file_problem(path)}")
        else:
            raise InputError(f"{text}: no such file or folder")
        for entry in entries:
            # The first argument that names a file decides where its output goes.
            found.setdefault(entry.path.resolve(), entry)
    if not found:
        names = ", ".join(os.fspath(spec) for spec in specs) or "(no arguments)"
        raise InputError(f"no image files found in {names}")
    return sorted(found.values(), key=lambda entry: (str(entry.relative), str(entry.path)))


def plan_outputs(
    inputs: Sequence[InputFile],
    out_dir: str | os.PathLike,
    save_mask: bool = False,
    compare: bool = False,
) -> list[OutputJob]:
    """Map each input to its output paths under `out_dir` (same relative path and name).

    With `save_mask`, `NAME_mask.png` and `NAME_overlay.png` go beside the output image; with
    `compare`, `NAME_compare.png`. Call `check_plan` on the result before writing anything.
    """
    out_dir = Path(out_dir)
    jobs = []
    for entry in inputs:
        image = out_dir / entry.relative
        mask = overlay = picture = None
        if save_mask:
            mask = image.with_name(f"{image.stem}_mask.png")
            overlay = image.with_name(f"{image.stem}_overlay.png")
        if compare:
            picture = image.with_name(f"{image.stem}_compare.png")
        jobs.append(OutputJob(entry, image, mask, overlay, picture))
    return jobs


def check_plan(
    jobs: Sequence[OutputJob],
    out_dir: str | os.PathLike,
    extra_outputs: Iterable[str | os.PathLike] = (),
    input_folders: Iterable[str | os.PathLike] = (),
) -> None:
    """Refuse a plan that could damage an input or write two results to one file.

    Raises InputError (OutputError for an unwritable `out_dir`), before any work, when
    - `out_dir` is a file, lies below a file, or is named like an image (`-o result.jpg`);
    - `out_dir` is a folder that holds inputs or was given as an input folder (results
      written there would mix with, and could replace, the originals, and a second run
      would take them for inputs);
    - any planned output (image, mask, overlay, or one of `extra_outputs` such as the JSON
      summary) is one of the inputs;
    - two planned outputs are the same file.
    """
    check_output_folder(out_dir, "-o")
    if not Path(out_dir).is_dir() and _is_image_path(Path(out_dir)):
        raise InputError(
            f"-o {out_dir}: -o takes an output folder, not a file name (results keep their "
            "input's name inside it); give a folder such as -o restored/"
        )
    out_resolved = Path(out_dir).resolve()
    inputs = {job.source.path.resolve(): job.source.path for job in jobs}
    folders = {Path(folder).resolve() for folder in input_folders}
    folders.update(path.parent for path in inputs)
    if out_resolved in folders:
        raise InputError(
            f"-o {out_dir}: the output folder holds input images; choose another folder so "
            "inputs are never overwritten"
        )
    claimed: dict[Path, Path] = {}
    planned = [(output, job.source.path) for job in jobs for output in job.outputs]
    planned += [(Path(extra), None) for extra in extra_outputs]
    for output, source in planned:
        resolved = output.resolve()
        if resolved in inputs:
            raise InputError(
                f"{output}: output would overwrite the input {inputs[resolved]}; "
                "choose another output folder"
            )
        if resolved in claimed:
            first = claimed[resolved]
            raise InputError(
                f"{output}: two outputs would be written to this file (from {first} and "
                f"{source or 'the summary'}); rename one input or process them separately"
            )
        claimed[resolved] = source if source is not None else output


def shard(items: Sequence, rank: int, world_size: int) -> list:
    """The share of `items` that process `rank` of `world_size` handles (round robin).

    Every item goes to exactly one rank; round robin keeps the shares balanced when the
    sorted list has runs of large images.
    """
    if world_size < 1 or not 0 <= rank < world_size:
        raise InputError(f"RANK={rank} / WORLD_SIZE={world_size}: need 0 <= RANK < WORLD_SIZE")
    return list(items[rank::world_size])


def rank_from_environment() -> tuple[int, int]:
    """(RANK, WORLD_SIZE) as set by `torchrun`; (0, 1) for a plain single-process run."""
    try:
        rank = int(os.environ.get("RANK", "0"))
        world_size = int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError as error:
        raise InputError(f"RANK/WORLD_SIZE must be integers ({error})") from error
    return rank, world_size
