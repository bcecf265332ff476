"""`m2aenet bench pruning` measures the shipped model unless told otherwise, and says which."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from m2aenet import cli

TINY = ["bench", "pruning", "--size", "32", "--fractions", "0.5", "--repeats", "1"]
TINY += ["--warmup", "0", "--threads", "1", "--no-memory"]


def _measured_model(tmp_path: Path, *extra: str) -> str:
    out = tmp_path / "rows.json"
    assert cli.main([*TINY, *extra, "--json", str(out)]) == 0
    (row,) = json.loads(out.read_text())
    return row["model"]


def test_without_weights_it_measures_the_shipped_weights(tmp_path: Path) -> None:
    assert _measured_model(tmp_path) == "default"


def test_model_measures_random_weights_of_that_architecture(tmp_path: Path) -> None:
    assert _measured_model(tmp_path, "--model", "m2aenet-s") == "m2aenet-s"


def test_weights_and_model_together_are_refused(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main([*TINY, "--model", "m2aenet-s", "--weights", "default"])
    assert exit_info.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err
