"""The dense NAFNet-style baseline: shapes, identity at init, gradients, contract, checkpoints."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from m2aenet.checkpoint import load_model, save_model
from m2aenet.errors import ConfigError
from m2aenet.models.baselines import LayerNorm2d, NAFNetConfig, simple_gate
from m2aenet.registry import create_model, list_models

TINY = {"width": 8, "enc_blocks": (1, 1), "middle_blocks": 1, "dec_blocks": (1, 1)}


def _randomize(model: torch.nn.Module, seed: int = 0) -> None:
    """Give every parameter (residual scales and the zero-init output conv too) random values."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.2)


def test_registered_and_default_config_builds() -> None:
    assert "nafnet-s" in list_models()
    model = create_model("nafnet-s")
    assert model.model_name == "nafnet-s"
    assert model.config == NAFNetConfig()


@pytest.mark.parametrize("shape", [(1, 3, 17, 23), (2, 3, 32, 32), (1, 3, 5, 3), (1, 3, 2, 1)])
def test_output_shapes_on_any_size(shape: tuple[int, ...]) -> None:
    model = create_model("nafnet-s", **TINY)
    _randomize(model)
    x = torch.rand(*shape)
    out = model(x)
    batch, _, height, width = shape
    assert out.image.shape == shape
    assert out.mask.shape == (batch, 1, height, width)
    assert out.mask_prob.shape == (batch, 1, height, width)
    assert out.trajectory.shape == (batch, 1, 2, height, width)
    assert torch.equal(out.mask, torch.ones_like(out.mask))
    assert torch.equal(out.mask_prob, torch.ones_like(out.mask_prob))
    assert torch.equal(out.trajectory, torch.zeros_like(out.trajectory))
    assert not torch.allclose(out.image, x)  # a randomized network does change the image


def test_untrained_network_returns_its_input() -> None:
    # Zero residual scales and a zero output conv: the global residual passes x through exactly.
    model = create_model("nafnet-s", **TINY)
    x = torch.rand(2, 3, 19, 30)
    assert torch.equal(model(x).image, x)


def test_padding_reflects_bottom_right_and_crops_top_left() -> None:
    # An input that needs padding must give exactly the top-left crop of the output for the
    # same input reflect-padded by hand to a multiple of 2**levels (which needs no padding).
    model = create_model("nafnet-s", **TINY)
    _randomize(model, seed=1)
    x = torch.rand(1, 3, 30, 29)
    padded = torch.nn.functional.pad(x, (0, 3, 0, 2), mode="reflect")  # to 32 x 32
    expected = model.restore(padded)[..., :30, :29]
    assert torch.allclose(model.restore(x), expected, atol=1e-6)


def test_given_mask_keeps_unmasked_pixels_bit_exact() -> None:
    model = create_model("nafnet-s", **TINY)
    _randomize(model)
    x = torch.rand(1, 3, 20, 24)
    mask = torch.zeros(1, 1, 20, 24)
    mask[..., 4:12, 6:18] = 1
    out = model(x, mask=mask)
    outside = mask.expand_as(x) == 0
    assert torch.equal(out.image[outside], x[outside])
    dense = model(x).image
    assert torch.equal(out.image[~outside], dense[~outside])
    assert torch.equal(out.mask, mask)
    with pytest.raises(ValueError, match="mask must have shape"):
        model(x, mask=torch.ones(1, 20, 24))


def test_gradients_reach_every_parameter() -> None:
    model = create_model("nafnet-s", **TINY)
    x = torch.rand(2, 3, 16, 16)
    target = torch.rand(2, 3, 16, 16)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    # Zero init delays gradients by one step per zero factor: step 1 moves only the output conv,
    # step 2 also the residual scales (beta, gamma) and the convs outside blocks, step 3 then
    # reaches every parameter inside the blocks.
    for _ in range(3):
        optimizer.zero_grad()
        loss = (model(x).image - target).abs().mean()
        loss.backward()
        optimizer.step()
    missing = [
        name
        for name, parameter in model.named_parameters()
        if parameter.grad is None or not torch.any(parameter.grad != 0)
    ]
    assert missing == []


