"""Shallow depth of field: a share of the background defocused, the rest untouched."""

from __future__ import annotations

import numpy as np
from synth_helpers import patchy_texture

from m2aenet.data.depth_of_field import LARGEST_RADIUS, shallow_focus


def _detail(image: np.ndarray) -> np.ndarray:
    """(H, W) absolute horizontal luma step: how much fine structure each pixel has."""
    luma = image.astype(np.float32).mean(axis=2)
    return np.abs(np.diff(luma, axis=1, append=luma[:, -1:]))


def test_shallow_focus_softens_about_the_drawn_share_and_keeps_the_rest() -> None:
    rng = np.random.default_rng(0)
    image = (rng.random((256, 320, 3)) * 255).astype(np.uint8)  # detail everywhere
    for seed in range(4):
        out, described = shallow_focus(image, np.random.default_rng(seed))
        assert out.shape == image.shape and out.dtype == np.uint8
        assert 1.5 <= described["radius"] <= LARGEST_RADIUS * 256 / 512
        changed = np.abs(out.astype(int) - image).max(axis=2) > 2
        # The far region plus its soft border is defocused; a clear part stays exactly as it was.
        assert described["share"] - 0.05 <= changed.mean() <= min(1.0, described["share"] + 0.35)
        assert (out == image).all(axis=2).mean() >= 0.03
        assert _detail(out)[changed].mean() < 0.5 * _detail(image)[changed].mean()


def test_shallow_focus_is_deterministic_from_the_generator() -> None:
    image = patchy_texture(96, 128, 3)
    a, da = shallow_focus(image, np.random.default_rng(7))
    b, db = shallow_focus(image, np.random.default_rng(7))
    assert np.array_equal(a, b) and da == db
