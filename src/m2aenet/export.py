"""ONNX export of a deploy model, and a check of the exported graph against torch.

The exported graph takes `image` (B, 3, H, W) float32 in [0, 1] and returns `restored`
(B, 3, H, W) and `mask` (B, 1, H, W) in {0, 1}. Two forms:

- `dense`: the whole deploy pipeline (mask predictor, motion analyzer, collapsed blocks), with
  every block evaluated on the whole map as `x + M * F(x)` (the deploy model's `dense`
  executor). Same output as the pruned model for the same mask; runs on any ONNX runtime.
- `pruned`: the deploy model's pixel executor, which gathers the kept pixels; its tensor sizes
  depend on the predicted mask. See docs/export.md for what the exporters make of it.

Needs the optional packages `onnx` and `onnxscript` (export) and `onnxruntime` (check):
`pip install 'm2aenet[onnx]'`.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import logging
import os
import sys
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from m2aenet.atomic import atomic_path
from m2aenet.errors import ConfigError, InputError, M2AENetError

FORMS = {"dense": "dense", "pruned": "pixel"}  # form -> deploy-mode executor it runs
EXPORTERS = ("dynamo", "torchscript")
INPUT_NAME = "image"
OUTPUT_NAMES = ("restored", "mask")
DEFAULT_OPSET = 18
# An export passes its check when onnxruntime's restored image is within CHECK_TOLERANCE of
# torch's everywhere. Exception: a blur probability within rounding of the threshold may flip
# a mask pixel between runtimes, which also changes the restored pixels around it (later
# blocks read it); then at most MISMATCH_LIMIT of the mask pixels may differ and at most
# MISMATCH_LIMIT of the restored pixels may be off by more than CHECK_TOLERANCE.
CHECK_TOLERANCE = 1e-4
MISMATCH_LIMIT = 1e-3
# Smallest example height/width for a dynamic trace: below it, padding to the model's size
# multiple switches from reflect to replicate, a branch the traced graph would then keep.
MIN_DYNAMIC_SIZE = 8


@dataclass
class ExportResult:
    """What `export_onnx` wrote."""

    path: Path
    model: str  # registered model name
    form: str  # "dense" | "pruned"
    exporter: str  # "dynamo" | "torchscript"
    input_shape: tuple[int, int, int, int]  # example input (B, 3, H, W) the graph was traced on
    dynamic: bool  # batch, height and width free at run time
    opset: int
    megabytes: float

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready summary."""
        return {**asdict(self), "path": str(self.path), "input_shape": list(self.input_shape)}


class OnnxGraph(nn.Module):
    """The exported computation: image (B, 3, H, W) -> (restored (B, 3, H, W), mask (B, 1, H, W)).

    ONNX graphs return tensors, not dataclasses; this wrapper unpacks the model's output and
    runs the model with the executor of the chosen form, restoring the model's own after. The
    whole-frame decision by blur extent (tile FFTs at a size set by the input) stays out of the
    graph: exported models restore what their mask marks (docs/export.md).
    """

    def __init__(self, model: nn.Module, form: str = "dense") -> None:
        super().__init__()
        if form not in FORMS:
            raise ConfigError(f"export form must be one of {tuple(FORMS)}, got {form!r}")
        self.model = model
        self.form = form

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        previous = getattr(self.model, "executor", None)
        extent = getattr(self.model, "whole_frame_extent", None)
        if previous is not None:
            self.model.executor = FORMS[self.form]
        if extent is not None:
            self.model.whole_frame_extent = 0.0
        try:
            out = self.model(image)
        finally:
            if previous is not None:
                self.model.executor = previous
            if extent is not None:
                self.model.whole_frame_extent = extent
        return out.image, out.mask


def missing_packages(names: Sequence[str]) -> list[str]:
    """Those of `names` that cannot be imported here."""
    return [name for name in names if importlib.util.find_spec(name) is None]


