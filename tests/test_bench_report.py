"""`m2aenet bench report`: the whole command on tiny settings, its numbers, verdicts and errors."""

from __future__ import annotations

import copy
import json
import math
import re
from pathlib import Path

import pytest
import torch
from PIL import Image

from m2aenet import cli, metrics
from m2aenet.bench.pruning import make_image
from m2aenet.bench.report import speedup_at, synthesized_set
from m2aenet.bench.report_markdown import format_markdown, number, targets
from m2aenet.bench.report_speed import probe_peak_mb
from m2aenet.checkpoint import save_model
from m2aenet.data.synth_writer import generate_dataset
from m2aenet.errors import InputError
from m2aenet.imageio import read_mask, read_rgb, to_uint8, write_png
from m2aenet.registry import create_model

TINY = ["--image-size", "64", "--count", "2", "--global-count", "1", "--size", "64"]
TINY += ["--fractions", "0,0.1,1", "--thresholds", "0.4,0.6", "--repeats", "1", "--threads", "1"]
FRACTIONS = (0.0, 0.1, 1.0)
PRUNED_LABELS = ("m2aenet-s (pixel)", "m2aenet-s (tile)", "m2aenet-s (auto)")
DENSE_LABELS = ("nafnet-s", "m2aenet-s (dense)")


def _photos(folder: Path, count: int = 3) -> Path:
    """Small smooth random photos for the data engine (the Debian photo packages may be absent)."""
    for i in range(count):
        write_png(folder / f"photo{i}.png", make_image(128, seed=i)[0].permute(1, 2, 0).numpy())
    return folder


