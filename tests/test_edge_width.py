"""Edge widths per orientation: a smear widens the edges across it only, defocus all of them."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from m2aenet.models.edge_width import EDGE_CUE_CHANNELS, defocused_cells, edge_width_cues

NARROWEST, WIDEST, SUPPORT, DENSITY = range(EDGE_CUE_CHANNELS)


def _discs(size: int = 96) -> torch.Tensor:
    """Bright discs (edges in every orientation) on a dark ground, (1, 3, size, size)."""
    ys, xs = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    image = torch.full((size, size), 0.2)
    for cy in range(12, size, 24):
        for cx in range(12, size, 24):
            image[(ys - cy) ** 2 + (xs - cx) ** 2 <= 64] = 0.8
    return image.expand(1, 3, size, size).clone()


def _gaussian(image: torch.Tensor, sigma: float) -> torch.Tensor:
    radius = int(3 * sigma + 1)
    taps = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-taps.square() / (2 * sigma**2))
    kernel = (kernel / kernel.sum()).view(1, 1, 1, -1).expand(3, 1, 1, -1)
    image = F.conv2d(F.pad(image, (radius, radius, 0, 0), mode="replicate"), kernel, groups=3)
    return F.conv2d(
        F.pad(image, (0, 0, radius, radius), mode="replicate"), kernel.transpose(-1, -2), groups=3
    )


def _smear(image: torch.Tensor, length: int) -> torch.Tensor:
    """Horizontal box blur of `length` (odd) px: motion along x."""
    box = torch.ones(3, 1, 1, length) / length
    half = length // 2
    return F.conv2d(F.pad(image, (half, half, 0, 0), mode="replicate"), box, groups=3)


def _inner_widths(image: torch.Tensor) -> tuple[float, float]:
    """Median narrowest and widest width (px) over the supported inner cells."""
    cues = edge_width_cues(image)[0, :, 6:-6, 6:-6]
    supported = cues[SUPPORT] > 0
    assert supported.float().mean() > 0.9
    narrowest = 2 ** cues[NARROWEST][supported].median().item()
    widest = 2 ** cues[WIDEST][supported].median().item()
    return narrowest, widest


def test_shapes_and_a_flat_image_has_no_edges() -> None:
    cues = edge_width_cues(torch.full((2, 3, 32, 48), 0.5))
    assert cues.shape == (2, EDGE_CUE_CHANNELS, 8, 12)
    assert torch.equal(cues, torch.zeros_like(cues))


def test_defocus_widens_every_orientation_and_a_smear_only_those_across_it() -> None:
    sharp_narrow, sharp_wide = _inner_widths(_discs())
    defocus_narrow, defocus_wide = _inner_widths(_gaussian(_discs(), 2.0))
    smear_narrow, smear_wide = _inner_widths(_smear(_discs(), 9))
    assert defocus_narrow > sharp_narrow + 1.0  # every edge of a disc is ~2 px wider
    assert smear_wide > sharp_wide + 1.0  # the edges facing the motion widen
    assert smear_narrow < sharp_narrow + 0.3  # the top and bottom edges stay sharp
    assert defocus_narrow > smear_narrow + 1.0


def test_the_width_of_a_gaussian_edge_is_its_sigma() -> None:
    # Discs blurred by sigma s: every orientation reads about s (the estimate's premise).
    for sigma in (1.0, 1.5, 2.5):
        narrowest, widest = _inner_widths(_gaussian(_discs(), sigma))
        assert abs(narrowest - sigma) < 0.35 * sigma, (sigma, narrowest)
        assert abs(widest - sigma) < 0.35 * sigma, (sigma, widest)


def test_widths_do_not_depend_on_contrast() -> None:
    image = _gaussian(_discs(), 1.5)
    faint = 0.5 + 0.5 * (image - 0.5)  # edges of half the step, still above MIN_CONTRAST
    cues, faint_cues = edge_width_cues(image), edge_width_cues(faint)
    torch.testing.assert_close(faint_cues[:, :SUPPORT], cues[:, :SUPPORT], atol=1e-3, rtol=0)


def test_defocused_cells_are_those_wide_in_every_orientation() -> None:
    inner = (..., slice(6, -6), slice(6, -6))
    assert defocused_cells(_gaussian(_discs(), 2.0), 1.5)[inner].float().mean() > 0.9
    assert not defocused_cells(_smear(_discs(), 9), 1.5)[inner].any()
    assert not defocused_cells(_discs(), 1.5)[inner].any()
    assert not defocused_cells(torch.full((1, 3, 32, 32), 0.5), 0.5).any()  # no edges: no verdict


def test_the_limit_used_before_torch_loads_is_the_module_s() -> None:
    from m2aenet.limits import MAX_DEFOCUS_VETO
    from m2aenet.models.edge_width import MAX_WIDTH

    assert MAX_DEFOCUS_VETO == MAX_WIDTH