def _require(names: Sequence[str], purpose: str) -> None:
    missing = missing_packages(names)
    if missing:
        raise M2AENetError(f"{purpose} needs {', '.join(missing)}: pip install 'm2aenet[onnx]'")


def has_pruned_form(model: nn.Module) -> bool:
    """True for a model whose deploy mode prunes pixels (M2AENet after `reparameterize()`)."""
    return bool(getattr(model, "deployed", False))


def load_deploy_model(weights: str | Path, threshold: float | None = None) -> nn.Module:
    """Load `weights` (shipped name or .safetensors path) on the CPU, in deploy mode.

    `threshold` overrides the model's blur-mask threshold, which the export bakes in.
    """
    from m2aenet.checkpoint import load_model

    model = load_model(weights, device="cpu")
    model = model.reparameterize() or model
    if threshold is not None:
        model.mask_threshold = float(threshold)
    return model.eval()


def export_onnx(
    model: nn.Module,
    out: str | Path,
    *,
    form: str = "dense",
    height: int = 256,
    width: int = 256,
    batch: int = 1,
    dynamic: bool = False,
    exporter: str = "dynamo",
    opset: int = DEFAULT_OPSET,
    seed: int = 0,
) -> ExportResult:
    """Trace `model` (deploy mode, on the CPU) into one ONNX file at `out`, atomically.

    The example input is a seeded random (batch, 3, height, width) image in [0, 1]. With
    `dynamic`, batch, height and width are free in the graph (dynamo exporter only: the
    TorchScript tracer bakes the example's padding into the graph); the trace then uses
    batch >= 2 and odd sizes (see below) and `input_shape` reports them. Weights are stored
    inside the file. Raises ConfigError for an impossible request, M2AENetError when the
    exporter fails (with its first message lines).
    """
    if form not in FORMS:
        raise ConfigError(f"export form must be one of {tuple(FORMS)}, got {form!r}")
    if exporter not in EXPORTERS:
        raise ConfigError(f"exporter must be one of {EXPORTERS}, got {exporter!r}")
    if dynamic and exporter != "dynamo":
        raise ConfigError("--dynamic needs the dynamo exporter (TorchScript fixes H and W)")
    if min(height, width) < (MIN_DYNAMIC_SIZE if dynamic else 1) or batch < 1:
        raise ConfigError(f"export size {batch}x3x{height}x{width} is too small")
    if form == "pruned" and not has_pruned_form(model):
        name = getattr(model, "model_name", type(model).__name__)
        raise ConfigError(
            f"model {name} has no pruned form: only a reparameterized M2AENet prunes pixels"
        )
    _require(["onnx", "onnxscript"] if exporter == "dynamo" else ["onnx"], "ONNX export")

    out = Path(out)
    graph = OnnxGraph(model, form).eval()
    if dynamic:
        # torch.export specializes sizes 0 and 1, and a traced `if padding needed` takes the
        # example's branch: trace on batch >= 2 and odd sizes (never a multiple of 2**k), so
        # the graph keeps the padding path, which also covers sizes that need none.
        batch, height, width = max(batch, 2), height | 1, width | 1
    generator = torch.Generator().manual_seed(seed)
    example = torch.rand(batch, 3, height, width, generator=generator)
    options: dict[str, Any] = {
        "input_names": [INPUT_NAME],
        "output_names": list(OUTPUT_NAMES),
        "opset_version": opset,
    }
    try:
        with torch.no_grad(), _quiet_exporter(), atomic_path(out) as tmp:
            if exporter == "dynamo":
                if dynamic:
                    # AUTO rather than named Dims: named ranges must hold for every guard the
                    # trace produces (e.g. pad arithmetic); AUTO keeps what can stay dynamic,
                    # and check_export then runs the graph on another size to prove it did.
                    auto = torch.export.Dim.AUTO
                    options["dynamic_shapes"] = ({0: auto, 2: auto, 3: auto},)
                program = torch.onnx.export(
                    graph, (example,), dynamo=True, verbose=False, **options
                )
                program.save(str(tmp), external_data=False)
            else:
                torch.onnx.export(graph, (example,), str(tmp), dynamo=False, **options)
    except M2AENetError:
        raise
    except Exception as error:  # exporters raise many types; report the cause in one line
        raise M2AENetError(
            f"{exporter} export of the {form} form failed: {_export_failure(error)}"
        ) from error
    return ExportResult(
        path=out,
        model=str(getattr(model, "model_name", type(model).__name__)),
        form=form,
        exporter=exporter,
        input_shape=(batch, 3, height, width),
        dynamic=dynamic,
        opset=opset,
        megabytes=round(out.stat().st_size / 1e6, 3),
    )


