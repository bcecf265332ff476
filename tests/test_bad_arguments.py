"""Every user-facing command, given bad arguments, says so in one line and exits 2.

No traceback, no work done first: each case here used to end in a traceback, in a failure per
image after the model had loaded, or in a silent success.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from m2aenet import cli
from m2aenet.checkpoint import save_model
from m2aenet.registry import create_model

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


@pytest.fixture(scope="module")
def place(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with an image, a regular file, a folder named like a file and bad weights."""
    root = tmp_path_factory.mktemp("bad")
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(root / "a.png")
    (root / "afile").write_text("a regular file\n")
    (root / "folder.json").mkdir()
    model = create_model("m2aenet-s", channels=8, num_blocks=1, mask_width=8, analyzer_width=8)
    weights = save_model(root / "tampered.safetensors", model)
    record = json.loads(weights.with_suffix(".json").read_text())
    record["model_config"]["channels"] = "abc"
    weights.with_suffix(".json").write_text(json.dumps(record))
    return root


def _cases(root: Path) -> dict[str, tuple[list[str], str]]:
    """name -> (argv, a piece of the expected error line)."""
    a_png, afile, out = str(root / "a.png"), root / "afile", str(root / "out")
    smoke = str(CONFIGS / "smoke.yaml")
    deblur = ["deblur", a_png, "-o", out, "--no-progress"]
    # Should a check regress, the command must stay cheap, not benchmark at 1024 pixels.
    tiny_bench = ["bench", "pruning", "--size", "32", "--fractions", "0.5", "--repeats", "1"]
    tiny_bench += ["--warmup", "0", "--threads", "1", "--no-memory"]
    return {
        "no command": ([], "required"),
        "unknown command": (["polish"], "invalid choice"),
        "deblur --json folder": ([*deblur, "--json", str(root / "folder.json")], "is a folder"),
        "deblur --json under a file": ([*deblur, "--json", str(afile / "s.json")], "is a file"),
        "deblur -o under a file": (["deblur", a_png, "-o", str(afile / "out")], "is a file"),
        "deblur -o a file": (["deblur", a_png, "-o", str(afile)], "not a folder"),
        "deblur -o result.jpg": (["deblur", a_png, "-o", str(root / "r.jpg")], "output folder"),
        "deblur --device gpu": ([*deblur, "--device", "gpu"], "expected auto, cpu, cuda"),
        "deblur --device tpu": ([*deblur, "--device", "tpu"], "expected auto, cpu, cuda"),
        "deblur --device mps": ([*deblur, "--device", "mps"], "MPS"),
        "deblur --device cuda:7": ([*deblur, "--device", "cuda:7"], "--device cuda:7"),
        "deblur --threads 0": ([*deblur, "--threads", "0"], "--threads: must be >= 1, got 0"),
        "deblur tampered weights": (
            [*deblur, "--weights", str(root / "tampered.safetensors"), "--device", "cpu"],
            "model_config.channels must be int",
        ),
        "deblur --threshold 2": ([*deblur, "--threshold", "2"], "(0, 1)"),
        "deblur --threshold nan": ([*deblur, "--threshold", "nan"], "(0, 1)"),
        "deblur --whole-frame-extent -1": (
            [*deblur, "--whole-frame-extent", "-1"],
            "expected px in [0, 28.28] (0: off), got '-1'",
        ),
        "deblur --whole-frame-extent nan": (
            [*deblur, "--whole-frame-extent", "nan"],
            "expected px in [0, 28.28] (0: off), got 'nan'",
        ),
        "deblur --defocus-veto 12": (
            [*deblur, "--defocus-veto", "12"],
            "expected px in [0, 12) (0: off), got '12'",
        ),
        "deblur --defocus-veto inf": (
            [*deblur, "--defocus-veto", "inf"],
            "expected px in [0, 12) (0: off), got 'inf'",
        ),
        "deblur --jpeg-quality 0": ([*deblur, "--jpeg-quality", "0"], "1..100"),
        "deblur missing input": (["deblur", str(root / "no.png"), "-o", out], "no such file"),
        "synth --preview-rows 0": (
            ["synth", "--out", out, "--preview", str(root / "p.png"), "--preview-rows", "0"],
            "must be >= 1",
        ),
        "synth --out under a file": (
            ["synth", "--out", str(afile / "set"), "--count", "1"],
            "is a file",
        ),
        "synth --preview under a file": (
            ["synth", "--out", out, "--preview", str(afile / "p.png")],
            "is a file",
        ),
        "synth --global-fraction nan": (
            ["synth", "--out", out, "--count", "1", "--mode", "mixed", "--global-fraction", "nan"],
            "must be in [0, 1]",
        ),
        "synth --global-fraction 7": (
            ["synth", "--out", out, "--count", "1", "--global-fraction", "7"],
            "must be in [0, 1]",
        ),
        "synth --global-fraction -1": (
            ["synth", "--out", out, "--count", "1", "--global-fraction", "-1"],
            "must be in [0, 1]",
        ),
        "deblur --tile-overlap 600": (
            [*deblur, "--tile-overlap", "600"],
            "--tile-overlap=600: must be at most half the tile size (1024)",
        ),
        "deblur --tile-overlap -5": ([*deblur, "--tile-overlap", "-5"], "--tile-overlap=-5"),
        "deblur --tile 64 --tile-overlap 40": (
            [*deblur, "--tile", "64", "--tile-overlap", "40"],
            "--tile-overlap=40",
        ),
        "synth --count 0": (["synth", "--out", out, "--count", "0"], "--count must be >= 1"),
        "eval --threshold 2": (["eval", "--data", out, "--threshold", "2"], "(0, 1)"),
        "eval --threads 0": (["eval", "--data", out, "--threads", "0"], "must be >= 1"),
        "eval --json under a file": (
            ["eval", "--data", out, "--json", str(afile / "r.json")],
            "is a file",
        ),
        "eval --save-images under a file": (
            ["eval", "--data", out, "--save-images", str(afile / "pictures")],
            "is a file",
        ),
        "eval --device tpu": (["eval", "--data", out, "--device", "tpu"], "expected auto"),
        "export --out not onnx": (["export", "--out", str(root / "m.txt")], "must end in .onnx"),
        "export --out under a file": (["export", "--out", str(afile / "m.onnx")], "is a file"),
        "export --threshold 1": (
            ["export", "--out", str(root / "m.onnx"), "--threshold", "1"],
            "(0, 1)",
        ),
        "train missing config": (["train", str(root / "none.yaml")], "none.yaml"),
        "train channels 8.5": (
            ["train", smoke, "model.overrides.channels=8.5"],
            "channels must be int, got 8.5",
        ),
        "train analyzer_width=4096": (
            ["train", smoke, "model.overrides.analyzer_width=4096"],
            "model_config.analyzer_width 4096",
        ),
        "train analyzer_levels=40": (
            ["train", smoke, "model.overrides.analyzer_levels=40"],
            "model_config.analyzer_levels must be <=",
        ),
        "train --out under a file": (["train", smoke, "--out", str(afile / "run")], "is a file"),
        "bench pruning --device tpu": ([*tiny_bench, "--device", "tpu"], "expected auto"),
        "bench pruning --json under a file": (
            [*tiny_bench, "--json", str(afile / "rows.json")],
            "is a file",
        ),
        "bench pruning --size 100000": (
            ["bench", "pruning", "--size", "100000", "--no-memory"],
            "sizes must be in 8..8192",
        ),
        "bench report --out under a file": (
            ["bench", "report", "--out", str(afile / "report")],
            "is a file",
        ),
    }


CASE_NAMES = list(_cases(Path("/")))


@pytest.mark.parametrize("name", CASE_NAMES)
def test_bad_arguments_give_one_error_line_and_exit_2(
    place: Path, name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv, expected = _cases(place)[name]
    try:
        code = cli.main(argv)
    except SystemExit as exit_info:  # argparse's own errors
        code = exit_info.code
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    error_lines = [line for line in err.splitlines() if "error:" in line]
    assert len(error_lines) == 1 and error_lines[0].startswith("m2aenet"), err
    assert expected in error_lines[0], err
    # Only argparse prints more than the error line: its usage summary.
    assert all(line.startswith(("usage:", " ")) for line in err.splitlines()[:-1]), err
    assert not (place / "out").exists()  # nothing was written before the refusal
