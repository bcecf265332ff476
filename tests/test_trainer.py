"""The training loop: outputs of a run, learning, EMA, accumulation, schedule and AMP."""

from __future__ import annotations

import functools
import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import train_helpers
from train_helpers import TinyPairs, one_thread, replace

from m2aenet.checkpoint import load_model
from m2aenet.errors import ConfigError
from m2aenet.registry import create_model
from m2aenet.train import state
from m2aenet.train.config import TrainConfig, from_dict
from m2aenet.train.ema import ModelEma
from m2aenet.train.plots import read_log
from m2aenet.train.schedule import warmup_cosine_factor
from m2aenet.train.trainer import Trainer, forward_backward, resolve_amp, weights_digest

pytestmark = pytest.mark.usefixtures(one_thread.__name__)


def tiny_config(**changes) -> TrainConfig:
    """A run of a few steps of the tiny model, no workers, no progress bar."""
    base = from_dict(
        TrainConfig,
        {
            "model": {"name": train_helpers.register_tiny_model()},
            "data": {"batch_size": 2, "num_workers": 0},
            "optim": {"lr": 1e-2, "warmup_steps": 2, "min_lr": 1e-4},
            "steps": 6,
            "checkpoint": {"every": 2, "keep": 2},
            "validation": {"every": 3},
            "log": {"every": 1, "progress": False},
            "amp": "none",
        },
    )
    return replace(base, **changes)


def run(config: TrainConfig, out: Path, **kwargs) -> dict:
    trainer = Trainer(
        config,
        out,
        command=["m2aenet", "train", "test"],
        train_dataset=kwargs.pop("train_dataset", TinyPairs(8, 16, seed=0)),
        val_dataset=kwargs.pop("val_dataset", TinyPairs(2, 16, seed=1)),
        **kwargs,
    )
    return trainer.run()


def test_a_run_writes_weights_state_log_and_plot(tmp_path: Path) -> None:
    out = tmp_path / "run"
    summary = run(tiny_config(), out)

    final = out / "final_ema.safetensors"
    assert final.is_file() and final.with_suffix(".json").is_file()
    record = json.loads(final.with_suffix(".json").read_text())
    assert record["step"] == 6
    assert record["command"] == ["m2aenet", "train", "test"]
    assert record["train_config"]["optim"]["lr"] == pytest.approx(1e-2)
    assert math.isfinite(record["metrics"]["psnr_w"])
    exported = load_model(final)  # rebuilds the registered model from the sidecar
    assert weights_digest(exported) == summary["weights_sha256"][0]

    # Checkpoints every 2 steps, newest 2 kept, last.json names the newest.
    assert state.list_steps(out) == [4, 6]
    assert state.read_last(out) == (6, state.step_dir(out, 6))
    directory = state.step_dir(out, 6)
    for name in ("model.safetensors", "model.json", "ema.safetensors", "ema.json", "state.pt"):
        assert (directory / name).is_file(), name
    training_state = torch.load(directory / "state.pt", weights_only=True)
    assert training_state["step"] == 6
    assert training_state["scheduler"]["last_epoch"] == 6
    assert training_state["ema"]["updates"] == 6
    assert len(training_state["rng"]) == 1

    rows = read_log(out / "log.jsonl")
    train_rows = [row for row in rows if row["kind"] == "train"]
    val_rows = [row for row in rows if row["kind"] == "val"]
    assert [row["step"] for row in train_rows] == [1, 2, 3, 4, 5, 6]
    assert {"lr", "loss", "grad_norm", "steps_per_s", "time"} <= set(train_rows[0])
    assert [row["step"] for row in val_rows] == [3, 6]
    assert math.isfinite(val_rows[0]["input_psnr_w"])  # the blurry input, reported once
    assert "input_psnr_w" not in val_rows[1]
    assert {"psnr", "psnr_w", "ssim_w", "psnr_w_true_mask"} <= set(val_rows[1])
    assert math.isfinite(val_rows[1]["psnr_w_true_mask"])
    assert rows[-1]["kind"] == "done"
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_learning_rate_follows_warmup_then_cosine(tmp_path: Path) -> None:
    out = tmp_path / "run"
    run(tiny_config(), out)
    logged = [row["lr"] for row in read_log(out / "log.jsonl") if row["kind"] == "train"]
    expected = [1e-2 * warmup_cosine_factor(step, 2, 6, 1e-2) for step in range(6)]
    assert logged == pytest.approx(expected, rel=1e-9)
    assert logged[0] == pytest.approx(0.5e-2)  # warm-up starts above zero
    assert logged[1] == pytest.approx(1e-2)  # peak at the end of warm-up
    assert logged[-1] == pytest.approx(1e-4)  # floor on the last step


