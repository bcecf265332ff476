"""Reading and writing images: the one place that touches image files.

Arrays are float32 in [0, 1], shape (H, W, 3) for colour, unless a function says otherwise.

`load_image` is the single decoder of the project. It reads PNG, JPEG, TIFF, WebP and BMP in
8 or 16 bits per sample, gray, palette, gray+alpha, RGB, RGBA and CMYK, applies the EXIF
orientation so pixels come out upright, and keeps what `save_image` needs to write a result the
way the input was stored (format from the output extension, bit depth, gray, alpha, EXIF with the
orientation reset to 1, ICC profile).

16-bit colour: Pillow holds no 16-bit RGB mode and opens such PNG/TIFF files as 8-bit "RGB"
(high bytes only). We decode them twice with Pillow's own decoders, once keeping the high byte
and once the low byte of each sample, and join the two: exact, fast and with every compression
Pillow and libtiff know. Writing 16-bit colour PNG uses a small built-in encoder; 16-bit TIFF is
written with `tifffile` (installed with scikit-image).

Safety: a missing, empty, truncated or non-image file, an unsupported pixel mode or an image with
more than `MAX_PIXELS` pixels raises `InputError` naming the file. Truncated files are never
padded (Pillow's `ImageFile.LOAD_TRUNCATED_IMAGES` is held False while we decode, even if other
code set it, and every image is fully decoded). Pillow's pixel limit and that switch are
process-wide settings, so `load_image` holds a lock while it decodes: decode in several
processes (DataLoader workers), not threads, for parallel reading.
"""

from __future__ import annotations

import contextlib
import os
import struct
import sys
import threading
import warnings
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, UnidentifiedImageError, features

from m2aenet.atomic import atomic_path
from m2aenet.errors import InputError

MAX_PIXELS = 2**28
"""Largest image (width * height) read by default, about 268 megapixels; bigger is refused."""

SUPPORTED_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".bmp")
"""File extensions read and written (lower case; matching is case-insensitive)."""

_EXTENSION_FORMAT = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".webp": "WEBP",
    ".bmp": "BMP",
}
# The JPEG opener also returns "MPO" images (camera JPEGs with extra preview frames).
_PILLOW_FORMATS = ("PNG", "JPEG", "TIFF", "WEBP", "BMP")
_SIXTEEN_BIT_FORMATS = ("PNG", "TIFF")
_ALPHA_FORMATS = ("PNG", "TIFF", "WEBP", "BMP")

# Rawmodes with which Pillow unpacks 16-bit colour into 8-bit modes by keeping the high byte;
# the same rawmode with the other byte order keeps the low byte.
_WIDE_RAWMODES = {
    f"{layout};16{order}" for layout in ("RGB", "RGBA", "RGBX") for order in ("B", "L", "N")
}
_NATIVE_ORDER = "L" if sys.byteorder == "little" else "B"
_GRAY16_MODES = ("I;16", "I;16L", "I;16B", "I;16N")
# CMYK/LAB profiles do not describe the RGB pixels we return, so they are not carried over.
_NON_RGB_PROFILE_MODES = ("CMYK", "LAB", "HSV")

_EXIF_HEADER = b"Exif\x00\x00"
_ORIENTATION_TAG = 0x0112

# Pillow's pixel limit and truncation switch are module globals: hold this lock while they
# are set to ours.
_PILLOW_LOCK = threading.RLock()


@dataclass
class LoadedImage:
    """A decoded image plus what is needed to save a result the same way.

    rgb: float32 (H, W, 3) in [0, 1], upright (EXIF orientation applied); gray is replicated.
    alpha: float32 (H, W) in [0, 1], or None when the file has no transparency.
    bit_depth: 8 or 16, bits per sample of the stored pixels.
    mode: the Pillow mode the file opened as (16-bit colour opens as "RGB"/"RGBA").
    format: "PNG", "JPEG", "TIFF", "WEBP" or "BMP".
    is_gray: True when the file stores one colour channel.
    exif: raw EXIF block ("Exif\\0\\0" + TIFF structure) with orientation reset to 1, or None.
    icc_profile: the embedded ICC profile of the RGB/gray pixels, or None.
    lossless: False for lossy-compressed pixels (JPEG, lossy WebP); `save_image` writes a WebP
        result lossless when this is True, so untouched pixels keep their values.
    """

    rgb: np.ndarray
    alpha: np.ndarray | None
    bit_depth: int
    mode: str
    format: str
    is_gray: bool
    exif: bytes | None
    icc_profile: bytes | None
    path: Path
    lossless: bool = True

    @property
    def height(self) -> int:
        return int(self.rgb.shape[0])

    @property
    def width(self) -> int:
        return int(self.rgb.shape[1])