# Loggers that print pages (whole traced graphs, missing torchvision ops) on the way to an
# error the export reports in one line anyway.
_NOISY_LOGGERS = (
    "torch.onnx._internal.exporter._registration",
    "torch.fx.experimental.symbolic_shapes",
)


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """Silence the exporters' warnings (deprecation, tracer, missing torchvision ops).

    They concern code paths that `check_export` verifies anyway, and would bury the summary.
    """
    loggers = [logging.getLogger(name) for name in _NOISY_LOGGERS]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        # torch.export also prints whole traced graphs to stderr when it gives up, and the
        # TorchScript exporter prints its IR (120 KB for m2aenet-s) from C++, past sys.stdout.
        with (
            warnings.catch_warnings(),
            contextlib.redirect_stderr(io.StringIO()),
            _native_output_discarded(),
        ):
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


@contextlib.contextmanager
def _native_output_discarded() -> Iterator[None]:
    """Send file descriptors 1 and 2 (what C++ code prints to) to /dev/null for the duration."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved: list[tuple[int, int]] = []
    try:
        with open(os.devnull, "wb") as sink:
            for fd in (1, 2):
                saved.append((fd, os.dup(fd)))
                os.dup2(sink.fileno(), fd)
    except OSError:  # no usable descriptors (an embedded interpreter): print as it comes
        pass
    try:
        yield
    finally:
        for fd, copy in saved:
            os.dup2(copy, fd)
            os.close(copy)


def _export_failure(error: BaseException) -> str:
    """The useful part of an exporter's error: torch.onnx wraps the cause in advice text."""
    text = str(error)
    marker = "## Exception summary"
    if marker in text:
        text = text.split(marker, 1)[1]
    text = " ".join(text.split())
    return f"{type(error).__name__}: {text[:400]}"


def run_onnx(path: str | Path, image: np.ndarray) -> dict[str, np.ndarray]:
    """Run an exported graph with onnxruntime on the CPU.

    image: (B, 3, H, W) float32 in [0, 1]; returns {"restored": ..., "mask": ...}.
    """
    _require(["onnxruntime"], "running an ONNX graph")
    import onnxruntime

    try:
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        feed = {INPUT_NAME: np.ascontiguousarray(image, dtype=np.float32)}
        outputs = session.run(None, feed)
    except Exception as error:  # onnxruntime raises its own exception types
        message = " ".join(str(error).split())[:300]
        raise M2AENetError(
            f"{path}: onnxruntime failed on input {tuple(image.shape)}: {message}"
        ) from error
    return dict(zip(OUTPUT_NAMES, outputs, strict=True))


def compare_with_torch(
    path: str | Path, model: nn.Module, image: torch.Tensor, form: str = "dense"
) -> dict[str, float]:
    """onnxruntime against torch on one input image (B, 3, H, W) in [0, 1].

    Returns `max_abs_diff` (restored), `pixels_over_tolerance` (pixels with any channel off
    by more than CHECK_TOLERANCE), `mask_mismatch` (mask pixels that differ), `mask_fraction`
    (torch's kept fraction) and `pixels` (B * H * W).
    """
    graph = OnnxGraph(model, form).eval()
    with torch.no_grad():
        expected_image, expected_mask = (t.cpu().numpy() for t in graph(image))
    got = run_onnx(path, image.cpu().numpy())
    for name, reference in (("restored", expected_image), ("mask", expected_mask)):
        if got[name].shape != reference.shape:
            raise M2AENetError(
                f"{path}: output {name!r} has shape {got[name].shape}; torch gives "
                f"{reference.shape}"
            )
    diff = np.abs(got["restored"] - expected_image).max(axis=1)  # (B, H, W)
    return {
        "max_abs_diff": float(diff.max()),
        "pixels_over_tolerance": int((diff > CHECK_TOLERANCE).sum()),
        "mask_mismatch": int((got["mask"] != expected_mask).sum()),
        "mask_fraction": float(expected_mask.mean()),
        "pixels": int(expected_mask.size),
    }