def test_loss_decreases_when_overfitting_two_samples(tmp_path: Path) -> None:
    # The ground-truth mask for the first half (teacher forcing), the predicted one after.
    config = tiny_config(
        steps=120,
        teacher_forcing_steps=60,
        optim={"lr": 2e-2, "warmup_steps": 0, "min_lr": 2e-2, "grad_clip": 0.0},
        checkpoint={"every": 120},
        validation={"enabled": False},
        ema={"enabled": False},
    )
    out = tmp_path / "run"
    run(config, out, train_dataset=TinyPairs(2, 16, seed=3))
    losses = [row["loss"] for row in read_log(out / "log.jsonl") if row["kind"] == "train"]
    first, last = sum(losses[:5]) / 5, sum(losses[-10:]) / 10
    assert last < 0.4 * first, (first, last)


def test_an_existing_run_is_not_overwritten_without_resume(tmp_path: Path) -> None:
    out = tmp_path / "run"
    run(tiny_config(steps=2), out)
    before = (out / "final_ema.safetensors").read_bytes()
    with pytest.raises(ConfigError, match="already holds a run; pass --resume"):
        run(tiny_config(steps=2), out)
    assert (out / "final_ema.safetensors").read_bytes() == before


def test_a_bad_dataset_fails_before_the_run_folder_is_written(tmp_path: Path) -> None:
    from m2aenet.errors import M2AENetError

    missing = tmp_path / "no-such-dataset"
    config = tiny_config(data={"train": {"source": "folder", "root": str(missing)}})
    out = tmp_path / "run"
    with pytest.raises(M2AENetError, match="no-such-dataset"):
        Trainer(config, out).run()
    assert not out.exists()  # so the corrected command can simply run again


def test_resume_refuses_a_config_that_changes_the_optimization(tmp_path: Path) -> None:
    out = tmp_path / "run"
    config = tiny_config(steps=2)
    run(config, out)
    changed = replace(config, optim={"lr": 5e-3})
    with pytest.raises(ConfigError, match=r"different config \(optim\.lr\)"):
        run(changed, out, resume=True)


def test_ema_averages_parameters_and_buffers() -> None:
    model = train_helpers.tiny_model()
    ema = ModelEma(model, decay=0.9, warmup=False)
    start = {k: v.clone() for k, v in ema.module.state_dict().items()}
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(1.0)
        model.train()(torch.rand(4, 3, 8, 8) * 5)  # moves BatchNorm's running statistics
    ema.update(model)
    current = model.state_dict()
    averaged = ema.module.state_dict()
    assert "norm.running_mean" in averaged and "norm.num_batches_tracked" in averaged
    for key, value in averaged.items():
        if value.is_floating_point():
            torch.testing.assert_close(value, 0.9 * start[key] + 0.1 * current[key])
        else:
            assert torch.equal(value, current[key])  # counters are copied
    assert not torch.equal(averaged["norm.running_mean"], start["norm.running_mean"])
    assert all(not p.requires_grad for p in ema.module.parameters())


def test_ema_warmup_starts_with_a_small_decay() -> None:
    ema = ModelEma(train_helpers.tiny_model(), decay=0.999, warmup=True)
    assert ema.current_decay() == pytest.approx(0.1)
    ema.updates = 10_000
    assert ema.current_decay() == pytest.approx(0.999)


