"""The Python API: `Deblurrer` restores local motion blur in images of any common type.

    from m2aenet import Deblurrer
    deblur = Deblurrer.from_pretrained("default")
    result = deblur(image)        # PIL image, numpy array or a path
    result.image                  # same type / dtype family as the input
    result.mask                   # bool (H, W): the pixels the network processed
    result.stats                  # size, blurred fraction, time, FLOPs dense vs pruned, tiles

Outside the mask the output is the input, exactly: the output is composed as
`where(mask, restored, original)` in the input's own dtype, so no value the network did not
touch goes through a float round trip.
"""

from __future__ import annotations

import os
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from m2aenet.device import cpu_threads
from m2aenet.errors import ConfigError, InputError, InputWarning, OutputError
from m2aenet.tiling import run_tiled, run_tiled_rows, validate_tiling

if TYPE_CHECKING:
    from m2aenet.imageio import LoadedImage

#: ITU-R BT.601 luma weights, the ones Pillow's `convert("L")` uses: a gray input is restored
#: as RGB (gray replicated) and turned back into gray with these.
LUMA_WEIGHTS = np.array([0.299, 0.587, 0.114], dtype=np.float32)

#: Images with more pixels than this are tiled automatically (`tile=None`). Measured peak
#: memory of m2aenet-s in deploy mode on the CPU (docs/usage.md): about 1.15 GB per megapixel
#: when every pixel is kept, 0.3 GB at 20 % kept; so 4.2 megapixels stay under about 5 GB.
AUTO_TILE_PIXELS = 2048 * 2048
#: Tile side used by automatic tiling: about 1.2 GB per tile at worst.
AUTO_TILE_SIZE = 1024

#: Peak memory per pixel the network processes in one pass: m2aenet-s in deploy mode with
#: every pixel kept measured 1.13-1.17 GB per megapixel (docs/usage.md).
NETWORK_BYTES_PER_PIXEL = 1200
#: Float32 buffers per pixel of a band of tile rows (input, blend sums, weights, result).
BAND_BYTES_PER_PIXEL = 48

#: Pixels shared by neighbouring tiles unless the caller says otherwise.
DEFAULT_TILE_OVERLAP = 32


def check_tiling(
    tile: int | None, tile_overlap: int, names: tuple[str, str] = ("tile", "tile_overlap")
) -> None:
    """ConfigError naming the option unless `tile`/`tile_overlap` can cover an image.

    tile None (automatic) is checked against AUTO_TILE_SIZE, so a bad overlap is refused up
    front rather than on the first image large enough to be tiled; tile 0 never tiles.
    """
    if tile != 0:
        validate_tiling(AUTO_TILE_SIZE if tile is None else tile, tile_overlap, names)


# Pillow modes kept as they are: mode -> numpy dtype of its raw pixel data.
_RAW_MODES = {
    "L": np.uint8,
    "LA": np.uint8,
    "RGB": np.uint8,
    "RGBA": np.uint8,
    "I;16": np.dtype("<u2"),
    "I;16L": np.dtype("<u2"),
    "I;16B": np.dtype(">u2"),
    "I;16N": np.uint16,
    "I": np.int32,
    "F": np.float32,
}
# Other Pillow modes are converted first and come back in the converted mode.
_CONVERTED_MODES = {"1": "L", "La": "LA", "PA": "RGBA", "RGBa": "RGBA", "RGBX": "RGB"}


@dataclass
class Result:
    """What a `Deblurrer` returns for one image.

    image: the restored image, same type and dtype family as the input (see `Deblurrer.__call__`).
    mask: bool (H, W), True where the network restored the pixel; elsewhere image == input.
    stats: height, width, fraction (blurred fraction of the pixels), ms (network time),
        dense_gflops and pruned_gflops (None when FLOP counting is off), tiles.
    """

    image: Any
    mask: np.ndarray
    stats: dict[str, Any] = field(default_factory=dict)


def _value_scale(dtype: np.dtype) -> float | None:
    """Full-scale value of an integer pixel dtype (255, 65535); None for float pixels."""
    if dtype == np.uint8:
        return 255.0
    if dtype == np.uint16:
        return 65535.0
    if np.issubdtype(dtype, np.floating):
        return None
    raise InputError(
        f"unsupported pixel dtype {dtype}: use uint8, uint16 or float in [0, 1] arrays"
    )


