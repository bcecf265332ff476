"""What the web page asks for, as plain functions: a request in, a `Response` out, no sockets.

`DeblurService` owns the one `Deblurrer` of the server. Every photo goes through
`Deblurrer.deblur_file`, the function `m2aenet deblur` runs per file, into a private run folder
planned by `inputs.plan_outputs` like the command's output folder: the download is the file the
command line would have written (format, bit depth, gray, alpha, EXIF, ICC kept; bit-exact
outside the mask), read back with the project's one loader for the page's previews. Requests
take turns on the model (a lock); at most `max_waiting` may wait or run, later ones get a "busy"
message instead of piling up. The newest `keep` runs stay on disk for their downloads.

`handle(service, method, target, body)` maps a request line to one of them; `server.py` only
moves bytes between it and the socket.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import threading
import time
import uuid
import warnings
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from m2aenet.errors import InputWarning, M2AENetError

#: Largest upload accepted, in bytes (a 100-megapixel 16-bit TIFF fits); more gets HTTP 413.
MAX_UPLOAD_BYTES = 512 * 2**20
#: Photos waiting for the model or running on it at once; the next one is told to retry.
MAX_WAITING = 8
#: Finished runs whose files stay downloadable (older ones are deleted).
KEEP_RUNS = 16
#: Width of the before/after/mask pictures the page shows; downloads are always full size.
PREVIEW_MAX_WIDTH = 2560

STATIC_DIR = Path(__file__).resolve().parent / "static"
#: The bundled example photos: `examples/` of the repository, packaged as `m2aenet/examples`.
EXAMPLES_DIR = Path(__file__).resolve().parent.parent / "examples"

_CONTENT_TYPES = {
    "PNG": "image/png",
    "JPEG": "image/jpeg",
    "TIFF": "image/tiff",
    "WEBP": "image/webp",
    "BMP": "image/bmp",
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
}
_RUN_ID = re.compile(r"[0-9a-f]{32}")
_UNSAFE_NAME_CHARACTERS = re.compile(r"[^A-Za-z0-9._ ()+-]+")

log = logging.getLogger(__name__)


@dataclass
class Response:
    """An HTTP response: `body` bytes, or a `file` to send (its bytes are not read here)."""

    status: int
    content_type: str
    body: bytes = b""
    file: Path | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def json(self) -> Any:
        """The decoded JSON body (for tests and callers that want the data)."""
        return json.loads(self.body)


class WebError(Exception):
    """A request the page must explain: `status` is the HTTP code, `message` one line for people."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def json_response(data: Any, status: int = 200) -> Response:
    return Response(status, "application/json", json.dumps(data).encode("utf-8"))


def error_response(status: int, message: str) -> Response:
    return json_response({"error": message}, status)


def upload_name(filename: str) -> str:
    """A safe file name for an uploaded photo: the base name, odd characters replaced.

    Raises WebError (400) when no name is left or its extension is not one `deblur` reads.
    """
    from m2aenet.imageio import SUPPORTED_EXTENSIONS, is_image_path

    base = filename.replace("\\", "/").rsplit("/", 1)[-1]
    name = _UNSAFE_NAME_CHARACTERS.sub("_", base).strip(" .")[-120:]
    if not name:
        raise WebError(400, "the upload has no file name")
    if not is_image_path(name):
        formats = ", ".join(SUPPORTED_EXTENSIONS)
        raise WebError(400, f"{base}: not an image type m2aenet reads (use {formats})")
    return name


@dataclass
class _Run:
    """The files of one finished run: kind -> (path, content type, download name)."""

    directory: Path
    files: dict[str, tuple[Path, str, str]]


