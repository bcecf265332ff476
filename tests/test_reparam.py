"""Structural reparameterization: each branch, BatchNorm folding, the unfolded-matmul form."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from m2aenet.models.reparam import RepMixer, conv3x3_as_matrix, fuse_batch_norm


def _randomize_norms(mixer: RepMixer, generator: torch.Generator) -> None:
    for name in ("norm3", "norm1", "norm_identity"):
        norm = getattr(mixer, name, None)
        if norm is None:
            continue
        channels = norm.num_features
        norm.weight.data = torch.rand(channels, generator=generator) + 0.5
        norm.bias.data = torch.randn(channels, generator=generator)
        norm.running_mean = torch.randn(channels, generator=generator)
        norm.running_var = torch.rand(channels, generator=generator) + 0.2


def _mixer(batch_norm: bool, keep: set[str], seed: int = 0) -> RepMixer:
    """A mixer with random weights where only the branches in `keep` are non-zero."""
    generator = torch.Generator().manual_seed(seed)
    mixer = RepMixer(6, batch_norm=batch_norm).eval()
    with torch.no_grad():
        mixer.conv3.weight.copy_(torch.randn(mixer.conv3.weight.shape, generator=generator))
        if mixer.conv3.bias is not None:
            mixer.conv3.bias.copy_(torch.randn(6, generator=generator))
        mixer.conv1.weight.copy_(torch.randn(mixer.conv1.weight.shape, generator=generator))
        mixer.identity_scale.copy_(torch.randn(6, generator=generator))
        _randomize_norms(mixer, generator)
        if "conv3" not in keep:
            mixer.conv3.weight.zero_()
            if mixer.conv3.bias is not None:
                mixer.conv3.bias.zero_()
            if batch_norm:
                mixer.norm3.weight.zero_()
                mixer.norm3.bias.zero_()
        if "conv1" not in keep:
            mixer.conv1.weight.zero_()
            if batch_norm:
                mixer.norm1.weight.zero_()
                mixer.norm1.bias.zero_()
        if "identity" not in keep:
            mixer.identity_scale.zero_()
            if batch_norm:
                mixer.norm_identity.weight.zero_()
                mixer.norm_identity.bias.zero_()
    return mixer


@pytest.mark.parametrize("batch_norm", [False, True])
@pytest.mark.parametrize("branch", ["conv3", "conv1", "identity"])
def test_each_branch_alone_collapses_into_one_conv(branch: str, batch_norm: bool) -> None:
    mixer = _mixer(batch_norm, {branch})
    x = torch.randn(2, 6, 9, 11)
    reference = mixer.forward_branches(x)
    assert reference.abs().max() > 0.1  # the branch really contributes
    mixer.reparameterize()
    torch.testing.assert_close(mixer(x), reference, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("batch_norm", [False, True])
def test_all_branches_collapse_and_branch_parameters_are_removed(batch_norm: bool) -> None:
    mixer = _mixer(batch_norm, {"conv3", "conv1", "identity"})
    x = torch.randn(1, 6, 7, 5)
    reference = mixer.forward_branches(x)
    torch.testing.assert_close(mixer(x), reference, atol=1e-5, rtol=1e-5)  # fused, not deployed
    mixer.reparameterize()
    mixer.reparameterize()  # idempotent
    assert sorted(name for name, _ in mixer.named_parameters()) == ["bias", "weight"]
    assert mixer.weight.shape == (6, 6, 3, 3)
    torch.testing.assert_close(mixer(x), reference, atol=1e-5, rtol=1e-5)


def test_train_mode_with_batch_norm_uses_batch_statistics() -> None:
    mixer = _mixer(True, {"conv3", "conv1", "identity"}).train()
    x = torch.randn(2, 6, 5, 5) * 3 + 1
    # Training normalizes each branch with the batch's statistics, not the running ones.
    assert torch.allclose(mixer(x), mixer.forward_branches(x))
    assert not torch.allclose(mixer(x), mixer.eval()(x), atol=1e-3)


def test_fuse_batch_norm_matches_conv_then_norm() -> None:
    generator = torch.Generator().manual_seed(1)
    conv = torch.nn.Conv2d(4, 5, 3, padding=1)
    norm = torch.nn.BatchNorm2d(5).eval()
    norm.running_mean = torch.randn(5, generator=generator)
    norm.running_var = torch.rand(5, generator=generator) + 0.5
    norm.weight.data = torch.randn(5, generator=generator)
    x = torch.randn(1, 4, 6, 6)
    kernel, bias = fuse_batch_norm(conv.weight, conv.bias, norm)
    torch.testing.assert_close(
        F.conv2d(x, kernel, bias, padding=1), norm(conv(x)), atol=1e-5, rtol=1e-5
    )


def test_conv3x3_is_a_matmul_over_unfolded_neighbourhoods() -> None:
    kernel = torch.randn(5, 4, 3, 3)
    bias = torch.randn(5)
    x = torch.randn(1, 4, 6, 7)
    # Neighbourhoods in (dy, dx) row-major order, channels inner: (H*W, 9 * C).
    padded = F.pad(x, (1, 1, 1, 1))
    neighbourhoods = torch.stack(
        [padded[0, :, dy : dy + 6, dx : dx + 7] for dy in range(3) for dx in range(3)]
    )  # (9, C, H, W)
    rows = neighbourhoods.permute(2, 3, 0, 1).reshape(42, 36)
    out = rows @ conv3x3_as_matrix(kernel) + bias  # (H*W, O)
    expected = F.conv2d(x, kernel, bias, padding=1)[0].permute(1, 2, 0).reshape(42, 5)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
