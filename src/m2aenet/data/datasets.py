"""Paired blur/sharp(/mask) datasets read from folders, for training and evaluation.

Every layout is a `LayoutPatterns`: a pattern for the blurred files, relative to the dataset
root, and templates that give each blurred file its sharp and mask partners. In a pattern:

- ``{field}`` matches one non-empty piece of a file or folder name (no ``/``); the same field
  used twice must match the same text; partners are found by the fields' values;
- ``{ext}`` matches any supported image extension (png, jpg, jpeg, tif, tiff, webp, bmp, any
  case), so a blur ``a.jpg`` may pair with a sharp ``a.png``;
- ``*`` and ``?`` are wildcards inside one name, as in a shell.

The sample name is ``name`` formatted with the fields, or by default the field values joined
with ``/``. Built-in layouts::

    generic: blur/{name}.{ext}         sharp/{name}.{ext}          mask/{name}.{ext}  (optional)
    gopro:   {scene}/blur/{name}.{ext} {scene}/sharp/{name}.{ext}  (no masks; name "scene/stem")
    reloblur: {seq}/{seq}_blur_{frame}.{ext} {seq}/{seq}_gt_{frame}.{ext}
              {seq}/{seq}_mask_{frame}.{ext} (optional)              (name "seq_frame")

``reloblur`` is ReLoBlur with the three files of a frame side by side in one folder per
sequence (root = a split folder, ``train/s01_01/s01_01_blur_000.png``). ReLoBlur as its
authors' loader reads it (root holding ``dataset/`` and ``masks/``) is a pattern layout::

    layout:
      blur:  dataset/train/{scene}/{clip}/{frame}_blur.png
      sharp: dataset/train/{scene}/{clip}/{frame}_sharp.png
      mask:  masks/train/{scene}/{clip}/{frame}.png


Nothing is skipped silently: a blurred file without a sharp partner (or the reverse), a mask
missing while others exist, two files for one name, an empty match, sizes that differ or a file
that cannot be decoded raise `InputError` naming the files. Files whose extension is not an
image's (README.txt, meta.json) and hidden files or folders are not part of any layout.

Crops larger than an image are an error naming the file, not padding: padded borders would be
trained on as if they were real content. Lower `crop_size` or drop the small images.
"""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from m2aenet.data import transforms
from m2aenet.errors import ConfigError, InputError
from m2aenet.imageio import (
    SUPPORTED_EXTENSIONS,
    is_image_path,
    load_image,
    read_image_info,
    read_mask,
)

_MAX_LISTED_PROBLEMS = 20
_TOKEN = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}|\*|\?|[^{}*?]+|.")
_EXT_REGEX = "(?i:" + "|".join(re.escape(ext.lstrip(".")) for ext in SUPPORTED_EXTENSIONS) + ")"


@dataclass(frozen=True)
class LayoutPatterns:
    """Where the files of a paired dataset are, relative to its root (see the module doc).

    blur: pattern of the blurred inputs; defines the fields.
    sharp: template of the sharp partner, using some or all of blur's fields.
    mask: template of the blur mask, or None when the dataset has no masks.
    name: template of the sample name from the fields; None joins the field values with "/".
    """

    blur: str
    sharp: str
    mask: str | None = None
    name: str | None = None

    @classmethod
    def from_dict(cls, spec: Mapping[str, Any], key: str = "layout") -> LayoutPatterns:
        """Build from a mapping (YAML); an unknown or mistyped key is a ConfigError naming it."""
        known = {f.name for f in fields(cls)}
        for name, value in spec.items():
            if name not in known:
                raise ConfigError(
                    f"{key}.{name}: unknown layout key (expected {', '.join(sorted(known))})"
                )
            if value is not None and not isinstance(value, str):
                raise ConfigError(f"{key}.{name}: must be a string, got {type(value).__name__}")
        for required in ("blur", "sharp"):
            if not spec.get(required):
                raise ConfigError(f"{key}.{required}: missing (a pattern such as 'blur/{{name}}')")
        return cls(**dict(spec))