def test_contract_attributes_and_reparameterize_is_a_no_op() -> None:
    model = create_model("nafnet-s", **TINY)
    _randomize(model)
    x = torch.rand(1, 3, 16, 16)
    before = model(x).image
    assert model.reparameterize() is model
    model.mask_threshold = 0.9
    model.executor = "pixel"
    assert torch.equal(model(x).image, before)


def test_layer_norm_normalizes_each_pixel_over_channels() -> None:
    norm = LayerNorm2d(6)
    x = torch.randn(2, 6, 5, 7) * 3 + 1
    y = norm(x)
    assert torch.allclose(y.mean(dim=1), torch.zeros(2, 5, 7), atol=1e-5)
    assert torch.allclose(y.var(dim=1, unbiased=False), torch.ones(2, 5, 7), atol=1e-3)
    reference = torch.nn.functional.layer_norm(x.permute(0, 2, 3, 1), (6,), eps=norm.eps)
    assert torch.allclose(y, reference.permute(0, 3, 1, 2), atol=1e-5)


def test_simple_gate_multiplies_halves() -> None:
    x = torch.arange(8.0).view(1, 4, 1, 2)
    assert torch.equal(simple_gate(x), x[:, :2] * x[:, 2:])


def test_flops_grow_with_width_and_blocks() -> None:
    def flops(**overrides) -> int:
        model = create_model("nafnet-s", **{**TINY, **overrides})
        with FlopCounterMode(display=False) as counter:
            model(torch.rand(1, 3, 32, 32))
        return counter.get_total_flops()

    base = flops()
    wider = flops(width=16)
    deeper = flops(middle_blocks=3)
    # Pointwise convs dominate: doubling the width roughly quadruples the cost.
    assert 3.0 < wider / base < 4.5
    assert deeper > base


def test_default_matches_m2aenet_s_dense_flops_per_pixel() -> None:
    # nafnet-s is the dense comparison for m2aenet-s: same work per pixel when M2AENet
    # restores every pixel (all-ones mask, train mode). If m2aenet-s is resized, resize this.
    from m2aenet.flops import count_flops

    x = torch.rand(1, 3, 64, 64)
    ours = count_flops(create_model("m2aenet-s").train(), x, mask=torch.ones(1, 1, 64, 64))
    dense = count_flops(create_model("nafnet-s").train(), x)
    assert 0.85 < dense.flops / ours.flops < 1.15, (dense.flops, ours.flops)


def test_parameter_count_of_default() -> None:
    model = create_model("nafnet-s")
    params = sum(p.numel() for p in model.parameters())
    # A small model: tens of thousands to a few million parameters, never empty.
    assert 50_000 < params < 5_000_000


def test_bad_configs_name_the_key() -> None:
    with pytest.raises(ConfigError, match="dec_blocks"):
        create_model("nafnet-s", enc_blocks=(1, 1), dec_blocks=(1,))
    with pytest.raises(ConfigError, match="width"):
        create_model("nafnet-s", width=0)
    with pytest.raises(ConfigError, match="middle_blocks"):
        create_model("nafnet-s", middle_blocks=-1)
    with pytest.raises(ConfigError, match="unknown key"):
        create_model("nafnet-s", depth=3)


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    model = create_model("nafnet-s", **TINY)
    _randomize(model, seed=3)
    path = save_model(tmp_path / "nafnet", model, extra={"step": 7})
    loaded = load_model(path)
    assert loaded.model_name == "nafnet-s"
    assert dataclasses.asdict(loaded.config) == dataclasses.asdict(model.config)
    assert loaded.config.enc_blocks == (1, 1)  # JSON lists come back as tuples
    x = torch.rand(1, 3, 12, 20)
    model.eval()
    assert torch.equal(loaded(x).image, model(x).image)
