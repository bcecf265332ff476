"""Shipping a run: training time from the log, the threshold chosen on val."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from m2aenet.train.ship import IDLE_GAP_S, ThresholdRow, choose_threshold, training_seconds


def test_training_time_leaves_out_stops(tmp_path: Path) -> None:
    log = tmp_path / "log.jsonl"
    times = [0.0, 10.0, 20.0, 20.0 + IDLE_GAP_S + 1, 30.0 + IDLE_GAP_S + 1]
    log.write_text("".join(json.dumps({"time": t}) + "\n" for t in times))
    assert training_seconds(log) == pytest.approx(30.0)


def _row(threshold: float, psnr_w: float) -> ThresholdRow:
    return ThresholdRow(threshold, psnr_w, 25.0, 0.5, 0.1, 10.0)


def test_the_highest_threshold_within_a_tie_of_the_best_is_chosen() -> None:
    # 0.4 is best; 0.5 is within 0.01 dB of it (a tie), so the faster 0.5 wins; 0.6 is worse.
    rows = [_row(0.3, 30.00), _row(0.4, 30.10), _row(0.5, 30.095), _row(0.6, 29.9)]
    assert choose_threshold(rows) == 0.5
    assert choose_threshold([_row(0.2, 31.0), _row(0.6, 30.0)]) == 0.2
    with pytest.raises(ValueError, match="no thresholds"):
        choose_threshold([])


def test_a_cap_on_the_marked_share_rules_out_thresholds_that_mark_too_much() -> None:
    """PSNR_w alone favours the lowest threshold; with `max_marked` only thresholds marking
    at most that multiple of the truly blurred share (10% here) compete."""
    rows = [
        ThresholdRow(0.2, 26.0, 24.0, 0.3, 0.25, 10.0, 0.1),  # 2.5x: best PSNR_w, too many
        ThresholdRow(0.4, 25.8, 24.0, 0.5, 0.14, 9.0, 0.1),  # 1.4x
        ThresholdRow(0.5, 25.7, 24.0, 0.5, 0.10, 8.0, 0.1),  # 1.0x
    ]
    assert choose_threshold(rows) == 0.2
    assert choose_threshold(rows, max_marked=1.5) == 0.4
    assert choose_threshold(rows, max_marked=3.0) == 0.2
    # None qualifies: the threshold that marks least.
    assert choose_threshold(rows, max_marked=1.0 - 1e-9) == 0.5
    assert rows[0].marked_over_true == pytest.approx(2.5)


def test_the_whole_frame_share_never_restores_a_sharp_val_image_whole() -> None:
    from m2aenet.train.ship import WholeFrameRow, choose_whole_frame

    rows = [
        WholeFrameRow(0.3, {"local": 2.2, "global": -1.3}, sharp_whole=0.25),  # best sum
        WholeFrameRow(0.5, {"local": 2.1, "global": -1.5}, sharp_whole=0.0),
        WholeFrameRow(0.8, {"local": 2.1, "global": -1.495}, sharp_whole=0.0),  # tie, higher
        WholeFrameRow(1.0, {"local": 2.1, "global": -1.7}, sharp_whole=0.0),
    ]
    assert choose_whole_frame(rows) == 0.8
    # When every scored share turns some sharp image whole, the decision stays off.
    assert choose_whole_frame(rows[:1]) == 1.0


def test_shipped_weights_can_take_the_registered_name_of_their_architecture(
    tmp_path: Path,
) -> None:
    import torch
    from predictor_helpers import write_model

    from m2aenet.checkpoint import load_model, load_state_dict
    from m2aenet.errors import ConfigError
    from m2aenet.train.ship import ship_run

    write_model(tmp_path / "run" / "final_ema.safetensors")  # a small m2aenet-s
    target = ship_run(tmp_path / "run", tmp_path / "out.safetensors", registered_as="m2aenet-s2")
    shipped = load_model(target)
    assert shipped.model_name == "m2aenet-s2"
    source = load_state_dict(tmp_path / "run" / "final_ema.safetensors")
    assert all(torch.equal(value, source[key]) for key, value in load_state_dict(target).items())
    with pytest.raises(ConfigError, match="unknown key"):  # another family's config
        ship_run(tmp_path / "run", tmp_path / "bad.safetensors", registered_as="m2aenet-ms")


def test_derived_weights_keep_the_training_summary_they_inherited(tmp_path: Path) -> None:
    """A run folder without log.jsonl (a predictor swapped into shipped weights) keeps the
    compute hours and note of the weights it was made from; a trained run reads its log."""
    from predictor_helpers import write_model

    from m2aenet.checkpoint import read_record
    from m2aenet.train.ship import ship_run

    first = _ship_run_with_log(tmp_path / "trained", write_model, ship_run)
    summary = read_record(first)["training"]
    assert summary["compute_hours"] == pytest.approx(0.01) and summary["note"] == "stage 1"
    derived = tmp_path / "derived"
    derived.mkdir()
    for suffix in (".safetensors", ".json"):  # what a swap writes: the record travels along
        (derived / f"final_ema{suffix}").write_bytes(first.with_suffix(suffix).read_bytes())
    summary = read_record(ship_run(derived, tmp_path / "out.safetensors", note="swap"))["training"]
    assert summary["compute_hours"] == pytest.approx(0.01)
    assert summary["note"] == "stage 1; swap"


def _ship_run_with_log(run: Path, write_model, ship_run) -> Path:
    """Ship a small model from a run whose log spans 36 s of training."""
    write_model(run / "final_ema.safetensors")
    (run / "log.jsonl").write_text("".join(json.dumps({"time": t}) + "\n" for t in (0.0, 36.0)))
    return ship_run(run, run.parent / "trained.safetensors", note="stage 1")
