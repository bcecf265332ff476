"""Training a mask predictor apart: settings, scores, warm start, stopping and continuing."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
from predictor_helpers import write_model, write_pool

from m2aenet.checkpoint import load_model
from m2aenet.data.datasets import PairedImageDataset
from m2aenet.errors import ConfigError
from m2aenet.train.predictor import (
    PredictorTraining,
    score,
    train_predictor,
    tunable_settings,
)


@pytest.fixture()
def pool(tmp_path: Path) -> Path:
    return write_pool(tmp_path / "pool")


def _settings(pool: Path, **changes) -> PredictorTraining:
    tiny = PredictorTraining(
        model_overrides={"mask_width": 8, "mask_depth": 1},
        pools=(str(pool),),
        val=(str(pool),),
        steps=3,
        context_depth=1,
        crop=32,
        batch=2,
        lr=1e-3,
        centred_fraction=0.5,
        report_every=2,
    )
    return dataclasses.replace(tiny, **changes)


def test_predictor_training_on_a_pool_scores_on_full_frames(pool: Path) -> None:
    lines: list[str] = []
    result = train_predictor(_settings(pool), log=lines.append)
    assert result.step == 3 and result.finished
    assert [line.split(":")[0] for line in lines] == ["step 0", "step 2", "step 3"]
    for scores in (result.initial_scores, result.scores):
        iou, ratio = scores[str(pool)]["iou"], scores[str(pool)]["marked_over_true"]
        assert 0.0 <= iou <= 1.0 and ratio >= 0.0
    frames = PairedImageDataset(pool, require_mask=True)
    assert score(result.net, frames, 0.5, 2) == pytest.approx(result.scores[str(pool)])
    # Everything marked: IoU is the true share of the frame, marked / true its inverse.
    with torch.no_grad():
        result.net.head.bias.fill_(50.0)
    everything = score(result.net, frames, 0.5, 2)
    assert everything["iou"] == pytest.approx(24 * 22 / 64**2)
    assert everything["marked_over_true"] == pytest.approx(64**2 / (24 * 22))
    assert everything["sharp_marked"] == 1.0  # the sharp images are marked all over too
    with torch.no_grad():
        result.net.head.bias.fill_(-50.0)
    assert score(result.net, frames, 0.5, 2)["sharp_marked"] == 0.0


def test_a_warm_started_predictor_begins_as_the_models_and_training_moves_it(
    tmp_path: Path, pool: Path
) -> None:
    weights = write_model(tmp_path / "ema.safetensors")
    settings = _settings(pool, init=str(weights), context_depth=None, val=())
    untrained = train_predictor(dataclasses.replace(settings, steps=1, lr=1e-12), log=print)
    model = load_model(weights)
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():  # context depth None: the model's (0), so the same network
        assert untrained.net.context is None
        assert torch.allclose(untrained.net(x)[0], model.mask_predictor(x)[0], atol=1e-6)
    trained = train_predictor(settings, log=print).net.state_dict()
    before = model.mask_predictor.state_dict()
    assert trained.keys() == before.keys()
    assert all(not torch.equal(trained[key], before[key]) for key in before)
    refined = train_predictor(dataclasses.replace(settings, refine_width=8), log=print).net
    assert refined.refine is not None and refined.refine.layers[0].out_channels == 8


def test_a_stopped_run_continues_to_the_same_weights_as_an_unbroken_one(
    tmp_path: Path, pool: Path
) -> None:
    settings = _settings(pool, report_every=1)
    unbroken = train_predictor(settings, log=print).net.state_dict()
    state = tmp_path / "state.pt"
    lines: list[str] = []
    for expected in (1, 2):  # a deadline already past: one step per call, then a stop
        stopped = train_predictor(settings, deadline=0.0, state_path=state, log=lines.append)
        assert stopped.step == expected and not stopped.finished
    done = train_predictor(settings, state_path=state, log=lines.append)
    assert done.step == 3 and done.finished
    assert "continuing at step 2" in "\n".join(lines)
    for key, value in done.net.state_dict().items():
        assert torch.equal(value, unbroken[key]), key
    # Other settings: the state is not theirs, so training starts again.
    changed = dataclasses.replace(settings, lr=2e-3)
    lines.clear()
    again = train_predictor(changed, deadline=0.0, state_path=state, log=lines.append)
    assert again.step == 1 and lines[0].endswith("made with other settings; starting again")


def test_a_minutes_budget_ends_training_without_a_step_count(pool: Path) -> None:
    result = train_predictor(_settings(pool, steps=None, minutes=1e-9), log=print)
    assert result.finished and result.step == 0


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["crp=32"], r"unknown key 'crp' \(known: crop, batch"),
        (["pools=[a]"], "unknown key 'pools'"),
        (["batch=two"], r"batch: expected an integer, got 'two'"),
        (["lr=-1"], r"lr must be > 0, got -1.0"),
        (["threshold=1.5"], r"threshold must be in \(0, 1\)"),
        (["defocus_max_radius=1"], r"defocus_max_radius must be in \[1.5, 64\], got 1.0"),
        (["crop"], "expected KEY=VALUE"),
        (["zoom_out=2"], r"zoom_out must be in \[0, 1\], got 2.0"),
        (["zoom_keep_blur=-1"], r"zoom_keep_blur must be >= 0, got -1.0"),
        (["min_blur=-2"], r"min_blur must be >= 0, got -2.0"),
        (["refine_width=-8"], r"refine_width must be >= 0, got -8"),
    ],
)
def test_bad_settings_name_the_key(overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        tunable_settings(overrides)


def test_tunable_settings_are_typed() -> None:
    assert tunable_settings(["crop=256", "lr=1e-3", "hard_negatives=false"]) == {
        "crop": 256,
        "lr": 1e-3,
        "hard_negatives": False,
    }
    with pytest.raises(ConfigError, match="steps or minutes must be given"):
        PredictorTraining(steps=None)


def _write_photos(folder: Path) -> Path:
    from PIL import Image

    folder.mkdir()
    rng = torch.Generator().manual_seed(0)
    for index, size in enumerate(((96, 80), (200, 120))):
        pixels = (torch.rand(size[1], size[0], 3, generator=rng) * 255).to(torch.uint8)
        Image.fromarray(pixels.numpy()).save(folder / f"photo{index}.png")
    return folder


def test_sharp_photos_enter_batches_as_their_share_with_empty_masks(
    tmp_path: Path, pool: Path
) -> None:
    from m2aenet.train.predictor_batches import Batches

    photos = str(_write_photos(tmp_path / "photos"))
    every = Batches(_settings(pool, batch=16, sharp_photos=(photos,), sharp_fraction=1.0))
    blur, mask = every.next()
    assert blur.shape == (16, 3, 32, 32) and not mask.any()
    assert blur.std() > 0.05  # photo content, not a blank
    # Pool crops are centred on blur half of the time: with no sharp share, some are marked.
    none = Batches(_settings(pool, batch=16, sharp_photos=(photos,), sharp_fraction=0.0))
    assert none.next()[1].any()
    # The sharp draws do not move the pool crops: items that are pool crops in both batches
    # (sharp share 0.5 vs. no sharp photos at all) are the same crops.
    half = Batches(_settings(pool, batch=16, sharp_photos=(photos,), sharp_fraction=0.5))
    plain = Batches(_settings(pool, batch=16, sharp_fraction=0.5))
    (half_blur, half_mask), (plain_blur, _) = half.next(), plain.next()
    same = [torch.equal(a, b) for a, b in zip(half_blur, plain_blur, strict=True)]
    assert 0 < sum(same) < 16
    for index in range(16):
        if not same[index]:
            assert not half_mask[index].any()


def test_sharp_photo_crops_are_reproducible_and_name_a_missing_source(tmp_path: Path) -> None:
    import numpy as np

    from m2aenet.data.sharp_crops import SharpPhotoCrops
    from m2aenet.errors import InputError

    crops = SharpPhotoCrops([_write_photos(tmp_path / "photos")], 48)
    assert len(crops) == 2
    np.random.seed(3)
    first = crops[1]
    np.random.seed(3)
    again = crops[1]
    assert torch.equal(first["blur"], again["blur"]) and torch.equal(first["sharp"], first["blur"])
    assert first["mask"].shape == (1, 48, 48) and not first["mask"].any()
    with pytest.raises(InputError, match="nowhere"):
        SharpPhotoCrops([tmp_path / "nowhere"], 48)


def test_a_shallow_depth_of_field_keeps_the_subject_and_softens_the_rest() -> None:
    import numpy as np

    from m2aenet.data.sharp_crops import shallow_depth_of_field

    rng = np.random.default_rng(0)
    image = (np.indices((96, 96)).sum(0) % 2 * 255).astype(np.uint8)[..., None].repeat(3, -1)
    out = shallow_depth_of_field(image, rng)
    same = (out == image).all(-1)
    assert 0.1 < same.mean() < 0.6  # the subject (15-45% of the crop) as it was
    # The background of a checkerboard is averaged to near-gray by the disc.
    assert np.abs(out[~same].astype(int) - 127).mean() < 40