GENERIC_LAYOUT = LayoutPatterns(
    blur="blur/{name}.{ext}", sharp="sharp/{name}.{ext}", mask="mask/{name}.{ext}"
)
GOPRO_LAYOUT = LayoutPatterns(
    blur="{scene}/blur/{name}.{ext}", sharp="{scene}/sharp/{name}.{ext}", mask=None
)
RELOBLUR_LAYOUT = LayoutPatterns(
    blur="{seq}/{seq}_blur_{frame}.{ext}",
    sharp="{seq}/{seq}_gt_{frame}.{ext}",
    mask="{seq}/{seq}_mask_{frame}.{ext}",
    name="{seq}_{frame}",
)
LAYOUTS = {"generic": GENERIC_LAYOUT, "gopro": GOPRO_LAYOUT, "reloblur": RELOBLUR_LAYOUT}


def parse_layout(layout: str | os.PathLike | Mapping[str, Any] | LayoutPatterns) -> LayoutPatterns:
    """Resolve a layout: "generic", "gopro", "reloblur", a mapping of patterns, a YAML/JSON
    mapping given as text, or the path of a .yaml/.yml file holding such a mapping."""
    if isinstance(layout, LayoutPatterns):
        return layout
    if isinstance(layout, Mapping):
        return LayoutPatterns.from_dict(layout)
    text = os.fspath(layout)
    if text.lower() in LAYOUTS:
        return LAYOUTS[text.lower()]
    import yaml  # only for pattern layouts written as text

    if text.lower().endswith((".yaml", ".yml")):
        path = Path(text)
        if not path.is_file():
            raise ConfigError(f"layout: file {path} not found")
        try:
            spec = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as error:
            raise ConfigError(f"layout: {path} is not valid YAML ({error})") from error
        if isinstance(spec, Mapping) and isinstance(spec.get("layout"), Mapping):
            spec = spec["layout"]
    else:
        try:
            spec = yaml.safe_load(text)
        except yaml.YAMLError:
            spec = None
    if not isinstance(spec, Mapping):
        raise ConfigError(
            f"layout: unknown layout {text!r} (expected 'generic', 'gopro', 'reloblur' or a "
            "mapping with blur, sharp and optional mask/name patterns)"
        )
    return LayoutPatterns.from_dict(spec)


@dataclass(frozen=True)
class _Pattern:
    """A layout pattern compiled to a regex over root-relative POSIX paths and a glob."""

    text: str
    key: str
    regex: re.Pattern[str]
    glob: str
    fields: tuple[str, ...]  # named fields in order of first use, without "ext"

    def expected(self, values: Mapping[str, str]) -> str:
        """The pattern with known field values filled in, for error messages."""

        def fill(match: re.Match[str]) -> str:
            field = match.group(1)
            return "*" if field == "ext" else values.get(field, "*")

        return re.sub(r"\{(\w+)\}", fill, self.text)


def _compile_pattern(text: str, key: str) -> _Pattern:
    if not text or text.startswith("/") or "\\" in text:
        raise ConfigError(f"{key}: {text!r} must be a relative path with '/' separators")
    if "**" in text or ".." in text.split("/"):
        raise ConfigError(f"{key}: {text!r} may not use '**' or '..'")
    regex, globbed, names = [], [], []
    for match in _TOKEN.finditer(text):
        token, field = match.group(0), match.group(1)
        if field == "ext":
            regex.append(_EXT_REGEX)
            globbed.append("*")
        elif field is not None:
            regex.append(f"(?P={field})" if field in names else f"(?P<{field}>[^/]+)")
            if field not in names:
                names.append(field)
            globbed.append("*")
        elif token == "*":
            regex.append("[^/]*")
            globbed.append("*")
        elif token == "?":
            regex.append("[^/]")
            globbed.append("?")
        elif token in "{}":
            raise ConfigError(f"{key}: {text!r} has an unmatched '{token}' (fields are {{name}})")
        else:
            regex.append(re.escape(token))
            globbed.append(glob.escape(token))
    glob_text = re.sub(r"\*{2,}", "*", "".join(globbed))
    return _Pattern(text, key, re.compile("".join(regex)), glob_text, tuple(names))


