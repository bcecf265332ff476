"""Image reading and writing: formats, bit depths, alpha, EXIF orientation, bad files."""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile
from PIL import Image, ImageCms, ImageFile, ImageOps
from test_api import _mask_fraction_threshold, picture, random_model

from m2aenet import imageio
from m2aenet.api import Deblurrer, _loaded_to_array
from m2aenet.errors import InputError, OutputError
from m2aenet.imageio import (
    SUPPORTED_EXTENSIONS,
    is_image_path,
    load_image,
    read_image_info,
    read_mask,
    read_rgb,
    save_image,
    to_uint8,
    write_png,
)


def _rgb8(height: int = 12, width: int = 17, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def _rgb16(height: int = 9, width: int = 11, channels: int = 3, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 65536, (height, width, channels), dtype=np.uint16)


# Independent minimal 16-bit PNG writers (filter type 0), to check the reader against.
_ADAM7_PASSES = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2)]
_ADAM7_PASSES.append((0, 1, 1, 2))


def _png16(path: Path, pixels: np.ndarray, interlaced: bool = False) -> None:
    """Write uint16 (H, W, C) as a 16-bit PNG, optionally with Adam7 interlacing."""
    height, width, channels = pixels.shape
    color_type = {1: 0, 2: 4, 3: 2, 4: 6}[channels]
    data = b""
    for x0, y0, dx, dy in _ADAM7_PASSES if interlaced else [(0, 0, 1, 1)]:
        sub = pixels[y0::dy, x0::dx]
        if sub.size:
            rows = sub.astype(">u2").reshape(sub.shape[0], -1).view(np.uint8)
            data += b"".join(b"\x00" + row.tobytes() for row in rows)

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body)
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 16, color_type, 0, 0, int(interlaced))
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(data))
        + chunk(b"IEND", b"")
    )


def _stored(path: Path) -> np.ndarray:
    """Pixels as Pillow stores them, no conversion."""
    with Image.open(path) as image:
        return np.asarray(image)


# -- 8-bit round trips ------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".png", ".tif", ".tiff", ".bmp", ".webp"])
def test_lossless_8bit_rgb_round_trip(tmp_path: Path, suffix: str) -> None:
    pixels = _rgb8()
    source = tmp_path / f"in{suffix}"
    options = {"lossless": True} if suffix == ".webp" else {}
    Image.fromarray(pixels).save(source, **options)
    loaded = load_image(source)
    assert loaded.rgb.dtype == np.float32 and loaded.rgb.shape == (12, 17, 3)
    assert loaded.bit_depth == 8 and not loaded.is_gray and loaded.alpha is None
    assert loaded.format == imageio.output_format(source)
    np.testing.assert_array_equal(to_uint8(loaded.rgb), pixels)
    out = tmp_path / f"out{suffix}"
    save_image(out, loaded.rgb, like=loaded, webp_lossless=True)
    np.testing.assert_array_equal(_stored(out), pixels)
    np.testing.assert_array_equal(read_rgb(out), loaded.rgb)


def test_jpeg_round_trip_is_close_and_8bit(tmp_path: Path) -> None:
    # A smooth picture: JPEG at quality 95 without chroma subsampling stays within a few levels.
    y, x = np.mgrid[0:32, 0:48]
    pixels = np.stack([y * 6, x * 4, (x + y) * 3], axis=2).astype(np.uint8)
    source = tmp_path / "in.jpg"
    Image.fromarray(pixels).save(source, quality=95, subsampling=0)
    loaded = load_image(source)
    assert loaded.format == "JPEG" and loaded.bit_depth == 8
    out = tmp_path / "out.jpeg"
    save_image(out, loaded.rgb, like=loaded)
    with Image.open(out) as image:
        assert image.format == "JPEG" and image.mode == "RGB"
    error = np.abs(to_uint8(read_rgb(out)).astype(int) - pixels.astype(int))
    assert error.mean() < 2.0 and error.max() <= 12


def test_gray_stays_gray(tmp_path: Path) -> None:
    gray = _rgb8()[..., 0]
    source = tmp_path / "gray.png"
    Image.fromarray(gray).save(source)
    loaded = load_image(source)
    assert loaded.is_gray and loaded.bit_depth == 8 and loaded.mode == "L"
    np.testing.assert_array_equal(to_uint8(loaded.rgb), np.repeat(gray[..., None], 3, axis=2))
    # A result whose channels drifted apart is saved as their mean, still one channel.
    result = loaded.rgb.copy()
    result[..., 0] = 0.0
    for suffix in (".png", ".jpg", ".tif"):
        out = tmp_path / f"out{suffix}"
        save_image(out, result, like=loaded)
        with Image.open(out) as image:
            assert image.mode == "L", suffix
    np.testing.assert_array_equal(_stored(tmp_path / "out.png"), to_uint8(result.mean(axis=2)))


def test_one_bit_image_reads_as_gray(tmp_path: Path) -> None:
    bits = (np.arange(24).reshape(4, 6) % 3 == 0).astype(np.uint8) * 255
    source = tmp_path / "bits.png"
    Image.fromarray(bits).convert("1").save(source)
    loaded = load_image(source)
    assert loaded.is_gray and loaded.mode == "1"
    np.testing.assert_array_equal(to_uint8(loaded.rgb[..., 1]), bits)