class DeblurService:
    """One model shared by every request of the page, run one photo at a time.

    deblurrer: the `Deblurrer` (its own threshold is the page's default); workdir: a folder this
    service owns (run folders are created and deleted in it); examples_dir: the bundled example
    photos (None: no examples); jpeg_quality: as `m2aenet deblur --jpeg-quality`.
    """

    def __init__(
        self,
        deblurrer: Any,
        workdir: str | os.PathLike,
        examples_dir: str | os.PathLike | None = EXAMPLES_DIR,
        keep: int = KEEP_RUNS,
        max_waiting: int = MAX_WAITING,
        jpeg_quality: int = 95,
    ) -> None:
        self.deblurrer = deblurrer
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.examples_dir = Path(examples_dir) if examples_dir is not None else None
        self.keep = keep
        self.max_waiting = max_waiting
        self.jpeg_quality = jpeg_quality
        self.default_threshold = float(deblurrer.model.mask_threshold)
        self.model_lock = threading.Lock()  # the model and its threshold: one run at a time
        self._slots = threading.BoundedSemaphore(max_waiting)
        self._runs: OrderedDict[str, _Run] = OrderedDict()
        self._runs_lock = threading.Lock()

    # -- what the page shows ----------------------------------------------------------------

    def info(self) -> dict[str, Any]:
        from m2aenet import __version__
        from m2aenet.imageio import SUPPORTED_EXTENSIONS

        return {
            "version": __version__,
            "device": str(self.deblurrer.device),
            "threshold": self.default_threshold,
            "extensions": list(SUPPORTED_EXTENSIONS),
            "max_upload_bytes": MAX_UPLOAD_BYTES,
        }

    def example_names(self) -> list[str]:
        from m2aenet.imageio import is_image_path

        if self.examples_dir is None or not self.examples_dir.is_dir():
            return []
        return sorted(p.name for p in self.examples_dir.iterdir() if is_image_path(p))

    def examples(self) -> list[dict[str, str]]:
        """name, a short label (`synth_test_000002.png` -> `synth test 2`) and URL of each."""
        return [
            {"name": name, "label": _label(name), "url": f"/examples/{name}"}
            for name in self.example_names()
        ]

    def example_path(self, name: str) -> Path:
        """The bundled example `name` (only names the listing offers: no path can escape)."""
        if self.examples_dir is None or name not in self.example_names():
            raise WebError(404, f"no example named {name!r}")
        return self.examples_dir / name

    # -- deblurring -------------------------------------------------------------------------

    def deblur_upload(self, data: bytes, filename: str, threshold: str | None) -> dict[str, Any]:
        """Deblur an uploaded file (its bytes and the name the browser gave); see `deblur_path`."""
        name = upload_name(filename)
        if not data:
            raise WebError(400, f"{name}: empty file (0 bytes)")
        if len(data) > MAX_UPLOAD_BYTES:
            raise WebError(413, upload_too_large_message(len(data)))
        run_id, directory = self._new_run_folder()
        source = directory / "upload" / name
        source.parent.mkdir()
        source.write_bytes(data)
        return self.deblur_path(source, name, threshold, run_id, directory)

    def deblur_example(self, name: str, threshold: str | None) -> dict[str, Any]:
        """Deblur a bundled example (read in place; results go to a run folder)."""
        source = self.example_path(name)
        run_id, directory = self._new_run_folder()
        return self.deblur_path(source, name, threshold, run_id, directory)

    def deblur_path(
        self, source: Path, name: str, threshold: str | None, run_id: str, directory: Path
    ) -> dict[str, Any]:
        """Deblur `source` as `m2aenet deblur` does into `directory`; the page's JSON record.

        The record: id, name, width, height, fraction (blurred share), ms (network),
        total_ms, queued_ms (waited for other photos), tiles, threshold, warnings, and `files`:
        kind -> URL of the restored image ("restored", the input's format), the mask
        ("mask", PNG), the mask over the photo ("overlay") and the page's "before"/"after"
        pictures. Raises WebError with one line naming the photo by `name`.
        """
        try:
            value = self._threshold(threshold)
            record = self._deblur(source, name, value, run_id, directory)
        except BaseException:
            shutil.rmtree(directory, ignore_errors=True)
            raise
        return record

    def _threshold(self, text: str | None) -> float:
        from m2aenet.limits import check_threshold

        if text is None or text == "":
            return self.default_threshold
        try:
            return check_threshold(float(text))
        except (ValueError, M2AENetError):
            raise WebError(400, f"threshold {text!r}: must be a number between 0 and 1") from None

    def _deblur(
        self, source: Path, name: str, threshold: float, run_id: str, directory: Path
    ) -> dict[str, Any]:
        from m2aenet.imageio import load_image
        from m2aenet.inputs import InputFile, plan_outputs

        (job,) = plan_outputs([InputFile(source, Path(name))], directory / "out", save_mask=True)
        start = time.perf_counter()
        if not self._slots.acquire(blocking=False):
            raise WebError(
                503, f"busy: {self.max_waiting} photos are waiting already; try again shortly"
            )
        try:
            with self.model_lock:
                queued_ms = (time.perf_counter() - start) * 1000.0
                result, notes = self._run_model(job, threshold, name, directory)
        finally:
            self._slots.release()
        # One decoded picture at a time: a large photo is held as float32 while it is read.
        self._write_preview(directory / "before.png", load_image(source).rgb)
        after = load_image(job.image)
        self._write_preview(directory / "after.png", after.rgb)
        file_format, bit_depth = after.format, after.bit_depth
        del after
        stem = Path(name).stem
        files = {
            "restored": (
                job.image,
                _CONTENT_TYPES[file_format],
                f"{stem}_deblurred{job.image.suffix}",
            ),
            "mask": (job.mask, "image/png", f"{stem}_mask.png"),
            "overlay": (job.overlay, "image/png", f"{stem}_overlay.png"),
            "before": (directory / "before.png", "image/png", f"{stem}_before.png"),
            "after": (directory / "after.png", "image/png", f"{stem}_after.png"),
        }
        self._remember(run_id, _Run(directory, files))
        stats = result.stats
        return {
            "id": run_id,
            "name": name,
            "width": stats["width"],
            "height": stats["height"],
            "format": file_format,
            "bit_depth": bit_depth,
            "fraction": stats["fraction"],
            "ms": stats["ms"],
            "total_ms": (time.perf_counter() - start) * 1000.0,
            "queued_ms": queued_ms,
            "tiles": stats["tiles"],
            "threshold": threshold,
            "warnings": notes,
            "files": {kind: f"/api/runs/{run_id}/{kind}" for kind in files},
            "downloads": {kind: entry[2] for kind, entry in files.items()},
        }

    def _run_model(
        self, job: Any, threshold: float, name: str, directory: Path
    ) -> tuple[Any, list]:
        """`deblur_file` at `threshold` (the caller holds the model lock); errors name `name`."""
        model = self.deblurrer.model
        previous = model.mask_threshold
        model.mask_threshold = threshold
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", InputWarning)
                result = self.deblurrer.deblur_file(
                    job.source.path,
                    job.image,
                    job.mask,
                    job.overlay,
                    self.jpeg_quality,
                )
        except M2AENetError as error:
            raise WebError(400, _for_people(str(error), job.source.path, name, directory)) from None
        finally:
            model.mask_threshold = previous
        notes = [
            _for_people(str(item.message), job.source.path, name, directory)
            for item in caught
            if issubclass(item.category, InputWarning)
        ]
        return result, notes

    @staticmethod
    def _write_preview(path: Path, rgb: Any) -> None:
        from m2aenet.imageio import write_png
        from m2aenet.visualize import as_rgb_u8, fit_width

        write_png(path, fit_width(as_rgb_u8(rgb), PREVIEW_MAX_WIDTH), compress_level=1)

    # -- run folders ------------------------------------------------------------------------

    def _new_run_folder(self) -> tuple[str, Path]:
        run_id = uuid.uuid4().hex
        directory = self.workdir / run_id
        directory.mkdir()
        return run_id, directory

    def _remember(self, run_id: str, run: _Run) -> None:
        with self._runs_lock:
            self._runs[run_id] = run
            while len(self._runs) > self.keep:
                _, oldest = self._runs.popitem(last=False)
                shutil.rmtree(oldest.directory, ignore_errors=True)

    def run_file(self, run_id: str, kind: str) -> tuple[Path, str, str]:
        """(path, content type, download name) of one file of a kept run."""
        with self._runs_lock:
            run = self._runs.get(run_id) if _RUN_ID.fullmatch(run_id) else None
        if run is None:
            raise WebError(404, "this result is gone (only the newest ones are kept); run it again")
        if kind not in run.files:
            raise WebError(404, f"no file {kind!r} in a result")
        return run.files[kind]

    def close(self) -> None:
        """Delete every run folder (the service's workdir stays for its owner to remove)."""
        with self._runs_lock:
            for run in self._runs.values():
                shutil.rmtree(run.directory, ignore_errors=True)
            self._runs.clear()