@dataclass(frozen=True)
class PairedSample:
    """One dataset entry: its name and files (mask None when the layout has no masks)."""

    name: str
    blur: Path
    sharp: Path
    mask: Path | None


def _scan(root: Path, pattern: _Pattern) -> dict[tuple[str, ...], list[Path]]:
    """Files under root matching the pattern, keyed by their field values."""
    found: dict[tuple[str, ...], list[Path]] = {}
    for path in root.glob(pattern.glob):
        relative = path.relative_to(root).as_posix()
        # Hidden files and folders (.git, .cache, "._x.png") are never samples.
        if not is_image_path(path) or relative.startswith(".") or "/." in relative:
            continue
        if not path.is_file():
            continue
        match = pattern.regex.fullmatch(relative)
        if match is None:
            continue
        found.setdefault(tuple(match.group(f) for f in pattern.fields), []).append(path)
    for paths in found.values():
        paths.sort()
    return found


def _raise_problems(title: str, problems: Sequence[str]) -> None:
    if not problems:
        return
    shown = list(problems[:_MAX_LISTED_PROBLEMS])
    if len(problems) > len(shown):
        shown.append(f"... and {len(problems) - len(shown)} more")
    raise InputError(f"{title}: {len(problems)} problem(s):\n  " + "\n  ".join(shown))


def find_pairs(
    root: str | os.PathLike, layout: LayoutPatterns, require_mask: bool = False
) -> list[PairedSample]:
    """List the samples of a dataset, sorted by name; raise InputError listing every problem.

    Problems: root missing, nothing matching, a blur without a sharp partner or the reverse, a
    mask without a blur, masks present for some samples only (or none with require_mask), two
    files for one name.
    """
    root = Path(root)
    if not root.exists():
        raise InputError(f"{root}: dataset root not found")
    if not root.is_dir():
        raise InputError(f"{root}: dataset root is not a folder")
    blur = _compile_pattern(layout.blur, "layout.blur")
    partners = {"sharp": _compile_pattern(layout.sharp, "layout.sharp")}
    if layout.mask is not None:
        partners["mask"] = _compile_pattern(layout.mask, "layout.mask")
    elif require_mask:
        raise ConfigError("layout.mask: require_mask is set but the layout defines no masks")
    if not blur.fields:
        raise ConfigError(f"layout.blur: {layout.blur!r} needs a field such as {{name}}")
    for role, pattern in partners.items():
        unknown = set(pattern.fields) - set(blur.fields)
        if unknown:
            raise ConfigError(
                f"layout.{role}: uses {{{sorted(unknown)[0]}}} which layout.blur does not define"
            )
    if layout.name is not None:
        unknown = set(re.findall(r"\{(\w+)\}", layout.name)) - set(blur.fields)
        if unknown:
            raise ConfigError(f"layout.name: uses {{{sorted(unknown)[0]}}} not in layout.blur")

    blur_files = _scan(root, blur)
    if not blur_files:
        raise InputError(f"{root}: no blurred images match {layout.blur!r}")
    partner_files = {role: _scan(root, pattern) for role, pattern in partners.items()}

    problems: list[str] = []
    for role, index in [("blur", blur_files), *partner_files.items()]:
        for _, paths in sorted(index.items()):
            if len(paths) > 1:
                others = ", ".join(str(p) for p in paths[1:])
                problems.append(f"{paths[0]}: several {role} files for one sample (also {others})")

    samples: list[PairedSample] = []
    used: dict[str, set[tuple[str, ...]]] = {role: set() for role in partners}
    missing_masks: list[str] = []
    for key, paths in sorted(blur_files.items()):
        values = dict(zip(blur.fields, key, strict=True))
        found: dict[str, Path | None] = {}
        for role, pattern in partners.items():
            partner_key = tuple(values[f] for f in pattern.fields)
            candidates = partner_files[role].get(partner_key)
            found[role] = candidates[0] if candidates else None
            if candidates:
                used[role].add(partner_key)
            elif role == "sharp":
                problems.append(
                    f"{paths[0]}: no sharp partner (expected {root / pattern.expected(values)})"
                )
            else:
                missing_masks.append(
                    f"{paths[0]}: no mask (expected {root / pattern.expected(values)})"
                )
        if found["sharp"] is None:
            continue
        if layout.name is not None:
            name = layout.name.format(**values)
        else:
            name = "/".join(values.values())
        samples.append(PairedSample(name, paths[0], found["sharp"], found.get("mask")))

    for role, index in partner_files.items():
        for key, paths in sorted(index.items()):
            if key not in used[role]:
                problems.append(f"{paths[0]}: {role} image without a blurred partner")
    if "mask" in partners:
        with_mask = len(blur_files) - len(missing_masks)
        if with_mask == 0 and require_mask:
            problems.append(f"{root}: require_mask is set but no mask matches {layout.mask!r}")
        elif with_mask > 0 or require_mask:
            problems.extend(f"{m} while other samples have masks" for m in missing_masks)

    names: dict[str, Path] = {}
    for sample in samples:
        if sample.name in names:
            problems.append(
                f"{sample.blur}: sample name {sample.name!r} also used by {names[sample.name]}"
            )
        names[sample.name] = sample.blur
    _raise_problems(f"{root}", problems)
    samples.sort(key=lambda s: (s.name, str(s.blur)))
    return samples