def _split_channels(array: np.ndarray) -> tuple[np.ndarray, bool]:
    """(colour channels (H, W, 3) or (H, W), is_gray) of an (H, W) / (H, W, 1|2|3|4) array."""
    if array.ndim in (2, 3) and 0 in array.shape[:2]:
        raise InputError(f"empty image array of shape {array.shape}: nothing to deblur")
    if array.ndim == 2:
        return array, True
    if array.ndim == 3 and array.shape[2] in (1, 2):
        return array[..., 0], True
    if array.ndim == 3 and array.shape[2] in (3, 4):
        return array[..., :3], False
    raise InputError(
        f"unsupported image array shape {array.shape}: expected (H, W) or (H, W, 1|2|3|4)"
    )


def _refuse_non_finite(array: np.ndarray, rows_per_step: int = 1024) -> None:
    """InputError counting the NaN and infinite values of a float array (integers pass).

    The network mixes neighbouring pixels, so one NaN would spread over the restored region
    (a 10x10 NaN patch came back as ~10,000 NaN values): refuse instead. Counted a band of
    rows at a time, so a large image costs no image-sized temporary.
    """
    if not np.issubdtype(array.dtype, np.floating):
        return
    color, _ = _split_channels(array)
    non_finite = sum(
        int(band.size - np.count_nonzero(np.isfinite(band)))
        for band in (
            color[top : top + rows_per_step] for top in range(0, color.shape[0], rows_per_step)
        )
    )
    if non_finite:
        raise InputError(
            f"float image has {non_finite} non-finite values (NaN or infinity) of "
            f"{color.size}; replace them (e.g. numpy.nan_to_num) before deblurring"
        )


def _to_model_rgb(array: np.ndarray) -> np.ndarray:
    """float32 (H, W, 3) in [0, 1] for the network, from any supported pixel array."""
    scale = _value_scale(array.dtype)
    color, is_gray = _split_channels(array)
    rgb = color.astype(np.float32)
    if scale is not None:
        rgb /= scale
    else:
        _refuse_non_finite(rgb)
    if is_gray:
        rgb = np.repeat(rgb[..., None], 3, axis=2)
    return np.clip(rgb, 0.0, 1.0)