@dataclass(frozen=True)
class ImageInfo:
    """Header facts read without decoding pixels; width/height are after EXIF orientation."""

    width: int
    height: int
    format: str
    mode: str
    path: Path


def is_image_path(path: str | os.PathLike) -> bool:
    """True for a file name with a supported extension that is not hidden (no leading dot).

    Hidden names are excluded because they are not pictures: macOS "._x.png" resource forks and
    the ".x.png.*.tmp.png" files an interrupted atomic write leaves behind.
    """
    path = Path(path)
    return path.suffix.lower() in SUPPORTED_EXTENSIONS and not path.name.startswith(".")


def output_format(path: str | os.PathLike) -> str:
    """The file format ("PNG", "JPEG", ...) that `save_image` writes for this file name."""
    path = Path(path)
    try:
        return _EXTENSION_FORMAT[path.suffix.lower()]
    except KeyError:
        supported = ", ".join(SUPPORTED_EXTENSIONS)
        raise InputError(
            f"{path}: unsupported output extension {path.suffix!r} (use one of {supported})"
        ) from None


# --------------------------------------------------------------------------------------------
# Reading


def load_image(path: str | os.PathLike, max_pixels: int | None = None) -> LoadedImage:
    """Decode an image file fully into float32 arrays, upright, with its saving metadata.

    max_pixels: refuse images with more pixels than this (default `MAX_PIXELS`).
    Multi-frame files (animated PNG/WebP, multi-page TIFF) give their first frame.
    Raises InputError naming the file for a missing, empty, truncated, non-image or too large
    file and for pixel formats we cannot represent (32-bit float, signed samples, LAB).
    """
    path = Path(path)
    with _open_image(path, max_pixels) as image:
        fmt = "JPEG" if image.format == "MPO" else str(image.format)
        mode = image.mode
        try:
            pixels, is_gray, bit_depth = _decode(image, path)
        except InputError:
            raise
        except (OSError, ValueError, SyntaxError, EOFError, struct.error, zlib.error) as error:
            raise InputError(f"{path}: cannot decode image ({error})") from error
        # Read after decoding: PNG may keep its eXIf chunk after the pixel data.
        orientation, exif = _exif_of(image)
        icc = image.info.get("icc_profile") or None
    if mode in _NON_RGB_PROFILE_MODES:
        icc = None
    pixels = _apply_orientation(pixels, orientation)

    values = pixels.astype(np.float32)
    values /= np.float32(65535.0 if bit_depth == 16 else 255.0)
    channels = values.shape[2]
    if is_gray:
        rgb = np.repeat(values[..., :1], 3, axis=2)
    else:
        rgb = np.ascontiguousarray(values[..., :3])
    alpha = np.ascontiguousarray(values[..., -1]) if channels in (2, 4) else None
    return LoadedImage(
        rgb=rgb,
        alpha=alpha,
        bit_depth=bit_depth,
        mode=mode,
        format=fmt,
        is_gray=is_gray,
        exif=exif,
        icc_profile=icc,
        path=path,
        lossless=_is_lossless(path, fmt),
    )


def _is_lossless(path: Path, fmt: str) -> bool:
    """Whether the file's pixels are stored losslessly (JPEG never; WebP by its chunks)."""
    if fmt == "JPEG":
        return False
    if fmt == "WEBP":
        return webp_is_lossless(path)
    return True


def webp_is_lossless(path: str | os.PathLike) -> bool:
    """True when a WebP file's (first) image is VP8L, the lossless codec, not VP8 (lossy).

    A RIFF/WEBP file holds chunks: a simple file one `VP8 ` or `VP8L` chunk; an extended one
    (`VP8X`) metadata chunks before it, and an animation `ANMF` frames that each hold one.
    Pillow does not report which codec a file used, so the chunks are read here.
    """
    with open(path, "rb") as stream:
        data = stream.read(1 << 20)  # image chunks come first or after small metadata
    if data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        return False
    offset = 12
    while offset + 8 <= len(data):
        kind = data[offset : offset + 4]
        size = struct.unpack_from("<I", data, offset + 4)[0]
        if kind in (b"VP8L", b"VP8 "):
            return kind == b"VP8L"
        if kind == b"ANMF":
            offset += 8 + 16  # into the frame: its header, then its image chunks
            continue
        offset += 8 + size + (size & 1)  # chunks are padded to an even size
    return False