def per_sample_mean_loss(output, blur, sharp, gt_mask):
    """A loss that is a mean over samples, so batch splitting cannot change it."""
    rec = ((output.image - sharp) ** 2).mean()
    mask = F.binary_cross_entropy(output.mask_prob, gt_mask)
    return rec + 0.1 * mask, {"rec": rec, "mask": mask}


def test_two_accumulated_micro_batches_give_the_gradient_of_one_batch() -> None:
    # (M2AENetLoss normalizes its weighted terms by the mask area of the whole batch, so with
    # it accumulation equals a larger batch only up to that normalization; see docs/training.md.)
    torch.manual_seed(0)
    model = train_helpers.tiny_model(batchnorm=False)
    data = TinyPairs(2, 16, seed=5)
    torch.manual_seed(1)
    samples = [data[0], data[1]]
    batch = {k: torch.stack([s[k] for s in samples]) for k in ("blur", "sharp", "mask")}
    singles = [{k: v[i : i + 1] for k, v in batch.items()} for i in range(2)]
    device = torch.device("cpu")

    model.zero_grad()
    whole = forward_backward(model, per_sample_mean_loss, [batch], device)
    gradient_whole = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    accumulated = forward_backward(model, per_sample_mean_loss, singles, device)
    gradient_accumulated = [p.grad.clone() for p in model.parameters()]

    for a, b in zip(gradient_whole, gradient_accumulated, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)
    for key in ("loss", "rec", "mask"):
        torch.testing.assert_close(whole[key], accumulated[key], rtol=1e-5, atol=1e-7)
    assert all(g.abs().sum() > 0 for g in gradient_whole)


class MaskRecorder(torch.nn.Module):
    """The tiny model, keeping every `mask` argument it was called with in `seen`."""

    def __init__(self) -> None:
        super().__init__()
        self.inner = train_helpers.tiny_model(batchnorm=False)
        self.seen: list[torch.Tensor | None] = []

    def forward(self, x, mask=None):
        self.seen.append(mask)
        return self.inner(x, mask=mask)


def test_teacher_forcing_feeds_the_ground_truth_mask() -> None:
    from m2aenet.losses import LossConfig, M2AENetLoss

    model, loss_fn = MaskRecorder(), M2AENetLoss(LossConfig())
    sample = TinyPairs(1, 16)[0]
    batch = {k: sample[k][None] for k in ("blur", "sharp", "mask")}
    forward_backward(model, loss_fn, [batch], torch.device("cpu"), teacher_forcing=True)
    forward_backward(model, loss_fn, [batch], torch.device("cpu"), teacher_forcing=False)
    assert torch.equal(model.seen[0], batch["mask"]) and model.seen[1] is None


def test_amp_choices_on_cpu(tmp_path: Path) -> None:
    cpu = torch.device("cpu")
    assert resolve_amp("auto", cpu) == (None, False)
    assert resolve_amp("bf16", cpu) == (torch.bfloat16, False)
    with pytest.raises(ConfigError, match="fp16 needs a CUDA device"):
        resolve_amp("fp16", cpu)
    out = tmp_path / "run"
    run(tiny_config(steps=2, amp="bf16", validation={"enabled": False}), out)
    losses = [row["loss"] for row in read_log(out / "log.jsonl") if row["kind"] == "train"]
    assert len(losses) == 2 and all(math.isfinite(v) for v in losses)


def test_schedule_factor_shape() -> None:
    factors = [warmup_cosine_factor(step, 3, 10, 0.1) for step in range(10)]
    assert factors[:3] == pytest.approx([1 / 3, 2 / 3, 1.0])
    assert all(a >= b for a, b in zip(factors[2:], factors[3:], strict=False))
    assert factors[-1] == pytest.approx(0.1)
    assert warmup_cosine_factor(50, 3, 10, 0.1) == pytest.approx(0.1)  # past the end: floor