def read_check_images(paths: Sequence[str | Path]) -> dict[str, np.ndarray]:
    """Read images to check an export on: name -> float32 (H, W, 3) in [0, 1]."""
    from m2aenet.imageio import read_rgb

    return {str(path): read_rgb(path) for path in paths}


def _fit_to_graph(
    name: str, rgb: np.ndarray, shape: tuple[int, ...], dynamic: bool
) -> torch.Tensor:
    """(H, W, 3) array -> (B, 3, H, W) input a graph of example `shape` accepts.

    A static graph takes only its traced shape: larger images are cropped (top-left) and
    repeated over the batch, smaller ones are an InputError naming the image.
    """
    image = torch.from_numpy(rgb).permute(2, 0, 1)[None]  # (1, 3, H, W)
    if dynamic:
        return image.contiguous()
    batch, _, height, width = shape
    if image.shape[-2] < height or image.shape[-1] < width:
        raise InputError(
            f"{name}: {image.shape[-1]}x{image.shape[-2]} is smaller than the exported "
            f"{width}x{height} (export with --dynamic to check any size)"
        )
    return image[..., :height, :width].expand(batch, -1, -1, -1).contiguous()


#: The check's real motion-blurred photo (scikit-image's `data.clock()`): on random inputs a
#: trained mask predictor marks nothing, and then only the copy of the input is checked.
BLURRED_CHECK_PHOTO = "clock_motion.png"


def blurred_check_photo() -> np.ndarray | None:
    """scikit-image's motion-blurred clock photo as float32 RGB (H, W, 3), None if absent."""
    import importlib.util

    from m2aenet.imageio import read_rgb

    spec = importlib.util.find_spec("skimage")  # its folder, without importing the package
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / BLURRED_CHECK_PHOTO
    return read_rgb(path) if path.is_file() else None


def _centre_crop(rgb: np.ndarray, height: int, width: int) -> np.ndarray:
    """(height, width, 3) from the centre of `rgb`, enlarged first where it is smaller."""
    scale = max(height / rgb.shape[0], width / rgb.shape[1])
    if scale > 1:
        from PIL import Image

        size = (round(rgb.shape[1] * scale + 0.5), round(rgb.shape[0] * scale + 0.5))
        channels = [
            np.asarray(Image.fromarray(rgb[..., c]).resize(size, Image.Resampling.BICUBIC))
            for c in range(3)
        ]
        rgb = np.clip(np.stack(channels, axis=-1), 0.0, 1.0).astype(np.float32)
    top, left = (rgb.shape[0] - height) // 2, (rgb.shape[1] - width) // 2
    return np.ascontiguousarray(rgb[top : top + height, left : left + width])


