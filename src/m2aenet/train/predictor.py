"""Train a model's blur-mask predictor apart from the restoration network, on its own loss.

Why apart: the motion analyzer does not train the predictor (it reads its features detached,
or has a trunk of its own), so the predictor learns from the mask loss alone. On its own it runs
tens of steps per second on one core instead of ~0.5 inside the full model.

Two sources of training images:
- `pools` (synth folders): crops of their frames, most of them uniform (so the predictor sees
  photos' real share of blur, 6-8%, not the restoration crops' ~50%; camera-shake folders teach
  it to mark whole frames), with sharp-labelled look-alikes of blur (`data.hard_negatives`:
  defocus, dark, noise, JPEG, gray);
- no pools: on-the-fly synthetic crops (the stage-1 recipe).
`val` folders are scored on full frames as the model uses the predictor (hard mask at the
model's threshold and dilation): IoU with the true mask and marked / true pixels.

`train_predictor` can stop at a deadline and continue from a state file (the recipe's
predictor stage); `scripts/pretrain_mask_predictor.py` is its command line. Put the result
into a model with `train.predictor_weights.swap_mask_predictor`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from m2aenet.data.datasets import PairedImageDataset
from m2aenet.data.hard_negatives import MAX_DEFOCUS_RADIUS, MIN_DEFOCUS_RADIUS
from m2aenet.errors import ConfigError
from m2aenet.losses import mask_loss
from m2aenet.models.frontend import SIZE_MULTIPLE, pad_to_multiple
from m2aenet.models.mask_predictor import MaskPredictor, blur_probability, hard_mask
from m2aenet.train.predictor_batches import Batches

#: The settings a recipe's predictor stage may override (`overrides: [crop=256, ...]`).
TUNABLE = (
    "crop",
    "batch",
    "lr",
    "context_depth",
    "cues",
    "refine_width",
    "edge_cues",
    "centred_fraction",
    "hard_negatives",
    "defocus_max_radius",
    "zoom_out",
    "zoom_keep_blur",
    "min_blur",
    "sharp_fraction",
    "threshold",
    "seed",
    "threads",
    "report_every",
)
# Settings that do not change what is trained: a resumed run may differ in them.
_NOT_RESULT = ("threads", "report_every")


@dataclass(frozen=True)
class PredictorTraining:
    """How to train a predictor apart.

    model, model_overrides: the registered model (and its config overrides) whose predictor
        this is: mask_width, mask_depth, mask_dilation, mask_threshold, mask_context_depth;
    init: start from the predictor in these weights (model weights, predictor file or shipped
        name); None: from scratch;
    pools, val: synth folders to crop from and to score on (see the module docstring);
    sharp_photos, sharp_fraction: whole sharp photos (folders, or "train-split") labelled sharp
        everywhere (`data.sharp_crops`), drawn for this share of each batch (with pools only);
    steps, minutes: stop at `steps` optimizer steps or after `minutes` of training, whichever
        comes first; the cosine learning-rate schedule runs over `minutes` when given;
    context_depth, cues, refine_width, edge_cues, threshold: None takes the model's
        `mask_context_depth`, `mask_cues`, `mask_refine_width`, `mask_edge_cues`,
        `mask_threshold` (cues and a refine branch added to a warm start begin at zero:
        `MaskPredictor`);
    crop (px), batch, lr (peak, AdamW), centred_fraction (crops centred on blur),
    hard_negatives (and the largest defocus radius among them, px), zoom_out (share of pool
    crops cut up to twice as large and downscaled, and the shortest blur, px, a zoom keeps:
    `BlurCentredCrops`), min_blur (px: pool frames whose shortest blur is shorter are left
    out), samples (synthetic crops
    when there are no pools), seed, threads (torch
    CPU threads), report_every (steps between val reports and resume states).
    """

    model: str = "m2aenet-s"
    model_overrides: dict[str, Any] = field(default_factory=dict)
    init: str | None = None
    pools: tuple[str, ...] = ()
    val: tuple[str, ...] = ()
    sharp_photos: tuple[str, ...] = ()
    sharp_fraction: float = 0.25
    steps: int | None = 12000
    minutes: float | None = None
    context_depth: int | None = None
    cues: bool | None = None
    refine_width: int | None = None
    edge_cues: bool | None = None
    threshold: float | None = None
    crop: int = 160
    batch: int = 8
    lr: float = 2e-3
    centred_fraction: float = 0.25
    hard_negatives: bool = True
    defocus_max_radius: float = 5.0
    zoom_out: float = 0.0
    zoom_keep_blur: float = 0.0
    min_blur: float = 0.0
    samples: int = 6000
    seed: int = 0
    threads: int = 1
    report_every: int = 1000

    def __post_init__(self) -> None:
        if self.steps is None and self.minutes is None:
            raise ConfigError("steps or minutes must be given")
        rules = (
            ("steps", self.steps is None or self.steps >= 1, ">= 1"),
            ("minutes", self.minutes is None or 0 < self.minutes < math.inf, "> 0"),
            ("context_depth", self.context_depth is None or self.context_depth >= 0, ">= 0"),
            ("refine_width", self.refine_width is None or self.refine_width >= 0, ">= 0"),
            ("threshold", self.threshold is None or 0 < self.threshold < 1, "in (0, 1)"),
            ("crop", self.crop >= SIZE_MULTIPLE, f">= {SIZE_MULTIPLE}"),
            ("batch", self.batch >= 1, ">= 1"),
            ("lr", self.lr > 0, "> 0"),
            ("centred_fraction", 0 <= self.centred_fraction <= 1, "in [0, 1]"),
            (
                "defocus_max_radius",
                MIN_DEFOCUS_RADIUS <= self.defocus_max_radius <= MAX_DEFOCUS_RADIUS,
                f"in [{MIN_DEFOCUS_RADIUS:g}, {MAX_DEFOCUS_RADIUS:g}]",
            ),
            ("sharp_fraction", 0 <= self.sharp_fraction <= 1, "in [0, 1]"),
            ("zoom_out", 0 <= self.zoom_out <= 1, "in [0, 1]"),
            ("zoom_keep_blur", 0 <= self.zoom_keep_blur < math.inf, ">= 0"),
            ("min_blur", 0 <= self.min_blur < math.inf, ">= 0"),
            ("samples", self.samples >= 1 or bool(self.pools), ">= 1 without pools"),
            ("threads", self.threads >= 1, ">= 1"),
            ("report_every", self.report_every >= 1, ">= 1"),
        )
        for key, ok, rule in rules:
            if not ok:
                raise ConfigError(f"{key} must be {rule}, got {getattr(self, key)!r}")

    def model_settings(self) -> Any:
        """The model's config dataclass (its mask_* fields shape the predictor)."""
        from m2aenet.registry import model_config

        return model_config(self.model, **self.model_overrides)

    def resolved(self) -> PredictorTraining:
        """These settings with `context_depth` and `threshold` taken from the model if None."""
        config = self.model_settings()
        return dataclasses.replace(
            self,
            context_depth=(
                config.mask_context_depth if self.context_depth is None else self.context_depth
            ),
            cues=config.mask_cues if self.cues is None else self.cues,
            refine_width=(
                config.mask_refine_width if self.refine_width is None else self.refine_width
            ),
            edge_cues=config.mask_edge_cues if self.edge_cues is None else self.edge_cues,
            threshold=config.mask_threshold if self.threshold is None else self.threshold,
        )

    def result_settings(self) -> dict[str, Any]:
        """The settings that decide the trained weights (a resume state must match them)."""
        settings = dataclasses.asdict(self)
        for key in _NOT_RESULT:
            settings.pop(key)
        return json.loads(json.dumps(settings))  # tuples as lists, as a state file holds them


