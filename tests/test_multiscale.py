"""M2AENet-MS (multi-scale pruned body): deploy == train at every level and executor, exact
background, reach, bf16 training, registry and config checks."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from m2aenet.data.masks import blob_mask
from m2aenet.errors import ConfigError
from m2aenet.losses import LossConfig, M2AENetLoss
from m2aenet.models.blocks import ConvBlock
from m2aenet.models.multiscale import M2AENetMS
from m2aenet.registry import create_model, list_models, model_config
from m2aenet.train.trainer import forward_backward

SMALL = dict(
    widths=(8, 12, 16),
    encoder_blocks=(1, 2),
    middle_blocks=2,
    decoder_blocks=(1, 1),
    trajectory_channels=4,
    analyzer_width=4,
    analyzer_levels=1,
    mask_width=4,
    mask_context_depth=1,
    mlp_ratio=1.5,
)


def _perturbed(seed: int = 0, **overrides) -> M2AENetMS:
    """A small model with random weights everywhere (zero-initialized last layers would make
    every block the identity and the tests trivial)."""
    torch.manual_seed(seed)
    model = create_model("m2aenet-ms", **{**SMALL, **overrides})
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.1)
        model.analyzer.motion_head.weight.mul_(30)  # trajectories of several pixels
    return model.eval()


def _blob_masks(batch: int, height: int, width: int, seed: int = 0) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    masks = [blob_mask(height, width, 0.08 + 0.15 * i, rng) for i in range(batch)]
    return torch.from_numpy(np.stack(masks)[:, None].astype(np.float32))


@pytest.mark.parametrize("executor", ["pixel", "tile", "dense", "auto"])
@pytest.mark.parametrize("trajectory_from_level", [0, 2])
def test_deploy_equals_train_for_every_executor(executor: str, trajectory_from_level: int) -> None:
    """Every level's blocks pruned (or dense) give the train-mode output for the same mask,
    and pixels outside the mask are the input bit for bit."""
    model = _perturbed(trajectory_from_level=trajectory_from_level)
    x = torch.rand(2, 3, 45, 70)
    mask = _blob_masks(2, 45, 70)
    with torch.no_grad():
        reference = model(x, mask=mask)
    deployed = copy.deepcopy(model).reparameterize()
    deployed.executor = executor
    deployed.tile_size = 4  # small tiles, so the tile executor selects some at this size
    out = deployed(x, mask=mask)
    assert (reference.image - x).abs().max() > 0.05  # the blocks do restore something
    assert torch.allclose(out.image, reference.image, atol=1e-5, rtol=0)
    outside = (mask == 0).expand_as(x)
    assert torch.equal(out.image[outside], x[outside])
    assert torch.equal(out.mask, reference.mask)
    assert torch.allclose(out.trajectory, reference.trajectory, atol=1e-5)
    levels = deployed.last_executor.split(",")
    assert len(levels) == 3 or executor == "dense"


@pytest.mark.parametrize("executor", ["pixel", "tile", "dense", "auto"])
def test_the_full_resolution_level_deploys_exactly(executor: str) -> None:
    """The optional full-resolution level (fine_width) runs pruned on the pixel mask itself:
    deploy equals train, the background stays the input bit for bit, and the level reports
    its executor after the three cell levels'."""
    model = _perturbed(fine_width=6, fine_blocks=2)
    x = torch.rand(2, 3, 45, 70)
    mask = _blob_masks(2, 45, 70, seed=7)
    with torch.no_grad():
        reference = model(x, mask=mask)
        without = copy.deepcopy(model)
        without.fine_head.weight.zero_()
        without.fine_head.bias.zero_()
        assert (reference.image - without(x, mask=mask).image).abs().max() > 0.05
    deployed = copy.deepcopy(model).reparameterize()
    deployed.executor = executor
    deployed.tile_size = 4
    out = deployed(x, mask=mask)
    assert torch.allclose(out.image, reference.image, atol=1e-5, rtol=0)
    outside = (mask == 0).expand_as(x)
    assert torch.equal(out.image[outside], x[outside])
    assert len(deployed.last_executor.split(",")) == 4 or executor == "dense"


def test_a_model_grown_by_the_full_resolution_level_starts_with_its_output() -> None:
    """The level's head starts at zero, so weights of a model without it, loaded beside the
    new level's initial weights, give the same output: a warm start keeps what was learned."""
    small = _perturbed()
    torch.manual_seed(1)
    grown = create_model("m2aenet-ms", **{**SMALL, "fine_width": 6}).eval()
    missing, unexpected = grown.load_state_dict(small.state_dict(), strict=False)
    assert not unexpected and missing and all(key.startswith("fine_") for key in missing)
    x = torch.rand(1, 3, 32, 40)
    mask = _blob_masks(1, 32, 40, seed=2)
    with torch.no_grad():
        assert torch.equal(grown(x, mask=mask).image, small(x, mask=mask).image)