class PairedImageDataset(Dataset):
    """Blur/sharp(/mask) pairs from a folder, as the shared sample dict.

    Each item: {"blur": float32 (3, H, W) in [0, 1], "sharp": same, "mask": float32 (1, H, W)
    in {0, 1} (all ones when the dataset has no masks), "has_mask": bool, "name": str}.

    layout: "generic", "gopro", "reloblur", a LayoutPatterns, a mapping or YAML text (see
        `parse_layout`);
    patterns: a LayoutPatterns or mapping that replaces `layout` (then leave layout "generic").
    crop_size: int or (h, w) for one random paired crop per item; None returns whole images.
    augment: random flips and 90-degree turns (turns only for square crops), same for all three.
    require_mask: every sample must have a mask.
    seed: None draws randomness from torch's global generator, which a DataLoader seeds per
    worker (reproducible with the loader's `generator`); an int makes item `i` of epoch `e`
    depend on (seed, e, i) only, whatever the worker count (call `set_epoch` each epoch; with
    persistent workers use None).
    The file list is built once, sorted by sample name; problems raise InputError listing the
    files (see `find_pairs`). Call `validate()` to check every header before a long run.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        layout: str | os.PathLike | Mapping[str, Any] | LayoutPatterns = "generic",
        crop_size: int | Sequence[int] | None = None,
        augment: bool = False,
        patterns: LayoutPatterns | Mapping[str, Any] | None = None,
        require_mask: bool = False,
        seed: int | None = None,
    ) -> None:
        if patterns is not None:
            if not (isinstance(layout, str) and layout in ("generic", "patterns")):
                raise ConfigError("patterns: give either layout or patterns, not both")
            layout = patterns
        self.root = Path(root)
        self.layout = parse_layout(layout)
        try:
            self.crop_size = None if crop_size is None else transforms.crop_size_pair(crop_size)
        except (TypeError, ValueError) as error:
            raise ConfigError(f"crop_size: {error}") from error
        self.augment = bool(augment)
        self.require_mask = bool(require_mask)
        self.seed = seed
        self.epoch = 0
        self.samples = find_pairs(self.root, self.layout, require_mask=self.require_mask)

    @property
    def has_masks(self) -> bool:
        """True when the samples come with masks (then all of them do)."""
        return any(sample.mask is not None for sample in self.samples)

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch for seeded augmentation (only used when `seed` is an int)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.samples)

    def _rng(self, index: int) -> np.random.Generator:
        if self.seed is None:
            entropy = int(torch.randint(0, 2**62, (1,)).item())
            return np.random.default_rng(entropy)
        return np.random.default_rng([int(self.seed), self.epoch, index])

    def __getitem__(self, index: int) -> dict[str, Any]:
        sample = self.samples[index]
        blur = load_image(sample.blur).rgb  # (H, W, 3)
        sharp = load_image(sample.sharp).rgb
        if blur.shape != sharp.shape:
            raise InputError(
                f"{sample.blur} ({_size(blur)}) and {sample.sharp} ({_size(sharp)}): "
                "blurred and sharp sizes differ"
            )
        mask = None
        if sample.mask is not None:
            mask = read_mask(sample.mask)  # (H, W)
            if mask.shape != blur.shape[:2]:
                raise InputError(
                    f"{sample.mask} ({_size(mask)}) and {sample.blur} ({_size(blur)}): "
                    "mask and image sizes differ"
                )
        images = [
            torch.from_numpy(blur).permute(2, 0, 1),
            torch.from_numpy(sharp).permute(2, 0, 1),
        ]
        if mask is not None:
            images.append(torch.from_numpy(mask)[None])
        if self.crop_size is not None or self.augment:
            rng = self._rng(index)
            if self.crop_size is not None:
                try:
                    images = transforms.paired_random_crop(images, self.crop_size, rng)
                except ValueError as error:
                    raise InputError(f"{sample.blur}: {error} (lower crop_size)") from error
            if self.augment:
                images = transforms.paired_random_flip_rotate(images, rng)
        blur_t, sharp_t = images[0].contiguous(), images[1].contiguous()
        if mask is not None:
            mask_t = images[2].contiguous()
        else:
            mask_t = torch.ones((1, *blur_t.shape[-2:]), dtype=torch.float32)
        return {
            "blur": blur_t,
            "sharp": sharp_t,
            "mask": mask_t,
            "has_mask": mask is not None,
            "name": sample.name,
        }

    def validate(self, max_pixels: int | None = None) -> None:
        """Read every file's header (no pixel decoding) and raise one InputError listing all
        unreadable files, size mismatches and images smaller than the crop."""
        problems: list[str] = []
        for sample in self.samples:
            sizes: dict[Path, tuple[int, int]] = {}
            for path in (sample.blur, sample.sharp, sample.mask):
                if path is None:
                    continue
                try:
                    info = read_image_info(path, max_pixels=max_pixels)
                except InputError as error:
                    problems.append(str(error))
                    continue
                sizes[path] = (info.height, info.width)
            if len(set(sizes.values())) > 1:
                listed = ", ".join(f"{p} ({h}x{w})" for p, (h, w) in sizes.items())
                problems.append(f"{sample.blur}: sizes differ: {listed}")
            elif sizes and self.crop_size is not None:
                height, width = next(iter(sizes.values()))
                if self.crop_size[0] > height or self.crop_size[1] > width:
                    problems.append(
                        f"{sample.blur}: image {height}x{width} is smaller than the crop "
                        f"{self.crop_size[0]}x{self.crop_size[1]}"
                    )
        _raise_problems(f"{self.root}", problems)


def _size(array: np.ndarray) -> str:
    return f"{array.shape[0]}x{array.shape[1]}"


def open_dataset(
    root: str | os.PathLike,
    layout: str | os.PathLike | Mapping[str, Any] | LayoutPatterns = "generic",
    **kwargs: Any,
) -> PairedImageDataset:
    """The dataset the train and eval commands read: `PairedImageDataset(root, layout, **kw)`."""
    return PairedImageDataset(root, layout=layout, **kwargs)