def model_of(weights: str | Path) -> dict[str, Any]:
    """`{"model": name, "model_overrides": config}` of model weights (a file or a shipped
    name), as PredictorTraining takes them; {} for a file with no model record (a predictor
    file)."""
    from m2aenet.checkpoint import read_record, resolve_weights
    from m2aenet.errors import CheckpointError

    path = resolve_weights(weights)
    try:
        record = read_record(path)
    except CheckpointError:
        if path.with_suffix(".json").exists():
            raise  # model weights with a broken record
        return {}
    return {"model": record["model"], "model_overrides": record.get("model_config", {})}


def tunable_settings(overrides: Sequence[str]) -> dict[str, Any]:
    """`["crop=256", "lr=1e-3"]` -> {"crop": 256, "lr": 0.001}, checked as `PredictorTraining`
    checks them; ConfigError naming the key for an unknown key or a bad value."""
    from m2aenet.train.config import from_dict, parse_override

    raw = {}
    for text in overrides:
        path, value = parse_override(text)
        key = ".".join(path)
        if key not in TUNABLE:
            raise ConfigError(f"unknown key {key!r} (known: {', '.join(TUNABLE)})")
        raw[key] = value
    checked = from_dict(PredictorTraining, raw)  # types (1e-3 as a float too) and ranges
    return {key: getattr(checked, key) for key in raw}