def _label(name: str) -> str:
    words = Path(name).stem.replace("_", " ").replace("-", " ")
    return re.sub(r"\b0+(\d)", r"\1", words)


def _for_people(message: str, source: Path, name: str, directory: Path) -> str:
    """A message about a private run folder, told with the photo's own name."""
    message = message.replace(str(source), name)
    return message.replace(str(directory) + os.sep, "").replace(str(directory), "")


def upload_too_large_message(size: int) -> str:
    return (
        f"the file is {size / 2**20:.0f} MB; the page takes up to {MAX_UPLOAD_BYTES // 2**20} MB "
        "(use `m2aenet deblur` for larger files)"
    )


# -- routing ----------------------------------------------------------------------------------


def handle(service: DeblurService, method: str, target: str, body: bytes = b"") -> Response:
    """The response to `method target` (e.g. `GET /api/examples`), with `body` for POSTs.

    Every failure is a JSON `{"error": "one line"}` with a 4xx/5xx status; an unexpected
    exception is logged with its traceback on the server and reported on the page in one line.
    """
    url = urlsplit(target)
    path = unquote(url.path)
    query = {key: values[-1] for key, values in parse_qs(url.query).items()}
    try:
        return _route(service, method, path, query, body)
    except WebError as error:
        return error_response(error.status, error.message)
    except Exception as error:  # noqa: BLE001 - the page gets one line, the log the traceback
        log.exception("m2aenet web: %s %s failed", method, path)
        return error_response(500, f"internal error: {type(error).__name__}: {error}")


