"""Reading and writing images: the one place that touches image files.

Arrays are float32 in [0, 1], shape (H, W, 3) for colour, unless a function says otherwise.

`load_image` is the single decoder of the project. It reads PNG, JPEG, TIFF, WebP and BMP in
8 or 16 bits per sample (TIFF also 32-bit float), gray, palette, gray+alpha, RGB, RGBA and CMYK,
applies the EXIF orientation so pixels come out upright, and keeps what `save_image` needs to
write a result the way the input was stored (format from the output extension, bit depth, gray,
alpha, EXIF with the orientation reset to 1, ICC profile).

Each file goes to the library that keeps its samples exactly: Pillow for 8-bit pictures,
OpenCV for 16-bit PNG (Pillow holds no 16-bit colour mode), `tifffile` for 16-bit, float and
premultiplied-alpha TIFF (`tiffio`). A file this module could not write back as it was read is
refused before any work: several frames (multi-page TIFF, animated PNG/WebP), float samples
other than 32-bit, signed or 32-bit integers, colour models other than gray/RGB at 16 bits.

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
import threading
import warnings
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, UnidentifiedImageError, features

from m2aenet import tiffio
from m2aenet.atomic import atomic_path
from m2aenet.errors import InputError, file_problem

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
    alpha: float32 (H, W) in [0, 1], or None when the file has no transparency (a PNG tRNS
        colour key becomes an alpha of 0 or 1).
    bit_depth: 8 or 16, bits per sample of the stored pixels; 32 for 32-bit float TIFF
        samples, which `rgb` and `alpha` hold as stored (meant as [0, 1], not clipped).
    mode: the Pillow mode the file opened as (16-bit colour opens as "RGB"/"RGBA"); for
        TIFFs read with tifffile, dtype and samples per pixel ("uint16x3").
    format: "PNG", "JPEG", "TIFF", "WEBP" or "BMP".
    is_gray: True when the file stores one colour channel.
    exif: raw EXIF block ("Exif\\0\\0" + TIFF structure) with orientation reset to 1, or None.
    icc_profile: the embedded ICC profile of the RGB/gray pixels, or None.
    lossless: False for lossy-compressed pixels (JPEG, lossy WebP); `save_image` writes a WebP
        result lossless when this is True, so untouched pixels keep their values.
    associated_alpha: the colour is premultiplied by alpha (TIFF ExtraSamples = 1): `rgb`
        holds the stored, premultiplied samples and `save_image` writes them back as such.
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
    associated_alpha: bool = False

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
    Raises InputError naming the file for a missing, empty, truncated, non-image, non-regular
    (FIFO, device) or too large file, for several frames (multi-page TIFF, animated PNG/WebP;
    a camera JPEG's extra MPO frames and a TIFF's reduced-resolution previews are not frames)
    and for samples we cannot write back exactly (signed or 32-bit integers, 64-bit float, LAB).
    """
    path = Path(path)
    tiff = _check_file(path)
    if tiff is not None and tiff.needs_tifffile:
        _check_pixel_count(path, tiff.width, tiff.height, max_pixels)
        samples = tiffio.read_tiff(path, tiff)
        return _loaded_image(
            _apply_orientation(samples, tiff.orientation),
            path=path,
            fmt="TIFF",
            mode=f"{tiff.dtype.name}x{tiff.channels}",
            is_gray=tiff.channels <= 2,
            exif=None,
            icc_profile=tiff.icc_profile,
            associated_alpha=tiff.associated_alpha,
        )
    with _open_image(path, max_pixels) as image:
        fmt = "JPEG" if image.format == "MPO" else str(image.format)
        mode = image.mode
        try:
            if fmt == "PNG" and _png_header(path)[0] == 16:
                pixels, is_gray = _decode_png16(image, path)
            else:
                pixels, is_gray = _decode_8bit(image, path)
        except InputError:
            raise
        except (OSError, ValueError, SyntaxError, EOFError, struct.error, zlib.error) as error:
            raise InputError(f"{path}: cannot decode image ({error})") from error
        # Read after decoding: PNG may keep its eXIf chunk after the pixel data.
        orientation, exif = _exif_of(image)
        icc = image.info.get("icc_profile") or None
    if mode in _NON_RGB_PROFILE_MODES:
        icc = None
    return _loaded_image(
        _apply_orientation(pixels, orientation),
        path=path,
        fmt=fmt,
        mode=mode,
        is_gray=is_gray,
        exif=exif,
        icc_profile=icc,
        lossless=_is_lossless(path, fmt),
    )