def test_auto_picks_an_executor_per_level() -> None:
    """Coarse levels keep more cells (a cell is kept if any pixel is), so "auto" may run them
    differently from the fine level; the output is the same either way."""
    model = _perturbed()
    x = torch.rand(1, 3, 64, 64)
    mask = torch.zeros(1, 1, 64, 64)
    mask[..., ::8, ::8] = 1.0  # sparse pixels: few cells kept at 1/2, every one at 1/8
    deployed = copy.deepcopy(model).reparameterize()
    out = deployed(x, mask=mask)
    levels = deployed.last_executor.split(",")
    assert levels[0] == "pixel" and levels[2] == "dense"
    with torch.no_grad():
        assert torch.allclose(out.image, model(x, mask=mask).image, atol=1e-5, rtol=0)


def test_every_level_can_run_each_executor() -> None:
    """A fixed executor per level through a subclass hook: all 3^3 combinations would be slow,
    so each level is switched alone to each pruned executor against the dense result."""
    model = _perturbed()
    x = torch.rand(1, 3, 40, 48)
    mask = _blob_masks(1, 40, 48, seed=3)
    deployed = copy.deepcopy(model).reparameterize()
    deployed.executor = "dense"
    reference = deployed(x, mask=mask).image
    for level in range(3):
        for executor in ("pixel", "tile"):
            chosen = ["dense"] * 3
            chosen[level] = executor
            deployed.executor = "auto"
            picks = iter(chosen)
            deployed._level_executor = lambda mask, kept, picks=picks: next(picks)
            out = deployed(x, mask=mask).image
            assert deployed.last_executor == ",".join(chosen)
            assert torch.allclose(out, reference, atol=1e-5, rtol=0)


def test_empty_mask_returns_the_input_and_skips_the_body() -> None:
    deployed = _perturbed().reparameterize()
    x = torch.rand(1, 3, 24, 24)
    out = deployed(x, mask=torch.zeros(1, 1, 24, 24))
    assert torch.equal(out.image, x) and deployed.last_executor == "none"


def test_three_levels_reach_eight_times_as_far_as_one_conv() -> None:
    """A pixel's output depends on inputs far beyond a 3x3 neighbourhood: the 1/8 level's
    3x3 mixer alone spans 24 pixels."""
    model = _perturbed()
    with torch.no_grad():
        model.analyzer.motion_head.weight.zero_()  # no trajectory: convolutions only
        model.analyzer.motion_head.bias.zero_()
    x = torch.zeros(1, 3, 64, 64, requires_grad=True)
    out = model(x, mask=torch.ones(1, 1, 64, 64))
    out.image[0, :, 32, 32].sum().backward()
    ys, xs = torch.nonzero(x.grad[0].abs().sum(0)).unbind(1)
    assert int(max((ys - 32).abs().max(), (xs - 32).abs().max())) >= 12


def test_bf16_training_step_learns_and_keeps_the_background() -> None:
    """The recipe's step: bf16 autocast, teacher-widened masks (drawn outside autocast), the
    reblur terms at half size; the loss falls and unmasked pixels stay exact in training."""
    torch.manual_seed(0)
    model = create_model("m2aenet-ms", **SMALL).train()
    loss = M2AENetLoss(
        LossConfig(reconstruction="psnr", reconstruction_weight=0.005, motion_weight=0.5,
                   reblur_scale=2, reblur_density=2)
    )  # fmt: skip
    optimizer = torch.optim.AdamW(model.parameters(), 3e-3)
    sharp = torch.rand(2, 3, 32, 32)
    mask = torch.zeros(2, 1, 32, 32)
    mask[..., 8:24, 8:24] = 1.0
    blur = torch.where(mask > 0, sharp.roll(2, dims=-1) * 0.5 + sharp * 0.5, sharp)
    batch = {"blur": blur, "sharp": sharp, "mask": mask}
    totals = []
    for _ in range(12):
        optimizer.zero_grad()
        parts = forward_backward(
            model, loss, [batch], torch.device("cpu"), torch.bfloat16, teacher_forcing=True,
            teacher_mask=lambda m: m,
        )  # fmt: skip
        optimizer.step()
        totals.append(float(parts["loss"]))
    assert totals[-1] < totals[0]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(blur, mask=mask)
    outside = (mask == 0).expand_as(blur)
    assert torch.equal(out.image.float()[outside], blur[outside])


def test_conv_block_dense_forward_equals_its_rows_form() -> None:
    """The conv-shaped dense forward and the row form the executors use are one function."""
    torch.manual_seed(1)
    block = ConvBlock(8, 4, 3, 4, trajectory=True, mlp_ratio=2.0)
    with torch.no_grad():
        for parameter in block.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.2)
    x = torch.rand(1, 6, 7, 8)
    mask = (torch.rand(1, 6, 7, 1) > 0.4).float()
    grid = torch.rand(1, 6, 7 * 3, 2) * 2 - 1
    context = torch.rand(1, 6, 7, 4)
    dense = block(x, mask, grid, context)
    h = block.mixer(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1).reshape(-1, 8)
    samples = block.trajectory_samples(x.permute(0, 3, 1, 2), grid).reshape(42, -1)
    h = h + torch.cat((samples, context.reshape(42, -1)), 1) @ block.guide_proj.weight.t()
    rows = x.reshape(-1, 8) + mask.reshape(-1, 1) * block.pointwise(h)
    assert torch.allclose(dense.reshape(-1, 8), rows, atol=1e-5)