def _route(
    service: DeblurService, method: str, path: str, query: dict[str, str], body: bytes
) -> Response:
    parts = [part for part in path.split("/") if part]
    if method == "GET":
        if path in ("/", "/index.html"):
            return _static("index.html")
        if len(parts) == 2 and parts[0] == "static":
            return _static(parts[1])
        if parts == ["api", "info"]:
            return json_response(service.info())
        if parts == ["api", "examples"]:
            return json_response(service.examples())
        if len(parts) == 2 and parts[0] == "examples":
            example = service.example_path(parts[1])
            return Response(200, _CONTENT_TYPES[_format_of(example)], file=example)
        if len(parts) == 4 and parts[:2] == ["api", "runs"]:
            file, content_type, download = service.run_file(parts[2], parts[3])
            headers = {}
            if query.get("download"):
                headers["Content-Disposition"] = f'attachment; filename="{download}"'
            return Response(200, content_type, file=file, headers=headers)
    elif method == "POST":
        if parts == ["api", "deblur"]:
            record = service.deblur_upload(body, query.get("name", ""), query.get("threshold"))
            return json_response(record)
        if len(parts) == 3 and parts[:2] == ["api", "examples"]:
            return json_response(service.deblur_example(parts[2], query.get("threshold")))
    else:
        return error_response(405, f"method {method} is not used by this page")
    return error_response(404, f"{method} {path}: no such page")


def _static(name: str) -> Response:
    """A file of the page itself, by name (only files of `STATIC_DIR`)."""
    names = {path.name for path in STATIC_DIR.iterdir() if path.is_file()}
    suffix = Path(name).suffix
    if name not in names or suffix not in _CONTENT_TYPES:
        raise WebError(404, f"/static/{name}: no such file")
    return Response(200, _CONTENT_TYPES[suffix], file=STATIC_DIR / name)


def _format_of(path: Path) -> str:
    from m2aenet.imageio import output_format

    return output_format(path)
