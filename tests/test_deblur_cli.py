"""`m2aenet deblur`: a batch with bad files, input protection, skipping, JSON, torchrun shares."""

from __future__ import annotations

import json
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from PIL import Image
from test_api import HEIGHT, WIDTH, picture, random_model
from torchrun_helpers import torchrun

from m2aenet import cli
from m2aenet.checkpoint import save_model


def _picture(seed: int) -> np.ndarray:
    """uint8 (H, W, 3) version of `test_api.picture`."""
    return np.round(picture(seed) * 255).astype(np.uint8)


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, float]:
    """(weights file of a small random model, a threshold giving it a partial mask)."""
    model = random_model()
    x = torch.from_numpy(picture(0)).permute(2, 0, 1)[None]
    with torch.no_grad():
        prob = model(x).mask_prob
    threshold = float(torch.quantile(prob.flatten(), 0.7))
    path = save_model(tmp_path_factory.mktemp("weights") / "w.safetensors", model)
    return path, threshold


def _input_folder(tmp_path: Path, pictures: dict[str, int]) -> Path:
    """tmp_path/in holding `_picture(seed)` under each name (JPEGs at quality 95)."""
    inputs = tmp_path / "in"
    inputs.mkdir()
    for name, seed in pictures.items():
        extra = {"quality": 95} if name.endswith(".jpg") else {}
        Image.fromarray(_picture(seed)).save(inputs / name, **extra)
    return inputs


def _deblur(weights: tuple[Path, float], *arguments: str | Path) -> int:
    path, threshold = weights
    argv = [
        "deblur",
        *map(str, arguments),
        "--weights",
        str(path),
        "--device",
        "cpu",
        "--threshold",
        str(threshold),
        "--no-progress",
    ]
    return cli.main(argv)