def read_image_info(path: str | os.PathLike, max_pixels: int | None = None) -> ImageInfo:
    """Read an image's size and format from its header only (no pixel decoding).

    The size is after EXIF orientation, i.e. the shape `load_image` will return, except for a
    PNG whose eXIf chunk comes after its pixel data (read only by a full decode).
    Raises InputError like `load_image` for missing, empty, non-image or too large files;
    truncated pixel data is only found by `load_image`.
    """
    path = Path(path)
    with _open_image(path, max_pixels) as image:
        width, height = image.size
        fmt = "JPEG" if image.format == "MPO" else str(image.format)
        if fmt == "TIFF":
            orientation = 1  # Pillow reports (and decodes) TIFFs already upright
        elif fmt == "PNG" and "exif" not in image.info:
            orientation = 1  # getexif() would decode the whole PNG to look for a late chunk
        else:
            orientation, _ = _exif_of(image)
        mode = image.mode
    if orientation in (5, 6, 7, 8):
        width, height = height, width
    return ImageInfo(width=width, height=height, format=fmt, mode=mode, path=path)


def read_rgb(path: str | os.PathLike) -> np.ndarray:
    """Read an image as float32 RGB (H, W, 3) in [0, 1], upright.

    16-bit images keep their precision; gray is replicated to RGB; alpha is dropped.
    Raises InputError naming the file when it cannot be decoded.
    """
    return load_image(path).rgb


def read_mask(path: str | os.PathLike) -> np.ndarray:
    """Read a blur mask as float32 (H, W) in {0, 1}: pixels brighter than half count as blurred.

    The mean of the colour channels is thresholded (above 0.5, i.e. > 127 in 8 bits), so gray,
    RGB and 16-bit masks all work; the EXIF orientation is applied like for the photos.
    """
    rgb = load_image(path).rgb
    return (rgb.mean(axis=2) > 0.5).astype(np.float32)


@contextlib.contextmanager
def _open_image(path: Path, max_pixels: int | None) -> Iterator[Image.Image]:
    """Open `path` with Pillow (header only) under our pixel limit; yield it with the lock held."""
    limit = MAX_PIXELS if max_pixels is None else int(max_pixels)
    if not path.exists():
        raise InputError(f"{path}: file not found")
    if path.is_dir():
        raise InputError(f"{path}: is a folder, not an image file")
    if path.stat().st_size == 0:
        raise InputError(f"{path}: empty file (0 bytes)")
    with _PILLOW_LOCK, warnings.catch_warnings():
        Image.init()  # registers every plugin (MPO, TIFF, WebP), or `formats=` cannot name them
        # Pillow warns between its limit and twice that: we want a hard limit, so it is an error.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        previous_limit = Image.MAX_IMAGE_PIXELS
        previous_truncated = ImageFile.LOAD_TRUNCATED_IMAGES
        Image.MAX_IMAGE_PIXELS = limit
        # Another library may have switched this on; a truncated file must still be an error.
        ImageFile.LOAD_TRUNCATED_IMAGES = False
        try:
            try:
                image = Image.open(path, formats=_PILLOW_FORMATS)
            except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
                raise InputError(
                    f"{path}: image too large (over {limit} pixels; possible decompression bomb)"
                ) from error
            except UnidentifiedImageError as error:
                raise InputError(
                    f"{path}: not a readable PNG/JPEG/TIFF/WebP/BMP image "
                    f"(unknown or corrupt header)"
                ) from error
            except (OSError, ValueError, SyntaxError, EOFError, struct.error) as error:
                raise InputError(f"{path}: cannot read image header ({error})") from error
            with image:
                width, height = image.size
                if width * height > limit:
                    raise InputError(
                        f"{path}: image too large ({width}x{height} = {width * height} pixels, "
                        f"limit {limit})"
                    )
                try:
                    yield image
                except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
                    raise InputError(
                        f"{path}: image too large (over {limit} pixels; possible "
                        "decompression bomb)"
                    ) from error
        finally:
            Image.MAX_IMAGE_PIXELS = previous_limit
            ImageFile.LOAD_TRUNCATED_IMAGES = previous_truncated