def check_inputs(
    result: ExportResult, photos: dict[str, np.ndarray] | None = None, seed: int = 1
) -> dict[str, torch.Tensor]:
    """Inputs to check an export on: random images, a real motion-blurred photo (where
    scikit-image has it; centre-cropped to a static graph's size) and `photos`
    (`read_check_images`).

    A dynamic graph is also checked on random inputs of other sizes and batches, which
    fails if the export fixed a size after all.
    """
    batch, _, height, width = result.input_shape
    shapes = [result.input_shape]
    if result.dynamic:
        # Another batch and odd size, and a size that needs no padding at all.
        shapes += [(batch + 1, 3, height + 14, width + 6), (1, 3, 64, 128)]
    generator = torch.Generator().manual_seed(seed)
    inputs = {
        "random_" + "x".join(map(str, shape)): torch.rand(shape, generator=generator)
        for shape in shapes
    }
    blurred = blurred_check_photo()
    if blurred is not None:
        if not result.dynamic:
            blurred = _centre_crop(blurred, height, width)
        inputs[BLURRED_CHECK_PHOTO] = _fit_to_graph(
            BLURRED_CHECK_PHOTO, blurred, result.input_shape, result.dynamic
        )
    for name, rgb in (photos or {}).items():
        inputs[name] = _fit_to_graph(name, rgb, result.input_shape, result.dynamic)
    return inputs


def restoration_checked(report: dict[str, dict[str, float]]) -> bool:
    """True when some check input had blurred (restored) pixels, so the check compared a
    restoration and not only the copy of the input outside the mask."""
    return any(numbers["mask_fraction"] > 0 for numbers in report.values())


def check_export(
    result: ExportResult, model: nn.Module, images: Sequence[str | Path] = ()
) -> dict[str, dict[str, float]]:
    """`compare_with_torch` on random inputs and the image files `images`, by input name."""
    return _check(result, model, read_check_images(images))


def _check(
    result: ExportResult, model: nn.Module, photos: dict[str, np.ndarray]
) -> dict[str, dict[str, float]]:
    return {
        name: compare_with_torch(result.path, model, image, result.form)
        for name, image in check_inputs(result, photos).items()
    }


def check_problems(report: dict[str, dict[str, float]]) -> list[str]:
    """Human-readable failures of a `check_export` report (empty when the export is faithful)."""
    problems = []
    for name, numbers in report.items():
        limit = MISMATCH_LIMIT * numbers["pixels"]
        if numbers["mask_mismatch"] > limit:
            problems.append(f"{name}: {numbers['mask_mismatch']} mask pixels differ")
        if numbers["mask_mismatch"] == 0 and numbers["max_abs_diff"] > CHECK_TOLERANCE:
            problems.append(
                f"{name}: restored differs by up to {numbers['max_abs_diff']:.3g} "
                f"(tolerance {CHECK_TOLERANCE:g})"
            )
        elif numbers["pixels_over_tolerance"] > limit:
            problems.append(
                f"{name}: {numbers['pixels_over_tolerance']} restored pixels differ by more "
                f"than {CHECK_TOLERANCE:g}"
            )
    return problems


def export_checked(
    model: nn.Module,
    out: str | Path,
    *,
    images: Sequence[str | Path] = (),
    check: bool = True,
    **options: Any,
) -> tuple[ExportResult, dict[str, dict[str, float]]]:
    """`export_onnx` then `check_export`; `out` is written only if onnxruntime agrees with torch.

    options: the keyword arguments of `export_onnx`. Returns (result, check report; empty
    without `check`). Raises M2AENetError naming `out` when the check fails.
    """
    out = Path(out)
    # Everything missing in one message, before minutes of export rather than after.
    needed = ["onnx", "onnxscript"] if options.get("exporter", "dynamo") == "dynamo" else ["onnx"]
    _require(needed + (["onnxruntime"] if check else []), "ONNX export with its check")
    # Unreadable or (for a static graph) too small check images fail now, not after the export.
    photos = read_check_images(images) if check else {}
    if not options.get("dynamic", False):
        shape = (1, 3, options.get("height", 256), options.get("width", 256))
        for name, rgb in photos.items():
            _fit_to_graph(name, rgb, shape, dynamic=False)
    with atomic_path(out) as tmp:
        result = export_onnx(model, tmp, **options)
        report = _check(result, model, photos) if check else {}
        problems = check_problems(report)
        if problems:
            raise M2AENetError(
                f"{out}: the exported graph does not reproduce the model, not written "
                f"({'; '.join(problems)})"
            )
    result.path = out
    return result, report
