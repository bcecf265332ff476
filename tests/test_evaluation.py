"""evaluate() with fake restore functions, the JSON report, saved pictures and `m2aenet eval`."""

from __future__ import annotations

import json
import math
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from m2aenet import cli
from m2aenet.commands import eval as eval_command
from m2aenet.errors import ConfigError, InputError
from m2aenet.evaluation import EvalReport, deblurrer_restore, evaluate
from m2aenet.imageio import to_uint8
from m2aenet.metrics import METRIC_KEYS

HEIGHT, WIDTH = 40, 56


def _sample(name: str, seed: int, as_tensor: bool = True, has_mask: bool = True) -> dict:
    """A sharp gradient-and-noise picture whose masked rectangle is box-blurred (blur == sharp
    outside the mask, as in the synthetic data)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:HEIGHT, 0:WIDTH] / max(HEIGHT, WIDTH)
    sharp = np.stack([x, y, 0.5 * (x + y)], axis=0) * 0.6 + 0.4 * rng.random((3, HEIGHT, WIDTH))
    sharp = np.round(sharp * 255) / 255  # 8-bit source, as a PNG data set would be
    mask = np.zeros((1, HEIGHT, WIDTH))
    mask[:, 10:30, 12:40] = 1
    blurred = sharp.copy()
    for shift in range(1, 5):
        blurred += np.roll(sharp, shift, axis=2)
    blurred /= 5
    blur = np.where(mask > 0, blurred, sharp)
    if not has_mask:
        mask = np.ones_like(mask)
    arrays = [a.astype(np.float32) for a in (blur, sharp, mask)]
    if as_tensor:
        arrays = [torch.from_numpy(a) for a in arrays]
    return {
        "blur": arrays[0],
        "sharp": arrays[1],
        "mask": arrays[2],
        "has_mask": has_mask,
        "name": name,
    }


def _identity(blur: np.ndarray):
    return blur, None, {}


def _same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


def test_identity_restore_scores_like_the_input() -> None:
    dataset = [_sample("a", 0), _sample("b", 1, as_tensor=False)]
    report = evaluate(_identity, dataset, progress=False)
    assert [row["name"] for row in report.rows] == ["a", "b"]
    for row in report.rows:
        for key in METRIC_KEYS:
            assert _same(row[key], row["input"][key]), key
        assert row["psnr_sharp"] == math.inf
        assert math.isfinite(row["psnr_w"]) and row["psnr_w"] < row["psnr"]
        assert row["fraction"] == pytest.approx(20 * 28 / (HEIGHT * WIDTH))
        assert row["ms"] >= 0.0
    for key in ("psnr", "ssim", "psnr_w", "ssim_w", "fraction"):
        assert report.mean[key] == report.input_mean[key]
    assert report.mean["psnr_sharp"] == math.inf and report.mean["n_inf"]["psnr_sharp"] == 2


def test_oracle_and_mask_only_restores() -> None:
    dataset = [_sample("a", 0), _sample("b", 1)]
    sharps = iter(np.asarray(s["sharp"]).transpose(1, 2, 0) for s in dataset)
    masks = [np.asarray(s["mask"][0]) > 0 for s in dataset]
    gt_masks = iter(masks)

    def oracle(blur):
        return next(sharps), next(gt_masks), {"ms": 7.0, "dense_gflops": 2.0, "pruned_gflops": 0.5}

    report = evaluate(oracle, dataset, progress=False)
    for row in report.rows:
        assert row["psnr"] == row["psnr_w"] == row["psnr_sharp"] == math.inf
        assert row["ssim"] == pytest.approx(1.0) and row["ssim_w"] == pytest.approx(1.0)
        assert row["mask_iou"] == 1.0 and row["mask_f1"] == 1.0
        assert row["ms"] == 7.0 and row["dense_gflops"] == 2.0 and row["pruned_gflops"] == 0.5
        assert row["pred_fraction"] == row["fraction"]
        assert math.isnan(row["input"]["mask_iou"])  # the input predicts no mask

    def brighten_mask(blur):  # a bad restoration that still leaves the background alone
        mask = np.zeros(blur.shape[:2], bool)
        mask[10:30, 12:40] = True
        out = blur.copy()
        out[mask] = np.clip(out[mask] + 0.2, 0, 1)
        return out, None, {"fraction": 0.25, "dense_gflops": None}

    report = evaluate(brighten_mask, dataset, progress=False)
    for row in report.rows:
        assert row["psnr_sharp"] == math.inf
        assert row["psnr_w"] < row["input"]["psnr_w"]
        assert row["pred_fraction"] == 0.25  # taken from the stats when no mask is returned
        assert math.isnan(row["mask_iou"])
        assert "dense_gflops" not in row  # None (not counted) is left out


def test_metrics_are_taken_on_the_8bit_output() -> None:
    dataset = [_sample("a", 0)]
    offset = 0.4 / 255  # rounds away: the saved PNG would equal the 8-bit input

    def tiny_change(blur):
        return np.round(blur * 255) / 255 + offset, None, {}

    row = evaluate(tiny_change, dataset, progress=False).rows[0]
    assert row["psnr_sharp"] == math.inf and row["psnr"] == row["input"]["psnr"]


def test_samples_without_masks() -> None:
    report = evaluate(_identity, [_sample("g", 2, has_mask=False)], progress=False)
    row = report.rows[0]
    assert row["psnr_w"] == row["psnr"] and math.isnan(row["psnr_sharp"])
    assert math.isnan(row["mask_iou"]) and row["fraction"] == 1.0


def test_json_report_is_strict_and_complete(tmp_path: Path) -> None:
    report = evaluate(_identity, [_sample("a", 0)], progress=False)
    path = tmp_path / "report.json"
    report.save_json(path)

    def reject(constant: str):
        raise AssertionError(f"non-standard JSON constant {constant}")

    data = json.loads(path.read_text(), parse_constant=reject)
    assert set(data) == {"mean", "input", "rows"}
    row = data["rows"][0]
    for key in (*METRIC_KEYS, "ms", "name"):
        assert key in row, key
    for key in METRIC_KEYS:
        assert key in data["mean"] and key in data["input"], key
    assert row["psnr_sharp"] == "inf" and row["mask_iou"] is None
    assert data["mean"]["n"] == 1 and data["mean"]["n_inf"] == {"psnr_sharp": 1}
    assert row["psnr"] == pytest.approx(report.rows[0]["psnr"])


def test_table_lists_input_restored_and_change() -> None:
    report = evaluate(_identity, [_sample("a", 0)], progress=False)
    table = report.table()
    assert table.splitlines()[0].split() == ["metric", "input", "restored", "change"]
    psnr_line = next(line for line in table.splitlines() if line.startswith("PSNR (dB)"))
    assert f"{report.mean['psnr']:.2f}" in psnr_line and "+0.00" in psnr_line
    assert "mask IoU" not in table  # no prediction: the row is left out
    assert "1 image;" in table and "psnr_sharp 1" in table


def test_save_dir_writes_restored_pngs_and_comparisons(tmp_path: Path) -> None:
    dataset = [_sample("scene/0001", 0), _sample("b", 1)]

    def halfway(blur):
        mask = np.zeros(blur.shape[:2], bool)
        mask[12:28, 14:36] = True
        return blur * 0.9, mask, {}

    evaluate(halfway, dataset, save_dir=tmp_path, progress=False)
    restored = np.asarray(Image.open(tmp_path / "restored" / "scene" / "0001.png"))
    expected = to_uint8(np.asarray(dataset[0]["blur"]).transpose(1, 2, 0) * 0.9)
    np.testing.assert_array_equal(restored, expected)
    compare = np.asarray(Image.open(tmp_path / "compare" / "b.png"))
    assert compare.shape[1] == 4 * WIDTH + 5 * 6  # four panels and their gaps
    assert compare.shape[0] > HEIGHT
    assert not list(tmp_path.rglob("*.tmp*"))  # atomic writes left nothing behind


def test_bad_inputs_are_named(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no samples"):
        evaluate(_identity, [], progress=False)
    with pytest.raises(InputError, match="'a'.*restored shape"):
        evaluate(lambda b: (b[:-1], None, {}), [_sample("a", 0)], progress=False)
    with pytest.raises(InputError, match="'a'.*predicted mask"):
        evaluate(lambda b: (b, np.ones((3, 3), bool), {}), [_sample("a", 0)], progress=False)
    bad_mask = _sample("m", 0)
    bad_mask["mask"] = bad_mask["mask"][:, :-2]
    with pytest.raises(InputError, match="'m'.*mask"):
        evaluate(_identity, [bad_mask], progress=False)
    with pytest.raises(InputError, match="cannot be used"):
        evaluate(_identity, [_sample("../escape", 0)], save_dir=tmp_path, progress=False)


def test_limit_reads_only_the_first_samples() -> None:
    class MapStyle:
        def __init__(self) -> None:
            self.read: list[int] = []

        def __len__(self) -> int:
            return 5

        def __getitem__(self, index: int) -> dict:
            self.read.append(index)
            return _sample(f"s{index}", index)

    data = MapStyle()
    report = evaluate(_identity, data, progress=False, limit=2)
    assert [row["name"] for row in report.rows] == ["s0", "s1"] and data.read == [0, 1]
    stream = (_sample(f"g{i}", i) for i in range(4))
    assert len(evaluate(_identity, stream, progress=False, limit=3).rows) == 3


def test_deblurrer_adapter() -> None:
    class FakeDeblurrer:
        def __call__(self, image):
            mask = np.zeros(image.shape[:2], bool)
            return types.SimpleNamespace(image=image * 2, mask=mask, stats={"ms": 1.5})

    restored, mask, stats = deblurrer_restore(FakeDeblurrer())(np.ones((2, 2, 3), np.float32))
    assert (restored == 2).all() and mask.shape == (2, 2) and stats == {"ms": 1.5}


# --- the command ------------------------------------------------------------------------------


def test_load_layout(tmp_path: Path) -> None:
    assert eval_command.load_layout("gopro") == "gopro"
    assert eval_command.load_layout("reloblur") == "reloblur"
    patterns = tmp_path / "relo.yaml"
    patterns.write_text("blur: 'blur/*.png'\nsharp: 'sharp/*.png'\n")
    assert eval_command.load_layout(str(patterns)) == {"blur": "blur/*.png", "sharp": "sharp/*.png"}
    with pytest.raises(ConfigError, match="missing.yaml"):
        eval_command.load_layout(str(tmp_path / "missing.yaml"))
    patterns.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="relo.yaml.*mapping"):
        eval_command.load_layout(str(patterns))


def test_eval_command_end_to_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    calls: dict = {}

    class FakeDeblurrer:
        @classmethod
        def from_pretrained(cls, weights, **options):
            calls["weights"], calls["options"] = weights, options
            return cls()

        def __call__(self, image):
            return types.SimpleNamespace(image=image, mask=None, stats={"ms": 2.0})

    def open_dataset(root, layout="generic"):
        calls["root"], calls["layout"] = root, layout
        return [_sample(f"s{i}", i) for i in range(3)]

    monkeypatch.setitem(sys.modules, "m2aenet.api", types.SimpleNamespace(Deblurrer=FakeDeblurrer))
    monkeypatch.setitem(
        sys.modules, "m2aenet.data.datasets", types.SimpleNamespace(open_dataset=open_dataset)
    )
    report_path = tmp_path / "out" / "report.json"
    argv = [
        "eval",
        "--data",
        str(tmp_path),
        "--json",
        str(report_path),
        "--threshold",
        "0.3",
        "--limit",
        "2",
        "--save-images",
        str(tmp_path / "pics"),
        "--threads",
        "1",
        "--no-progress",
    ]
    assert cli.main(argv) == 0
    assert calls["weights"] == "default" and calls["layout"] == "generic"
    expected = {"device": "auto", "threshold": 0.3, "dense": False, "threads": 1}
    assert calls["options"] == expected
    data = json.loads(report_path.read_text())
    assert [row["name"] for row in data["rows"]] == ["s0", "s1"]
    assert data["mean"]["ms"] == 2.0
    assert len(list((tmp_path / "pics" / "compare").glob("*.png"))) == 2
    out = capsys.readouterr().out
    assert "PSNR_w (dB)" in out and str(report_path) in out


def test_eval_command_rejects_bad_limit(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["eval", "--data", "x", "--limit", "0"])
    assert "must be >= 1" in capsys.readouterr().err


def test_report_dataclass_round_trip() -> None:
    report = EvalReport(rows=[{"name": "x", "psnr": 1.0}], mean={"psnr": 1.0}, input_mean={})
    assert report.to_dict() == {"mean": {"psnr": 1.0}, "input": {}, "rows": report.rows}


def _generic_set(root: Path, names: list[str]) -> Path:
    """root/{blur,sharp,mask}/NAME.png from `_sample`; returns root."""
    for name in names:
        sample = _sample(name, len(name))
        for key in ("blur", "sharp", "mask"):
            (root / key).mkdir(parents=True, exist_ok=True)
            array = sample[key].numpy().transpose(1, 2, 0)
            pixels = to_uint8(array if key != "mask" else np.repeat(array, 3, axis=2))
            Image.fromarray(pixels).save(root / key / f"{name}.png")
    return root


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def test_a_truncated_image_fails_its_sample_only_and_the_run_exits_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from m2aenet.data.datasets import open_dataset

    root = _generic_set(tmp_path / "set", ["a", "b", "c"])
    _truncate(root / "blur" / "b.png")
    report = evaluate(_identity, open_dataset(root), progress=False)
    assert [row["name"] for row in report.rows] == ["a", "c"]
    assert len(report.failed) == 1 and "b.png" in report.failed[0]
    assert report.to_dict()["failed"] == report.failed and "1 could not be read" in report.table()

    class FakeDeblurrer:
        @classmethod
        def from_pretrained(cls, weights, **options):
            return cls()

        def __call__(self, image):
            return types.SimpleNamespace(image=image, mask=None, stats={"ms": 2.0})

    monkeypatch.setitem(sys.modules, "m2aenet.api", types.SimpleNamespace(Deblurrer=FakeDeblurrer))
    report_path = tmp_path / "report.json"
    argv = ["eval", "--data", str(root), "--json", str(report_path), "--no-progress"]
    assert cli.main(argv) == 1
    err_lines = capsys.readouterr().err.splitlines()
    assert len(err_lines) == 1 and err_lines[0].startswith("m2aenet eval: error: ")
    assert "b.png" in err_lines[0] and "Traceback" not in err_lines[0]
    data = json.loads(report_path.read_text())
    assert [row["name"] for row in data["rows"]] == ["a", "c"] and len(data["failed"]) == 1

    _truncate(root / "blur" / "a.png")
    _truncate(root / "blur" / "c.png")
    with pytest.raises(InputError, match=r"no sample could be read; the first: .*a.png"):
        evaluate(_identity, open_dataset(root), progress=False)
