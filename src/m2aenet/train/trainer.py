"""The training loop: AdamW + warm-up/cosine, accumulation, clipping, AMP, EMA, DDP, resume.

`Trainer(config, out).run()` trains `config.steps` optimizer steps, writing into `out`:
log.jsonl (train and val rows), curves.png, checkpoints (see `m2aenet.train.state`), and at
the end final_ema.safetensors (+ .json), the averaged weights that get exported.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import json
import math
import random
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import Dataset

from m2aenet.atomic import write_text_atomic
from m2aenet.checkpoint import load_weights_into, save_model
from m2aenet.errors import CheckpointError, ConfigError, M2AENetError
from m2aenet.registry import create_model, model_config
from m2aenet.train import distributed, state
from m2aenet.train.config import TrainConfig, from_dict, to_dict
from m2aenet.train.data import build_dataset, one_line_data_errors, train_loader
from m2aenet.train.ema import ModelEma
from m2aenet.train.plots import plot_curves, read_log
from m2aenet.train.schedule import build_scheduler
from m2aenet.train.teacher_mask import widen_teacher_mask
from m2aenet.train.validation import validate

LOG = "log.jsonl"
CURVES = "curves.png"
RUN_CONFIG = "config.json"
FINAL = "final_ema.safetensors"

# Keys of the run config that may change between a run and its resumption: they do not
# change what the optimizer computes (only how long, how often we look, and how data loads).
RESUMABLE_CHANGES = (
    "steps",
    "out",
    "checkpoint.",
    "validation.",
    "log.",
    "data.num_workers",
    "data.val.",
    "device",
    "threads",
    "time_limit_minutes",
)


@dataclasses.dataclass
class TrainingParts:
    """What one run trains with; `train_model` is `model`, or its DDP wrapper."""

    model: nn.Module
    train_model: nn.Module
    ema: ModelEma | None
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    scaler: torch.amp.GradScaler | None
    loss_fn: nn.Module

    @property
    def averaged(self) -> nn.Module:
        """The weights that are validated and exported: the EMA when there is one."""
        return self.ema.module if self.ema is not None else self.model


class TrainingError(M2AENetError):
    """Training cannot go on (non-finite gradients...); the message says at which step."""


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % (1 << 32))
    torch.manual_seed(seed)


def resolve_amp(amp: str, device: torch.device) -> tuple[torch.dtype | None, bool]:
    """(autocast dtype or None, use a GradScaler) for the config's `amp` on `device`.

    auto: bf16 on CUDA GPUs that support it, else fp16 with a GradScaler; none on the CPU,
    where bf16 autocast measured slower than float32 (docs/training.md).
    """
    if amp == "none":
        return None, False
    if device.type == "cuda":
        if amp == "auto":
            amp = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        return (torch.bfloat16, False) if amp == "bf16" else (torch.float16, True)
    if amp == "fp16":
        raise ConfigError("amp: fp16 needs a CUDA device; use bf16 or none on the CPU")
    return (torch.bfloat16, False) if amp == "bf16" else (None, False)


def _float_output(output: Any) -> Any:
    """The model output with floating tensors in float32, so losses run at full precision."""
    if not dataclasses.is_dataclass(output):
        return output
    changes = {
        f.name: getattr(output, f.name).float()
        for f in dataclasses.fields(output)
        if isinstance(getattr(output, f.name), torch.Tensor)
        and getattr(output, f.name).is_floating_point()
    }
    return dataclasses.replace(output, **changes)


def forward_backward(
    model: nn.Module,
    loss_fn: Callable[..., tuple[torch.Tensor, dict[str, torch.Tensor]]],
    micro_batches: Sequence[dict[str, Any]],
    device: torch.device,
    autocast_dtype: torch.dtype | None = None,
    scaler: torch.amp.GradScaler | None = None,
    teacher_forcing: bool = False,
    teacher_mask: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> dict[str, torch.Tensor]:
    """Accumulate the gradient of one optimizer step over `micro_batches` into `.grad`.

    Each micro-batch's loss is weighted by its share of the samples, so k micro-batches of
    size b give the gradient of one batch of k*b (exactly, for a per-sample mean loss).
    With DDP, gradients are synchronized only on the last micro-batch. With
    `teacher_forcing`, the model uses the ground-truth mask (through `teacher_mask`, which
    may widen it) instead of predicting one.
    Returns the sample-weighted means of the loss and its parts (detached tensors).
    """
    total_samples = sum(int(batch["blur"].shape[0]) for batch in micro_batches)
    sums: dict[str, torch.Tensor] = {}
    for index, batch in enumerate(micro_batches):
        blur = batch["blur"].to(device, non_blocking=True)
        sharp = batch["sharp"].to(device, non_blocking=True)
        gt_mask = batch["mask"].to(device, non_blocking=True)
        weight = blur.shape[0] / total_samples
        last = index == len(micro_batches) - 1
        sync = (
            model.no_sync()
            if isinstance(model, DistributedDataParallel) and not last
            else contextlib.nullcontext()
        )
        with sync:
            autocast = (
                torch.autocast(device.type, dtype=autocast_dtype)
                if autocast_dtype is not None
                else contextlib.nullcontext()
            )
            forced = None
            if teacher_forcing:
                # Outside autocast: widening draws float32 noise fields (a bf16 one broke).
                forced = teacher_mask(gt_mask) if teacher_mask is not None else gt_mask
            with autocast:
                output = model(blur, mask=forced) if forced is not None else model(blur)
            # Motion ground truth only when the data carries it (the trajectory term), so
            # losses without that argument keep working.
            extra = {}
            if batch.get("motion") is not None:
                extra["gt_trajectory"] = batch["motion"].to(device, non_blocking=True)
            total, parts = loss_fn(_float_output(output), blur, sharp, gt_mask, **extra)
            scaled = total * weight
            (scaler.scale(scaled) if scaler is not None else scaled).backward()
        for name, value in {"loss": total, **parts}.items():
            value = value.detach().float() * weight
            sums[name] = sums[name] + value if name in sums else value
    return sums


def weights_digest(model: nn.Module) -> str:
    """SHA-256 of a model's state dict (names, dtypes, shapes and bytes), to compare ranks."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(tensor.view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _json_value(value: Any) -> Any:
    # Strict JSON: nan -> null, +-inf -> "inf"/"-inf" (what m2aenet eval writes too).
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {k: _json_value(v) for k, v in value.items()}
    return value