@pytest.mark.slow
def test_smoke_config_through_the_command_line(tmp_path: Path) -> None:
    from m2aenet import cli

    smoke = Path(__file__).resolve().parents[1] / "configs" / "smoke.yaml"
    out = tmp_path / "smoke"
    # Options and overrides in any order after the config.
    assert cli.main(["train", str(smoke), "--out", str(out), "log.progress=false", "steps=4"]) == 0
    record = json.loads((out / "final_ema.json").read_text())
    assert record["model"] == "m2aenet-s" and record["step"] == 4
    assert record["model_config"]["channels"] == 8  # the smoke overrides reached the model
    assert "steps=4" in record["command"]
    exported = load_model(out / "final_ema.safetensors")
    assert exported.config.num_blocks == 2
    assert state.read_last(out)[0] == 4
    assert (out / "curves.png").is_file()
    assert [r["step"] for r in read_log(out / "log.jsonl") if r["kind"] == "val"] == [3, 4]


def test_motion_and_trajectory_terms_train_from_synthetic_motion(tmp_path: Path) -> None:
    from m2aenet import cli

    smoke = Path(__file__).resolve().parents[1] / "configs" / "smoke.yaml"
    out = tmp_path / "motion"
    overrides = ["log.progress=false", "steps=2", "loss.motion_weight=0.5",
                 "loss.trajectory_weight=0.1"]  # fmt: skip
    assert cli.main(["train", str(smoke), "--out", str(out), *overrides]) == 0
    rows = [r for r in read_log(out / "log.jsonl") if r["kind"] == "train"]
    # Both terms were computed: the motion ground truth reached the loss at the model's K.
    assert all(r["loss_motion"] > 0 and r["loss_trajectory"] > 0 for r in rows)


def test_trajectory_term_on_a_folder_source_is_refused_before_training(tmp_path: Path) -> None:
    from m2aenet.train.config import DataSource
    from m2aenet.train.data import build_dataset

    source = DataSource(source="folder", root=str(tmp_path), crop_size=32)
    with pytest.raises(ConfigError, match="trajectory_weight needs motion ground truth"):
        build_dataset(source, "train", motion_points=4)


def test_init_weights_start_a_run_from_saved_weights(tmp_path: Path) -> None:
    from safetensors.torch import load_file

    run(tiny_config(), tmp_path / "first")
    start = tmp_path / "first" / "final_ema.safetensors"
    # With a vanishing learning rate the fine-tuned weights stay where they started.
    fine = tiny_config(
        steps=1,
        model={"init_weights": str(start)},
        optim={"lr": 1e-9, "warmup_steps": 0, "min_lr": 1e-10},
    )
    run(fine, tmp_path / "fine")
    before = load_file(str(start))
    after = load_file(str(tmp_path / "fine" / "final_ema.safetensors"))
    assert before.keys() == after.keys()
    # Parameters only: a training step moves BatchNorm's running statistics by design.
    moved = [k for k in before if not torch.allclose(before[k], after[k], atol=1e-6)]
    assert moved and all(".running_" in k or "num_batches" in k for k in moved)


def test_init_weights_that_do_not_fit_are_refused(tmp_path: Path) -> None:
    from m2aenet.errors import CheckpointError

    config = tiny_config(model={"init_weights": "default"})
    with pytest.raises(CheckpointError, match="default.safetensors: weights do not fit"):
        run(config, tmp_path / "wrong")


def test_time_limit_stops_with_a_checkpoint_that_resume_continues(tmp_path: Path) -> None:
    out = tmp_path / "run"
    config = tiny_config(steps=50, time_limit_minutes=0.0)
    summary = run(config, out)
    assert summary["step"] == 1  # out of time after the first step
    assert state.read_last(out)[0] == 1
    assert (out / "final_ema.safetensors").is_file()
    assert [row["step"] for row in read_log(out / "log.jsonl") if row["kind"] == "val"] == [1]
    resumed = replace(config, steps=3, time_limit_minutes=None)  # both may change on resume
    summary = run(resumed, out, resume=True)
    assert summary["step"] == 3