def _weights(folder: Path) -> tuple[Path, Path]:
    torch.manual_seed(0)
    model = save_model(folder / "m2aenet-s.safetensors", create_model("m2aenet-s"))
    baseline = save_model(folder / "nafnet-s.safetensors", create_model("nafnet-s"))
    return model, baseline


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One tiny end-to-end run of the command (memory probes off: they are tested apart).

    The local set is given with --data (a set of our own); the global one is synthesized.
    """
    root = tmp_path_factory.mktemp("report")
    model, baseline = _weights(root / "weights")
    out, work, photos = root / "out", root / "work", _photos(root / "photos")
    given = root / "given"
    generate_dataset(given, 2, seed=5, size=(48, 64), sources=[photos], progress=False)
    args = ["bench", "report", "--out", str(out), "--weights", str(model), "--data", str(given)]
    args += ["--baseline-weights", str(baseline), "--work", str(work)]
    args += ["--sources", str(photos), *TINY, "--no-progress", "--no-memory"]
    torch_threads = torch.get_num_threads()
    code = cli.main(args)
    assert torch.get_num_threads() == torch_threads  # the caller's setting is given back
    result = json.loads((out / "report.json").read_text(encoding="utf-8"))
    return {"code": code, "out": out, "work": work, "given": given, "result": result}


def _rows(result: dict, label: str) -> list[dict]:
    return sorted((r for r in result["speed"] if r["model"] == label), key=lambda r: r["fraction"])


def test_writes_every_file_with_the_promised_json(run: dict) -> None:
    assert run["code"] == 0
    out, result = run["out"], run["result"]
    for name in ("speed.png", "threshold.png"):
        with Image.open(out / name) as image:
            assert image.format == "PNG" and image.width > 200
    keys = {"baseline", "quality", "quality_global", "speed", "threshold_curve"}
    assert keys | {"speedup_vs_baseline_at_10pct", "settings"} <= set(result)
    assert result["baseline"] == "nafnet-s"
    labels = ["input", "nafnet-s", "m2aenet-s (dense)", "m2aenet-s (pruned)"]
    for key in ("quality", "quality_global"):
        assert [row["model"] for row in result[key]] == labels
        for row in result[key]:
            assert {"psnr", "ssim", "psnr_w", "ssim_w", "psnr_sharp"} <= set(row)
    assert len(result["speed"]) == len(FRACTIONS) * 5
    for row in result["speed"]:
        assert {"model", "fraction", "ms", "gflops", "peak_mb"} <= set(row)
        assert row["peak_mb"] is None and row["ms"] > 0  # --no-memory
    curve = result["threshold_curve"]
    assert [row["threshold"] for row in curve] == [0.4, 0.6]
    assert all({"threshold", "psnr_w", "ms", "pred_fraction"} <= set(row) for row in curve)
    settings = result["settings"]
    assert settings["fractions"] == list(FRACTIONS) and settings["threads"] == 1
    assert {"torch", "torch_threads", "cpu_count", "date", "command"} <= set(settings)
    # Only the pruned run predicts a mask: the dense runs and the input have no IoU.
    assert [row["mask_iou"] is None for row in result["quality"]] == [True, True, True, False]


def test_report_md_has_the_command_tables_and_plots(run: dict) -> None:
    text = (run["out"] / "report.md").read_text(encoding="utf-8")
    command = run["result"]["settings"]["command"]
    assert command.startswith("m2aenet bench report --out ") and f"\n{command}\n" in text
    assert "--fractions 0,0.1,1" in command and "--no-memory" in command
    assert f"--data {run['given']}" in command and "--global-count 1" in command
    global_set = run["result"]["data"]["global"]
    assert global_set["synthesized"] and Path(global_set["root"]).parent == run["work"]
    assert json.loads((Path(global_set["root"]) / "meta.json").read_text())["seed"] == 101
    for heading in (
        "## Headlines",
        "## Targets",
        "## Quality on local blur",
        "## Quality on global blur",
        "## Speed and FLOPs",
        "## Threshold curve",
    ):
        assert heading in text
    assert "](speed.png)" in text and "](threshold.png)" in text
    assert "| m2aenet-s (pruned) |" in text and "| 0.6 |" in text


def test_input_row_equals_metrics_of_the_blurry_images(run: dict) -> None:
    local = Path(run["result"]["data"]["local"]["root"])
    assert local == run["given"] and not run["result"]["data"]["local"]["synthesized"]
    values: dict[str, list[float]] = {"psnr": [], "ssim": [], "psnr_w": [], "psnr_sharp": []}
    for blur_path in sorted((local / "blur").glob("*.png")):
        blur = to_uint8(read_rgb(blur_path))
        sharp = to_uint8(read_rgb(local / "sharp" / blur_path.name))
        mask = read_mask(local / "mask" / blur_path.name) > 0.5
        values["psnr"].append(metrics.psnr(blur, sharp))
        values["ssim"].append(metrics.ssim(blur, sharp))
        values["psnr_w"].append(metrics.weighted_psnr(blur, sharp, mask))
        values["psnr_sharp"].append(metrics.psnr(blur, sharp, mask=~mask))
    row = run["result"]["quality"][0]
    assert row["model"] == "input" and row["n"] == len(values["psnr"]) == 2
    for key, numbers in values.items():
        finite = [value for value in numbers if math.isfinite(value)]
        expected = sum(finite) / len(finite) if finite else math.inf
        assert number(row[key]) == pytest.approx(expected, rel=1e-9), key


def test_flops_grow_with_the_fraction_only_for_the_pruned_model(run: dict) -> None:
    result = run["result"]
    for label in PRUNED_LABELS:
        gflops = [row["gflops"] for row in _rows(result, label)]
        assert len(gflops) == 3 and gflops[0] < gflops[1] < gflops[2], label
    for label in DENSE_LABELS:
        gflops = {row["gflops"] for row in _rows(result, label)}
        assert len(_rows(result, label)) == 3 and len(gflops) == 1, label
    # Every pixel kept costs what the dense run costs, give or take the gathers' arithmetic.
    dense = _rows(result, "m2aenet-s (dense)")[0]["gflops"]
    assert _rows(result, "m2aenet-s (pixel)")[-1]["gflops"] == pytest.approx(dense, rel=0.05)


def test_speedup_is_the_ratio_of_its_rows(run: dict) -> None:
    result = run["result"]
    base = next(r for r in _rows(result, "nafnet-s") if r["fraction"] == 0.1)
    auto = next(r for r in _rows(result, "m2aenet-s (auto)") if r["fraction"] == 0.1)
    assert result["speedup_vs_baseline_at_10pct"] == pytest.approx(base["ms"] / auto["ms"])
    assert speedup_at(result["speed"], "nafnet-s", "m2aenet-s (auto)", 0.25) is None


def _target_lines(text: str) -> list[str]:
    section = text.split("## Targets", 1)[1].split("\n## ", 1)[0]
    return [line for line in section.splitlines() if line.startswith("- ")]


def test_targets_follow_the_numbers(run: dict) -> None:
    result = copy.deepcopy(run["result"])
    measured = _target_lines((run["out"] / "report.md").read_text(encoding="utf-8"))
    rows = {row["model"]: row for row in result["quality"]}
    quality_met = number(rows["m2aenet-s (pruned)"]["psnr_w"]) >= number(rows["nafnet-s"]["psnr_w"])
    speed_met = result["speedup_vs_baseline_at_10pct"] >= 3.0
    for line, met in zip(measured, (quality_met, speed_met), strict=True):
        assert ("**met**" if met else "**not met**") in line

    for ours, theirs, speedup, verdicts in (
        (31.0, 30.0, 3.5, ("**met**", "**met**")),
        (29.0, 30.0, 2.5, ("**not met**", "**not met**")),
        (30.0, 30.0, 3.0, ("**met**", "**met**")),  # equal counts: the targets say >=
        (29.99, 30.0, None, ("**not met**", "**not measured**")),
    ):
        rows["m2aenet-s (pruned)"]["psnr_w"], rows["nafnet-s"]["psnr_w"] = ours, theirs
        result["speedup_vs_baseline_at_10pct"] = speedup
        judged = [item["met"] for item in targets(result)]
        assert judged == [
            verdict == "**met**" if "measured" not in verdict else None for verdict in verdicts
        ]
        lines = _target_lines(format_markdown(result))
        assert len(lines) == 2
        for line, verdict in zip(lines, verdicts, strict=True):
            assert re.search(re.escape(verdict) + r" \(", line), (line, verdict)


def test_missing_baseline_weights_name_the_path_and_the_train_command(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    missing = tmp_path / "benchmarks" / "weights" / "nafnet-s.safetensors"
    args = ["bench", "report", "--out", str(tmp_path / "out"), "--work", str(tmp_path / "work")]
    code = cli.main([*args, "--baseline-weights", str(missing), *TINY])
    error = capsys.readouterr().err
    assert code == 2 and str(missing) in error and "m2aenet train configs/nafnet-s.yaml" in error
    assert not (tmp_path / "work").exists() and not (tmp_path / "out").exists()


def test_wrong_model_in_the_baseline_file_is_refused(tmp_path: Path, capsys) -> None:
    model, _ = _weights(tmp_path)
    args = ["bench", "report", "--out", str(tmp_path / "out"), "--baseline-weights", str(model)]
    assert cli.main(args) == 2
    assert f"{model}: holds a m2aenet-s model, expected nafnet-s" in capsys.readouterr().err


def test_synthesized_sets_are_reused_while_they_match(tmp_path: Path) -> None:
    photos = [str(_photos(tmp_path / "photos"))]
    root = tmp_path / "work" / "local"
    synthesized_set(root, "local", 100, 1, 64, photos, progress=False)
    stamp = (root / "blur" / "000000.png").stat().st_mtime_ns
    synthesized_set(root, "local", 100, 1, 64, photos, progress=False)
    assert (root / "blur" / "000000.png").stat().st_mtime_ns == stamp
    synthesized_set(root, "local", 100, 2, 64, photos, progress=False)  # other count: regenerated
    assert json.loads((root / "meta.json").read_text())["count"] == 2
    assert len(list((root / "blur").glob("*.png"))) == 2
    foreign = tmp_path / "mine"
    (foreign / "notes").mkdir(parents=True)
    with pytest.raises(InputError, match="mine"):
        synthesized_set(foreign, "local", 100, 1, 64, photos, progress=False)


def test_report_fractions_take_0_and_1_but_pruning_fractions_do_not(capsys) -> None:
    parser = cli.build_parser()
    args = parser.parse_args(["bench", "report", "--out", "x", "--fractions", "0,0.5,1"])
    assert args.fractions == (0.0, 0.5, 1.0)
    for bench, value, message in (
        ("report", "0,1.5", "fractions must be in [0, 1], got '0,1.5'"),
        ("report", "a,b", "expected fractions like 0,0.1,1, got 'a,b'"),
        ("pruning", "0,0.5", "fractions must be in (0, 1), got '0,0.5'"),
    ):
        extra = ["--out", "x"] if bench == "report" else []
        with pytest.raises(SystemExit):
            parser.parse_args(["bench", bench, *extra, "--fractions", value])
        assert message in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parser.parse_args(["bench", "pruning", "--size", "4"])
    assert "sizes must be in 8..8192, got '4'" in capsys.readouterr().err


def test_memory_probe_measures_a_forward_pass_in_a_subprocess(tmp_path: Path) -> None:
    model, _ = _weights(tmp_path)
    request = {
        "weights": str(model),
        "executor": "pixel",
        "size": 256,
        "fraction": 0.5,
        "seed": 0,
        "threads": 1,
    }
    assert probe_peak_mb(request) > 1.0  # 256x256 feature maps of 32 channels: several MB
    with pytest.raises(RuntimeError, match="memory probe failed"):
        probe_peak_mb({**request, "weights": str(tmp_path / "missing.safetensors")})


def test_bench_modules_import_each_other_without_a_circle() -> None:
    import ast

    folder = Path(__file__).resolve().parents[1] / "src" / "m2aenet" / "bench"
    graph: dict[str, set[str]] = {}
    for path in folder.glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        graph[path.stem] = {
            node.module.rsplit(".", 1)[-1]
            for node in ast.walk(tree)  # imports inside functions count too
            if isinstance(node, ast.ImportFrom)
            and node.module
            and node.module.startswith("m2aenet.bench.")
        }

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        for nxt in graph.get(start, ()):
            if nxt == goal or (nxt not in seen and reaches(nxt, goal, seen | {nxt})):
                return True
        return False

    circles = sorted(module for module in graph if reaches(module, module, set()))
    assert circles == [], f"import circle through {circles}"