def _png_header_only(path: Path, width: int, height: int) -> None:
    """A valid PNG signature and header claiming a huge size: a decompression bomb."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )


def _good_files(folder: Path) -> dict[str, np.ndarray]:
    """Write one good file per supported kind; returns name -> pixel array as written."""
    folder.mkdir(parents=True, exist_ok=True)
    rgb = _picture(0)
    alpha = np.tile(np.linspace(0, 255, WIDTH).astype(np.uint8), (HEIGHT, 1))
    gray16 = (rgb.astype(np.uint16) @ np.array([77, 150, 29], np.uint16)).astype(np.uint16) + 3
    arrays = {
        "rgb.png": rgb,
        "rgba.png": np.dstack([rgb, alpha]),
        "gray.png": np.asarray(Image.fromarray(rgb).convert("L")),
        "gray16.png": gray16,
        "photo.tif": rgb,
    }
    for name, array in arrays.items():
        Image.fromarray(array).save(folder / name)
    Image.fromarray(rgb).save(folder / "shot.jpg", quality=95)
    return arrays


def _bad_files(folder: Path) -> list[str]:
    """Write one file per kind of bad input; returns their names."""
    (folder / "empty.png").write_bytes(b"")
    good = (folder / "rgb.png").read_bytes()
    (folder / "truncated.png").write_bytes(good[: len(good) // 2])
    (folder / "text.jpg").write_text("this is not a picture\n")
    _png_header_only(folder / "bomb.png", 30000, 30000)
    tifffile.imwrite(folder / "float.tif", np.zeros((HEIGHT, WIDTH), np.float64))  # not kept
    return ["empty.png", "truncated.png", "text.jpg", "bomb.png", "float.tif"]


def _read(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image)


def test_a_batch_with_bad_files_finishes_the_good_ones_and_exits_1(
    weights: tuple[Path, float], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inputs = tmp_path / "in"
    arrays = _good_files(inputs)
    bad = _bad_files(inputs)
    out = tmp_path / "out"
    code = _deblur(weights, inputs, "-o", out, "--save-mask", "--json", tmp_path / "run.json")
    captured = capsys.readouterr()
    assert code == 1

    error_lines = [line for line in captured.err.splitlines() if ": error: " in line]
    assert len(error_lines) == len(bad)
    for name in bad:
        assert sum(name in line for line in error_lines) == 1, (name, error_lines)
    assert "6 images done, 0 skipped, 5 failed" in captured.out

    for name, original in arrays.items():
        output = _read(out / name)
        mask = _read(out / f"{Path(name).stem}_mask.png") > 127
        assert output.shape == original.shape and output.dtype == original.dtype, name
        assert np.array_equal(output[~mask], original[~mask]), name
        assert (out / f"{Path(name).stem}_overlay.png").is_file()
    assert np.array_equal(_read(out / "rgba.png")[..., 3], arrays["rgba.png"][..., 3])
    assert _read(out / "gray16.png").dtype == np.uint16
    assert Image.open(out / "shot.jpg").format == "JPEG"
    for name in bad:
        assert not (out / name).exists()
    assert not [path for path in out.rglob("*") if path.name.startswith(".")]  # no temp files


def test_json_summary_has_one_record_per_image(weights: tuple[Path, float], tmp_path: Path) -> None:
    inputs = tmp_path / "in"
    _good_files(inputs)
    (inputs / "empty.png").write_bytes(b"")
    summary = tmp_path / "summary.json"
    assert _deblur(weights, inputs, "-o", tmp_path / "out", "--json", summary) == 1
    document = json.loads(summary.read_text())
    records = {record["name"]: record for record in document["images"]}
    assert sorted(records) == sorted(path.name for path in inputs.iterdir())
    good = records["rgb.png"]
    assert good["status"] == "ok" and good["size"] == [WIDTH, HEIGHT]
    assert 0.0 < good["fraction"] < 1.0
    assert good["ms"] > 0 and good["dense_gflops"] > good["pruned_gflops"] > 0
    assert records["empty.png"]["status"] == "failed"
    assert "empty.png" in records["empty.png"]["error"]
    assert document["summary"]["done"] == len(records) - 1
    assert document["summary"]["failed"] == 1


def test_output_folder_equal_to_the_input_folder_is_refused_before_any_work(
    weights: tuple[Path, float], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inputs = tmp_path / "in"
    _good_files(inputs)
    before = {path: path.read_bytes() for path in inputs.iterdir()}
    code = _deblur(weights, inputs, "-o", inputs, "--save-mask")
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("m2aenet deblur: error: -o ") and "holds input images" in err
    assert {path: path.read_bytes() for path in inputs.iterdir()} == before


def test_existing_outputs_are_skipped_without_overwrite(
    weights: tuple[Path, float], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inputs = _input_folder(tmp_path, {"a.png": 1, "b.png": 2})
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.png").write_bytes(b"keep me")
    assert _deblur(weights, inputs, "-o", out) == 0
    captured = capsys.readouterr()
    assert "a.png exists, skipped (use --overwrite to replace)" in captured.err
    assert "1 images done, 1 skipped, 0 failed" in captured.out
    assert (out / "a.png").read_bytes() == b"keep me"
    assert _read(out / "b.png").shape == (HEIGHT, WIDTH, 3)

    assert _deblur(weights, inputs, "-o", out, "--overwrite") == 0
    assert _read(out / "a.png").shape == (HEIGHT, WIDTH, 3)


@pytest.mark.parametrize(
    ("name", "kind", "message"),
    [
        ("w.pt", "pickle", "w.pt: only .safetensors weights are loaded"),
        ("fake.safetensors", "pickle", "fake.safetensors: not a"),
        ("absent.safetensors", "absent", "absent.safetensors: weights file not found"),
        ("pipe.safetensors", "fifo", "pipe.safetensors: weights not a regular file"),
        ("/dev/zero", "device", "/dev/zero: weights not a regular file"),
        ("no-such-weights", "name", "no shipped weights named 'no-such-weights'"),
    ],
)
def test_bad_weights_are_refused_with_a_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, kind: str, message: str
) -> None:
    Image.fromarray(_picture(0)).save(tmp_path / "a.png")
    path = tmp_path / name
    if kind == "pickle":  # a pickle, whatever its name says: must never be unpickled
        torch.save({"x": torch.zeros(1)}, path)
    if kind == "fifo":  # opening it for reading would wait for a writer for ever
        os.mkfifo(path)
    weights_argument = name if kind in ("name", "device") else str(path)
    code = cli.main(
        [
            "deblur",
            str(tmp_path / "a.png"),
            "-o",
            str(tmp_path / "out"),
            "--weights",
            weights_argument,
            "--device",
            "cpu",
            "--no-progress",
        ]
    )
    assert code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out" / "a.png").exists()


@pytest.mark.slow
def test_torchrun_processes_share_the_files_each_exactly_once(
    weights: tuple[Path, float], tmp_path: Path
) -> None:
    names = [f"img{index}.png" for index in range(5)]
    inputs = _input_folder(tmp_path, {name: index for index, name in enumerate(names)})
    path, threshold = weights
    result = torchrun(
        "-m", "m2aenet", "deblur", str(inputs), "-o", str(tmp_path / "out"),
        "--weights", str(path), "--threshold", str(threshold), "--device", "cpu",
        "--json", str(tmp_path / "summary.json"), "--no-progress",
        timeout=300,
    )  # fmt: skip
    # Process 0 merges the processes' records into the one summary file.
    document = json.loads((tmp_path / "summary.json").read_text())
    assert not list(tmp_path.glob("summary.rank*.json"))
    assert document["world_size"] == 2 and document["summary"]["done"] == 5
    assert [record["name"] for record in document["images"]] == names  # each file once
    shares = [rank["summary"]["done"] for rank in document["ranks"]]
    assert sorted(shares) == [2, 3]
    assert sorted(path.name for path in (tmp_path / "out").iterdir()) == names
    assert "[all 2 processes] 5 images done, 0 skipped, 0 failed" in result.stdout


def test_exif_orientation_is_applied_to_output_and_mask(
    weights: tuple[Path, float], tmp_path: Path
) -> None:
    inputs = tmp_path / "in"
    inputs.mkdir()
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: rotate 90 degrees clockwise to view
    Image.fromarray(_picture(0)).save(inputs / "turned.jpg", exif=exif.tobytes(), quality=95)
    assert _deblur(weights, inputs, "-o", tmp_path / "out", "--save-mask") == 0
    with Image.open(tmp_path / "out" / "turned.jpg") as output:
        assert output.size == (HEIGHT, WIDTH)  # upright: the stored width became the height
        assert output.getexif().get(0x0112, 1) == 1
    assert _read(tmp_path / "out" / "turned_mask.png").shape == (WIDTH, HEIGHT)


def test_a_mask_left_by_an_interrupted_run_does_not_mark_the_image_done(
    weights: tuple[Path, float], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inputs = _input_folder(tmp_path, {"a.png": 1})
    out = tmp_path / "out"
    out.mkdir()
    # What a run stopped between writing the mask and the image leaves behind.
    (out / "a_mask.png").write_bytes(b"partial")
    assert _deblur(weights, inputs, "-o", out, "--save-mask") == 0
    captured = capsys.readouterr()
    assert "skipped" not in captured.err
    assert "1 images done, 0 skipped" in captured.out
    assert _read(out / "a.png").shape == (HEIGHT, WIDTH, 3)
    assert _read(out / "a_mask.png").shape == (HEIGHT, WIDTH)  # the leftover was replaced


def test_lossless_webp_comes_back_lossless_and_exact_outside_the_mask(
    weights: tuple[Path, float], tmp_path: Path
) -> None:
    inputs = tmp_path / "in"
    inputs.mkdir()
    original = _picture(3)
    Image.fromarray(original).save(inputs / "a.webp", lossless=True)
    out = tmp_path / "out"
    assert _deblur(weights, inputs, "-o", out, "--save-mask") == 0
    assert (out / "a.webp").read_bytes()[12:16] == b"VP8L"
    mask = _read(out / "a_mask.png") > 127
    assert 0 < mask.sum() < mask.size
    assert np.array_equal(_read(out / "a.webp")[~mask], original[~mask])


def test_png_data_named_jpg_is_written_with_a_warning(
    weights: tuple[Path, float], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inputs = tmp_path / "in"
    inputs.mkdir()
    Image.fromarray(_picture(4)).save(inputs / "fake.jpg", format="PNG")
    Image.fromarray(_picture(5)).save(inputs / "real.jpg", quality=95)
    summary = tmp_path / "run.json"
    assert _deblur(weights, inputs, "-o", tmp_path / "out", "--json", summary) == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if ": warning: " in line]
    assert len(warnings) == 1
    assert "fake.jpg: holds lossless PNG data" in warnings[0] and "as JPEG" in warnings[0]
    records = {record["name"]: record for record in json.loads(summary.read_text())["images"]}
    assert "holds lossless PNG data" in records["fake.jpg"]["warnings"][0]
    assert "warnings" not in records["real.jpg"]


def test_json_dash_writes_the_summary_to_standard_output_only(
    weights: tuple[Path, float], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inputs = _input_folder(tmp_path, {"a.png": 1})
    assert _deblur(weights, inputs, "-o", tmp_path / "out", "--json", "-") == 0
    captured = capsys.readouterr()
    document = json.loads(captured.out)  # nothing else on stdout
    assert [record["name"] for record in document["images"]] == ["a.png"]
    assert "1 images done" in captured.err
    assert not (tmp_path / "out" / "-").exists() and not Path("-").exists()


def test_compare_writes_one_picture_per_image(weights: tuple[Path, float], tmp_path: Path) -> None:
    inputs = _input_folder(tmp_path, {"a.png": 1, "b.jpg": 2})
    out = tmp_path / "out"
    assert _deblur(weights, inputs, "-o", out, "--compare") == 0
    assert sorted(path.name for path in out.iterdir()) == [
        "a.png",
        "a_compare.png",
        "b.jpg",
        "b_compare.png",
    ]
    picture = _read(out / "a_compare.png")
    assert picture.shape[0] > HEIGHT and picture.shape[1] > 3 * WIDTH  # five panels, titled


def test_extras_asked_for_later_are_written_and_the_image_is_kept(
    weights: tuple[Path, float], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`deblur a.png -o out/`, then again with --save-mask and --compare: the extras appear,
    the restored image is not rewritten; a third run has nothing left to do."""
    inputs = _input_folder(tmp_path, {"a.png": 1})
    out = tmp_path / "out"
    assert _deblur(weights, inputs / "a.png", "-o", out) == 0
    restored = out / "a.png"
    restored.write_bytes(restored.read_bytes())  # same bytes, a known modification time
    stamp = restored.stat().st_mtime_ns
    capsys.readouterr()
    assert _deblur(weights, inputs / "a.png", "-o", out, "--save-mask", "--compare") == 0
    err = capsys.readouterr().err
    assert "a.png exists, kept; wrote the missing a_mask.png, a_overlay.png, a_compare.png" in err
    assert restored.stat().st_mtime_ns == stamp
    mask = _read(out / "a_mask.png")
    assert mask.shape == (HEIGHT, WIDTH) and 0 < (mask > 0).mean() < 1
    assert (out / "a_overlay.png").is_file() and (out / "a_compare.png").is_file()
    assert _deblur(weights, inputs / "a.png", "-o", out, "--save-mask", "--compare") == 0
    captured = capsys.readouterr()
    assert "exists, skipped" in captured.err and "0 images done, 1 skipped" in captured.out