def _tile_rawmode(image: Image.Image) -> str | None:
    """The rawmode of the first decoder tile (how the file's bytes map to Pillow's mode)."""
    if not image.tile:
        return None
    args = image.tile[0].args
    rawmode = args[0] if isinstance(args, tuple) and args else args
    return rawmode if isinstance(rawmode, str) else None


def _with_rawmode(image: Image.Image, rawmode: str) -> None:
    """Make every decoder tile of an unloaded image unpack with `rawmode`."""
    tiles = []
    for tile in image.tile:
        args = tile.args
        args = (rawmode, *args[1:]) if isinstance(args, tuple) else rawmode
        tiles.append(tile._replace(args=args))
    image.tile = tiles


def _swap_byte_order(rawmode: str) -> str:
    """The rawmode that keeps the other byte of each sample (RGB;16B <-> RGB;16L)."""
    order = rawmode[-1]
    native = _NATIVE_ORDER
    swapped = {"B": "L", "L": "B", "N": "B" if native == "L" else "L"}[order]
    return rawmode[:-1] + swapped


def _loaded_array(image: Image.Image) -> np.ndarray:
    image.load()
    return np.asarray(image)


def _decode(image: Image.Image, path: Path) -> tuple[np.ndarray, bool, int]:
    """Decode all pixels: (uint8|uint16 array (H, W, C), is_gray, bit_depth).

    C is 1 (gray), 2 (gray + alpha), 3 (RGB) or 4 (RGBA).
    """
    rawmode = _tile_rawmode(image)
    mode = image.mode
    if rawmode in _WIDE_RAWMODES:
        high = _loaded_array(image).astype(np.uint16)
        # A second, independent decode of the same file keeping the low bytes.
        with Image.open(path, formats=_PILLOW_FORMATS) as again:
            _with_rawmode(again, _swap_byte_order(rawmode))
            low = _loaded_array(again)
        if low.shape != high.shape:
            raise InputError(f"{path}: inconsistent 16-bit decode")
        return (high << 8) | low, False, 16
    if rawmode == "LA;16B":
        # 16-bit gray+alpha PNG: unpack the four bytes of a pixel into R, G, B, A untouched.
        _with_rawmode(image, "RGBA")
        q = _loaded_array(image).astype(np.uint16)
        gray = (q[..., 0] << 8) | q[..., 1]
        alpha = (q[..., 2] << 8) | q[..., 3]
        return np.stack([gray, alpha], axis=2), True, 16
    if mode in _GRAY16_MODES:
        return _loaded_array(image).astype(np.uint16)[..., None], True, 16
    if mode == "I":
        values = _loaded_array(image)
        if values.size and (values.min() < 0 or values.max() > 65535):
            raise InputError(
                f"{path}: unsupported pixel values (signed or 32-bit integer samples, "
                f"range {values.min()}..{values.max()})"
            )
        return values.astype(np.uint16)[..., None], True, 16
    if mode in ("F", "I;16S", "LAB") or mode.startswith("I;32"):
        raise InputError(f"{path}: unsupported pixel mode {mode!r}")

    image.load()
    transparent = image.has_transparency_data
    if mode in ("1", "L", "LA", "La"):
        target = "LA" if transparent else "L"
    else:
        target = "RGBA" if transparent else "RGB"
    try:
        converted = image if image.mode == target else image.convert(target)
    except ValueError as error:
        raise InputError(f"{path}: unsupported pixel mode {mode!r} ({error})") from error
    pixels = np.asarray(converted)
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    return pixels, target in ("L", "LA"), 8


def _apply_orientation(pixels: np.ndarray, orientation: int) -> np.ndarray:
    """Turn (H, W, C) pixels stored with EXIF orientation 1..8 upright (as Pillow's
    ImageOps.exif_transpose does)."""
    if orientation == 2:
        return pixels[:, ::-1]
    if orientation == 3:
        return pixels[::-1, ::-1]
    if orientation == 4:
        return pixels[::-1]
    if orientation == 5:
        return pixels.swapaxes(0, 1)
    if orientation == 6:
        return np.rot90(pixels, -1)
    if orientation == 7:
        return pixels[::-1, ::-1].swapaxes(0, 1)
    if orientation == 8:
        return np.rot90(pixels, 1)
    return pixels