def _differences(old: Any, new: Any, prefix: str = "") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        keys = sorted(set(old) | set(new))
        return [d for k in keys for d in _differences(old.get(k), new.get(k), f"{prefix}{k}.")]
    return [] if old == new else [prefix.rstrip(".")]


class Trainer:
    """One training run; every process of a torchrun job builds one and calls `run()`.

    `train_dataset` / `val_dataset` replace the datasets the config describes (for Python
    use and tests); `command` is recorded in the checkpoints' JSON.
    """

    def __init__(
        self,
        config: TrainConfig,
        out: str | Path | None = None,
        resume: bool = False,
        command: Sequence[str] | None = None,
        train_dataset: Dataset | None = None,
        val_dataset: Dataset | None = None,
    ) -> None:
        self.config = config
        self.out = Path(out if out is not None else config.out)
        self.resume = resume
        self.command = list(command) if command is not None else list(sys.argv)
        self.train_dataset = train_dataset
        self.val_dataset = val_dataset
        self.input_psnr_logged = False
        self.last_metrics: dict[str, Any] = {}

    # -- set-up ----------------------------------------------------------------------------

    def _check_out_dir(self) -> tuple[int, Path] | None:
        """The checkpoint to resume from, or None to start fresh; refuse to overwrite a run."""
        try:
            found = state.read_last(self.out)
        except CheckpointError as error:
            steps = state.list_steps(self.out)
            if not (self.resume and steps):
                raise
            # A damaged pointer: the folders themselves are tried newest first on loading.
            print(f"m2aenet train: {error}; trying the checkpoint folders", file=sys.stderr)
            found = (steps[-1], state.step_dir(self.out, steps[-1]))
        has_files = self.out.is_dir() and any(self.out.iterdir())
        if not self.resume and has_files:
            raise ConfigError(
                f"{self.out}: already holds a run; pass --resume to continue it or choose "
                "another --out"
            )
        saved = self.out / RUN_CONFIG
        if self.resume and saved.is_file():
            try:
                old = json.loads(saved.read_text(encoding="utf-8"))
                # Through the dataclasses: keys added since the run started take their
                # defaults, so a run made by an older version still resumes.
                old = to_dict(from_dict(TrainConfig, old))
            except (OSError, json.JSONDecodeError, ConfigError) as error:
                raise CheckpointError(f"{saved}: unreadable run config ({error})") from error
            changed = [
                key
                for key in _differences(old, to_dict(self.config))
                if not any(key == p or key.startswith(p) for p in RESUMABLE_CHANGES)
            ]
            if changed:
                raise ConfigError(
                    f"{saved}: --resume with a different config ({', '.join(changed)}); "
                    "resume with the run's own config or start a new --out"
                )
        return found

    def _build_model(self, resuming: bool) -> nn.Module:
        """The configured model; `init_weights` are skipped when a checkpoint replaces them."""
        model_section = self.config.model
        model = create_model(model_section.name, **model_section.overrides)
        if model_section.init_weights is not None and not resuming:
            load_weights_into(model, model_section.init_weights, model_section.name, grow=True)
        for prefix in model_section.frozen:
            matched = [
                parameter
                for name, parameter in model.named_parameters()
                if name == prefix or name.startswith(prefix + ".")
            ]
            if not matched:
                raise ConfigError(
                    f"model.frozen: no parameter of {model_section.name} under {prefix!r}"
                )
            for parameter in matched:
                parameter.requires_grad_(False)
        return model

    def _build_optimizer(self, model: nn.Module) -> torch.optim.Optimizer:
        optim = self.config.optim
        # No weight decay on biases and normalization scales (1-D tensors): decaying them
        # towards zero only fights their role as offsets and gains.
        decay = [p for p in model.parameters() if p.requires_grad and p.ndim > 1]
        no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim <= 1]
        groups = [
            {"params": decay, "weight_decay": optim.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ]
        return torch.optim.AdamW(
            [g for g in groups if g["params"]], lr=optim.lr, betas=optim.betas, eps=optim.eps
        )

    def _motion_points(self) -> int | None:
        """Trajectory points of the motion ground truth the loss needs, or None."""
        if self.config.loss.trajectory_weight <= 0:
            return None
        model = self.config.model
        points = getattr(model_config(model.name, **model.overrides), "trajectory_points", None)
        if points is None:
            raise ConfigError(f"loss.trajectory_weight > 0 but {model.name} has no trajectory")
        return int(points)

    def _build_loss(self) -> nn.Module:
        from m2aenet.losses import M2AENetLoss

        return M2AENetLoss(self.config.loss)

    def _log(self, row: dict[str, Any]) -> None:
        with (self.out / LOG).open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(_json_value(row)) + "\n")
            handle.flush()

    def _trim_log(self, step: int) -> None:
        """Drop log rows a killed run wrote after its last checkpoint (they are redone)."""
        path = self.out / LOG
        if not path.exists():
            return
        rows = [row for row in read_log(path) if int(row.get("step", 0)) <= step]
        write_text_atomic(path, "".join(json.dumps(row) + "\n" for row in rows))

    # -- checkpoints -----------------------------------------------------------------------

    def _record(self, step: int) -> dict[str, Any]:
        return {
            "step": step,
            "train_config": to_dict(self.config),
            "metrics": _json_value(self.last_metrics),
            "command": self.command,
        }

    def _save_checkpoint(
        self, step: int, parts: TrainingParts, rng_states: list[dict[str, Any]]
    ) -> None:
        directory = state.step_dir(self.out, step)
        record = self._record(step)
        save_model(directory / "model.safetensors", parts.model, record)
        if parts.ema is not None:
            save_model(directory / "ema.safetensors", parts.ema.module, record)
        training_state = {
            "step": step,
            "optimizer": parts.optimizer.state_dict(),
            "scheduler": parts.scheduler.state_dict(),
            "scaler": parts.scaler.state_dict() if parts.scaler is not None else {},
            "ema": parts.ema.state_dict() if parts.ema is not None else {},
            "rng": rng_states,  # one entry per rank
        }
        state.save_state(directory / "state.pt", training_state)
        state.write_last(self.out, step)  # the checkpoint exists from here on
        state.prune(self.out, self.config.checkpoint.keep, step)

    def _load_newest_intact(
        self, found: tuple[int, Path], parts: TrainingParts, info: distributed.DistInfo
    ) -> int:
        """Load the checkpoint `found` names or, if it is damaged, the newest older one that
        loads whole (weights, EMA and state); say which, and point last.json at it."""
        older = [step for step in state.list_steps(self.out) if step < found[0]]
        candidates = [found[1], *(state.step_dir(self.out, step) for step in reversed(older))]
        problems = []
        for directory in candidates:
            try:
                step = self._load_checkpoint(directory, parts, info)
            except (CheckpointError, KeyError, TypeError, ValueError) as error:
                problems.append(f"{directory.name}: {error}")
                continue
            if directory != found[1]:
                print(
                    f"m2aenet train: {'; '.join(problems)}; resuming from {directory.name}",
                    file=sys.stderr,
                )
                if info.is_main:
                    state.write_last(self.out, step)
            return step
        raise CheckpointError(f"{self.out}: no intact checkpoint ({'; '.join(problems)})")

    def _load_checkpoint(
        self, directory: Path, parts: TrainingParts, info: distributed.DistInfo
    ) -> int:
        """Restore everything from a checkpoint folder; returns its step."""
        architecture = f"the configured model ({self.config.model.name})"
        load_weights_into(parts.model, directory / "model.safetensors", architecture)
        training_state = state.load_state(directory / "state.pt")
        if parts.ema is not None:
            load_weights_into(parts.ema.module, directory / "ema.safetensors", architecture)
            parts.ema.load_state_dict(training_state["ema"])
        optimizer, scheduler = parts.optimizer, parts.scheduler
        optimizer.load_state_dict(training_state["optimizer"])
        # The schedule's shape comes from this run's config (`steps` may have been raised to
        # train longer), so only the position is restored; the same config gives the same lr.
        scheduler_state = {
            **training_state["scheduler"],
            "lr_lambdas": [None] * len(optimizer.param_groups),
        }
        scheduler.load_state_dict(scheduler_state)
        factor = scheduler.lr_lambdas[0](scheduler.last_epoch)
        for group, base_lr in zip(optimizer.param_groups, scheduler.base_lrs, strict=True):
            group["lr"] = base_lr * factor
        scheduler._last_lr = [group["lr"] for group in optimizer.param_groups]
        if parts.scaler is not None and training_state["scaler"]:
            parts.scaler.load_state_dict(training_state["scaler"])
        rng_states = training_state["rng"]
        if len(rng_states) == info.world_size:
            state.restore_rng(rng_states[info.rank])
        # else: a different number of processes; the per-rank seeding done before stays.
        return int(training_state["step"])

    # -- the loop ----------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        """Train to `config.steps`; returns {"step", "metrics", "final", "weights_sha256"}."""
        info = distributed.setup(self.config.device)
        # Determinism switches are process-wide: restore them for whoever runs next.
        saved = (
            torch.are_deterministic_algorithms_enabled(),
            torch.is_deterministic_algorithms_warn_only_enabled(),
            torch.backends.cudnn.benchmark,
            torch.get_num_threads(),
        )
        if self.config.threads is not None:
            torch.set_num_threads(self.config.threads)
        try:
            return self._run(info)
        finally:
            torch.use_deterministic_algorithms(saved[0], warn_only=saved[1])
            torch.backends.cudnn.benchmark = saved[2]
            torch.set_num_threads(saved[3])
            distributed.teardown(info)

    def _run(self, info: distributed.DistInfo) -> dict[str, Any]:
        config = self.config
        device = info.device
        if config.deterministic:
            torch.use_deterministic_algorithms(True, warn_only=True)
            torch.backends.cudnn.benchmark = False
        else:
            torch.backends.cudnn.benchmark = True
        autocast_dtype, use_scaler = resolve_amp(config.amp, device)

        found = self._check_out_dir()  # every rank checks, so every rank raises alike
        distributed.barrier(info)
        # Data before anything is written, so a bad dataset leaves no half-started run behind.
        train_dataset = self.train_dataset
        if train_dataset is None:
            train_dataset = build_dataset(config.data.train, "train", self._motion_points())
        val_dataset = None
        if info.is_main and config.validation.enabled:
            val_dataset = self.val_dataset
            if val_dataset is None:
                val_dataset = build_dataset(config.data.val, "val")
        seed_everything(config.seed)  # identical initial weights on every rank
        model = self._build_model(resuming=self.resume and found is not None).to(device)
        optimizer = self._build_optimizer(model)
        parts = TrainingParts(
            model=model,
            train_model=model,
            ema=ModelEma(model, config.ema.decay, config.ema.warmup)
            if config.ema.enabled
            else None,
            optimizer=optimizer,
            scheduler=build_scheduler(
                optimizer,
                config.optim.warmup_steps,
                config.steps,
                config.optim.lr,
                config.optim.min_lr,
            ),
            scaler=torch.amp.GradScaler(device.type) if use_scaler else None,
            loss_fn=self._build_loss().to(device),
        )

        step = 0
        seed_everything(config.seed + 1000003 * info.rank)  # per-rank stream for the model
        if self.resume and found is not None:
            step = self._load_newest_intact(found, parts, info)
        if info.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            write_text_atomic(self.out / RUN_CONFIG, json.dumps(to_dict(config), indent=2) + "\n")
            self._trim_log(step)
            if self.resume and found is None:
                print(
                    f"m2aenet train: no checkpoint in {self.out}; starting at step 0",
                    file=sys.stderr,
                )
            elif self.resume and step >= config.steps:
                print(
                    f"m2aenet train: {self.out} is finished (step {step} of {config.steps}); "
                    "raise steps=N to train further",
                    file=sys.stderr,
                )
        distributed.barrier(info)

        if info.distributed:
            parts.train_model = DistributedDataParallel(
                model,
                device_ids=[device] if device.type == "cuda" else None,
                broadcast_buffers=False,  # buffers are averaged after each step instead
                # Teacher forcing may leave the mask predictor out of the graph.
                find_unused_parameters=config.teacher_forcing_steps > 0,
            )
        model.train()

        loader = train_loader(
            train_dataset,
            config.data,
            config.data.train.seed,
            info.rank,
            info.world_size,
            start_sample=step * config.optim.accumulation * config.data.batch_size,
            pin_memory=device.type == "cuda",
        )
        batches = one_line_data_errors(iter(loader))  # a bad file: one line naming it
        step = self._loop(info, step, parts, batches, val_dataset, autocast_dtype)

        digests = distributed.all_gather_objects(info, weights_digest(parts.averaged))
        if info.is_main:
            save_model(self.out / FINAL, parts.averaged, self._record(step))
            self._log(
                {"kind": "done", "step": step, "weights_sha256": digests, "time": time.time()}
            )
        return {
            "step": step,
            "metrics": self.last_metrics,
            "final": str(self.out / FINAL),
            "weights_sha256": digests,
        }

    def _loop(
        self,
        info: distributed.DistInfo,
        step: int,
        parts: TrainingParts,
        batches: Iterator[dict[str, Any]],
        val_dataset: Dataset | None,
        autocast_dtype: torch.dtype | None,
    ) -> int:
        """Optimizer steps from `step` to `config.steps`; returns the last step."""
        from tqdm import tqdm

        config = self.config
        model, ema, optimizer, scheduler, scaler = (
            parts.model,
            parts.ema,
            parts.optimizer,
            parts.scheduler,
            parts.scaler,
        )
        params = [p for p in model.parameters() if p.requires_grad]
        max_norm = config.optim.grad_clip if config.optim.grad_clip > 0 else math.inf
        samples_per_step = config.data.batch_size * config.optim.accumulation * info.world_size
        bar = tqdm(
            total=config.steps,
            initial=step,
            unit="step",
            dynamic_ncols=True,
            disable=not (info.is_main and config.log.progress),
        )
        interval_start, interval_steps = time.perf_counter(), 0
        deadline = None
        if config.time_limit_minutes is not None:
            deadline = time.monotonic() + 60.0 * config.time_limit_minutes
        sums: dict[str, torch.Tensor] = {}
        teacher_mask = functools.partial(
            widen_teacher_mask,
            max_dilation=config.teacher_mask.max_dilation,
            false_blob_probability=config.teacher_mask.false_blob_probability,
        )
        with bar:
            while step < config.steps:
                micro_batches = [next(batches) for _ in range(config.optim.accumulation)]
                optimizer.zero_grad(set_to_none=True)
                losses = forward_backward(
                    parts.train_model,
                    parts.loss_fn,
                    micro_batches,
                    info.device,
                    autocast_dtype,
                    scaler,
                    teacher_forcing=step < config.teacher_forcing_steps,
                    teacher_mask=teacher_mask,
                )
                if scaler is not None:
                    scaler.unscale_(optimizer)
                grad_norm = torch.nn.utils.clip_grad_norm_(params, max_norm)
                if scaler is None and not torch.isfinite(grad_norm):
                    raise TrainingError(
                        f"step {step + 1}: non-finite gradient norm ({grad_norm.item()}); "
                        "lower optim.lr or check the data"
                    )
                lr = scheduler.get_last_lr()[0]
                if scaler is not None:
                    scaler.step(optimizer)  # skips the update when fp16 gradients overflowed
                    scaler.update()
                else:
                    optimizer.step()
                scheduler.step()
                distributed.average_buffers(info, model)
                if ema is not None:
                    ema.update(model)
                step += 1
                interval_steps += 1
                losses["grad_norm"] = grad_norm.detach().float()
                for name, value in losses.items():
                    sums[name] = sums[name] + value if name in sums else value
                bar.update(1)

                if step % config.log.every == 0 or step == config.steps:
                    names = sorted(sums)
                    means = distributed.all_reduce_mean(
                        info, torch.stack([sums[n] for n in names]) / interval_steps
                    ).tolist()
                    elapsed = time.perf_counter() - interval_start
                    row = {"kind": "train", "step": step, "lr": lr}
                    row.update(
                        {
                            n if n in ("loss", "grad_norm") else f"loss_{n}": v
                            for n, v in zip(names, means, strict=True)
                        }
                    )
                    row["steps_per_s"] = interval_steps / elapsed
                    row["samples_per_s"] = interval_steps * samples_per_step / elapsed
                    row["time"] = time.time()
                    if info.is_main:
                        self._log(row)
                        bar.set_postfix(loss=f"{row['loss']:.4f}", lr=f"{lr:.2e}")
                    interval_start, interval_steps, sums = time.perf_counter(), 0, {}

                last = step == config.steps or self._out_of_time(info, deadline)
                if config.validation.enabled and (step % config.validation.every == 0 or last):
                    if info.is_main:  # the other ranks wait at the barrier
                        self._validate(step, parts.averaged, val_dataset, info.device)
                    distributed.barrier(info)
                if step % config.checkpoint.every == 0 or last:
                    rng_states = distributed.all_gather_objects(info, state.capture_rng())
                    if info.is_main:
                        self._save_checkpoint(step, parts, rng_states)
                    distributed.barrier(info)
                if last:
                    break
        return step

    @staticmethod
    def _out_of_time(info: distributed.DistInfo, deadline: float | None) -> bool:
        """Whether the time limit has passed; every rank gets rank 0's answer."""
        if deadline is None:
            return False
        return bool(distributed.broadcast_object(info, time.monotonic() >= deadline))

    def _validate(
        self, step: int, model: nn.Module, dataset: Dataset, device: torch.device
    ) -> None:
        metrics = validate(model, dataset, device)
        row: dict[str, Any] = {"kind": "val", "step": step}
        row.update({k: v for k, v in metrics.items() if not k.startswith("input_")})
        if not self.input_psnr_logged:  # the blurry input does not change: report it once
            row["input_psnr"] = metrics["input_psnr"]
            row["input_psnr_w"] = metrics["input_psnr_w"]
            self.input_psnr_logged = True
        row["time"] = time.time()
        self.last_metrics = {k: v for k, v in row.items() if k not in ("kind", "time")}
        self._log(row)
        plot_curves(self.out / LOG, self.out / CURVES)


def train(
    config: TrainConfig,
    out: str | Path | None = None,
    resume: bool = False,
    command: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Train a model as `config` says (see `Trainer`); returns the run summary."""
    return Trainer(config, out, resume, command).run()
