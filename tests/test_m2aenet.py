"""The whole network: contract, deploy == train, exact background, skipping, registry."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from m2aenet.data.masks import blob_mask
from m2aenet.errors import ConfigError
from m2aenet.models.m2aenet import M2AENet, pad_to_multiple
from m2aenet.models.outputs import ModelOutput
from m2aenet.registry import create_model, list_models, model_config

SMALL = dict(channels=8, num_blocks=3, trajectory_channels=4, analyzer_width=4, mask_width=4)


def _perturbed(seed: int = 0, **overrides) -> M2AENet:
    """A small model with random weights everywhere (identity inits would make tests trivial)."""
    torch.manual_seed(seed)
    model = create_model("m2aenet-s", **{**SMALL, **overrides})
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.1)
        model.analyzer.motion_head.weight.mul_(30)  # trajectories of several pixels
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean = torch.randn(module.num_features) * 0.2
                module.running_var = torch.rand(module.num_features) + 0.5
    return model.eval()


def _blob_masks(batch: int, height: int, width: int, seed: int = 0) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    masks = [blob_mask(height, width, 0.15 + 0.2 * i, rng) for i in range(batch)]
    return torch.from_numpy(np.stack(masks)[:, None].astype(np.float32))


def test_registry_has_both_sizes_and_validates_config() -> None:
    assert {"m2aenet-s", "m2aenet-b"} <= set(list_models())
    small, big = model_config("m2aenet-s"), model_config("m2aenet-b")
    assert big.channels > small.channels and big.num_blocks > small.num_blocks
    with pytest.raises(ConfigError, match="unknown key"):
        create_model("m2aenet-s", width=3)
    with pytest.raises(ConfigError, match="mask_threshold"):
        create_model("m2aenet-s", mask_threshold=1.5)
    with pytest.raises(ConfigError, match="trajectory_channels"):
        create_model("m2aenet-s", channels=4, trajectory_channels=8)
    with pytest.raises(ConfigError, match="body_scale"):
        create_model("m2aenet-s", body_scale=3)
    with pytest.raises(ConfigError, match="analyzer_stem_context_depth needs analyzer_stem"):
        create_model("m2aenet-s", analyzer_stem_context_depth=2)


def test_half_resolution_body_reaches_twice_as_far() -> None:
    """With body_scale 2, one 3x3 mixer already connects pixels 3 apart (cells 1 apart)."""
    reach = {}
    for scale in (1, 2):
        model = _perturbed(body_scale=scale, num_blocks=1, trajectory_every=2)
        with torch.no_grad():
            model.analyzer.motion_head.weight.zero_()  # no trajectory: the conv alone
            model.analyzer.motion_head.bias.zero_()
            model.blocks[0].guide_proj.weight.zero_()  # no context either
        x = torch.zeros(1, 3, 32, 32, requires_grad=True)
        out = model(x, mask=torch.ones(1, 1, 32, 32))
        out.image[0, :, 16, 16].sum().backward()
        ys, xs = (
            torch.nonzero(x.grad[0].abs().sum(0))[:, 0],
            torch.nonzero(x.grad[0].abs().sum(0))[:, 1],
        )
        reach[scale] = int(max((ys - 16).abs().max(), (xs - 16).abs().max()))
    assert reach[1] == 1
    assert reach[2] >= 2


def test_output_contract_on_odd_sizes() -> None:
    model = _perturbed()
    x = torch.rand(2, 3, 37, 53)
    out = model(x, mask=_blob_masks(2, 37, 53))
    assert isinstance(out, ModelOutput)
    assert out.image.shape == (2, 3, 37, 53)
    assert out.mask.shape == out.mask_prob.shape == (2, 1, 37, 53)
    assert out.trajectory.shape == (2, model.config.trajectory_points, 2, 37, 53)
    assert 0 <= out.mask_prob.min() and out.mask_prob.max() <= 1
    assert model.mask_threshold == model.config.mask_threshold


def test_padding_is_reflect_to_multiple_of_eight() -> None:
    x = torch.rand(1, 3, 37, 53)
    padded = pad_to_multiple(x, 8)
    assert padded.shape == (1, 3, 40, 56)
    assert torch.equal(padded[..., 37, :53], x[..., 35, :])  # reflection about the last row
    assert pad_to_multiple(torch.rand(1, 3, 40, 56), 8).shape == (1, 3, 40, 56)
    assert pad_to_multiple(torch.rand(1, 3, 3, 2), 8).shape == (1, 3, 8, 8)  # tiny: replicate


# Full-resolution body; half-resolution body; the analyzer with its own stem beside a
# predictor with a context branch (the campaign's stage-4 model); and a stem with a context
# branch of its own (what swapping out a context predictor leaves).
VARIANTS = [
    {"body_scale": 1},
    {"body_scale": 2},
    {"body_scale": 2, "analyzer_stem": True, "mask_context_depth": 2},
    {"analyzer_stem": True, "analyzer_stem_context_depth": 1, "mask_context_depth": 2},
]


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("batch_norm", [False, True])
@pytest.mark.parametrize("size", [(37, 53), (40, 56)])
def test_deploy_equals_train_for_the_same_mask(
    size: tuple[int, int], batch_norm: bool, variant: dict
) -> None:
    height, width = size
    model = _perturbed(batch_norm=batch_norm, **variant)
    x = torch.rand(2, 3, height, width, generator=torch.Generator().manual_seed(5))
    mask = _blob_masks(2, height, width)
    with torch.no_grad():
        reference = model(x, mask=mask)
    assert (reference.image - x).abs().max() > 1e-2  # the body really changes the image
    assert reference.trajectory.abs().max() > 1.0  # and samples away from the pixel
    deployed = model.reparameterize()
    assert deployed is model and model.deployed
    for executor in ("pixel", "tile", "dense", "auto"):
        model.executor = executor
        out = model(x, mask=mask)
        torch.testing.assert_close(out.image, reference.image, atol=1e-5, rtol=0)
        torch.testing.assert_close(out.trajectory, reference.trajectory, atol=1e-5, rtol=1e-5)
        assert torch.equal(out.mask, reference.mask)
        outside = mask.expand_as(x) == 0
        assert torch.equal(out.image[outside], x[outside])


@pytest.mark.parametrize("variant", VARIANTS)
def test_predicted_mask_leaves_the_rest_bit_exact_in_both_modes(variant: dict) -> None:
    model = _perturbed(seed=1, **variant)
    x = torch.rand(1, 3, 33, 45, generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        prob = model(x).mask_prob
    model.mask_threshold = float(prob.median())  # about half the pixels blurred
    model.train()
    out = model(x)
    hard = out.mask.detach()
    assert 0 < hard.mean() < 1
    outside = hard.expand_as(x) == 0
    assert torch.equal(out.image.detach()[outside], x[outside])
    model.eval()
    with torch.no_grad():
        reference = model(x).image
    model.reparameterize()
    deployed = model(x)
    assert torch.equal(deployed.mask, hard)
    assert torch.equal(deployed.image[outside], x[outside])
    torch.testing.assert_close(deployed.image, reference, atol=1e-5, rtol=0)


def test_gradient_reaches_mask_predictor_through_straight_through_mask() -> None:
    model = _perturbed(seed=2).train()
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        model.mask_threshold = float(model(x).mask_prob.median())
    out = model(x)
    out.image.sum().backward()  # no mask loss: the only path to the predictor is M
    assert model.mask_predictor.head.weight.grad.abs().sum() > 0
    assert model.blocks[0].mixer.conv3.weight.grad.abs().sum() > 0


def test_empty_mask_returns_input_and_skips_the_analyzer() -> None:
    model = _perturbed()
    calls = []
    model.analyzer.register_forward_hook(lambda *args: calls.append(1))
    model.stem.register_forward_hook(lambda *args: calls.append(1))
    x = torch.rand(1, 3, 37, 53)
    empty = torch.zeros(1, 1, 37, 53)
    out = model(x, mask=empty)
    assert torch.equal(out.image, x) and not calls
    model.mask_threshold = 0.999999
    assert torch.equal(model(x).image, x) and not calls
    model.reparameterize()
    for mask in (empty, None):
        out = model(x, mask=mask)
        assert torch.equal(out.image, x) and not calls
        assert model.last_executor == "none"
        assert out.trajectory.abs().max() == 0


def test_training_with_empty_mask_keeps_input_and_trains_the_predictor() -> None:
    model = _perturbed().train()
    model.mask_threshold = 0.999999
    x = torch.rand(1, 3, 24, 32)
    out = model(x)
    assert out.mask.sum() == 0
    assert torch.equal(out.image.detach(), x)
    out.image.sum().backward()
    assert model.mask_predictor.head.weight.grad.abs().sum() > 0  # straight-through
    assert all(p.grad is not None for p in model.parameters())


def test_bad_inputs_are_refused() -> None:
    model = _perturbed()
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        model(torch.rand(1, 1, 8, 8))
    with pytest.raises(ValueError, match="mask must have shape"):
        model(torch.rand(1, 3, 8, 8), mask=torch.ones(1, 1, 8, 9))
    model.executor = "fast"
    with pytest.raises(ValueError, match="executor"):
        model(torch.rand(1, 3, 8, 8))


def test_deploy_builds_the_trajectory_only_when_read() -> None:
    model = _perturbed()
    x = torch.rand(1, 3, 37, 53)
    mask = _blob_masks(1, 37, 53)
    with torch.no_grad():
        reference = model(x, mask=mask)
    model.reparameterize()
    model.executor = "tile"
    out = model(x, mask=mask)
    assert callable(out.__dict__["trajectory"])  # not built yet
    torch.testing.assert_close(out.trajectory, reference.trajectory, atol=1e-5, rtol=1e-5)
    assert isinstance(out.__dict__["trajectory"], torch.Tensor)  # built once, then kept
    copied = dataclasses.replace(out, image=out.image * 2)
    assert torch.equal(copied.trajectory, out.trajectory)


def test_runs_under_bfloat16_autocast_in_both_modes() -> None:
    model = _perturbed().train()
    x = torch.rand(1, 3, 24, 32)
    mask = _blob_masks(1, 24, 32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x, mask=mask)
    out.image.float().sum().backward()
    assert model.blocks[0].guide_proj.weight.grad is not None
    model.reparameterize()
    outside = mask.expand_as(x) == 0
    for executor in ("pixel", "tile", "dense"):
        model.executor = executor
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = model(x, mask=mask)
        assert out.image.dtype == torch.float32
        assert torch.equal(out.image[outside], x[outside])


@pytest.mark.parametrize("stem_context_depth", [0, 2])
def test_an_analyzer_with_its_own_stem_does_not_depend_on_the_predictor_trunk(
    stem_context_depth: int,
) -> None:
    model = _perturbed(
        seed=2,
        body_scale=2,
        analyzer_stem=True,
        mask_context_depth=1,
        analyzer_stem_context_depth=stem_context_depth,
    )
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    mask = _blob_masks(1, 32, 32)
    with torch.no_grad():
        before = model(x, mask=mask)
        for parameter in model.mask_predictor.features.parameters():
            parameter.add_(0.5)  # a different predictor trunk...
        model.mask_predictor.head.weight.zero_()  # ...and the same blur probability
        model.mask_predictor.head.bias.fill_(0.0)
        reference = model(x, mask=mask)
        for parameter in model.mask_predictor.features.parameters():
            parameter.sub_(1.0)
        after = model(x, mask=mask)
    assert torch.equal(after.image, reference.image)  # the analyzer read the same input
    assert not torch.equal(before.image, reference.image)  # p does enter the analyzer