def test_an_output_extension_that_cannot_be_written_fails_before_any_work(
    weights: tuple[Path, float], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inputs = _input_folder(tmp_path, {"good.png": 1})
    Image.fromarray(_picture(2)).save(inputs / "photo.jfif", format="JPEG")
    Image.fromarray(_picture(3)).save(inputs / "photo_noext", format="PNG")
    out = tmp_path / "out"
    names = [inputs / "good.png", inputs / "photo.jfif", inputs / "photo_noext"]
    assert _deblur(weights, *names, "-o", out, "--save-mask", "--compare") == 1
    captured = capsys.readouterr()
    assert "1 images done, 0 skipped, 2 failed" in captured.out
    errors = [line for line in captured.err.splitlines() if ": error: " in line]
    assert len(errors) == 2 and all("unsupported output extension" in e for e in errors), errors
    # Nothing was written for the two refused files: no orphan mask, overlay or comparison.
    assert sorted(path.name for path in out.iterdir()) == [
        "good.png",
        "good_compare.png",
        "good_mask.png",
        "good_overlay.png",
    ]


def test_a_folder_where_an_output_goes_is_an_error_for_that_file(
    weights: tuple[Path, float], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inputs = _input_folder(tmp_path, {"good.png": 1, "other.png": 2})
    out = tmp_path / "out"
    (out / "good.png").mkdir(parents=True)
    for extra in ([], ["--overwrite"]):
        assert _deblur(weights, inputs, "-o", out, *extra) == 1
        captured = capsys.readouterr()
        assert "good.png: is a folder, not an output file" in captured.err
        assert "exists, skipped" not in captured.err
        assert "0 skipped, 1 failed" in captured.out
        assert (out / "good.png").is_dir() and _read(out / "other.png").shape == (HEIGHT, WIDTH, 3)


def test_a_read_only_output_folder_is_refused_before_the_model_loads(
    weights: tuple[Path, float],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import os

    from test_atomic import refuse_files_in

    from m2aenet import checkpoint

    inputs = _input_folder(tmp_path, {"a.png": 1})
    out = tmp_path / "out"
    out.mkdir()
    refuse_files_in(monkeypatch, out, OSError(30, "Read-only file system"))
    loads = []
    monkeypatch.setattr(checkpoint, "load_model", lambda *a, **k: loads.append(a))
    assert _deblur(weights, inputs, "-o", out) == 2
    err = capsys.readouterr().err
    assert f"-o {out}: cannot write in {out} (Read-only file system)" in err
    assert not loads and os.listdir(out) == []