def test_rgba_alpha_is_kept(tmp_path: Path) -> None:
    pixels = np.concatenate([_rgb8(), _rgb8(seed=1)[..., :1]], axis=2)
    source = tmp_path / "rgba.png"
    Image.fromarray(pixels).save(source)
    loaded = load_image(source)
    assert loaded.alpha is not None and loaded.alpha.shape == (12, 17)
    np.testing.assert_array_equal(to_uint8(loaded.alpha), pixels[..., 3])
    np.testing.assert_array_equal(to_uint8(loaded.rgb), pixels[..., :3])
    for suffix in (".png", ".tif", ".webp"):
        out = tmp_path / f"out{suffix}"
        save_image(out, loaded.rgb, like=loaded, webp_lossless=True)
        again = load_image(out)
        assert again.alpha is not None, suffix
        np.testing.assert_array_equal(to_uint8(again.alpha), pixels[..., 3])
    # JPEG has no alpha: the colour is written, the alpha left out.
    save_image(tmp_path / "out.jpg", loaded.rgb, like=loaded)
    assert load_image(tmp_path / "out.jpg").alpha is None


def test_gray_alpha(tmp_path: Path) -> None:
    pixels = _rgb8()[..., :2]
    source = tmp_path / "la.png"
    Image.fromarray(pixels, mode="LA").save(source)
    loaded = load_image(source)
    assert loaded.is_gray and loaded.alpha is not None
    np.testing.assert_array_equal(to_uint8(loaded.alpha), pixels[..., 1])
    out = tmp_path / "out.png"
    save_image(out, loaded.rgb, like=loaded)
    with Image.open(out) as image:
        assert image.mode == "LA"
    np.testing.assert_array_equal(_stored(out), pixels)


def test_palette_with_and_without_transparency(tmp_path: Path) -> None:
    palette = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [10, 20, 30]], np.uint8)
    index = (np.arange(30).reshape(5, 6) % 4).astype(np.uint8)
    image = Image.fromarray(index, mode="P")
    image.putpalette(palette.flatten().tolist())
    image.save(tmp_path / "p.png")
    loaded = load_image(tmp_path / "p.png")
    assert loaded.mode == "P" and not loaded.is_gray and loaded.alpha is None
    np.testing.assert_array_equal(to_uint8(loaded.rgb), palette[index])

    image.save(tmp_path / "pt.png", transparency=2)
    transparent = load_image(tmp_path / "pt.png")
    assert transparent.alpha is not None
    np.testing.assert_array_equal(transparent.alpha == 0, index == 2)


def test_cmyk_reads_as_rgb(tmp_path: Path) -> None:
    rgb = Image.fromarray(_rgb8())
    rgb.convert("CMYK").save(tmp_path / "cmyk.tif")
    loaded = load_image(tmp_path / "cmyk.tif")
    assert loaded.mode == "CMYK" and loaded.rgb.shape == (12, 17, 3)
    expected = np.asarray(rgb.convert("CMYK").convert("RGB"))
    np.testing.assert_array_equal(to_uint8(loaded.rgb), expected)


# -- 16 bits ----------------------------------------------------------------------------------


def test_16bit_gray_png_round_trip(tmp_path: Path) -> None:
    gray = _rgb16()[..., 0]
    source = tmp_path / "g16.png"
    Image.fromarray(gray).save(source)  # Pillow's own 16-bit gray writer
    loaded = load_image(source)
    assert loaded.bit_depth == 16 and loaded.is_gray
    np.testing.assert_array_equal(np.round(loaded.rgb[..., 2] * 65535).astype(np.uint16), gray)
    out = tmp_path / "out.png"
    save_image(out, loaded.rgb, like=loaded)
    with Image.open(out) as image:
        assert image.mode == "I;16"
        np.testing.assert_array_equal(np.asarray(image), gray)


def test_16bit_rgb_png_reader_matches_an_independent_writer(tmp_path: Path) -> None:
    pixels = _rgb16()
    _png16(tmp_path / "rgb16.png", pixels)
    loaded = load_image(tmp_path / "rgb16.png")
    assert loaded.bit_depth == 16 and not loaded.is_gray and loaded.alpha is None
    np.testing.assert_array_equal(np.round(loaded.rgb * 65535).astype(np.uint16), pixels)


def test_interlaced_16bit_rgb_png(tmp_path: Path) -> None:
    pixels = _rgb16(13, 19)
    _png16(tmp_path / "adam7.png", pixels, interlaced=True)
    loaded = load_image(tmp_path / "adam7.png")
    np.testing.assert_array_equal(np.round(loaded.rgb * 65535).astype(np.uint16), pixels)


@pytest.mark.parametrize("channels", [2, 3, 4])
def test_16bit_png_writer_round_trip(tmp_path: Path, channels: int) -> None:
    # Tall enough to span several row blocks of the encoder.
    pixels = _rgb16(height=700, width=1000, channels=channels, seed=channels)
    out = tmp_path / "out.png"
    write_png(out, pixels)
    # Pillow decodes our file (keeping the high bytes of colour samples): a valid 16-bit PNG.
    with Image.open(out) as image:
        high = np.asarray(image.convert("RGBA" if channels != 3 else "RGB"))
    if channels == 2:
        np.testing.assert_array_equal(high[..., 0], (pixels[..., 0] >> 8).astype(np.uint8))
    else:
        np.testing.assert_array_equal(high, (pixels >> 8).astype(np.uint8))
    loaded = load_image(out)
    assert loaded.bit_depth == 16
    stored = np.round(loaded.rgb * 65535).astype(np.uint16)
    np.testing.assert_array_equal(stored[..., 0], pixels[..., 0])
    if channels >= 3:
        np.testing.assert_array_equal(stored, pixels[..., :3])
    if channels in (2, 4):
        np.testing.assert_array_equal(np.round(loaded.alpha * 65535), pixels[..., -1])