def compose(original: np.ndarray, restored_rgb: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """`where(mask, restored, original)` in `original`'s layout and dtype.

    original: (H, W) or (H, W, 1|2|3|4), uint8 / uint16 / float; restored_rgb: float (H, W, 3)
    in [0, 1]; mask: bool (H, W). Alpha channels are copied from `original`; gray originals get
    the luma of the restored RGB (`LUMA_WEIGHTS`). Integer outputs are rounded; float outputs
    are float32. Pixels where `mask` is False are copies of `original`, bit for bit.
    """
    scale = _value_scale(original.dtype)
    color, is_gray = _split_channels(original)
    restored = np.clip(restored_rgb.astype(np.float32), 0.0, 1.0)
    if is_gray:
        restored = restored @ LUMA_WEIGHTS
    if scale is not None:
        restored = np.round(restored * scale).clip(0, scale).astype(original.dtype)
    out = original.astype(original.dtype if scale is not None else np.float32, copy=True)
    where = mask if is_gray or color.ndim == 2 else mask[..., None]
    new_color = np.where(where, restored, color)
    if original.ndim == 2:
        out[...] = new_color
    elif is_gray:
        out[..., 0] = new_color
    else:
        out[..., :3] = new_color
    return out


def _pil_to_array(image: Image.Image) -> tuple[np.ndarray, str]:
    """(pixel array, mode to give back) of a PIL image, converting modes we cannot keep."""
    mode = image.mode
    if mode not in _RAW_MODES:
        if mode in _CONVERTED_MODES:
            mode = _CONVERTED_MODES[mode]
        elif mode == "P":
            mode = "RGBA" if "transparency" in image.info else "RGB"
        else:  # CMYK, YCbCr, LAB, HSV: colour spaces the network does not know
            mode = "RGB"
        image = image.convert(mode)
    channels = len(image.getbands())
    shape = (image.height, image.width) + ((channels,) if channels > 1 else ())
    array = np.frombuffer(image.tobytes(), dtype=_RAW_MODES[mode]).reshape(shape)
    if mode.startswith("I;16"):
        array = array.astype(np.uint16)  # native byte order for the arithmetic
    elif mode == "I":
        if array.size and (array.min() < 0 or array.max() > 65535):
            raise InputError("PIL mode 'I' image with values outside 0..65535 is not supported")
        array = array.astype(np.uint16)
    return array, mode


def _array_to_pil(array: np.ndarray, mode: str) -> Image.Image:
    """Inverse of `_pil_to_array` for a composed array."""
    raw = array.astype(_RAW_MODES[mode])
    return Image.frombytes(mode, (array.shape[1], array.shape[0]), raw.tobytes())


def _loaded_to_array(loaded: LoadedImage, rows_per_step: int = 1024) -> np.ndarray:
    """The pixel values of a loaded file in its own bit depth: (H, W[, C]) uint8 or uint16,
    or float32 as stored for float TIFFs.

    Converted a band of rows at a time: whole-image float temporaries cost 24 bytes a pixel
    on top of the image, which decided the peak memory of large images.
    """
    floating = loaded.bit_depth == 32
    scale = np.float32(65535.0 if loaded.bit_depth == 16 else 255.0)
    dtype = np.float32 if floating else np.uint16 if loaded.bit_depth == 16 else np.uint8
    channels = (1 if loaded.is_gray else 3) + (loaded.alpha is not None)
    height, width = loaded.rgb.shape[:2]
    out = np.empty((height, width, channels), dtype=dtype)
    for top in range(0, height, rows_per_step):
        rows = slice(top, top + rows_per_step)
        color = loaded.rgb[rows, :, :1] if loaded.is_gray else loaded.rgb[rows]
        parts = [color] if loaded.alpha is None else [color, loaded.alpha[rows, :, None]]
        band = np.concatenate(parts, axis=2) if len(parts) > 1 else parts[0]
        out[rows] = band if floating else np.clip(np.round(band * scale), 0, scale)
    return out[..., 0] if channels == 1 else out


def _preview_rgb(array: np.ndarray) -> np.ndarray:
    """uint8 (H, W, 3) of a pixel array, for the mask and comparison pictures."""
    color, is_gray = _split_channels(array)
    if color.dtype == np.uint16:
        color = ((color.astype(np.uint32) + 128) // 257).astype(np.uint8)
    elif color.dtype == np.float32:
        from m2aenet.imageio import to_uint8

        color = to_uint8(color)
    return np.repeat(color[..., None], 3, axis=2) if is_gray else np.ascontiguousarray(color)


def _array_to_pil_8bit(array: np.ndarray) -> Image.Image:
    """A PIL image of a pixel array; 16-bit colour (no PIL mode) and float colour are reduced
    to 8-bit."""
    if array.dtype == np.float32:
        if array.ndim == 2:
            return _array_to_pil(array, "F")
        from m2aenet.imageio import to_uint8

        array = to_uint8(array)
    if array.dtype == np.uint16 and array.ndim == 2:
        return _array_to_pil(array, "I;16")
    if array.dtype == np.uint16:
        array = np.round(array / 257.0).astype(np.uint8)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    channels = 1 if array.ndim == 2 else array.shape[2]
    return _array_to_pil(array, {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[channels])


class Deblurrer:
    """Restore local motion blur with an M2AENet model (or any model with the same contract).

    model: a network honouring the model contract (`model(x) -> ModelOutput`, `mask_threshold`,
        `executor`); it is moved to `device` and put in eval mode. `from_pretrained` also
        reparameterizes it into deploy mode (pixel pruning); an in-memory model is used as is.
    device: "auto" (CUDA when present), "cpu", "cuda" or "cuda:N".
    threshold: sets `model.mask_threshold` (higher: fewer pixels processed, faster).
    whole_frame_extent: sets `model.whole_frame_extent`: a frame whose `frame_blur_extent`
        reaches it (camera shake) is restored whole; 0 turns the decision off.
    defocus_veto: sets `model.defocus_veto` (px): where even the narrowest edge orientation is
        wider than this, the photo is out of focus, not smeared, and is left unmarked (saves
        the work on bokeh; long smears of fine texture can look alike, docs/usage.md); 0: off.
    dense: process every pixel (an all-ones mask), for comparison with the pruned run.
    tile: tile side in pixels; None tiles automatically above AUTO_TILE_PIXELS pixels, 0 never.
    tile_overlap: pixels shared by neighbouring tiles (blended with linear ramps).
    executor: deploy-mode executor, "auto" | "pixel" | "tile".
    count_flops: fill `stats["dense_gflops"]` / `["pruned_gflops"]` (counted once on small
        probes, then scaled by pixel counts; see `flops_estimate`).
    threads: CPU threads for the network (`torch.set_num_threads`, set for each call and
        restored after it); None leaves torch's choice, one per core. On a machine whose
        cores are busy, 1 is far faster than 2 (docs/usage.md, "Threads").
    """

    def __init__(
        self,
        model: nn.Module,
        device: str | torch.device = "auto",
        threshold: float | None = None,
        dense: bool = False,
        tile: int | None = None,
        tile_overlap: int = DEFAULT_TILE_OVERLAP,
        executor: str = "auto",
        whole_frame_extent: float | None = None,
        defocus_veto: float | None = None,
        count_flops: bool = True,
        threads: int | None = None,
    ) -> None:
        from m2aenet.device import check_threads, resolve_device
        from m2aenet.limits import check_defocus_veto, check_threshold, check_whole_frame_extent

        if threshold is not None:
            threshold = check_threshold(threshold)
        if whole_frame_extent is not None:
            whole_frame_extent = check_whole_frame_extent(whole_frame_extent)
        if defocus_veto is not None:
            defocus_veto = check_defocus_veto(defocus_veto)
        self.device = resolve_device(device) if isinstance(device, str) else torch.device(device)
        self.model = model.to(self.device).eval()
        if threshold is not None:
            self.model.mask_threshold = threshold
        if whole_frame_extent is not None:
            if not hasattr(self.model, "whole_frame_extent"):
                raise ConfigError(f"{type(model).__name__} has no whole-frame decision")
            self.model.whole_frame_extent = whole_frame_extent
        if defocus_veto is not None:
            if not hasattr(self.model, "defocus_veto"):
                raise ConfigError(f"{type(model).__name__} has no defocus veto")
            self.model.defocus_veto = defocus_veto
        if hasattr(self.model, "executor"):
            self.model.executor = executor
        check_tiling(tile, tile_overlap)
        self.dense = dense
        self.tile = tile
        self.tile_overlap = tile_overlap
        self.count_flops = count_flops
        self.threads = check_threads(threads)
        self._flop_rates: tuple[float, float, float] | None = None
        self._first_call_lock = threading.Lock()

    @classmethod
    def from_pretrained(
        cls,
        weights: str | os.PathLike = "default",
        device: str | torch.device = "auto",
        **options: Any,
    ) -> Deblurrer:
        """Load shipped weights by name (`"default"`) or a `.safetensors` path, in deploy mode.

        options: the keyword arguments of `Deblurrer` (threshold, dense, tile, ...).
        Raises CheckpointError when the weights are missing, not safetensors, or do not fit.
        """
        from m2aenet.checkpoint import load_model
        from m2aenet.device import resolve_device
        from m2aenet.limits import check_defocus_veto, check_threshold, check_whole_frame_extent

        if options.get("threshold") is not None:  # a bad value must not wait for the model
            check_threshold(options["threshold"])
        if options.get("whole_frame_extent") is not None:
            check_whole_frame_extent(options["whole_frame_extent"])
        if options.get("defocus_veto") is not None:
            check_defocus_veto(options["defocus_veto"])
        check_tiling(options.get("tile"), options.get("tile_overlap", DEFAULT_TILE_OVERLAP))
        device = resolve_device(device) if isinstance(device, str) else torch.device(device)
        model = load_model(weights, device=device)
        if hasattr(model, "reparameterize"):
            model = model.reparameterize() or model
        return cls(model, device=device, **options)

    # -- the network pass ---------------------------------------------------------------------

    def _tile_size(self, height: int, width: int) -> int | None:
        if self.tile is None:
            return AUTO_TILE_SIZE if height * width > AUTO_TILE_PIXELS else None
        return self.tile or None

    def _run_model(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(restored (1, 3, h, w), bool mask (1, 1, h, w)) of x, on the model's device."""
        x = x.to(self.device)
        mask = torch.ones_like(x[:, :1]) if self.dense else None
        with cpu_threads(self.threads):  # per network call, so every tile is covered too
            out = self.model(x) if mask is None else self.model(x, mask=mask)
        return out.image.float(), out.mask > 0.5

    @torch.inference_mode()
    def restore(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
        """Run the network on float32 (H, W, 3) RGB in [0, 1].

        Returns (restored float32 (H, W, 3), bool mask (H, W), stats). Where the mask is False
        the restored array equals `rgb`. Most callers want `__call__`, which also keeps the
        input's type, dtype and alpha.
        """
        height, width = rgb.shape[:2]
        x = torch.from_numpy(np.ascontiguousarray(rgb, dtype=np.float32)).permute(2, 0, 1)[None]
        tile = self._tile_size(height, width)
        start = time.perf_counter()
        if tile is not None and (height > tile or width > tile):
            restored, mask, tiles = run_tiled(self._run_model, x, tile, self.tile_overlap)
        else:
            # The model contract already returns the input outside its mask.
            restored, mask = (tensor.cpu() for tensor in self._run_model(x))
            tiles = 1
        mask_np = mask[0, 0].numpy()
        stats = self._stats(height, width, mask_np, start, tiles)
        return restored[0].permute(1, 2, 0).numpy(), mask_np, stats

    def _stats(
        self, height: int, width: int, mask: np.ndarray, start: float, tiles: int
    ) -> dict[str, Any]:
        """The `Result.stats` of a run that began at `perf_counter()` time `start`."""
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        ms = (time.perf_counter() - start) * 1000.0
        kept = int(np.count_nonzero(mask))
        stats: dict[str, Any] = {
            "height": height,
            "width": width,
            "fraction": kept / float(height * width),
            "ms": ms,
            "dense_gflops": None,
            "pruned_gflops": None,
            "tiles": tiles,
        }
        if self.count_flops:
            stats["dense_gflops"], stats["pruned_gflops"] = self.flops_estimate(height, width, kept)
        return stats

    @torch.inference_mode()
    def _deblur_tiled(self, array: np.ndarray, tile: int) -> Result:
        """`deblur_array` of a large image, a band of tile rows at a time.

        Only the input, the output (both in the input's dtype) and the mask are image-sized;
        the float copies the network and the blending need exist for one band of rows
        (`tiling.run_tiled_rows`), so a 268-megapixel 8-bit RGB image needs about 2 GB here
        instead of the 21 GB a float pipeline over the whole image took.
        """
        height, width = array.shape[:2]
        _refuse_non_finite(array)  # before any work, with the count over the whole image
        mask = np.zeros((height, width), dtype=bool)
        composed: list[np.ndarray] = []  # the output, allocated on the first finished rows

        def read_rows(top: int, bottom: int) -> torch.Tensor:
            rgb = _to_model_rgb(array[top:bottom])
            return torch.from_numpy(rgb).permute(2, 0, 1)[None]

        def emit(top: int, bottom: int, restored: torch.Tensor, rows_mask: torch.Tensor) -> None:
            mask[top:bottom] = rows_mask[0, 0].numpy()
            rows = compose(
                array[top:bottom], restored[0].permute(1, 2, 0).numpy(), mask[top:bottom]
            )
            if not composed:
                composed.append(np.empty((height, width, *rows.shape[2:]), dtype=rows.dtype))
            composed[0][top:bottom] = rows

        start = time.perf_counter()
        tiles = run_tiled_rows(
            self._run_model, read_rows, height, width, tile, self.tile_overlap, emit
        )
        return Result(composed[0], mask, self._stats(height, width, mask, start, tiles))

    def memory_estimate(self, height: int, width: int, image_bytes_per_pixel: float) -> int:
        """Bytes a `height` x `width` image needs at the peak, at worst (every pixel kept).

        The network's share is set by what one pass processes (the whole image, or one tile
        with tiling) and the band buffers of tiled runs; `image_bytes_per_pixel` is what the
        caller holds per pixel of the whole image (decoded file, input, output, mask).
        """
        tile = self._tile_size(height, width)
        pixels = height * width
        if tile is None or (height <= tile and width <= tile):
            network = pixels * NETWORK_BYTES_PER_PIXEL
        else:
            network = tile * tile * NETWORK_BYTES_PER_PIXEL
            network += min(tile, height) * width * BAND_BYTES_PER_PIXEL
        return int(network + pixels * image_bytes_per_pixel)

    def check_memory(
        self, height: int, width: int, image_bytes_per_pixel: float, name: str = "image"
    ) -> None:
        """InputError naming `name` when `memory_estimate` exceeds the memory available now.

        Refusing up front is better than the kernel killing the process half-way through a
        batch. Where the system does not say how much memory is free nothing is refused.
        """
        from m2aenet.memory import fits, format_bytes

        needed = self.memory_estimate(height, width, image_bytes_per_pixel)
        ok, available = fits(needed)
        if ok:
            return
        tiling = "smaller tiles" if self._tile_size(height, width) else "use tiling"
        raise InputError(
            f"{name}: a {width} x {height} image needs up to {format_bytes(needed)} of memory "
            f"but {format_bytes(available or 0)} is available; {tiling} (--tile N, tile=N) "
            "or free memory"
        )

    # -- FLOPs --------------------------------------------------------------------------------

    def flops_estimate(self, height: int, width: int, kept: int) -> tuple[float, float]:
        """(dense, pruned) GFLOPs of an image of `height` x `width` with `kept` masked pixels.

        `m2aenet.flops.count_flops` runs once per Deblurrer on three small probes (no pixel
        kept; one pixel kept; every pixel kept), with the pixel executor, giving per-pixel costs
        of the parts that always run (mask predictor; with any kept pixel also the analyzer and
        stem) and the cost per kept pixel. An image then costs `pixels * fixed + kept * per_kept`:
        the arithmetic of pixel-level pruning, whichever executor ran (the tile executor may
        do more arithmetic where that is faster). Dense is the same with every pixel kept.
        Counting the real run instead nearly doubled its time (measured: 5.6 s -> 10.5 s on a
        1-megapixel image), so it is not done.
        """
        if self._flop_rates is None:
            # One thread measures; others wait for its rates. Measuring swaps the model's
            # executor, so two threads measuring at once could restore each other's swap.
            with self._first_call_lock:
                if self._flop_rates is None:
                    self._flop_rates = self._measure_flop_rates()
        nothing_kept, fixed, per_kept = self._flop_rates
        pixels = height * width
        dense = pixels * (fixed + per_kept)
        pruned = pixels * nothing_kept if kept == 0 else pixels * fixed + kept * per_kept
        return dense / 1e9, pruned / 1e9

    @torch.inference_mode()
    def _measure_flop_rates(self, size: int = 64) -> tuple[float, float, float]:
        """Per-pixel FLOPs: (nothing kept, fixed part when something is kept, per kept pixel)."""
        from m2aenet.flops import count_flops

        probe = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(0))
        probe = probe.to(self.device)
        none = torch.zeros(1, 1, size, size, device=self.device)
        one = none.clone()
        one[..., size // 2, size // 2] = 1.0
        executor = getattr(self.model, "executor", None)
        if executor is not None:
            self.model.executor = "pixel"
        try:
            flops = [
                float(count_flops(self.model, probe, mask=mask).flops)
                for mask in (none, one, torch.ones_like(none))
            ]
        finally:
            if executor is not None:
                self.model.executor = executor
        pixels = float(size * size)
        per_kept = max(flops[2] - flops[1], 0.0) / (pixels - 1.0)
        return flops[0] / pixels, (flops[1] - per_kept) / pixels, per_kept

    # -- public entry points ------------------------------------------------------------------

    def deblur_array(self, array: np.ndarray) -> Result:
        """Deblur a pixel array: (H, W) gray or (H, W, 1|2|3|4), uint8 / uint16 / float [0, 1].

        The result has the input's shape and dtype (float inputs give float32); alpha
        (channel 2 of 2 or 4 of 4) is copied from the input.
        """
        array = np.asarray(array)
        height, width = _split_channels(array)[0].shape[:2]
        # The caller holds the input; the output, the mask and a float copy are added.
        self.check_memory(height, width, 2 * array.itemsize * array[0, 0].size + 1, "array")
        tile = self._tile_size(height, width)
        if tile is not None and (height > tile or width > tile):
            return self._deblur_tiled(array, tile)
        restored, mask, stats = self.restore(_to_model_rgb(array))
        return Result(compose(array, restored, mask), mask, stats)

    def deblur_tensor(self, batch: torch.Tensor) -> Result:
        """Deblur a torch tensor (B, C, H, W) or (C, H, W): C = 1 gray, 3 RGB, 2 or 4 with alpha.

        Float tensors are taken as [0, 1] (any float dtype), uint8 as 0..255. The result has
        the input's shape, dtype and device; `result.mask` is a bool tensor (B, H, W) (or
        (H, W) for a 3-D input) on that device; `result.stats` sums ms, GFLOPs and tiles over
        the batch, averages `fraction`, and gives `batch`, the number of images. Each image is
        composed like `deblur_array`, so pixels outside the mask are the input's exactly.
        """
        if batch.ndim not in (3, 4) or batch.shape[-3] not in (1, 2, 3, 4):
            raise InputError(
                f"unsupported tensor shape {tuple(batch.shape)}: expected (B, C, H, W) or "
                "(C, H, W) with C = 1, 2, 3 or 4"
            )
        images = batch[None] if batch.ndim == 3 else batch
        if images.shape[0] == 0:
            raise InputError(f"empty tensor batch of shape {tuple(batch.shape)}: nothing to deblur")
        host = images.detach().cpu()
        if host.is_floating_point():
            host = host.float()  # numpy has no bfloat16; float32 holds every float16/bf16 value
        # One image at a time through the array path: the same checks, tiling and exact
        # composition outside the mask as every other input type.
        results = [self.deblur_array(image.permute(1, 2, 0).numpy()) for image in host]
        restored = torch.stack([torch.from_numpy(result.image) for result in results])
        restored = restored.permute(0, 3, 1, 2)  # (B, H, W, C) -> (B, C, H, W)
        masks = torch.from_numpy(np.stack([result.mask for result in results]))
        restored = restored.to(device=batch.device, dtype=batch.dtype)
        masks = masks.to(batch.device)
        stats: dict[str, Any] = {
            "batch": len(results),
            "height": images.shape[-2],
            "width": images.shape[-1],
            "fraction": float(np.mean([result.stats["fraction"] for result in results])),
        }
        for key in ("ms", "dense_gflops", "pruned_gflops", "tiles"):
            values = [result.stats[key] for result in results]
            stats[key] = None if None in values else sum(values)
        if batch.ndim == 3:
            return Result(restored[0], masks[0], stats)
        return Result(restored.contiguous(), masks, stats)

    def __call__(
        self, image: Image.Image | np.ndarray | torch.Tensor | str | os.PathLike
    ) -> Result:
        """Deblur a PIL image, a numpy array or an image file.

        - PIL image -> PIL image of the same mode (L, LA, RGB, RGBA, I;16, I, F). Palette and
          other modes are converted to RGB / RGBA / L first and come back in that mode.
        - numpy array -> array of the same shape; uint8 and uint16 keep their dtype, float
          arrays (taken as [0, 1]) give float32.
        - torch tensor (B, C, H, W) or (C, H, W) -> tensor of the same shape, dtype and device
          (see `deblur_tensor`).
        - path -> PIL image read with `m2aenet.imageio.load_image` (EXIF orientation applied);
          16-bit and float colour files come back as 8-bit RGB(A), float gray as mode F
          (use `deblur_file` to keep 16-bit and float samples).
        """
        if isinstance(image, Image.Image):
            array, mode = _pil_to_array(image)
            result = self.deblur_array(array)
            result.image = _array_to_pil(result.image, mode)
            return result
        if isinstance(image, np.ndarray):
            return self.deblur_array(image)
        if isinstance(image, torch.Tensor):
            return self.deblur_tensor(image)
        if isinstance(image, str | os.PathLike):
            from m2aenet.imageio import load_image

            result = self.deblur_array(_loaded_to_array(load_image(image)))
            result.image = _array_to_pil_8bit(result.image)
            return result
        raise TypeError(
            "Deblurrer takes a PIL image, a numpy array, a torch tensor or a path, "
            f"not {type(image).__name__}"
        )

    def deblur_file(
        self,
        source: str | os.PathLike,
        destination: str | os.PathLike,
        mask_path: str | os.PathLike | None = None,
        overlay_path: str | os.PathLike | None = None,
        jpeg_quality: int = 95,
        compare_path: str | os.PathLike | None = None,
        write_image: bool = True,
    ) -> Result:
        """Deblur one image file into `destination`, keeping format, bit depth, gray and alpha.

        Optionally writes the mask (8-bit PNG, 255 = restored), an overlay picture of the
        mask over the input and a comparison picture (input | restored | mask | zoom on the
        most-changed region, `visualize.restoration_comparison`). Every file is written
        atomically, the image last (it marks the job done). `write_image=False` writes only
        those extras and leaves `destination` alone (an earlier run wrote it). Raises
        InputError naming `source` when it cannot be read or an output path is `source`
        itself. `result.image` holds the restored pixels: uint8 or uint16 (H, W[, C]) as
        stored (gray 2-D; alpha last).
        """
        from m2aenet.imageio import (
            load_image,
            output_format,
            read_image_info,
            save_image,
            write_png,
        )

        # Every output is judged before any work, so a bad one leaves no orphan files.
        _check_output_paths(source, [destination, mask_path, overlay_path, compare_path])
        destination_format = output_format(destination)
        info = read_image_info(source)
        # Decoding holds the samples (up to 2 bytes) and float32 copies, then the input and
        # output in the file's depth and the mask: about 6 bytes per channel plus 13.
        try:  # a palette decodes to RGB(A)
            channels = 4 if info.mode.startswith("P") else Image.getmodebands(info.mode)
        except (KeyError, ValueError):
            channels = 4
        self.check_memory(info.height, info.width, 6 * channels + 13, str(source))
        loaded = load_image(source)
        if loaded.lossless and destination_format == "JPEG":
            warnings.warn(
                f"{source}: holds lossless {loaded.format} data but {Path(destination).name} "
                "is written as JPEG, so pixels outside the mask change too; rename the input "
                f"to .{loaded.format.lower()} to keep them exact",
                InputWarning,
                stacklevel=2,
            )
        original = _loaded_to_array(loaded)
        # The float copy is not needed any more (alpha and metadata are): free it, keeping
        # its shape for the writer's checks. On a large image it is the largest array held.
        loaded.rgb = np.broadcast_to(np.zeros((1, 1, 3), np.float32), loaded.rgb.shape)
        result = self.deblur_array(original)
        if mask_path is not None:
            write_png(mask_path, result.mask.astype(np.uint8) * 255)
        if overlay_path is not None:
            from m2aenet.visualize import mask_overlay

            write_png(overlay_path, mask_overlay(_preview_rgb(original), result.mask))
        if compare_path is not None:
            from m2aenet.visualize import restoration_comparison

            picture = restoration_comparison(
                _preview_rgb(original), _preview_rgb(result.image), result.mask
            )
            write_png(compare_path, picture)
        # The composed integers go to the writer as they are (alpha comes from `loaded`), so
        # pixels outside the mask are written with the values that were read.
        if write_image:
            color, _ = _split_channels(result.image)
            save_image(Path(destination), color, like=loaded, jpeg_quality=jpeg_quality)
        return result


def _check_output_paths(source: str | os.PathLike, outputs: list[str | os.PathLike | None]) -> None:
    """InputError when an output path is the source file itself (inputs are never replaced);
    OutputError when one is an existing folder (it would fail only after the work)."""
    source_path = Path(source).resolve()
    for output in outputs:
        if output is None:
            continue
        if Path(output).resolve() == source_path:
            raise InputError(
                f"{output}: output would overwrite the input {source}; choose another path"
            )
        if Path(output).is_dir():
            raise OutputError(
                f"{output}: is a folder, not an output file; remove or rename it "
                f"(the result of {source} goes there)"
            )
