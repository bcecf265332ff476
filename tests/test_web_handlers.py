"""The logic behind `m2aenet web` (web/handlers.py): requests in, responses out, no sockets.

A small random model stands in for the shipped weights: these tests check the page's contract
(the download is what `m2aenet deblur` writes, bad input is one line, requests take turns),
not the restoration quality.
"""

from __future__ import annotations

import io
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from test_api import HEIGHT, WIDTH, picture, random_model

from m2aenet.api import Deblurrer
from m2aenet.imageio import load_image, write_png
from m2aenet.web import handlers
from m2aenet.web.handlers import DeblurService, handle


@pytest.fixture(scope="module")
def deblurrer() -> Deblurrer:
    """A small random model whose threshold marks about 30% of `picture(0)`."""
    model = random_model()
    x = torch.from_numpy(picture(0)).permute(2, 0, 1)[None]
    with torch.no_grad():
        threshold = float(torch.quantile(model(x).mask_prob.flatten(), 0.7))
    return Deblurrer(model.reparameterize(), device="cpu", threshold=threshold)


@pytest.fixture
def examples(tmp_path: Path) -> Path:
    folder = tmp_path / "examples"
    folder.mkdir()
    Image.fromarray(_png8(1)).save(folder / "b_example.png")
    Image.fromarray(_png8(2)).save(folder / "a_example.jpg", quality=95)
    (folder / "notes.txt").write_text("not a picture")
    return folder


@pytest.fixture
def service(deblurrer: Deblurrer, tmp_path: Path, examples: Path) -> DeblurService:
    return DeblurService(deblurrer, tmp_path / "work", examples_dir=examples)


def _png8(seed: int) -> np.ndarray:
    return np.round(picture(seed) * 255).astype(np.uint8)


def _encoded(array: np.ndarray, suffix: str = ".png", **options: object) -> bytes:
    stream = io.BytesIO()
    Image.fromarray(array).save(stream, format=Image.registered_extensions()[suffix], **options)
    return stream.getvalue()


def _upload(
    service: DeblurService, data: bytes, name: str, threshold: str = ""
) -> handlers.Response:
    target = f"/api/deblur?name={name}" + (f"&threshold={threshold}" if threshold else "")
    return handle(service, "POST", target, data)


def _download(service: DeblurService, url: str) -> handlers.Response:
    response = handle(service, "GET", url)
    assert response.status == 200, response.body
    return response


def _pixels(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image)


def test_an_upload_comes_back_as_the_command_line_writes_it(
    service: DeblurService, deblurrer: Deblurrer, tmp_path: Path
) -> None:
    original = _png8(0)
    response = _upload(service, _encoded(original), "photo.png")
    assert response.status == 200, response.body
    run = response.json()
    assert (run["width"], run["height"], run["format"], run["bit_depth"]) == (
        WIDTH,
        HEIGHT,
        "PNG",
        8,
    )
    assert 0.0 < run["fraction"] < 1.0 and run["ms"] > 0 and run["tiles"] == 1
    assert run["threshold"] == pytest.approx(service.default_threshold)
    assert run["downloads"]["restored"] == "photo_deblurred.png"

    # The same file through the command line's function gives the same bytes.
    (tmp_path / "photo.png").write_bytes(_encoded(original))
    expected = deblurrer.deblur_file(
        tmp_path / "photo.png", tmp_path / "cli.png", tmp_path / "m.png"
    )
    restored = _download(service, run["files"]["restored"])
    assert restored.content_type == "image/png"
    assert restored.file.read_bytes() == (tmp_path / "cli.png").read_bytes()
    mask = _pixels(_download(service, run["files"]["mask"]).file) > 127
    assert np.array_equal(mask, expected.mask)
    assert np.array_equal(_pixels(restored.file)[~mask], original[~mask])  # bit-exact outside
    assert run["fraction"] == pytest.approx(mask.mean())


def test_the_page_pictures_are_browser_pngs_of_the_input_the_result_and_the_mask(
    service: DeblurService,
) -> None:
    original = _png8(0)
    run = _upload(service, _encoded(original), "photo.png").json()
    before = _pixels(_download(service, run["files"]["before"]).file)
    after = _pixels(_download(service, run["files"]["after"]).file)
    overlay = _pixels(_download(service, run["files"]["overlay"]).file)
    restored = _pixels(_download(service, run["files"]["restored"]).file)
    assert np.array_equal(before, original)
    assert np.array_equal(after, restored)
    assert overlay.shape == original.shape and not np.array_equal(overlay, original)


def test_a_download_is_offered_under_a_name_beside_the_original(service: DeblurService) -> None:
    run = _upload(service, _encoded(_png8(0)), "photo.png").json()
    response = _download(service, run["files"]["restored"] + "?download=1")
    assert response.headers["Content-Disposition"] == 'attachment; filename="photo_deblurred.png"'
    assert "Content-Disposition" not in _download(service, run["files"]["after"]).headers