def probabilities(net: MaskPredictor, x: torch.Tensor) -> torch.Tensor:
    """Full-resolution blur probability (B, 1, H, W) of x (B, 3, H, W), as the model computes
    it (input padded to a multiple of 8)."""
    padded = pad_to_multiple(x, SIZE_MULTIPLE)
    prob = blur_probability(net(padded)[0], padded.shape[-2:])
    return prob[..., : x.shape[-2], : x.shape[-1]]


def score(
    net: MaskPredictor, frames: PairedImageDataset, threshold: float, dilation: int
) -> dict[str, float]:
    """IoU over all pixels of the hard masks and marked / true pixels, over full frames, and
    the share of pixels marked on the frames' sharp images (a good mask marks nearly none)."""
    inter = union = marked = true = sharp_marked = pixels = 0
    with torch.no_grad():
        for item in frames:
            prob = probabilities(net, torch.stack([item["blur"], item["sharp"]]))
            predicted, on_sharp = hard_mask(prob, threshold, dilation)[:, 0] > 0.5
            target = item["mask"][0] > 0.5
            inter += int((predicted & target).sum())
            union += int((predicted | target).sum())
            marked += int(predicted.sum())
            true += int(target.sum())
            sharp_marked += int(on_sharp.sum())
            pixels += on_sharp.numel()
    return {
        "iou": inter / max(union, 1),
        "marked_over_true": marked / max(true, 1),
        "sharp_marked": sharp_marked / max(pixels, 1),
    }


def build_predictor(settings: PredictorTraining) -> MaskPredictor:
    """The model's predictor (its width and depth, the settings' context depth, cues and refine
    branch), warm-started from `settings.init` when given."""
    from m2aenet.train.predictor_weights import initial_weights

    settings = settings.resolved()
    config = settings.model_settings()
    torch.manual_seed(settings.seed)
    net = MaskPredictor(
        config.mask_width,
        config.mask_depth,
        settings.context_depth,
        bool(settings.cues),
        settings.refine_width,
        bool(settings.edge_cues),
    )
    if settings.init:
        initial_weights(net, settings.init)
    return net


@dataclass
class PredictorResult:
    """What `train_predictor` returns: the net, the steps done (in all calls), whether the
    budget is used up, and the val scores (folder -> {"iou", "marked_over_true"}) of the
    starting predictor and of the last step."""

    net: MaskPredictor
    step: int
    finished: bool
    initial_scores: dict[str, dict[str, float]]
    scores: dict[str, dict[str, float]]


def read_progress(state_path: Path) -> tuple[int, float, dict[str, Any]] | None:
    """(steps done, seconds trained, result settings) of a resume state, or None if absent."""
    from m2aenet.train.state import load_state

    if not state_path.is_file():
        return None
    state = load_state(state_path)
    return int(state["step"]), float(state["elapsed_s"]), json.loads(state["settings"])


def train_predictor(
    settings: PredictorTraining,
    deadline: float | None = None,
    state_path: Path | None = None,
    log: Callable[[str], None] = print,
) -> PredictorResult:
    """Train a predictor apart; scores on val at the start, every `report_every` steps and at
    the end.

    `deadline` (a `time.monotonic()` time) stops this call early, after at least one step.
    With `state_path`, the run continues from that state when it was made with these settings
    (`result_settings`), starts again otherwise, and writes it at each report and at the end.
    """
    saved_threads = torch.get_num_threads()
    torch.set_num_threads(settings.threads)
    try:
        return _PredictorRun(settings, state_path, log).train(deadline)
    finally:
        torch.set_num_threads(saved_threads)


