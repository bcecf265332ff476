"""The commands the README and docs/*.md show are ones the command line accepts.

Each `m2aenet ...` line of a bash block (also after `torchrun ... -m`) is parsed with the real
argument parser, so a renamed or removed option, a wrong value type or a value outside its
range (`--threshold 2`) fails here. Running them (models, data, training) is left to the
commands' own tests; this keeps the documentation in step with the parser at no cost.
Python blocks must at least compile.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from m2aenet import cli
from m2aenet.commands.train import split_rest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_BLOCK = re.compile(r"^```(\w+)\n(.*?)^```", re.MULTILINE | re.DOTALL)


def _blocks(kind: str) -> list[tuple[str, str]]:
    found = []
    for path in DOCS:
        for language, body in _BLOCK.findall(path.read_text(encoding="utf-8")):
            if language == kind:
                found.append((path.relative_to(ROOT).as_posix(), body))
    return found


def _command_lines() -> list[tuple[str, list[str]]]:
    """(where, argv after `m2aenet`) of every documented m2aenet command."""
    commands = []
    for where, body in _blocks("bash"):
        for line in body.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if "m2aenet" not in words:
                continue
            start = words.index("m2aenet")
            if start > 0 and words[start - 1] not in ("-m",):
                continue  # `pip install m2aenet`, not a command
            commands.append((f"{where}: {line.strip()}", words[start + 1 :]))
    return commands


COMMANDS = _command_lines()


def test_the_docs_show_commands_at_all() -> None:
    assert len(COMMANDS) > 20
    assert {argv[0] for _, argv in COMMANDS if argv} >= {"deblur", "train", "eval", "synth"}


@pytest.mark.parametrize(("where", "argv"), COMMANDS, ids=[where for where, _ in COMMANDS])
def test_documented_command_parses(where: str, argv: list[str]) -> None:
    parser = cli.build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_info:  # --help / --version exit 0; a bad argument exits 2
        assert exit_info.code == 0, where
        return
    if args.command == "train":
        split_rest(list(args.rest))


@pytest.mark.parametrize(
    ("where", "code"), _blocks("python"), ids=[where for where, _ in _blocks("python")]
)
def test_documented_python_compiles(where: str, code: str) -> None:
    compile(code, where, "exec")


# -- numbers the README quotes from committed JSON files ----------------------------------------

BENCHMARKS = ROOT / "docs" / "benchmarks"


def _readme_section(heading: str) -> str:
    """The README text from `heading` (a line start) to the next `## ` heading, its line breaks
    and runs of spaces made single spaces (quotes may wrap lines)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index(heading)
    end = text.find("\n## ", start + len(heading))
    return " ".join(text[start : end if end >= 0 else None].split())


def _json(path: Path) -> dict:
    import json

    return json.loads(path.read_text(encoding="utf-8"))


def test_readme_status_quotes_the_committed_scores() -> None:
    """The status note's gains, image counts, share made worse and IoU range are those of
    docs/benchmarks/stage4/scores_session15_weights.json (the shipped weights' scores)."""
    scores = _json(BENCHMARKS / "stage4" / "scores_session15_weights.json")["scores"]
    status = " ".join(_readme_section("> **Status").replace("> ", " ").split())
    local, moderate = scores["test-local"], scores["test-moderate"]
    assert f"**+{local['predicted']['mean']:.2f} dB** on local blur" in status
    assert f"**+{moderate['predicted']['mean']:.2f} dB** on moderate" in status
    assert f"({local['predicted']['n']} images each;" in status
    assert local["predicted"]["n"] == moderate["predicted"]["n"]
    best = max(
        row["predicted"] for name in ("test-local", "test-moderate") for row in scores[name]["rows"]
    )
    assert f"up to +{best:.1f} dB on single images" in status
    worse = sorted(
        round(100 * scores[name]["predicted"]["worse"]) for name in ("test-local", "test-moderate")
    )
    assert f"{worse[0]}-{worse[1]}% of the images get slightly worse" in status
    ious = [
        scores[name]["mask_iou"]
        for name in ("val-local", "val-moderate", "test-local", "test-moderate")
    ]
    assert f"IoU {min(ious):.2f}-{max(ious):.2f}" in status


def test_readme_baseline_table_quotes_the_committed_report() -> None:
    """Every number of "Against a dense baseline" is docs/benchmarks/report.json's."""
    report = _json(BENCHMARKS / "report.json")
    section = _readme_section("## Against a dense baseline")
    psnr_w = {row["model"]: row["psnr_w"] for row in report["quality"]}
    at_10 = {row["model"]: row for row in report["speed"] if row["fraction"] == 0.1}
    baseline, pruned = at_10["nafnet-s"], at_10["m2aenet-s (auto)"]
    assert f"| blurry input | {psnr_w['input']:.2f} | - | - |" in section
    assert (
        f"| nafnet-s (dense) | {psnr_w['nafnet-s']:.2f} | {baseline['ms']:.0f} "
        f"| {baseline['gflops']:.1f} |"
    ) in section
    assert (
        f"| m2aenet-s (pruned) | {psnr_w['m2aenet-s (pruned)']:.2f} | {pruned['ms']:.0f} "
        f"| {pruned['gflops']:.1f} |"
    ) in section
    assert f"{report['speedup_vs_baseline_at_10pct']:.1f}x" in section
    ahead = psnr_w["nafnet-s"] - psnr_w["m2aenet-s (pruned)"]
    assert f"nafnet-s {ahead:.2f} dB ahead" in section


def test_readme_speed_table_quotes_the_shipped_models_flops() -> None:
    """The shipped model's FLOPs ratios, dense GFLOPs and exactness in the speed section are
    those of docs/benchmarks/pruning_default_flops.json."""
    rows = _json(BENCHMARKS / "pruning_default_flops.json")["rows"]
    section = _readme_section("## Speed: cost follows the blurred area")
    assert {row["model"] for row in rows} == {"default"}
    for row in rows:
        assert f"| {row['fraction']:.0%} | {row['flops_ratio']:.3f} |" in section
    assert f"every pixel kept, {rows[0]['dense_gflops']:.1f} GFLOPs)" in section
    largest = f"{max(row['max_abs_diff'] for row in rows):.1e}".replace("e-0", "e-")
    assert f"for the same mask to {largest}:" in section