def test_sixteen_bit_with_alpha_keeps_both(service: DeblurService, tmp_path: Path) -> None:
    rgb = np.round(picture(0) * 65535).astype(np.uint16)
    alpha = np.linspace(0, 65535, HEIGHT * WIDTH).reshape(HEIGHT, WIDTH, 1).astype(np.uint16)
    write_png(tmp_path / "deep.png", np.concatenate([rgb, alpha], axis=2))
    run = _upload(service, (tmp_path / "deep.png").read_bytes(), "deep.png").json()
    assert run["bit_depth"] == 16
    restored = load_image(_download(service, run["files"]["restored"]).file)
    assert restored.bit_depth == 16
    assert np.array_equal(restored.alpha, load_image(tmp_path / "deep.png").alpha)


def test_exif_orientation_is_applied_like_the_command_line(service: DeblurService) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways
    data = _encoded(_png8(0), ".jpg", exif=exif.tobytes(), quality=95)
    run = _upload(service, data, "turned.jpg").json()
    assert (run["width"], run["height"], run["format"]) == (HEIGHT, WIDTH, "JPEG")
    restored = _download(service, run["files"]["restored"])
    assert restored.content_type == "image/jpeg"
    with Image.open(restored.file) as image:
        assert image.size == (HEIGHT, WIDTH) and image.getexif().get(0x0112, 1) == 1
    assert _pixels(_download(service, run["files"]["before"]).file).shape == (WIDTH, HEIGHT, 3)