@pytest.mark.parametrize("compression", [None, "zlib"])
def test_16bit_rgb_tiff_round_trip(tmp_path: Path, compression: str | None) -> None:
    pixels = _rgb16()
    source = tmp_path / "in.tif"
    tifffile.imwrite(source, pixels, photometric="rgb", compression=compression)
    loaded = load_image(source)
    assert loaded.bit_depth == 16 and loaded.format == "TIFF"
    np.testing.assert_array_equal(np.round(loaded.rgb * 65535).astype(np.uint16), pixels)
    out = tmp_path / "out.tif"
    save_image(out, loaded.rgb, like=loaded)
    np.testing.assert_array_equal(tifffile.imread(out), pixels)


def test_16bit_input_saved_to_8bit_format(tmp_path: Path) -> None:
    pixels = _rgb16()
    _png16(tmp_path / "in.png", pixels)
    loaded = load_image(tmp_path / "in.png")
    save_image(tmp_path / "out.bmp", loaded.rgb, like=loaded)
    expected = np.round(pixels / 257.0).astype(np.uint8)
    np.testing.assert_array_equal(_stored(tmp_path / "out.bmp"), expected)


def test_integer_arrays_are_written_as_they_are(tmp_path: Path) -> None:
    pixels = _rgb16()
    save_image(tmp_path / "a.png", pixels)
    np.testing.assert_array_equal(np.round(read_rgb(tmp_path / "a.png") * 65535), pixels)
    small = _rgb8()
    save_image(tmp_path / "b.png", small)
    np.testing.assert_array_equal(_stored(tmp_path / "b.png"), small)


# -- metadata ---------------------------------------------------------------------------------

