"""ONNX export: graphs that onnxruntime runs to the same numbers as torch, and clear refusals."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from m2aenet.checkpoint import save_model
from m2aenet.errors import ConfigError, InputError, M2AENetError
from m2aenet.export import (
    BLURRED_CHECK_PHOTO,
    CHECK_TOLERANCE,
    check_export,
    check_problems,
    export_checked,
    export_onnx,
    load_deploy_model,
    run_onnx,
)
from m2aenet.imageio import write_png
from m2aenet.registry import create_model

TINY_NAFNET = {"width": 8, "enc_blocks": (1, 1), "middle_blocks": 1, "dec_blocks": (1, 1)}


@pytest.fixture
def onnx_packages() -> None:
    """Skip where the optional `m2aenet[onnx]` packages are not installed (plain CI)."""
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")


def _randomized(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Perturb every parameter so that no zero-init shortcut hides a wrong graph."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(torch.randn(parameter.shape, generator=generator) * 0.1)
    return model


def _tiny_nafnet_weights(tmp_path: Path, seed: int = 0) -> Path:
    model = _randomized(create_model("nafnet-s", **TINY_NAFNET), seed)
    return save_model(tmp_path / f"nafnet{seed}", model)


@pytest.mark.parametrize("exporter", ["dynamo", "torchscript"])
def test_static_export_matches_torch(onnx_packages: None, tmp_path: Path, exporter: str) -> None:
    if exporter == "dynamo":
        pytest.importorskip("onnxscript")
    model = load_deploy_model(_tiny_nafnet_weights(tmp_path))
    result = export_onnx(model, tmp_path / "m.onnx", height=24, width=36, exporter=exporter)
    image = torch.rand(1, 3, 24, 36)
    got = run_onnx(result.path, image.numpy())
    with torch.no_grad():
        expected = model(image)
    assert got["restored"].shape == (1, 3, 24, 36)
    assert np.abs(got["restored"] - expected.image.numpy()).max() < CHECK_TOLERANCE
    assert np.array_equal(got["mask"], expected.mask.numpy())
    # The image really changed: the check compares a non-trivial computation.
    assert np.abs(got["restored"] - image.numpy()).max() > 1e-2


def test_dynamic_export_runs_any_size(onnx_packages: None, tmp_path: Path) -> None:
    pytest.importorskip("onnxscript")
    model = load_deploy_model(_tiny_nafnet_weights(tmp_path))
    result = export_onnx(model, tmp_path / "m.onnx", height=16, width=16, dynamic=True)
    report = check_export(result, model)
    # The traced shape, another batch and odd size, a size that needs no padding; the clock.
    assert len(report) == 4
    assert check_problems(report) == []
    for numbers in report.values():
        assert numbers["max_abs_diff"] < CHECK_TOLERANCE


@pytest.mark.parametrize(
    ("body_scale", "exporter"), [(1, "dynamo"), (2, "dynamo"), (2, "torchscript")]
)
def test_m2aenet_dense_form_exports_with_its_mask(
    onnx_packages: None, tmp_path: Path, body_scale: int, exporter: str
) -> None:
    if exporter == "dynamo":
        pytest.importorskip("onnxscript")
    model = _randomized(create_model("m2aenet-s", body_scale=body_scale), seed=1)
    model.reparameterize()
    result = export_onnx(model, tmp_path / "m.onnx", height=33, width=47, exporter=exporter)
    report = check_export(result, model)
    assert check_problems(report) == []
    numbers = report["random_1x3x33x47"]
    assert numbers["max_abs_diff"] < CHECK_TOLERANCE


def test_the_check_restores_a_real_blurred_photo_with_the_shipped_weights(
    onnx_packages: None, tmp_path: Path
) -> None:
    """On random inputs the shipped predictor marks nothing; the clock photo has blur, so the
    check compares restored pixels too (TorchScript: the exporter that failed on them)."""
    model = load_deploy_model("default")
    result = export_onnx(model, tmp_path / "m.onnx", height=128, width=128, exporter="torchscript")
    report = check_export(result, model)
    assert report["random_1x3x128x128"]["mask_fraction"] == 0.0
    assert report[BLURRED_CHECK_PHOTO]["mask_fraction"] > 0.02
    assert check_problems(report) == []


def test_cli_exports_checks_real_image_and_writes_summary(
    onnx_packages: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from m2aenet import cli

    weights = _tiny_nafnet_weights(tmp_path)
    photo = tmp_path / "photo.png"
    write_png(photo, np.random.default_rng(0).random((30, 40, 3)).astype(np.float32))
    out = tmp_path / "out" / "model.onnx"
    argv = ["export", "--weights", str(weights), "--out", str(out), "--height", "24",
            "--width", "32", "--exporter", "torchscript", "--check", str(photo),
            "--json", str(tmp_path / "summary.json")]  # fmt: skip
    assert cli.main(argv) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert json.loads(capsys.readouterr().out) == summary
    assert summary["model"] == "nafnet-s" and summary["form"] == "dense"
    assert summary["input_shape"] == [1, 3, 24, 32]
    assert set(summary["check"]) == {"random_1x3x24x32", BLURRED_CHECK_PHOTO, str(photo)}
    assert summary["check"][str(photo)]["max_abs_diff"] < CHECK_TOLERANCE
    assert out.is_file() and summary["megabytes"] > 0
    # An existing output is never replaced silently.
    assert cli.main(argv) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert cli.main([*argv, "--overwrite"]) == 0


def test_failed_check_writes_nothing(
    onnx_packages: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import m2aenet.export as export

    model = load_deploy_model(_tiny_nafnet_weights(tmp_path, seed=0))
    other = load_deploy_model(_tiny_nafnet_weights(tmp_path, seed=1))
    real_export = export.export_onnx

    def export_other(model, out, **options):  # a graph of different weights: a wrong export
        return real_export(other, out, **options)

    monkeypatch.setattr(export, "export_onnx", export_other)
    out = tmp_path / "wrong.onnx"
    with pytest.raises(M2AENetError, match="does not reproduce the model"):
        export_checked(model, out, height=16, width=16, exporter="torchscript")
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.suffix == ".onnx"] == []


def test_small_check_image_is_refused_by_name(onnx_packages: None, tmp_path: Path) -> None:
    model = load_deploy_model(_tiny_nafnet_weights(tmp_path))
    photo = tmp_path / "small.png"
    write_png(photo, np.zeros((8, 8, 3), dtype=np.float32))
    with pytest.raises(InputError, match="small.png"):
        export_checked(
            model, tmp_path / "m.onnx", images=[photo], height=16, width=16,
            exporter="torchscript",
        )  # fmt: skip
    assert not (tmp_path / "m.onnx").exists()


def test_check_tolerates_only_a_few_threshold_flips() -> None:
    def numbers(max_abs_diff: float, over: int, mismatch: int) -> dict[str, float]:
        return {"max_abs_diff": max_abs_diff, "pixels_over_tolerance": over,
                "mask_mismatch": mismatch, "mask_fraction": 0.3, "pixels": 100_000}  # fmt: skip

    assert check_problems({"a": numbers(1e-6, 0, 0)}) == []
    # Same masks: any difference above the tolerance is a wrong graph.
    assert "differs by up to" in check_problems({"a": numbers(2e-4, 1, 0)})[0]
    # A flipped mask pixel legitimately changes a few restored pixels around it...
    assert check_problems({"a": numbers(0.2, 18, 1)}) == []
    # ...but not many, and not many flips.
    assert "restored pixels differ" in check_problems({"a": numbers(0.2, 500, 1)})[0]
    assert "mask pixels differ" in check_problems({"a": numbers(0.2, 50, 200)})[0]


def test_missing_packages_are_named_before_exporting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import m2aenet.export as export

    monkeypatch.setattr(export, "missing_packages", lambda names: list(names))
    model = create_model("nafnet-s", **TINY_NAFNET)
    with pytest.raises(M2AENetError, match="onnx, onnxscript, onnxruntime: pip install"):
        export_checked(model, tmp_path / "m.onnx")
    assert list(tmp_path.iterdir()) == []


def test_impossible_requests_are_config_errors(tmp_path: Path) -> None:
    model = create_model("nafnet-s", **TINY_NAFNET)
    with pytest.raises(ConfigError, match="no pruned form"):
        export_onnx(model, tmp_path / "m.onnx", form="pruned")
    with pytest.raises(ConfigError, match="dynamo"):
        export_onnx(model, tmp_path / "m.onnx", dynamic=True, exporter="torchscript")
    with pytest.raises(ConfigError, match="form"):
        export_onnx(model, tmp_path / "m.onnx", form="sparse")
    assert list(tmp_path.iterdir()) == []


def test_cli_refuses_bad_arguments_before_loading(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from m2aenet import cli

    missing = tmp_path / "missing.safetensors"
    assert cli.main(["export", "--weights", str(missing), "--out", str(tmp_path / "m.txt")]) == 2
    assert "must end in .onnx" in capsys.readouterr().err
    assert cli.main(["export", "--weights", str(missing), "--out", str(tmp_path / "m.onnx")]) == 2
    assert "missing.safetensors" in capsys.readouterr().err


def test_a_failing_exporter_prints_one_line_not_its_ir(
    onnx_packages: None,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The TorchScript exporter, failing, printed its IR (120 KB for m2aenet-s) from C++ past
    sys.stderr; since it exports m2aenet now, an exporter that does the same stands in."""
    import os

    from m2aenet import cli

    def noisy_failing_export(*args, **kwargs):
        os.write(2, b"graph(%image : Float(1, 3, 16, 16)) ... 120 KB of IR ...\n" * 100)
        raise TypeError("add() takes from 3 to 4 positional arguments but 5 were given")

    monkeypatch.setattr(torch.onnx, "export", noisy_failing_export)
    weights = _tiny_nafnet_weights(tmp_path)
    argv = ["export", "--weights", str(weights), "--out", str(tmp_path / "m.onnx"),
            "--height", "16", "--width", "16", "--exporter", "torchscript"]  # fmt: skip
    code = cli.main(argv)
    captured = capfd.readouterr()
    assert code == 2
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("m2aenet export: error: torchscript export")
    assert "add() takes from 3 to 4" in lines[0]
    assert len(lines[0]) < 1000 and captured.out == ""
