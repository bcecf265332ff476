"""Predictor tensors between files: warm start, deeper context branch, swap into a model."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from predictor_helpers import SMALL_MODELS, write_model

from m2aenet.checkpoint import load_model, load_state_dict, read_record
from m2aenet.errors import CheckpointError
from m2aenet.models.mask_predictor import MaskPredictor
from m2aenet.train.predictor_weights import (
    PREFIX,
    initial_weights,
    predictor_tensors,
    save_predictor,
    swap_mask_predictor,
    swap_predictor,
)

FAMILIES = sorted(SMALL_MODELS)


@pytest.mark.parametrize("name", FAMILIES)
def test_swapping_in_the_models_own_predictor_keeps_every_output(tmp_path: Path, name: str) -> None:
    weights = write_model(tmp_path / "ema.safetensors", name)
    old = load_model(weights)
    new = swap_predictor(weights, predictor_tensors(weights)).eval()
    assert new.config.analyzer_stem and not old.config.analyzer_stem
    torch.manual_seed(1)
    x = torch.rand(1, 3, 32, 40)
    masks = (None, (torch.rand(1, 1, 32, 40) > 0.5).float())
    with torch.no_grad():
        for mask in masks:
            assert torch.equal(new(x, mask=mask).image, old(x, mask=mask).image)
        new.reparameterize()
        old.reparameterize()
        for mask in masks:  # deployed (pruned) too
            assert torch.equal(new(x, mask=mask).image, old(x, mask=mask).image)


@pytest.mark.parametrize("name", FAMILIES)
def test_the_swap_changes_the_predictor_tensors_and_keeps_every_other(
    tmp_path: Path, name: str
) -> None:
    weights = write_model(tmp_path / "ema.safetensors", name)
    old = load_model(weights)
    trained = MaskPredictor(8, 1, context_depth=2)
    with torch.no_grad():
        for parameter in trained.parameters():
            parameter.add_(0.01)
    predictor = save_predictor(tmp_path / "predictor.safetensors", trained)
    out = swap_mask_predictor(weights, predictor, tmp_path / "swapped.safetensors")

    before, after = load_state_dict(weights), load_state_dict(out)
    assert {k: v for k, v in after.items() if k.startswith(PREFIX)}.keys() == {
        PREFIX + k for k in trained.state_dict()
    }
    for key, value in trained.state_dict().items():
        assert torch.equal(after[PREFIX + key], value), key
    kept = {k for k in before if not k.startswith(PREFIX)}
    stem = {k for k in after if k.startswith("analyzer_stem.")}
    assert set(after) - {k for k in after if k.startswith(PREFIX)} == kept | stem
    for key in kept:
        assert torch.equal(after[key], before[key]), key
    # The analyzer keeps reading the old predictor's features: its trunk and context branch.
    old_predictor = load_model(weights).mask_predictor
    expected = dict(old_predictor.features.state_dict())
    if old_predictor.context is not None:
        trunk = len(old_predictor.features)
        expected |= {f"{trunk}.{k}": v for k, v in old_predictor.context.state_dict().items()}
    assert stem == {f"analyzer_stem.{k}" for k in expected}
    for key, value in expected.items():
        assert torch.equal(after[f"analyzer_stem.{key}"], value), key

    record = read_record(out)
    assert record["step"] == 5 and record["made_by"].startswith("swap_mask_predictor")
    assert record["model"] == name
    swapped = load_model(out).config
    assert swapped.mask_context_depth == 2 and swapped.analyzer_stem
    assert swapped.analyzer_stem_context_depth == old.config.mask_context_depth
    changed = {"mask_context_depth": 0, "analyzer_stem": False, "analyzer_stem_context_depth": 0}
    assert {**vars(swapped), **changed} == {**vars(old.config), **changed}  # nothing else


def test_swap_puts_in_a_context_predictor_and_keeps_the_analyzers_input(tmp_path: Path) -> None:
    weights = write_model(tmp_path / "ema.safetensors")
    old = load_model(weights)
    trained = MaskPredictor(8, 1, context_depth=2)
    initial_weights(trained, weights)
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():  # warm start: the zero-initialized branch changes nothing yet
        assert torch.equal(trained(x)[0], old.mask_predictor(x)[0])
        for parameter in trained.parameters():
            parameter.add_(0.01)
    path = save_predictor(tmp_path / "ctx.safetensors", trained)
    new = swap_predictor(weights, predictor_tensors(path))
    assert new.config.mask_context_depth == 2
    for key, value in trained.state_dict().items():
        assert torch.equal(new.mask_predictor.state_dict()[key], value), key
    for key, value in old.mask_predictor.features.state_dict().items():
        assert torch.equal(new.analyzer_stem.state_dict()[key], value), key


def test_a_predictor_that_does_not_fit_is_refused_naming_the_file(tmp_path: Path) -> None:
    weights = write_model(tmp_path / "ema.safetensors")
    with pytest.raises(CheckpointError, match=r"ema.safetensors: predictor does not fit"):
        initial_weights(MaskPredictor(16, 1), weights)
    wide = save_predictor(tmp_path / "wide.safetensors", MaskPredictor(16, 1))
    with pytest.raises(CheckpointError, match="the predictor does not fit"):
        swap_mask_predictor(weights, wide, tmp_path / "out.safetensors")
    assert not (tmp_path / "out.safetensors").exists()


def test_a_deeper_context_branch_starts_as_the_shallower_one(tmp_path: Path) -> None:
    torch.manual_seed(0)
    shallow = MaskPredictor(8, 1, context_depth=2)
    with torch.no_grad():
        for parameter in shallow.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.2)  # a non-zero branch
    path = save_predictor(tmp_path / "shallow.safetensors", shallow)
    deep = MaskPredictor(8, 1, context_depth=4)
    initial_weights(deep, path)
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        assert (shallow(x)[0] - deep(x)[0]).abs().max() < 1e-5
        assert shallow.context(torch.rand(2, 8, 16, 16)).abs().sum() > 0


@pytest.mark.parametrize("cue", ["cues", "edge_cues"])
@pytest.mark.parametrize("name", FAMILIES)
def test_cues_join_a_warm_start_at_zero_and_the_swap_turns_them_on(
    tmp_path: Path, name: str, cue: str
) -> None:
    weights = write_model(tmp_path / "ema.safetensors", name)
    old = load_model(weights)
    config = old.config
    trained = MaskPredictor(
        config.mask_width, config.mask_depth, config.mask_context_depth, **{cue: True}
    )
    initial_weights(trained, weights)
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(trained(x)[0], old.mask_predictor(x)[0])
        getattr(trained, cue).weight.add_(0.1)
    path = save_predictor(tmp_path / "cues.safetensors", trained)
    new = load_model(swap_mask_predictor(weights, path, tmp_path / "swapped.safetensors"))
    assert getattr(new.config, f"mask_{cue}") and not getattr(old.config, f"mask_{cue}")
    with torch.no_grad():
        assert torch.equal(new.mask_predictor(x)[0], trained(x)[0])


def test_a_refine_branch_joins_a_warm_start_at_zero_and_the_swap_builds_it(
    tmp_path: Path,
) -> None:
    weights = write_model(tmp_path / "ema.safetensors", FAMILIES[0])
    old = load_model(weights)
    config = old.config
    trained = MaskPredictor(
        config.mask_width, config.mask_depth, config.mask_context_depth, refine_width=12
    )
    initial_weights(trained, weights)
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(trained(x)[0], old.mask_predictor(x)[0])
        trained.refine.layers[-1].weight.add_(0.1)
    path = save_predictor(tmp_path / "refine.safetensors", trained)
    new = load_model(swap_mask_predictor(weights, path, tmp_path / "swapped.safetensors"))
    assert new.config.mask_refine_width == 12 and old.config.mask_refine_width == 0
    with torch.no_grad():
        assert torch.equal(new.mask_predictor(x)[0], trained(x)[0])