_ORIENTATION_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def _exif(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif[0x010F] = "TestCam"  # Make: must survive the orientation reset
    return exif.tobytes()


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_is_applied(tmp_path: Path, orientation: int) -> None:
    pixels = _rgb8(6, 10)
    source = tmp_path / "o.png"
    Image.fromarray(pixels).save(source, exif=_exif(orientation))
    loaded = load_image(source)
    with Image.open(source) as image:
        expected = np.asarray(ImageOps.exif_transpose(image))
    np.testing.assert_array_equal(to_uint8(loaded.rgb), expected)
    if orientation > 1:
        upright = Image.fromarray(pixels).transpose(_ORIENTATION_TRANSPOSE[orientation])
        np.testing.assert_array_equal(expected, np.asarray(upright))
    info = read_image_info(source)
    assert (info.height, info.width) == loaded.rgb.shape[:2]


def test_jpeg_orientation_6_is_rotated_and_reset_on_save(tmp_path: Path) -> None:
    pixels = np.zeros((20, 40, 3), np.uint8)
    pixels[:, :20] = 255  # left half white: after a clockwise turn the top half is white
    source = tmp_path / "o6.jpg"
    Image.fromarray(pixels).save(source, exif=_exif(6), quality=95)
    loaded = load_image(source)
    assert loaded.rgb.shape == (40, 20, 3)
    assert loaded.rgb[:18].mean() > 0.95 and loaded.rgb[22:].mean() < 0.05
    info = read_image_info(source)
    assert (info.width, info.height) == (20, 40)
    out = tmp_path / "out.jpg"
    save_image(out, loaded.rgb, like=loaded)
    with Image.open(out) as image:
        assert image.size == (20, 40)
        exif = image.getexif()
        assert exif[0x0112] == 1 and exif[0x010F] == "TestCam"
    np.testing.assert_allclose(read_rgb(out), loaded.rgb, atol=0.05)


def test_tiff_orientation_is_applied(tmp_path: Path) -> None:
    pixels = _rgb16(6, 10)
    source = tmp_path / "o.tif"
    tifffile.imwrite(
        source, pixels, photometric="rgb", compression="zlib", extratags=[(274, 3, 1, 6, True)]
    )
    loaded = load_image(source)
    np.testing.assert_array_equal(np.round(loaded.rgb * 65535), np.rot90(pixels, -1))
    info = read_image_info(source)
    assert (info.height, info.width) == (10, 6)


def test_icc_profile_and_exif_are_kept(tmp_path: Path) -> None:
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    source = tmp_path / "in.png"
    Image.fromarray(_rgb8()).save(source, icc_profile=icc, exif=_exif(1))
    loaded = load_image(source)
    assert loaded.icc_profile == icc
    for suffix in (".png", ".jpg", ".webp", ".tif"):
        out = tmp_path / f"out{suffix}"
        save_image(out, loaded.rgb, like=loaded)
        with Image.open(out) as image:
            assert image.info.get("icc_profile") == icc, suffix
            assert image.getexif().get(0x010F) == "TestCam", suffix
    loaded16 = load_image(source)
    loaded16.bit_depth = 16
    save_image(tmp_path / "out16.png", loaded16.rgb, like=loaded16)
    again = load_image(tmp_path / "out16.png")
    assert again.bit_depth == 16 and again.icc_profile == icc
    assert again.exif is not None and b"TestCam" in again.exif


# -- bad files --------------------------------------------------------------------------------


def _raises_naming(path: Path, reason: str, **kwargs) -> None:
    with pytest.raises(InputError) as error:
        load_image(path, **kwargs)
    message = str(error.value)
    assert str(path) in message and reason in message, message


def test_missing_and_empty_files(tmp_path: Path) -> None:
    _raises_naming(tmp_path / "nowhere.png", "not found")
    (tmp_path / "empty.png").write_bytes(b"")
    _raises_naming(tmp_path / "empty.png", "empty file")
    (tmp_path / "folder.png").mkdir()
    _raises_naming(tmp_path / "folder.png", "folder")


def test_text_file_with_image_extension(tmp_path: Path) -> None:
    (tmp_path / "notes.png").write_text("not a picture\n" * 10)
    _raises_naming(tmp_path / "notes.png", "not a readable")
    with pytest.raises(InputError, match="notes.png"):
        read_image_info(tmp_path / "notes.png")


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_truncated_files_are_refused(tmp_path: Path, suffix: str) -> None:
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False
    full = tmp_path / f"full{suffix}"
    Image.fromarray(_rgb8(64, 64)).save(full)
    data = full.read_bytes()
    cut = tmp_path / f"cut{suffix}"
    cut.write_bytes(data[: len(data) // 2])
    _raises_naming(cut, "truncated")
    with pytest.raises(InputError, match="cut"):
        read_mask(cut)


def test_truncated_files_are_refused_even_if_pillow_was_told_otherwise(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    full = tmp_path / "full.png"
    Image.fromarray(_rgb8(64, 64)).save(full)
    cut = tmp_path / "cut.png"
    cut.write_bytes(full.read_bytes()[:-200])
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    _raises_naming(cut, "truncated")
    assert ImageFile.LOAD_TRUNCATED_IMAGES is True  # the caller's setting is restored


def test_decompression_bomb_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = tmp_path / "big.png"
    Image.fromarray(_rgb8(30, 40)).save(source)
    # Just above the limit (Pillow would only warn) and far above it (Pillow raises).
    _raises_naming(source, "too large", max_pixels=1199)
    _raises_naming(source, "too large", max_pixels=100)
    with pytest.raises(InputError, match="too large"):
        read_image_info(source, max_pixels=1000)
    assert load_image(source, max_pixels=1200).rgb.shape == (30, 40, 3)
    monkeypatch.setattr(imageio, "MAX_PIXELS", 500)
    _raises_naming(source, "too large")
    # Pillow's own limit is restored after each call.
    assert Image.MAX_IMAGE_PIXELS == int(1024 * 1024 * 1024 // 4 // 3)


# -- writing ----------------------------------------------------------------------------------


def test_atomic_save_leaves_no_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out.png"
    save_image(out, _rgb8())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png"]
    before = out.read_bytes()

    def broken_save(self, *args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", broken_save)
    # The OSError comes back as one user-facing error naming the file.
    with pytest.raises(OutputError, match=r"out.png: cannot write \(disk full\)"):
        save_image(out, _rgb8(seed=5))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png"]
    assert out.read_bytes() == before


def test_save_rejects_bad_extension_and_shape(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"out\.gif"):
        save_image(tmp_path / "out.gif", _rgb8())
    with pytest.raises(ValueError, match="shape"):
        save_image(tmp_path / "out.png", np.zeros((4, 5, 2), np.float32))
    with pytest.raises(ValueError, match="NaN"):
        save_image(tmp_path / "out.png", np.full((4, 5, 3), np.nan, np.float32))
    assert list(tmp_path.iterdir()) == []


def test_read_mask_thresholds_and_write_png(tmp_path: Path) -> None:
    values = np.array([[0, 127, 128, 255]], np.uint8)
    write_png(tmp_path / "m.png", values)
    np.testing.assert_array_equal(read_mask(tmp_path / "m.png"), [[0, 0, 1, 1]])
    write_png(tmp_path / "f.png", np.array([[0.0, 0.5, 1.0]], np.float32))
    np.testing.assert_array_equal(_stored(tmp_path / "f.png"), [[0, 128, 255]])
    write_png(tmp_path / "rgba.png", np.zeros((3, 4, 4), np.uint8))
    with Image.open(tmp_path / "rgba.png") as image:
        assert image.mode == "RGBA"


def test_to_uint8_rounds_and_clips() -> None:
    np.testing.assert_array_equal(
        to_uint8(np.array([-0.5, 0.0, 0.499 / 255, 0.501 / 255, 1.0, 2.0])), [0, 0, 0, 1, 255, 255]
    )


def test_is_image_path() -> None:
    assert all(is_image_path(f"photo{ext}") for ext in SUPPORTED_EXTENSIONS)
    assert is_image_path("PHOTO.JPG") and is_image_path(Path("a/b.TiFf"))
    assert not is_image_path("notes.txt") and not is_image_path("anim.gif")
    assert not is_image_path("._photo.png") and not is_image_path(".photo.png.x1.tmp.png")


def test_png_compress_level_changes_size_not_pixels(tmp_path) -> None:
    rng = np.random.default_rng(0)
    smooth = np.cumsum(rng.integers(0, 3, (64, 64, 3)), axis=1).clip(0, 255).astype(np.uint8)
    fast, small = tmp_path / "fast.png", tmp_path / "small.png"
    write_png(fast, smooth, compress_level=0)
    write_png(small, smooth, compress_level=9)
    assert fast.stat().st_size > small.stat().st_size
    assert np.array_equal(to_uint8(read_rgb(fast)), smooth)
    assert np.array_equal(to_uint8(read_rgb(small)), smooth)


def _webp_codec(path: Path) -> bytes:
    """The fourcc of the image chunk of a simple WebP file: b"VP8L" or b"VP8 "."""
    return path.read_bytes()[12:16]


def test_lossless_webp_is_detected_and_written_lossless(tmp_path: Path) -> None:
    pixels = _rgb8()
    lossless, lossy = tmp_path / "lossless.webp", tmp_path / "lossy.webp"
    Image.fromarray(pixels).save(lossless, lossless=True)
    Image.fromarray(pixels).save(lossy, quality=80)
    assert (_webp_codec(lossless), _webp_codec(lossy)) == (b"VP8L", b"VP8 ")
    assert imageio.webp_is_lossless(lossless) and not imageio.webp_is_lossless(lossy)

    loaded = load_image(lossless)
    assert loaded.lossless
    out = tmp_path / "out.webp"
    save_image(out, loaded.rgb, like=loaded)  # no webp_lossless: the input decides
    assert _webp_codec(out) == b"VP8L"
    np.testing.assert_array_equal(_stored(out), pixels)

    loaded = load_image(lossy)
    assert not loaded.lossless
    save_image(out, loaded.rgb, like=loaded)
    assert _webp_codec(out) == b"VP8 "


def test_extended_webp_with_alpha_is_read_through_its_chunks(tmp_path: Path) -> None:
    rgba = np.dstack([_rgb8(), np.full(_rgb8().shape[:2], 128, np.uint8)])
    path = tmp_path / "alpha.webp"
    Image.fromarray(rgba).save(path, lossless=True, exif=Image.Exif().tobytes())
    assert path.read_bytes()[12:16] == b"VP8X"
    assert imageio.webp_is_lossless(path)
    Image.fromarray(rgba).save(path, quality=80)
    assert not imageio.webp_is_lossless(path)


# -- layouts Pillow cannot keep: each round trip must give back every stored sample ----------


def _samples(loaded: imageio.LoadedImage) -> np.ndarray:
    """The stored samples of a loaded image, (H, W, C) in its own dtype (gray: 1 colour)."""
    return np.atleast_3d(_loaded_to_array(loaded))


def _tiff_samples(path: Path) -> np.ndarray:
    """Samples of a TIFF as tifffile decodes them, (H, W, C) whatever the planar layout."""
    with tifffile.TiffFile(path) as tiff:
        page = tiff.pages[0]
        array = page.asarray()
        if "S" not in page.axes:
            return array[..., None]
        return np.moveaxis(array, page.axes.index("S"), -1)


def _write_tiff(path: Path, samples: np.ndarray, planar: str, alpha: str | None, **options):
    channels = samples.shape[2]
    if channels == 1:
        samples, planar = samples[..., 0], None
    tifffile.imwrite(
        path,
        np.moveaxis(samples, 2, 0) if planar == "separate" else samples,
        photometric="rgb" if channels >= 3 else "minisblack",
        planarconfig=planar,
        extrasamples=(alpha,) if channels in (2, 4) else None,
        **options,
    )


_TIFF_LAYOUTS = [
    (dtype, channels, planar, compression)
    for dtype in (np.uint16, np.uint8)
    for channels in (1, 2, 3, 4)
    for planar in ("contig", "separate")
    for compression in (None, "zlib", "adobe_deflate", "lzw", "packbits")
    if not (channels == 1 and planar == "separate")
]


@pytest.mark.parametrize(("dtype", "channels", "planar", "compression"), _TIFF_LAYOUTS)
def test_every_tiff_layout_round_trips_exactly(
    tmp_path: Path, dtype: type, channels: int, planar: str, compression: str | None
) -> None:
    samples = _rgb16(7, 10, channels, seed=channels)
    if dtype == np.uint8:
        samples = (samples >> 8).astype(np.uint8)
    source = tmp_path / "in.tif"
    _write_tiff(source, samples, planar, "unassalpha", compression=compression, predictor=False)
    loaded = load_image(source)
    bits = np.dtype(dtype).itemsize * 8
    assert (loaded.bit_depth, loaded.is_gray) == (bits, channels <= 2)
    np.testing.assert_array_equal(_samples(loaded), samples)
    out = tmp_path / "out.tif"
    save_image(out, loaded.rgb[..., 0] if loaded.is_gray else loaded.rgb, like=loaded)
    np.testing.assert_array_equal(_tiff_samples(out), samples)


@pytest.mark.parametrize("predictor", [False, True])
@pytest.mark.parametrize("byteorder", ["<", ">"])
def test_16bit_tiff_with_a_predictor_tiles_and_either_byte_order(
    tmp_path: Path, predictor: bool, byteorder: str
) -> None:
    samples = _rgb16(40, 48, 3, seed=5)
    source = tmp_path / "in.tif"
    _write_tiff(
        source,
        samples,
        "contig",
        None,
        compression="zlib",
        predictor=predictor,
        tile=(16, 16),
        byteorder=byteorder,
    )
    np.testing.assert_array_equal(_samples(load_image(source)), samples)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
@pytest.mark.parametrize("channels", [2, 4])
def test_premultiplied_alpha_tiff_keeps_its_stored_samples(
    tmp_path: Path, dtype: type, channels: int
) -> None:
    peak = np.iinfo(dtype).max
    rng = np.random.default_rng(1)
    alpha = rng.integers(0, peak + 1, (6, 9, 1)).astype(dtype)
    color = (rng.random((6, 9, channels - 1)) * alpha).astype(dtype)  # premultiplied
    samples = np.concatenate([color, alpha], axis=2)
    source = tmp_path / "in.tif"
    _write_tiff(source, samples, "contig", "assocalpha")
    loaded = load_image(source)
    assert loaded.associated_alpha
    np.testing.assert_array_equal(_samples(loaded), samples)
    out = tmp_path / "out.tif"
    save_image(out, loaded.rgb[..., 0] if loaded.is_gray else loaded.rgb, like=loaded)
    np.testing.assert_array_equal(_tiff_samples(out), samples)
    with tifffile.TiffFile(out) as tiff:
        assert tiff.pages[0].extrasamples == (tifffile.EXTRASAMPLE.ASSOCALPHA,)
    with pytest.raises(ValueError, match="premultiplied"):
        save_image(tmp_path / "out.png", loaded.rgb, like=loaded)


@pytest.mark.parametrize("channels", [1, 3, 4])
def test_float32_tiff_is_read_and_written_back_as_float32(tmp_path: Path, channels: int) -> None:
    rng = np.random.default_rng(channels)
    samples = rng.random((5, 8, channels)).astype(np.float32)
    samples[0, 0, 0] = 1.75  # values beyond [0, 1] are kept as stored, not clipped
    samples[0, 1, 0] = -0.25
    source = tmp_path / "in.tif"
    _write_tiff(source, samples, "contig", "unassalpha")
    loaded = load_image(source)
    assert loaded.bit_depth == 32
    np.testing.assert_array_equal(_samples(loaded), samples)
    out = tmp_path / "out.tif"
    save_image(out, loaded.rgb[..., 0] if loaded.is_gray else loaded.rgb, like=loaded)
    written = _tiff_samples(out)
    assert written.dtype == np.float32
    np.testing.assert_array_equal(written, samples)


@pytest.mark.parametrize(
    ("samples", "reason"),
    [
        (np.zeros((4, 5, 3), np.float64), "unsupported TIFF samples"),
        (np.zeros((4, 5), np.int16), "unsupported TIFF samples"),
        (np.zeros((4, 5, 3), np.uint32), "unsupported TIFF samples"),
    ],
)
def test_tiff_samples_we_cannot_write_back_are_refused(
    tmp_path: Path, samples: np.ndarray, reason: str
) -> None:
    source = tmp_path / "in.tif"
    tifffile.imwrite(source, samples, photometric="rgb" if samples.ndim == 3 else None)
    _raises_naming(source, reason)
    with pytest.raises(InputError, match=reason):
        read_image_info(source)


def test_16bit_cmyk_tiff_is_refused(tmp_path: Path) -> None:
    source = tmp_path / "cmyk.tif"
    tifffile.imwrite(source, _rgb16(4, 5, 4), photometric="separated")
    _raises_naming(source, "unsupported TIFF colour layout")


def test_16bit_gray_alpha_and_float_tiff_headers_are_read(tmp_path: Path) -> None:
    gray_alpha, rgb_float = tmp_path / "ga.tif", tmp_path / "f.tif"
    tifffile.imwrite(
        gray_alpha, _rgb16(4, 6, 2), extrasamples=("unassalpha",), photometric="minisblack"
    )
    tifffile.imwrite(rgb_float, np.ones((4, 6, 3), np.float32), photometric="rgb")
    for path in (gray_alpha, rgb_float):
        info = read_image_info(path)
        assert (info.width, info.height, info.format) == (6, 4, "TIFF")


def test_16bit_tiff_orientation_and_size_limit(tmp_path: Path) -> None:
    samples = _rgb16(6, 10, 2)
    source = tmp_path / "o.tif"
    tifffile.imwrite(
        source,
        samples,
        photometric="minisblack",
        extrasamples=("unassalpha",),
        extratags=[(274, 3, 1, 6, True)],
    )
    np.testing.assert_array_equal(_samples(load_image(source)), np.rot90(samples, -1))
    assert (read_image_info(source).height, read_image_info(source).width) == (10, 6)
    _raises_naming(source, "too large", max_pixels=59)


def test_truncated_16bit_tiff_is_refused(tmp_path: Path) -> None:
    full = tmp_path / "full.tif"
    tifffile.imwrite(full, _rgb16(64, 64), photometric="rgb", rowsperstrip=8)
    cut = tmp_path / "cut.tif"
    cut.write_bytes(full.read_bytes()[:20000])
    _raises_naming(cut, "cannot decode TIFF")


@pytest.mark.parametrize("channels", [1, 2, 3, 4])
@pytest.mark.parametrize("interlaced", [False, True])
def test_every_16bit_png_layout_round_trips_exactly(
    tmp_path: Path, channels: int, interlaced: bool
) -> None:
    samples = _rgb16(9, 13, channels, seed=channels)
    source = tmp_path / "in.png"
    _png16(source, samples, interlaced=interlaced)
    loaded = load_image(source)
    np.testing.assert_array_equal(_samples(loaded), samples)
    out = tmp_path / "out.png"
    save_image(out, loaded.rgb[..., 0] if loaded.is_gray else loaded.rgb, like=loaded)
    # OpenCV (libpng) decodes our writer's file: colour as BGR(A), gray+alpha as BGRA.
    decoded = np.atleast_3d(cv2.imread(str(out), cv2.IMREAD_UNCHANGED))
    if channels >= 3:
        decoded = np.concatenate([decoded[..., 2::-1], decoded[..., 3:]], axis=2)
    elif channels == 2:
        decoded = decoded[..., [0, 3]]
    np.testing.assert_array_equal(decoded, samples)


def _with_chunk(png: Path, kind: bytes, body: bytes) -> None:
    """Insert a chunk before the first IDAT of a PNG file."""
    data = png.read_bytes()
    at = data.index(b"IDAT") - 4
    chunk = struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    png.write_bytes(data[:at] + chunk + data[at:])


@pytest.mark.parametrize("channels", [1, 3])
def test_16bit_png_transparency_key_becomes_alpha(tmp_path: Path, channels: int) -> None:
    samples = _rgb16(6, 8, channels)
    key = samples[2, 3].copy()
    samples[4, 5] = key
    source = tmp_path / "trns.png"
    _png16(source, samples)
    _with_chunk(source, b"tRNS", key.astype(">u2").tobytes())
    loaded = load_image(source)
    expected_alpha = np.full((6, 8), 65535, np.uint16)
    expected_alpha[2, 3] = expected_alpha[4, 5] = 0
    stored = _samples(loaded)
    np.testing.assert_array_equal(stored[..., :channels], samples)
    np.testing.assert_array_equal(stored[..., channels], expected_alpha)
    out = tmp_path / "out.png"
    save_image(out, loaded.rgb[..., 0] if loaded.is_gray else loaded.rgb, like=loaded)
    np.testing.assert_array_equal(_samples(load_image(out)), stored)


def test_truncated_16bit_png_is_refused(tmp_path: Path) -> None:
    full = tmp_path / "full.png"
    _png16(full, _rgb16(64, 64))
    cut = tmp_path / "cut.png"
    cut.write_bytes(full.read_bytes()[:-300])
    _raises_naming(cut, "truncated")
    # Complete chunks that hold fewer rows than the header says (libpng only warns by default).
    short = tmp_path / "short.png"
    _png16(short, _rgb16(64, 64))
    data = short.read_bytes()
    header = struct.pack(">IIBBBBB", 64, 128, 16, 2, 0, 0, 0)
    ihdr = b"IHDR" + header
    data = data[:12] + ihdr + struct.pack(">I", zlib.crc32(ihdr)) + data[33:]
    short.write_bytes(data)
    _raises_naming(short, "truncated")


def test_late_exif_of_a_16bit_png_is_read(tmp_path: Path) -> None:
    samples = _rgb16(4, 6)
    source = tmp_path / "late.png"
    _png16(source, samples)
    data = source.read_bytes()
    body = _exif(6)[len(b"Exif\x00\x00") :] if _exif(6).startswith(b"Exif") else _exif(6)
    chunk = struct.pack(">I", len(body)) + b"eXIf" + body
    chunk += struct.pack(">I", zlib.crc32(b"eXIf" + body))
    source.write_bytes(data[:-12] + chunk + data[-12:])  # after IDAT, before IEND
    np.testing.assert_array_equal(_samples(load_image(source)), np.rot90(samples, -1))


# -- several frames: refused, never cut to the first one --------------------------------------


def test_multi_page_tiff_is_refused(tmp_path: Path) -> None:
    for dtype in (np.uint8, np.uint16):
        source = tmp_path / f"pages{np.dtype(dtype).itemsize}.tif"
        tifffile.imwrite(source, np.zeros((3, 4, 5, 3), dtype), photometric="rgb")
        _raises_naming(source, "3 pages")
        with pytest.raises(InputError, match="3 pages"):
            read_image_info(source)


def test_a_reduced_resolution_preview_page_is_not_a_frame(tmp_path: Path) -> None:
    source = tmp_path / "preview.tif"
    samples = _rgb16(8, 8)
    with tifffile.TiffWriter(source) as tiff:
        tiff.write(samples, photometric="rgb")
        tiff.write(samples[::2, ::2], photometric="rgb", subfiletype=1)
    np.testing.assert_array_equal(_samples(load_image(source)), samples)


def test_animated_webp_and_png_are_refused(tmp_path: Path) -> None:
    frames = [Image.fromarray(_rgb8(seed=seed)) for seed in range(3)]
    for suffix in (".webp", ".png"):
        source = tmp_path / f"animated{suffix}"
        frames[0].save(source, save_all=True, append_images=frames[1:], lossless=True)
        _raises_naming(source, "3 frames")
        with pytest.raises(InputError, match="3 frames"):
            read_image_info(source)


def test_lossless_webp_behind_a_large_icc_profile_stays_lossless(tmp_path: Path) -> None:
    pixels = _rgb8()
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    big_icc = icc + bytes(1_100_000)  # a profile with a large private tag block
    source = tmp_path / "big_icc.webp"
    Image.fromarray(pixels).save(source, lossless=True, icc_profile=big_icc)
    assert source.stat().st_size > 1 << 20
    assert imageio.webp_is_lossless(source)
    loaded = load_image(source)
    out = tmp_path / "out.webp"
    save_image(out, loaded.rgb, like=loaded)
    assert imageio.webp_is_lossless(out)
    np.testing.assert_array_equal(_stored(out), pixels)


def test_a_fifo_is_not_a_regular_file(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    _raises_naming(fifo, "not a regular file")
    with pytest.raises(InputError, match="not a regular file"):
        read_image_info(fifo)
    _raises_naming(Path("/dev/zero"), "not a regular file")


# -- end to end: Deblurrer.deblur_file leaves every sample outside the mask as stored -----------


def _deblurrer_for(rgb: np.ndarray) -> Deblurrer:
    """A small random network whose mask keeps about 40 % of `rgb`'s pixels."""
    model = random_model()
    threshold = _mask_fraction_threshold(model, rgb, keep=0.4)
    return Deblurrer(model.reparameterize(), device="cpu", threshold=threshold, count_flops=False)


def _write_e2e_source(path: Path, kind: str, rgb: np.ndarray) -> np.ndarray:
    """Write `rgb` (float (H, W, 3) in [0, 1]) as `kind`; return the stored samples (H, W, C)."""
    rgb16 = np.round(rgb * 65535).astype(np.uint16)
    alpha16 = np.linspace(0, 65535, rgb.shape[0] * rgb.shape[1]).reshape(rgb.shape[:2] + (1,))
    rgba16 = np.concatenate([rgb16, alpha16.astype(np.uint16)], axis=2)
    if kind == "tiff16-separate-rgba":
        _write_tiff(path, rgba16, "separate", "unassalpha", compression="lzw")
        return rgba16
    if kind == "tiff16-zlib-rgb":
        _write_tiff(path, rgb16, "contig", None, compression="zlib")
        return rgb16
    if kind == "tiff16-gray-alpha":
        samples = rgba16[..., [1, 3]]
        _write_tiff(path, samples, "contig", "unassalpha")
        return samples
    if kind == "tiff-float32-rgb":
        samples = rgb.astype(np.float32)
        _write_tiff(path, samples, "contig", None)
        return samples
    if kind == "tiff8-premultiplied":
        samples = np.round(rgba16 / 257.0).astype(np.uint8)
        samples[..., :3] = np.minimum(samples[..., :3], samples[..., 3:])
        _write_tiff(path, samples, "contig", "assocalpha")
        return samples
    if kind == "png16-trns":
        rgb16[0, 0] = (7, 8, 9)
        _png16(path, rgb16)
        _with_chunk(path, b"tRNS", struct.pack(">HHH", 7, 8, 9))
        alpha = np.full(rgb.shape[:2] + (1,), 65535, np.uint16)
        alpha[0, 0] = 0
        return np.concatenate([rgb16, alpha], axis=2)
    if kind == "webp-lossless-big-icc":
        samples = np.round(rgb * 255).astype(np.uint8)
        icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
        Image.fromarray(samples).save(path, lossless=True, icc_profile=icc + bytes(1_100_000))
        return samples
    raise AssertionError(kind)


_E2E_KINDS = {
    "tiff16-separate-rgba": ".tif",
    "tiff16-zlib-rgb": ".tif",
    "tiff16-gray-alpha": ".tif",
    "tiff-float32-rgb": ".tif",
    "tiff8-premultiplied": ".tif",
    "png16-trns": ".png",
    "webp-lossless-big-icc": ".webp",
}


@pytest.mark.parametrize("kind", sorted(_E2E_KINDS))
def test_deblur_file_keeps_every_sample_outside_the_mask(tmp_path: Path, kind: str) -> None:
    rgb = picture(3, 24, 32)
    source = tmp_path / f"in{_E2E_KINDS[kind]}"
    stored = _write_e2e_source(source, kind, rgb)
    out = tmp_path / f"out{_E2E_KINDS[kind]}"
    result = _deblurrer_for(rgb).deblur_file(source, out)
    assert 0 < result.mask.mean() < 1
    if kind.startswith("tiff"):
        written = _tiff_samples(out)
    else:
        written = _samples(load_image(out))
    assert written.dtype == stored.dtype and written.shape == stored.shape
    outside = ~result.mask
    np.testing.assert_array_equal(written[outside], stored[outside])
    if stored.shape[2] in (2, 4):
        np.testing.assert_array_equal(written[..., -1], stored[..., -1])  # alpha as stored
    if kind.endswith("-rgb") or kind.startswith("webp"):
        assert np.any(written[result.mask] != stored[result.mask])  # the network did work


def test_icc_profile_of_a_16bit_tiff_is_kept(tmp_path: Path) -> None:
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    source = tmp_path / "in.tif"
    tifffile.imwrite(source, _rgb16(4, 5), photometric="rgb", iccprofile=icc)
    loaded = load_image(source)
    assert loaded.icc_profile == icc
    save_image(tmp_path / "out.tif", loaded.rgb, like=loaded)
    with tifffile.TiffFile(tmp_path / "out.tif") as tiff:
        assert bytes(tiff.pages[0].tags[34675].value) == icc