class _PredictorRun:
    """One call of `train_predictor`: the net, its optimizer and batches, and the progress
    so far (from the resume state, when there is one that fits)."""

    def __init__(
        self, settings: PredictorTraining, state_path: Path | None, log: Callable[[str], None]
    ) -> None:
        from m2aenet.train.state import load_state

        settings = settings.resolved()
        self.settings, self.state_path, self.log = settings, state_path, log
        self.threshold = settings.threshold
        self.dilation = settings.model_settings().mask_dilation
        self.net = build_predictor(settings)
        self.batches = Batches(settings)
        self.val = {root: PairedImageDataset(root, require_mask=True) for root in settings.val}
        self.optimizer = torch.optim.AdamW(self.net.parameters(), lr=settings.lr, weight_decay=1e-4)
        self.step, self.trained_s, self.initial_scores = 0, 0.0, None
        progress = read_progress(state_path) if state_path is not None else None
        if progress is not None and progress[2] == settings.result_settings():
            state = load_state(state_path)
            self.net.load_state_dict(state["predictor"])
            self.optimizer.load_state_dict(state["optimizer"])
            self.batches.load_state_dict(state["batches"])
            self.step, self.trained_s = progress[0], progress[1]
            self.initial_scores = json.loads(state["initial_scores"])
            log(f"continuing at step {self.step} ({self.trained_s:.0f} s trained)")
        elif progress is not None:
            log(f"{state_path}: made with other settings; starting again")
        self.start = time.monotonic()
        self.budget_s = 60.0 * settings.minutes if settings.minutes else math.inf

    def elapsed(self) -> float:
        return self.trained_s + time.monotonic() - self.start

    def used_up(self) -> bool:
        steps = self.settings.steps
        return (steps is not None and self.step >= steps) or self.elapsed() >= self.budget_s

    def report(self, loss: float | None) -> dict[str, dict[str, float]]:
        scores = {
            root: score(self.net, frames, self.threshold, self.dilation)
            for root, frames in self.val.items()
        }
        text = "".join(
            f", {Path(root).name} IoU {s['iou']:.3f} x{s['marked_over_true']:.2f}"
            f" sharp {100 * s['sharp_marked']:.1f}%"
            for root, s in scores.items()
        )
        loss_text = "-" if loss is None else f"{loss:.3f}"
        self.log(f"step {self.step}: loss {loss_text}{text}, {self.elapsed():.0f} s")
        return scores

    def save(self) -> None:
        from m2aenet.train.state import save_state

        if self.state_path is None:
            return
        state = {
            "step": self.step,
            "elapsed_s": self.elapsed(),
            "settings": json.dumps(self.settings.result_settings()),
            "initial_scores": json.dumps(self.initial_scores),
            "predictor": self.net.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "batches": self.batches.state_dict(),
        }
        save_state(self.state_path, state)

    def train(self, deadline: float | None) -> PredictorResult:
        settings, net = self.settings, self.net
        if self.initial_scores is None:
            self.initial_scores = self.report(None)
        loss, scores = None, None
        while not self.used_up():
            # Cosine over the wall-time budget or the step budget, whichever is given.
            done = (
                self.elapsed() / self.budget_s if settings.minutes else self.step / settings.steps
            )
            for group in self.optimizer.param_groups:
                group["lr"] = settings.lr * 0.5 * (1 + math.cos(math.pi * min(done, 1.0)))
            blur, mask = self.batches.next()
            value = mask_loss(probabilities(net, blur), mask)
            self.optimizer.zero_grad()
            value.backward()
            self.optimizer.step()
            loss, scores = value.item(), None
            self.step += 1
            if self.step % settings.report_every == 0:
                scores = self.report(loss)
                self.save()
            if deadline is not None and time.monotonic() >= deadline:
                break
        if scores is None:  # the last step was not reported yet
            scores = self.report(loss)
            self.save()
        return PredictorResult(net, self.step, self.used_up(), self.initial_scores, scores)