def test_registry_and_config_validation() -> None:
    assert {"m2aenet-ms", "m2aenet-ms-b"} <= set(list_models("m2aenet-ms*"))
    small, big = model_config("m2aenet-ms"), model_config("m2aenet-ms-b")
    assert all(b > s for b, s in zip(big.widths, small.widths, strict=True))
    with pytest.raises(ConfigError, match="encoder_blocks"):
        create_model("m2aenet-ms", encoder_blocks=(1,))
    with pytest.raises(ConfigError, match="widths"):
        create_model("m2aenet-ms", widths=(8, 8, 8, 8), encoder_blocks=(1, 1, 1),
                     decoder_blocks=(1, 1, 1))  # fmt: skip
    with pytest.raises(ConfigError, match="trajectory_channels"):
        create_model("m2aenet-ms", widths=(8, 8, 8), trajectory_channels=16)
    # The front end's bounds hold for every body (one check, models/frontend.py).
    with pytest.raises(ConfigError, match="analyzer_levels must be <= 8"):
        create_model("m2aenet-ms", analyzer_levels=40)
    with pytest.raises(ConfigError, match="analyzer_width 4096 doubled"):
        create_model("m2aenet-ms", analyzer_width=4096)
    with pytest.raises(ConfigError, match="trajectory_from_level must be >= 0"):
        create_model("m2aenet-ms", trajectory_from_level=-1)
    with pytest.raises(ConfigError, match="fine_width and fine_blocks must be >= 0"):
        create_model("m2aenet-ms", fine_width=-4)
    with pytest.raises(ConfigError, match="fine_blocks must be >= 1"):
        create_model("m2aenet-ms", fine_width=8, fine_blocks=0)


def test_two_level_variant_runs_and_prunes() -> None:
    model = _perturbed(widths=(8, 12), encoder_blocks=(1,), decoder_blocks=(1,),
                       trajectory_from_level=1)  # fmt: skip
    x = torch.rand(1, 3, 32, 40)
    mask = _blob_masks(1, 32, 40, seed=5)
    with torch.no_grad():
        reference = model(x, mask=mask).image
    deployed = model.reparameterize()
    deployed.executor = "pixel"
    assert torch.allclose(deployed(x, mask=mask).image, reference, atol=1e-5, rtol=0)


def test_a_mostly_marked_frame_is_restored_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    """whole_frame_fraction: an image whose predicted mask covers at least that share is
    restored everywhere (camera shake), in train and deploy mode alike; others keep their mask."""
    from m2aenet.models import frontend

    def left_part(prob: torch.Tensor, threshold: float, dilation: int) -> torch.Tensor:
        hard = torch.zeros_like(prob)
        hard[0, :, :, : prob.shape[-1] * 6 // 10] = 1.0  # image 0: 60% marked
        hard[1, :, :, : prob.shape[-1] * 2 // 10] = 1.0  # image 1: 20% marked
        return hard

    monkeypatch.setattr(frontend, "hard_mask", left_part)
    x = torch.rand(2, 3, 40, 64)
    model = _perturbed(whole_frame_fraction=0.5)
    with torch.no_grad():
        train_out = model(x)
        deployed = copy.deepcopy(model).reparameterize()
        deployed.executor = "pixel"
        deploy_out = deployed(x)
    assert train_out.mask[0].min() == 1.0  # 60% >= 50%: the whole frame
    assert train_out.mask[1].mean().item() == pytest.approx(0.2, abs=0.02)
    assert torch.equal(deploy_out.mask, train_out.mask)
    torch.testing.assert_close(deploy_out.image, train_out.image, atol=1e-5, rtol=0)
    assert not torch.equal(train_out.image[0, :, :, -8:], x[0, :, :, -8:])  # restored too
    assert torch.equal(train_out.image[1, :, :, -8:], x[1, :, :, -8:])  # outside: the input
    with pytest.raises(ConfigError, match=r"whole_frame_fraction must be in \(0, 1\]"):
        create_model("m2aenet-ms", whole_frame_fraction=0.0)


def test_the_blur_probability_stays_float32_under_bf16_autocast() -> None:
    """bf16 would round p >= 0.998 to exactly 1.0, where the mask loss's clamp passes no
    gradient: a confidently wrong pixel could never be un-marked."""
    model = _perturbed()
    with torch.no_grad():
        model.mask_predictor.head.bias.fill_(7.0)  # sigmoid(7) = 0.99909: 1.0 in bf16
    x = torch.rand(1, 3, 32, 48)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        output = model(x, mask=torch.zeros(1, 1, 32, 48))
    assert output.mask_prob.dtype == torch.float32
    assert (output.mask_prob < 1.0).all()
    loss = output.mask_prob.clamp(1e-6, 1 - 1e-6).mean()
    loss.backward()
    assert model.mask_predictor.head.bias.grad.abs().sum() > 0
