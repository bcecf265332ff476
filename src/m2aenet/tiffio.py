"""TIFF files Pillow cannot keep exactly, read and written with `tifffile`.

Pillow holds no 16-bit colour or float colour mode and turns associated (premultiplied) alpha
into straight alpha (and misreads some 8-bit files with separate colour planes, e.g. gray+alpha
with compression), so those files go through `tifffile` (with `imagecodecs` for LZW, PackBits
and the other codecs): 16-bit and 32-bit float samples, gray, gray+alpha, RGB and RGBA, contiguous
or separate planes, any compression `imagecodecs` decodes. `probe_tiff` reads the header of every
TIFF first, so files with several full-size pages (stacks, multi-page documents) are refused
before any work instead of losing every page but the first.

Arrays here are the stored samples, (H, W, C) in the file's own dtype, not yet turned upright.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from m2aenet.errors import InputError

_TIFF_MAGICS = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")  # classic and BigTIFF
_ORIENTATION_TAG = 274
_ICC_TAG = 34675
_MINISBLACK, _RGB = 1, 2
_ASSOCIATED_ALPHA = 1
_REDUCED_RESOLUTION = 1  # NewSubfileType bit of a preview / pyramid level
# Sample types kept exactly: the 8-bit ones only need tifffile for associated alpha.
_KEPT_DTYPES = (np.dtype(np.uint8), np.dtype(np.uint16), np.dtype(np.float32))


@dataclass(frozen=True)
class TiffLayout:
    """What the first page of a TIFF stores.

    dtype: uint8, uint16 or float32 samples (others are refused by `probe_tiff`).
    channels: 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA. associated_alpha: the alpha channel is
    premultiplied into the colour (TIFF ExtraSamples = 1). separate_planes: planar
    configuration 2 (one plane per sample). orientation: TIFF tag 274 (1..8).
    """

    width: int
    height: int
    dtype: np.dtype
    channels: int
    associated_alpha: bool
    separate_planes: bool
    orientation: int
    icc_profile: bytes | None

    @property
    def needs_tifffile(self) -> bool:
        """True when Pillow would change the samples (wide or float samples, premultiplied
        alpha, separate planes)."""
        return self.dtype != np.uint8 or self.associated_alpha or self.separate_planes


def is_tiff(path: str | os.PathLike) -> bool:
    """True when the file starts with a TIFF or BigTIFF signature (whatever its extension)."""
    with open(path, "rb") as stream:
        return stream.read(4) in _TIFF_MAGICS


def probe_tiff(path: Path) -> TiffLayout:
    """Read the header of a TIFF; refuse (InputError naming the file) several full-size pages
    and, for files that need tifffile, sample types or colour models we cannot keep."""
    import tifffile

    try:
        with tifffile.TiffFile(path) as tiff:
            pages = list(tiff.pages)
            full_size = [page for page in pages if not page.subfiletype & _REDUCED_RESOLUTION]
            if len(full_size) > 1:
                raise InputError(
                    f"{path}: TIFF with {len(full_size)} pages (frames); only single-image "
                    "files are supported, and writing the first page alone would lose the "
                    "others: split the pages into separate files"
                )
            page = pages[0]
            layout = _layout_of(page)
    except InputError:
        raise
    except (tifffile.TiffFileError, OSError, ValueError, KeyError, IndexError) as error:
        raise InputError(f"{path}: cannot read TIFF header ({error})") from error
    if layout.needs_tifffile:
        _check_supported(path, page, layout)
    return layout


def _layout_of(page) -> TiffLayout:
    extra = tuple(int(kind) for kind in page.extrasamples)
    orientation_tag = page.tags.get(_ORIENTATION_TAG)
    orientation = int(orientation_tag.value) if orientation_tag is not None else 1
    icc_tag = page.tags.get(_ICC_TAG)
    return TiffLayout(
        width=int(page.imagewidth),
        height=int(page.imagelength),
        dtype=np.dtype(page.dtype) if page.dtype is not None else np.dtype(np.uint8),
        channels=int(page.samplesperpixel),
        associated_alpha=bool(extra) and extra[0] == _ASSOCIATED_ALPHA,
        separate_planes=int(page.samplesperpixel) > 1 and int(page.planarconfig) == 2,
        orientation=orientation if 1 <= orientation <= 8 else 1,
        icc_profile=bytes(icc_tag.value) if icc_tag is not None else None,
    )


def _check_supported(path: Path, page, layout: TiffLayout) -> None:
    """InputError for the TIFFs read here whose samples we could not write back."""
    if layout.dtype not in _KEPT_DTYPES:
        raise InputError(
            f"{path}: unsupported TIFF samples ({page.bitspersample}-bit "
            f"{np.dtype(layout.dtype).name}); supported: 8/16-bit unsigned and 32-bit float"
        )
    photometric = int(page.photometric)
    extra = len(page.extrasamples)
    if (photometric, layout.channels - extra) not in ((_MINISBLACK, 1), (_RGB, 3)) or extra > 1:
        raise InputError(
            f"{path}: unsupported TIFF colour layout (photometric {page.photometric.name}, "
            f"{layout.channels} samples per pixel) for {layout.dtype.name} samples; "
            "supported: gray, gray+alpha, RGB, RGBA"
        )


def read_tiff(path: Path, layout: TiffLayout) -> np.ndarray:
    """The stored samples of the first page, (H, W, C) in the file's dtype (contiguous)."""
    import tifffile

    try:
        with tifffile.TiffFile(path) as tiff:
            page = tiff.pages[0]
            samples = page.asarray()
            axes = page.axes
    except (tifffile.TiffFileError, OSError, ValueError, KeyError, RuntimeError) as error:
        raise InputError(f"{path}: cannot decode TIFF ({error})") from error
    if "S" not in axes:
        samples = samples[..., None]
    elif axes.index("S") < axes.index("X"):  # planar configuration "separate": (S, Y, X)
        samples = np.moveaxis(samples, axes.index("S"), -1)
    samples = samples.reshape(layout.height, layout.width, layout.channels)
    return np.ascontiguousarray(samples)


def write_tiff(
    path: Path, pixels: np.ndarray, icc: bytes | None, associated_alpha: bool = False
) -> None:
    """Write (H, W, 1|2|3|4) uint8/uint16/float32 samples as a zlib-compressed TIFF.

    2 and 4 channels carry alpha as an extra sample, premultiplied when `associated_alpha`
    (as it was read), so every sample is stored as given.
    """
    import tifffile

    channels = pixels.shape[2]
    alpha_kind = "assocalpha" if associated_alpha else "unassalpha"
    tifffile.imwrite(
        path,
        pixels[..., 0] if channels == 1 else pixels,
        photometric="minisblack" if channels <= 2 else "rgb",
        planarconfig="contig" if channels > 1 else None,
        extrasamples=(alpha_kind,) if channels in (2, 4) else None,
        compression="zlib",
        iccprofile=icc,
        metadata=None,
    )