# --------------------------------------------------------------------------------------------
# EXIF: the orientation is read and reset in the raw block, so every other tag stays byte-exact.


def _exif_orientation(tiff: bytes) -> tuple[int, int] | None:
    """(orientation value, byte offset of the value) in IFD0 of a TIFF-structured block."""
    if len(tiff) < 8 or tiff[:2] not in (b"II", b"MM"):
        return None
    order = "<" if tiff[:2] == b"II" else ">"
    magic, ifd = struct.unpack_from(order + "HI", tiff, 2)
    if magic != 42 or ifd + 2 > len(tiff):
        return None
    (count,) = struct.unpack_from(order + "H", tiff, ifd)
    for index in range(count):
        entry = ifd + 2 + 12 * index
        if entry + 12 > len(tiff):
            break
        tag, kind, number = struct.unpack_from(order + "HHI", tiff, entry)
        if tag == _ORIENTATION_TAG and kind == 3 and number >= 1:  # SHORT
            (value,) = struct.unpack_from(order + "H", tiff, entry + 8)
            return value, entry + 8
    return None


def _exif_of(image: Image.Image) -> tuple[int, bytes | None]:
    """(orientation 1..8, EXIF block to save with orientation reset to 1 or None)."""
    if image.format == "TIFF":
        # Pillow turns TIFFs upright while decoding and then drops the tag, so this is 1 after
        # a load. A TIFF's tags are its own file structure, not a block to re-save elsewhere.
        try:
            orientation = int(image.getexif().get(_ORIENTATION_TAG, 1))
        except (ValueError, TypeError, struct.error, OSError):
            orientation = 1
        return (orientation if 1 <= orientation <= 8 else 1), None
    raw = image.info.get("exif")
    if not isinstance(raw, bytes | bytearray) or not raw:
        return 1, None
    tiff = bytes(raw[len(_EXIF_HEADER) :] if raw.startswith(_EXIF_HEADER) else raw)
    try:
        found = _exif_orientation(tiff)
    except struct.error:
        return 1, None  # unparseable: drop it rather than re-save an orientation we ignored
    if found is None:
        return 1, _EXIF_HEADER + tiff
    orientation, offset = found
    order = "<" if tiff[:2] == b"II" else ">"
    patched = bytearray(tiff)
    struct.pack_into(order + "H", patched, offset, 1)
    return (orientation if 1 <= orientation <= 8 else 1), _EXIF_HEADER + bytes(patched)


# --------------------------------------------------------------------------------------------
# Writing


def to_uint8(array: np.ndarray) -> np.ndarray:
    """Float [0, 1] -> uint8 with rounding, the way a saved output is quantized."""
    return np.clip(np.round(np.asarray(array, dtype=np.float32) * 255.0), 0, 255).astype(np.uint8)


