"""Prunable blocks: identity at start, untouched unmasked pixels, pointwise tail."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from m2aenet.models.blocks import PrunableBlock
from m2aenet.models.motion import trajectory_grid


def _block(trajectory: bool = True, seed: int = 0) -> PrunableBlock:
    torch.manual_seed(seed)
    block = PrunableBlock(8, 5, trajectory_points=3, trajectory_channels=4, trajectory=trajectory)
    with torch.no_grad():
        for parameter in block.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.2)
    return block


def _inputs(batch: int = 2, height: int = 7, width: int = 9, seed: int = 1):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, height, width, 8, generator=generator)
    mask = (torch.rand(batch, height, width, 1, generator=generator) > 0.5).float()
    trajectory = torch.randn(batch, 3, 2, height, width, generator=generator) * 2
    context = torch.randn(batch, height, width, 5, generator=generator)
    return x, mask, trajectory_grid(trajectory), context


def test_new_block_is_the_identity() -> None:
    block = PrunableBlock(8, 5, 3, 4)
    x, mask, grid, context = _inputs()
    assert torch.equal(block(x, torch.ones_like(mask), grid, context), x)


def test_unmasked_pixels_are_returned_bit_for_bit() -> None:
    block = _block()
    x, mask, grid, context = _inputs()
    y = block(x, mask, grid, context)
    keep = mask.expand_as(x) == 0
    assert torch.equal(y[keep], x[keep])
    assert (y[~keep] - x[~keep]).abs().max() > 1e-3


def test_block_reads_its_input_along_the_trajectory() -> None:
    block = _block()
    x, mask, _, context = _inputs()
    ones = torch.ones_like(mask)
    still = trajectory_grid(torch.zeros(2, 3, 2, 7, 9))
    moving = trajectory_grid(torch.full((2, 3, 2, 7, 9), 1.5))
    assert not torch.allclose(block(x, ones, still, context), block(x, ones, moving, context))
    plain = _block(trajectory=False)
    assert plain.trajectory_points == 0
    torch.testing.assert_close(plain(x, ones, still, context), plain(x, ones, moving, context))


def test_tail_is_pointwise() -> None:
    block = _block()
    h = torch.randn(126, 8)
    dense = block.pointwise(h)
    rows = torch.tensor([0, 5, 17, 62, 125])
    torch.testing.assert_close(block.pointwise(h[rows]), dense[rows])


def test_gradient_reaches_the_mask() -> None:
    block = _block()
    x, mask, grid, context = _inputs()
    mask = mask.clone().requires_grad_()
    block(x, mask, grid, context).sum().backward()
    assert mask.grad.abs().sum() > 0


def test_deploy_weights_split_trajectory_and_context() -> None:
    block = _block()
    block.reparameterize()
    weights = block.deploy_weights()
    assert weights["matrix"].shape == (72, 8)
    assert weights["trajectory"].shape == (12, 8)
    assert weights["context"].shape == (5, 8)
    assert weights["kernel"].shape == (8, 8, 3, 3)


def test_block_equals_a_plain_reference_in_values_and_gradients() -> None:
    block = _block()
    x, mask, grid, context = _inputs()
    x = x.requires_grad_()

    def reference() -> torch.Tensor:
        x_nchw = x.permute(0, 3, 1, 2)
        mixed = block.mixer.forward_branches(x_nchw).permute(0, 2, 3, 1)
        samples = F.grid_sample(
            x_nchw[:, :4], grid, mode="bilinear", padding_mode="border", align_corners=True
        )  # (B, c, H, W*K)
        samples = samples.view(2, 4, 7, 9, 3).permute(0, 2, 3, 4, 1).reshape(2, 7, 9, 12)
        h = mixed + block.guide_proj(torch.cat((samples, context), dim=-1))
        a, b = block.expand(block.norm(h)).chunk(2, dim=-1)
        return x + mask * block.project(a * b)

    expected = reference()
    expected_grads = torch.autograd.grad(expected.square().sum(), [x, *block.parameters()])
    out = block(x, mask, grid, context)
    grads = torch.autograd.grad(out.square().sum(), [x, *block.parameters()])
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
    for grad, expected_grad in zip(grads, expected_grads, strict=True):
        torch.testing.assert_close(grad, expected_grad, atol=1e-4, rtol=1e-4)