def test_a_run_saved_before_a_config_key_existed_still_resumes(tmp_path: Path) -> None:
    out = tmp_path / "run"
    config = tiny_config(steps=2)
    run(config, out)
    saved = json.loads((out / "config.json").read_text())
    del saved["data"]["train"]["hard_negatives"]  # as written by an older version
    (out / "config.json").write_text(json.dumps(saved))
    assert run(replace(config, steps=3), out, resume=True)["step"] == 3


def test_frozen_parameters_do_not_move_and_a_wrong_prefix_is_named(tmp_path: Path) -> None:
    from m2aenet.checkpoint import save_model

    name = train_helpers.register_tiny_model()
    torch.manual_seed(0)
    start = create_model(name, batchnorm=False)
    save_model(tmp_path / "start.safetensors", start)
    model = {"name": name, "overrides": {"batchnorm": False}, "frozen": ["mask_head"]}
    weights = str(tmp_path / "start.safetensors")
    # Teacher forcing: the body restores (and learns) whatever the frozen predictor says.
    config = tiny_config(model={**model, "init_weights": weights}, teacher_forcing_steps=6)
    run(config, tmp_path / "run")
    final = load_model(tmp_path / "run" / "final_ema.safetensors").state_dict()
    for key, value in start.state_dict().items():
        moved = not torch.equal(final[key], value)
        assert moved == (not key.startswith("mask_head.")), key
    with pytest.raises(ConfigError, match="model.frozen.*'mask_hed'"):
        run(tiny_config(model={"name": name, "frozen": ["mask_hed"]}), tmp_path / "wrong")


def test_teacher_forcing_widens_the_mask_when_asked() -> None:
    from m2aenet.losses import LossConfig, M2AENetLoss
    from m2aenet.train.teacher_mask import widen_teacher_mask

    sample = TinyPairs(1, 16)[0]
    batch = {k: sample[k][None] for k in ("blur", "sharp", "mask")}
    widen = functools.partial(widen_teacher_mask, max_dilation=3, false_blob_probability=0.0)
    torch.manual_seed(1)
    model = MaskRecorder()
    for _ in range(4):
        forward_backward(
            model, M2AENetLoss(LossConfig()), [batch], torch.device("cpu"),
            teacher_forcing=True, teacher_mask=widen,
        )  # fmt: skip
    assert all((mask >= batch["mask"]).all() for mask in model.seen)
    assert any((mask > batch["mask"]).any() for mask in model.seen)


def test_resuming_a_finished_run_says_so(tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    config = tiny_config(steps=2)
    run(config, out)
    capsys.readouterr()
    assert run(config, out, resume=True)["step"] == 2
    err = capsys.readouterr().err
    assert f"{out} is finished (step 2 of 2); raise steps=N to train further" in err


class _UnreadableAt:
    """A map-style data set whose item 1 is a file that cannot be decoded."""

    def __len__(self) -> int:
        return 3

    def __getitem__(self, index: int) -> dict:
        from m2aenet.errors import InputError

        if index == 1:
            raise InputError("/data/blur/b.png: cannot decode image (image file is truncated)")
        return {"blur": torch.zeros(3, 4, 4)}


@pytest.mark.parametrize("workers", [0, 1])
def test_an_unreadable_training_file_is_one_line_naming_it(workers: int) -> None:
    from torch.utils.data import DataLoader

    from m2aenet.errors import InputError
    from m2aenet.train.data import one_line_data_errors

    loader = DataLoader(_UnreadableAt(), batch_size=1, num_workers=workers)
    batches = one_line_data_errors(iter(loader))
    assert next(batches)["blur"].shape == (1, 3, 4, 4)
    with pytest.raises(InputError) as error:
        next(batches)
    # A worker's error used to carry "Caught InputError in DataLoader worker" and a traceback.
    assert str(error.value) == "/data/blur/b.png: cannot decode image (image file is truncated)"