def _quantize(array: np.ndarray, bit_depth: int) -> np.ndarray:
    """Float [0, 1] or uint8/uint16 -> uint8 (bit_depth 8) or uint16 (16), rounding."""
    if array.dtype == np.uint8:
        return array if bit_depth == 8 else array.astype(np.uint16) * np.uint16(257)
    if array.dtype == np.uint16:
        if bit_depth == 16:
            return array
        return ((array.astype(np.uint32) + 128) // 257).astype(np.uint8)
    values = np.asarray(array, dtype=np.float32)
    if not np.isfinite(values).all():
        raise ValueError("image contains NaN or infinite values")
    peak = 255.0 if bit_depth == 8 else 65535.0
    dtype = np.uint8 if bit_depth == 8 else np.uint16
    return np.clip(np.round(values * np.float32(peak)), 0, peak).astype(dtype)


def save_image(
    path: str | os.PathLike,
    rgb: np.ndarray,
    like: LoadedImage | None = None,
    jpeg_quality: int = 95,
    *,
    webp_lossless: bool = False,
) -> None:
    """Write an image atomically, in the format named by the extension of `path`.

    rgb: float (H, W, 3) or (H, W) in [0, 1] (values outside are clipped), or uint8/uint16.
    like: the LoadedImage the result comes from; the output keeps its bit depth (16 bits in
    PNG/TIFF, 8 elsewhere), stays gray if it was gray (channel mean), gets its alpha back (not
    in JPEG, which has none) and its EXIF (orientation 1) and ICC profile. Without `like`,
    uint16 arrays are written in 16 bits where the format allows, everything else in 8.
    jpeg_quality: JPEG and lossy WebP quality (1-95+); JPEG is written without chroma
    subsampling so fine restored detail survives. webp_lossless: write lossless WebP; also
    done when `like` was lossless (a lossless WebP, PNG, TIFF), so pixels the caller kept
    come back exactly.
    """
    path = Path(path)
    fmt = output_format(path)
    array = np.asarray(rgb)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    if not (array.ndim == 2 or (array.ndim == 3 and array.shape[2] == 3)):
        raise ValueError(f"save_image expects (H, W, 3) or (H, W), got shape {array.shape}")
    height, width = array.shape[:2]

    if like is not None:
        bit_depth = like.bit_depth
        gray = like.is_gray
    else:
        bit_depth = 16 if array.dtype == np.uint16 else 8
        gray = array.ndim == 2
    if fmt not in _SIXTEEN_BIT_FORMATS:
        bit_depth = 8
    if gray and array.ndim == 3:
        if array.dtype.kind == "f":
            array = array.mean(axis=2, dtype=np.float32)
        else:
            array = np.round(array.mean(axis=2)).astype(array.dtype)
    channels = [_quantize(array, bit_depth)]
    if channels[0].ndim == 2:
        channels[0] = channels[0][..., None]

    if like is not None and like.alpha is not None and fmt in _ALPHA_FORMATS:
        if like.alpha.shape != (height, width):
            raise ValueError(
                f"alpha of {like.path} has shape {like.alpha.shape}, image is {(height, width)}"
            )
        channels.append(_quantize(like.alpha, bit_depth)[..., None])
    pixels = np.concatenate(channels, axis=2) if len(channels) > 1 else channels[0]
    _write_pixels(
        path,
        pixels,
        fmt,
        exif=like.exif if like is not None else None,
        icc=like.icc_profile if like is not None else None,
        quality=jpeg_quality,
        webp_lossless=webp_lossless or (like is not None and like.lossless),
    )


def write_png(path: str | os.PathLike, array: np.ndarray, compress_level: int = 6) -> None:
    """Write (H, W) or (H, W, 1|2|3|4) as PNG atomically; floats are taken as [0, 1] -> 8-bit,
    uint16 is written in 16 bits. `compress_level` (0-9, zlib) trades file size for speed on
    8-bit images: data sets written in bulk use 1."""
    array = np.asarray(array)
    if array.dtype != np.uint8 and array.dtype != np.uint16:
        array = to_uint8(array)
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3 or array.shape[2] not in (1, 2, 3, 4):
        raise ValueError(f"write_png expects (H, W) or (H, W, 1..4), got shape {array.shape}")
    _write_pixels(Path(path), array, "PNG", png_compress_level=compress_level)


def _write_pixels(
    path: Path,
    pixels: np.ndarray,
    fmt: str,
    *,
    exif: bytes | None = None,
    icc: bytes | None = None,
    quality: int = 95,
    webp_lossless: bool = False,
    png_compress_level: int = 6,
) -> None:
    """Write uint8/uint16 (H, W, C) pixels, C = 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA."""
    channels = pixels.shape[2]
    if fmt == "JPEG" and channels in (2, 4):
        pixels = pixels[..., : channels - 1]  # JPEG has no alpha
    elif fmt in ("WEBP", "BMP") or (fmt == "TIFF" and pixels.dtype == np.uint16):
        # These writers have no gray+alpha (and WebP no gray): store as colour.
        if channels == 2:
            pixels = np.concatenate([np.repeat(pixels[..., :1], 3, axis=2), pixels[..., 1:]], 2)
        elif channels == 1 and fmt == "WEBP":
            pixels = np.repeat(pixels, 3, axis=2)
    pixels = np.ascontiguousarray(pixels)

    with atomic_path(path) as tmp:
        if pixels.dtype == np.uint16 and fmt == "PNG":
            with open(tmp, "wb") as stream:
                _write_png16(stream, pixels, icc=icc, exif=exif)
        elif pixels.dtype == np.uint16 and fmt == "TIFF":
            _write_tiff16(tmp, pixels, icc=icc)
        else:
            options: dict[str, object] = {}
            # A JPEG APP1 segment holds at most 65533 bytes: a longer block is left out.
            if exif and fmt != "BMP" and not (fmt == "JPEG" and len(exif) > 65533):
                options["exif"] = exif
            if icc and fmt != "BMP":
                options["icc_profile"] = icc
            if fmt == "JPEG":
                options.update(quality=int(quality), subsampling=0)
            elif fmt == "WEBP":
                options.update(quality=int(quality), lossless=bool(webp_lossless))
            elif fmt == "PNG":
                options["compress_level"] = int(png_compress_level)
            elif fmt == "TIFF" and features.check("libtiff"):
                options["compression"] = "tiff_deflate"
            image = Image.fromarray(pixels[..., 0] if pixels.shape[2] == 1 else pixels)
            image.save(tmp, format=fmt, **options)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _paeth_filter(rows: np.ndarray, previous: np.ndarray, bpp: int) -> np.ndarray:
    """PNG Paeth filter of uint8 scanlines (N, B) given the scanline above the first one."""
    raw = rows.astype(np.int16)
    up = np.concatenate([previous[None].astype(np.int16), raw[:-1]], axis=0)
    left = np.zeros_like(raw)
    left[:, bpp:] = raw[:, :-bpp]
    upper_left = np.zeros_like(raw)
    upper_left[:, bpp:] = up[:, :-bpp]
    # Paeth predictor: whichever neighbour is closest to left + up - upper_left.
    dist_left = np.abs(up - upper_left)
    dist_up = np.abs(left - upper_left)
    dist_corner = np.abs(left + up - 2 * upper_left)
    predictor = np.where(
        (dist_left <= dist_up) & (dist_left <= dist_corner),
        left,
        np.where(dist_up <= dist_corner, up, upper_left),
    )
    return ((raw - predictor) & 0xFF).astype(np.uint8)


def _write_png16(stream, pixels: np.ndarray, icc: bytes | None, exif: bytes | None) -> None:
    """Encode uint16 (H, W, C) as a 16-bit PNG (Pillow cannot write 16-bit colour)."""
    height, width, channels = pixels.shape
    color_type = {1: 0, 2: 4, 3: 2, 4: 6}[channels]
    stream.write(b"\x89PNG\r\n\x1a\n")
    header = struct.pack(">IIBBBBB", width, height, 16, color_type, 0, 0, 0)
    stream.write(_png_chunk(b"IHDR", header))
    if icc:
        stream.write(_png_chunk(b"iCCP", b"ICC Profile\x00\x00" + zlib.compress(icc)))
    if exif:
        block = exif[len(_EXIF_HEADER) :] if exif.startswith(_EXIF_HEADER) else exif
        stream.write(_png_chunk(b"eXIf", block))
    scanlines = pixels.astype(">u2").view(np.uint8).reshape(height, width * channels * 2)
    compressor = zlib.compressobj(6)
    previous = np.zeros(scanlines.shape[1], np.uint8)
    pending = b""
    # Row blocks bound the memory of the int16 filter temporaries on big images.
    rows_per_block = max(1, (1 << 22) // max(1, scanlines.shape[1]))
    for start in range(0, height, rows_per_block):
        block = scanlines[start : start + rows_per_block]
        filtered = _paeth_filter(block, previous, bpp=channels * 2)
        previous = block[-1]
        lines = np.empty((block.shape[0], block.shape[1] + 1), np.uint8)
        lines[:, 0] = 4  # filter type Paeth
        lines[:, 1:] = filtered
        pending += compressor.compress(lines.tobytes())
        if len(pending) >= 1 << 20:
            stream.write(_png_chunk(b"IDAT", pending))
            pending = b""
    pending += compressor.flush()
    stream.write(_png_chunk(b"IDAT", pending))
    stream.write(_png_chunk(b"IEND", b""))


def _write_tiff16(path: Path, pixels: np.ndarray, icc: bytes | None) -> None:
    """Write uint16 (H, W, 1|3|4) as a deflate-compressed 16-bit TIFF (Pillow cannot)."""
    import tifffile  # installed with scikit-image; only needed here

    channels = pixels.shape[2]
    tifffile.imwrite(
        path,
        pixels[..., 0] if channels == 1 else pixels,
        photometric="minisblack" if channels == 1 else "rgb",
        extrasamples=("unassalpha",) if channels == 4 else None,
        compression="zlib",
        iccprofile=icc,
        metadata=None,
    )
