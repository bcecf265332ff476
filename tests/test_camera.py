"""The camera after the blur: effects, determinism, and blur/sharp developed alike."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from synth_helpers import texture as _texture

from m2aenet.data.camera import Camera, CameraRates, sample_camera
from m2aenet.data.compositing import image_to_linear, linear_to_srgb
from m2aenet.data.motion_paths import ObjectMotion
from m2aenet.data.synth import MovingObject, render_local
from m2aenet.imageio import to_uint8

# Every effect on at once: the hardest case for "blur and sharp differ only by the motion".
FULL = Camera(
    highlight_gain=5.0,
    exposure=1.4,
    contrast=0.5,
    gamma=0.9,
    defocus_radius=1.2,
    shake_path=((-1.0, -0.5), (0.0, 0.0), (1.5, 0.5)),
    noise_shot=2e-3,
    noise_read=1e-5,
    noise_seed=7,
    jpeg=80,
    gray=False,
)


def _scene(velocity: tuple[float, float], camera: Camera | None):
    background = _texture(72, 96, 1)
    alpha = np.zeros((24, 24), dtype=np.float32)
    alpha[4:20, 4:20] = 1.0
    obj = MovingObject(_texture(24, 24, 2), alpha, 20, 30, ObjectMotion("linear", velocity))
    return render_local(background, [obj], camera=camera)


def test_a_neutral_camera_is_a_plain_srgb_encode() -> None:
    linear = image_to_linear(_texture(20, 30, 3))
    expected = to_uint8(linear_to_srgb(linear).permute(1, 2, 0).numpy())
    assert np.array_equal(Camera().develop(linear), expected)
    assert torch.equal(Camera().scene_radiance(linear), linear)


def test_rates_of_zero_draw_a_neutral_camera_and_rates_of_one_every_effect() -> None:
    off = CameraRates(**{name: 0.0 for name in vars(CameraRates())})
    neutral = sample_camera(np.random.default_rng(1), off)
    assert neutral.to_dict() | {"noise_seed": 0} == Camera().to_dict()
    on = sample_camera(np.random.default_rng(1), CameraRates(*[1.0] * 8))
    assert on.highlight_gain > 1 and on.exposure != 1 and on.contrast != 0 and on.gray
    assert on.defocus_radius > 0 and on.shake_path and on.noise_shot > 0 and on.jpeg
    again = sample_camera(np.random.default_rng(1), CameraRates(*[1.0] * 8))
    assert again == on  # deterministic from the stream
    with pytest.raises(ValueError, match="noise"):
        CameraRates(noise=1.5)


def test_highlights_above_white_smear_into_bright_streaks() -> None:
    # A small white light moves 24 px over a dark background: averaged as 8-bit white it
    # leaves a dim ghost; as radiance 8x brighter than white it leaves a bright streak.
    background = np.full((40, 80, 3), 20, dtype=np.uint8)
    alpha = np.zeros((9, 9), dtype=np.float32)
    alpha[3:6, 3:6] = 1.0
    light = np.full((9, 9, 3), 255, dtype=np.uint8)
    motion = ObjectMotion("linear", (24.0, 0.0))
    plain = render_local(background, [MovingObject(light, alpha, 16, 36, motion)])
    bright = render_local(
        background, [MovingObject(light, alpha, 16, 36, motion)], camera=Camera(highlight_gain=8.0)
    )
    streak = (slice(19, 22), slice(30, 50))
    assert plain.blur[streak].mean() < 120
    assert bright.blur[streak].mean() > 200
    assert np.array_equal(bright.sharp, plain.sharp)  # a still light is just white


def test_blur_and_sharp_differ_only_where_the_motion_changed_them() -> None:
    sample = _scene((14.0, 5.0), FULL)
    outside = ~sample.mask
    assert outside.mean() > 0.5
    assert np.array_equal(sample.blur[outside], sample.sharp[outside])
    # The sharp frame does not depend on the motion: a still object gives the same one, and
    # then the blurred image is the sharp one, byte for byte.
    still = _scene((0.0, 0.0), FULL)
    assert np.array_equal(still.sharp, sample.sharp)
    assert np.array_equal(still.blur, still.sharp)
    # ... and the camera really acted (noise, tone, JPEG) on both.
    plain = _scene((14.0, 5.0), None)
    assert np.abs(sample.sharp.astype(int) - plain.sharp).mean() > 5


def test_gray_and_noise() -> None:
    gray = Camera(gray=True, noise_shot=1e-3, noise_read=1e-6, noise_seed=3)
    image = gray.develop(image_to_linear(_texture(30, 30, 4)))
    assert np.array_equal(image[..., 0], image[..., 1]) and np.array_equal(
        image[..., 1], image[..., 2]
    )
    # Shot noise grows with the signal: brighter flat fields are noisier (in linear light).
    noisy = Camera(noise_shot=4e-3, noise_read=1e-6, noise_seed=5)
    spread = []
    for level in (0.05, 0.6):
        out = noisy.develop(torch.full((3, 64, 64), level))
        spread.append(image_to_linear(out).std().item())
    assert spread[1] > 2 * spread[0]