def test_tiles_and_pixel_limits_are_the_command_lines(
    deblurrer: Deblurrer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tiled = Deblurrer(deblurrer.model, device="cpu", tile=32, tile_overlap=8)
    service = DeblurService(tiled, tmp_path / "work", examples_dir=None)
    (tmp_path / "photo.png").write_bytes(_encoded(_png8(0)))
    run = _upload(service, (tmp_path / "photo.png").read_bytes(), "photo.png").json()
    assert run["tiles"] > 1
    tiled.deblur_file(tmp_path / "photo.png", tmp_path / "cli.png")
    restored = _download(service, run["files"]["restored"]).file
    assert restored.read_bytes() == (tmp_path / "cli.png").read_bytes()

    monkeypatch.setattr("m2aenet.imageio.MAX_PIXELS", HEIGHT * WIDTH - 1)
    response = _upload(service, _encoded(_png8(0)), "huge.png")
    assert response.status == 400
    assert response.json()["error"].startswith("huge.png: image too large")


def test_a_lower_threshold_restores_more_and_leaves_the_model_as_it_was(
    service: DeblurService,
) -> None:
    data = _encoded(_png8(0))
    default = _upload(service, data, "photo.png").json()
    lower = _upload(service, data, "photo.png", threshold=f"{service.default_threshold / 2}").json()
    assert lower["fraction"] > default["fraction"]
    assert service.deblurrer.model.mask_threshold == service.default_threshold
    assert default["id"] != lower["id"]  # both results stay downloadable
    _download(service, default["files"]["restored"])


@pytest.mark.parametrize(
    ("data", "name", "threshold", "status", "message"),
    [
        (b"", "empty.png", "", 400, "empty.png: empty file (0 bytes)"),
        (b"hello, not a picture", "note.png", "", 400, "note.png: not a readable"),
        (b"GIF89a....", "anim.gif", "", 400, "anim.gif: not an image type m2aenet reads"),
        (None, "", "", 400, "the upload has no file name"),
        (None, "photo.png", "2", 400, "threshold '2': must be a number between 0 and 1"),
        (None, "photo.png", "nan", 400, "threshold 'nan'"),
        (None, "photo.png", "abc", 400, "threshold 'abc'"),
    ],
)
def test_bad_uploads_get_one_line_that_names_the_photo(
    service: DeblurService,
    data: bytes | None,
    name: str,
    threshold: str,
    status: int,
    message: str,
) -> None:
    if data is None:
        data = _encoded(_png8(0))
    response = _upload(service, data, name, threshold)
    assert response.status == status
    error = response.json()["error"]
    assert error.startswith(message), error
    assert "\n" not in error and str(service.workdir) not in error
    assert not any(service.workdir.iterdir())  # nothing of a failed run is left behind


def test_a_truncated_photo_is_one_line_without_the_servers_folders(service: DeblurService) -> None:
    data = _encoded(_png8(0))
    response = _upload(service, data[: len(data) // 2], "cut.png")
    assert response.status == 400
    error = response.json()["error"]
    assert error.startswith("cut.png: ") and str(service.workdir) not in error


def test_a_name_with_folders_stays_inside_the_run_folder(service: DeblurService) -> None:
    run = _upload(service, _encoded(_png8(0)), "..%2F..%2Fetc%2Fphoto.png").json()
    assert run["name"] == "photo.png"
    path = _download(service, run["files"]["restored"]).file
    assert path.resolve().is_relative_to(service.workdir.resolve())


def test_an_unexpected_failure_is_one_line_on_the_page(
    service: DeblurService, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("out of cheese")

    monkeypatch.setattr(service.deblurrer, "deblur_file", broken)
    response = _upload(service, _encoded(_png8(0)), "photo.png")
    assert response.status == 500
    assert response.json() == {"error": "internal error: RuntimeError: out of cheese"}


def test_the_examples_are_the_pictures_of_the_examples_folder(service: DeblurService) -> None:
    listing = handle(service, "GET", "/api/examples").json()
    assert [entry["name"] for entry in listing] == ["a_example.jpg", "b_example.png"]
    assert listing[0]["label"] == "a example"
    picture_response = _download(service, listing[0]["url"])
    assert picture_response.content_type == "image/jpeg"
    run = handle(service, "POST", "/api/examples/b_example.png").json()
    assert run["name"] == "b_example.png" and 0.0 < run["fraction"] < 1.0
    assert (service.examples_dir / "b_example.png").exists()  # read in place, never replaced
    for target in ("/examples/notes.txt", "/examples/..%2F..%2Fetc%2Fpasswd"):
        assert handle(service, "GET", target).status == 404
    assert handle(service, "POST", "/api/examples/missing.png").json() == {
        "error": "no example named 'missing.png'"
    }


def test_the_shipped_examples_include_the_real_clock_photo(
    deblurrer: Deblurrer, tmp_path: Path
) -> None:
    service = DeblurService(deblurrer, tmp_path)  # the default: the package's examples
    labels = {entry["name"]: entry["label"] for entry in service.examples()}
    assert labels["clock_motion_real.png"] == "clock motion real"
    assert labels["synth_test_000002.png"] == "synth test 2"


def test_only_the_newest_runs_are_kept(deblurrer: Deblurrer, tmp_path: Path) -> None:
    service = DeblurService(deblurrer, tmp_path / "work", examples_dir=None, keep=2)
    data = _encoded(_png8(0))
    runs = [_upload(service, data, f"p{index}.png").json() for index in range(3)]
    gone = handle(service, "GET", runs[0]["files"]["restored"])
    assert gone.status == 404 and "run it again" in gone.json()["error"]
    _download(service, runs[2]["files"]["restored"])
    assert len(list(service.workdir.iterdir())) == 2
    service.close()
    assert not any(service.workdir.iterdir())


def test_requests_at_once_take_turns_and_each_keeps_its_threshold(
    service: DeblurService,
) -> None:
    data = _encoded(_png8(0))
    thresholds = [service.default_threshold, service.default_threshold / 2] * 3
    alone = {value: _upload(service, data, "p.png", f"{value}").json() for value in thresholds}
    records: dict[int, dict] = {}

    def request(index: int) -> None:
        records[index] = _upload(service, data, "p.png", f"{thresholds[index]}").json()

    threads = [threading.Thread(target=request, args=(index,)) for index in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    for index, value in enumerate(thresholds):
        assert records[index]["fraction"] == alone[value]["fraction"], records[index]


def test_beyond_the_waiting_limit_the_page_is_told_to_retry(
    deblurrer: Deblurrer, tmp_path: Path
) -> None:
    service = DeblurService(deblurrer, tmp_path / "work", examples_dir=None, max_waiting=1)
    data = _encoded(_png8(0))
    waiting: list[handlers.Response] = []
    with service.model_lock:  # another photo is running
        thread = threading.Thread(target=lambda: waiting.append(_upload(service, data, "a.png")))
        thread.start()
        deadline = time.monotonic() + 10
        while service._slots._value and time.monotonic() < deadline:  # noqa: SLF001
            time.sleep(0.01)
        busy = _upload(service, data, "b.png")
    thread.join(timeout=60)
    assert busy.status == 503 and busy.json()["error"].startswith("busy: ")
    assert waiting[0].status == 200  # the queued one ran once the model was free
    assert waiting[0].json()["queued_ms"] > 0


def test_the_page_is_served_and_nothing_else(service: DeblurService) -> None:
    page = _download(service, "/")
    assert page.content_type.startswith("text/html")
    assert _download(service, "/static/app.js").content_type.startswith("text/javascript")
    for target in ("/static/../handlers.py", "/static/%2e%2e%2fhandlers.py", "/static/x.py"):
        assert handle(service, "GET", target).status == 404
    assert handle(service, "PUT", "/api/deblur").status == 405
    assert handle(service, "GET", "/api/runs/not-an-id/restored").status == 404


def test_the_page_loads_nothing_from_other_machines() -> None:
    for path in sorted(handlers.STATIC_DIR.iterdir()):
        text = path.read_text(encoding="utf-8")
        for marker in ("http:", "https:", "//cdn", "@import", "url("):
            assert marker not in text, f"{path.name} refers to {marker}"