def _loaded_image(
    pixels: np.ndarray, *, path: Path, fmt: str, is_gray: bool, **saving
) -> LoadedImage:
    """A LoadedImage of upright uint8 / uint16 / float32 (H, W, C) samples (see `_decode_8bit`)."""
    bit_depth = {np.uint8: 8, np.uint16: 16, np.float32: 32}[pixels.dtype.type]
    values = pixels.astype(np.float32)
    if bit_depth != 32:
        values /= np.float32(65535.0 if bit_depth == 16 else 255.0)
    channels = values.shape[2]
    if is_gray:
        rgb = np.repeat(values[..., :1], 3, axis=2)
    else:
        rgb = np.ascontiguousarray(values[..., :3])
    alpha = np.ascontiguousarray(values[..., -1]) if channels in (2, 4) else None
    return LoadedImage(
        rgb=rgb, alpha=alpha, bit_depth=bit_depth, format=fmt, is_gray=is_gray, path=path, **saving
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
    (`VP8X`) metadata chunks (ICC profiles of any size, EXIF, XMP) before it, and an animation
    `ANMF` frames that each hold one. Pillow does not report which codec a file used, so the
    chunk headers are read here, seeking over each chunk's data by its size.
    """
    with open(path, "rb") as stream:
        header = stream.read(12)
        if len(header) < 12 or header[:4] != b"RIFF" or header[8:12] != b"WEBP":
            return False
        while True:
            chunk = stream.read(8)
            if len(chunk) < 8:
                return False
            kind, size = chunk[:4], struct.unpack("<I", chunk[4:])[0]
            if kind in (b"VP8L", b"VP8 "):
                return kind == b"VP8L"
            if kind == b"ANMF":
                stream.seek(16, os.SEEK_CUR)  # into the frame: its header, then its chunks
                continue
            stream.seek(size + (size & 1), os.SEEK_CUR)  # chunks are padded to an even size


def read_image_info(path: str | os.PathLike, max_pixels: int | None = None) -> ImageInfo:
    """Read an image's size and format from its header only (no pixel decoding).

    The size is after EXIF orientation, i.e. the shape `load_image` will return, except for a
    PNG whose eXIf chunk comes after its pixel data (read only by a full decode).
    Raises InputError like `load_image` for missing, empty, non-image, multi-frame or too large
    files; truncated pixel data is only found by `load_image`.
    """
    path = Path(path)
    tiff = _check_file(path)
    if tiff is not None and tiff.needs_tifffile:
        _check_pixel_count(path, tiff.width, tiff.height, max_pixels)
        width, height, orientation = tiff.width, tiff.height, tiff.orientation
        fmt, mode = "TIFF", f"{tiff.dtype.name}x{tiff.channels}"
    else:
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


def _check_file(path: Path) -> tiffio.TiffLayout | None:
    """Refuse what is not a non-empty regular file; for a TIFF, its header (`tiffio.probe_tiff`,
    which refuses multi-page files), else None."""
    problem = file_problem(path)
    if problem is not None:
        raise InputError(f"{path}: {problem}")
    if path.stat().st_size == 0:
        raise InputError(f"{path}: empty file (0 bytes)")
    return tiffio.probe_tiff(path) if tiffio.is_tiff(path) else None


def _check_pixel_count(path: Path, width: int, height: int, max_pixels: int | None) -> None:
    limit = MAX_PIXELS if max_pixels is None else int(max_pixels)
    if width * height > limit:
        raise InputError(
            f"{path}: image too large ({width}x{height} = {width * height} pixels, limit {limit})"
        )


@contextlib.contextmanager
def _open_image(path: Path, max_pixels: int | None) -> Iterator[Image.Image]:
    """Open `path` with Pillow (header only) under our pixel limit; yield it with the lock held.

    Animated PNG and WebP files are refused here (a result would keep only the first frame).
    """
    limit = MAX_PIXELS if max_pixels is None else int(max_pixels)
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
                _check_pixel_count(path, width, height, limit)
                frames = getattr(image, "n_frames", 1)
                if image.format in ("PNG", "WEBP") and frames > 1:
                    raise InputError(
                        f"{path}: animated {image.format} with {frames} frames; only still "
                        "images are supported, and writing the first frame alone would lose "
                        "the others"
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


def _png_header(path: Path) -> tuple[int, int]:
    """(bit depth, colour type) from a PNG's IHDR chunk (Pillow has checked the signature)."""
    with open(path, "rb") as stream:
        header = stream.read(8 + 8 + 13)
    return header[24], header[25]


def _png_late_exif(path: Path) -> bytes | None:
    """The eXIf chunk of a PNG when it comes after the pixel data (chunks walked by size)."""
    with open(path, "rb") as stream:
        stream.seek(8)
        while True:
            head = stream.read(8)
            if len(head) < 8 or head[4:] == b"IEND":
                return None
            size = struct.unpack(">I", head[:4])[0]
            if head[4:] == b"eXIf":
                return stream.read(size)
            stream.seek(size + 4, os.SEEK_CUR)  # data and CRC


def _decode_png16(image: Image.Image, path: Path) -> tuple[np.ndarray, bool]:
    """Decode a 16-bit PNG with OpenCV: (uint16 (H, W, C), is_gray); tRNS becomes alpha.

    Pillow keeps only the high byte of 16-bit colour; OpenCV (libpng) decodes every layout
    exactly. It returns colour as BGR(A) and gray+alpha as BGRA; a gray tRNS colour key it
    ignores, so the key is applied here for every colour type, from Pillow's header.
    """
    import cv2

    _, color_type = _png_header(path)
    decoded = cv2.imdecode(np.fromfile(path, np.uint8), cv2.IMREAD_UNCHANGED)
    width, height = image.size
    if decoded is None or decoded.dtype != np.uint16 or decoded.shape[:2] != (height, width):
        raise InputError(f"{path}: cannot decode 16-bit PNG (truncated or corrupt data)")
    if decoded.ndim == 2:
        decoded = decoded[..., None]
    is_gray = color_type in (0, 4)
    color = decoded[..., :1] if is_gray else decoded[..., 2::-1]
    channels = [color]
    if color_type in (4, 6):
        channels.append(decoded[..., 3:4])
    elif image.info.get("transparency") is not None:
        key = np.asarray(image.info["transparency"], np.uint16).reshape(-1)
        opaque = np.any(color != key, axis=2, keepdims=True)
        channels.append(opaque.astype(np.uint16) * np.uint16(65535))
    if "exif" not in image.info:
        late = _png_late_exif(path)
        if late:
            image.info["exif"] = _EXIF_HEADER + late
    return np.ascontiguousarray(np.concatenate(channels, axis=2)), is_gray


def _decode_8bit(image: Image.Image, path: Path) -> tuple[np.ndarray, bool]:
    """Decode all pixels of an 8-bit image with Pillow: (uint8 (H, W, C), is_gray).

    C is 1 (gray), 2 (gray + alpha), 3 (RGB) or 4 (RGBA).
    """
    mode = image.mode
    if mode in ("F", "I", "LAB") or mode.startswith("I;"):
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
    return pixels, target in ("L", "LA")


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
    """Float [0, 1] or uint8/uint16 -> uint8 (bit_depth 8) or uint16 (16), rounding; for
    bit_depth 32, float32 samples as they are (integers scaled to [0, 1])."""
    if bit_depth == 32:
        peak = {np.uint8: 255.0, np.uint16: 65535.0}.get(array.dtype.type, 1.0)
        return (np.asarray(array, dtype=np.float32) / np.float32(peak)).astype(np.float32)
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
    PNG/TIFF, float32 samples in TIFF, written unclipped; 8 bits elsewhere), stays gray if it
    was gray (channel mean), gets its alpha back (not in JPEG, which has none; premultiplied
    alpha only in TIFF, ValueError elsewhere) and its EXIF (orientation 1) and ICC profile.
    Without `like`,
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
    if bit_depth == 32 and fmt != "TIFF":
        bit_depth = 16
    if fmt not in _SIXTEEN_BIT_FORMATS:
        bit_depth = 8
    associated_alpha = like is not None and like.associated_alpha and like.alpha is not None
    if associated_alpha and fmt != "TIFF":
        raise ValueError(
            f"{path}: {like.path} has premultiplied alpha, which only TIFF stores; "
            "write the result as .tif"
        )
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
        associated_alpha=associated_alpha,
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
    associated_alpha: bool = False,
) -> None:
    """Write uint8/uint16/float32 (H, W, C) pixels, C = 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA
    (float32 only to TIFF)."""
    channels = pixels.shape[2]
    # Pillow writes neither wide nor float TIFF samples, nor keeps premultiplied alpha.
    with_tifffile = fmt == "TIFF" and (pixels.dtype != np.uint8 or associated_alpha)
    if fmt == "JPEG" and channels in (2, 4):
        pixels = pixels[..., : channels - 1]  # JPEG has no alpha
    elif fmt in ("WEBP", "BMP"):
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
        elif with_tifffile:
            tiffio.write_tiff(tmp, pixels, icc=icc, associated_alpha=associated_alpha)
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
