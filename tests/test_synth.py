"""The data engine: linear-light blur, masks, motion ground truth, determinism."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from synth_helpers import texture as _texture

from m2aenet.data.compositing import (
    Layer,
    average_exposure,
    image_to_linear,
    linear_to_srgb,
    srgb_to_linear,
)
from m2aenet.data.motion_paths import (
    CameraShake,
    ObjectMotion,
    exposure_times,
    max_displacement,
    motion_times,
    path_length,
    sample_camera_shake,
    sample_object_motion,
    sub_frame_count,
)
from m2aenet.data.synth import (
    MOTION_SAMPLES,
    MovingObject,
    SampleGenerator,
    global_margin,
    render_global,
    render_local,
    synthesize_global,
    synthesize_local,
)
from m2aenet.data.synth_shapes import object_alpha
from m2aenet.imageio import write_png


def _photos(folder: Path, count: int = 3) -> list[Path]:
    return [_write(folder / f"photo{i}.png", _texture(150, 200, i)) for i in range(count)]


def _write(path: Path, image: np.ndarray) -> Path:
    write_png(path, image)
    return path


def test_srgb_transfer_is_the_exact_standard_curve() -> None:
    values = torch.tensor([0.0, 0.04045, 0.5, 1.0])
    expected = torch.tensor([0.0, 0.04045 / 12.92, ((0.5 + 0.055) / 1.055) ** 2.4, 1.0])
    assert torch.allclose(srgb_to_linear(values), expected, atol=1e-7)
    grid = torch.linspace(0, 1, 1001)
    assert torch.allclose(linear_to_srgb(srgb_to_linear(grid)), grid, atol=1e-6)
    pixels = np.arange(256, dtype=np.uint8).reshape(16, 16, 1).repeat(3, axis=2)
    table = image_to_linear(pixels)
    formula = srgb_to_linear(torch.from_numpy(pixels).float().permute(2, 0, 1) / 255.0)
    assert torch.allclose(table, formula, atol=1e-7)


def test_moving_step_edge_is_a_ramp_in_linear_light_not_in_srgb() -> None:
    height, width, length, margin = 8, 96, 24.0, 20
    scene = np.zeros((height + 2 * margin, width + 2 * margin, 3), dtype=np.uint8)
    edge = margin + 48  # scene column of the first white pixel; frame column 48
    scene[:, edge:] = 255
    half = length / 2
    shake = CameraShake((-0.5, 0.0, 0.5), ((-half, 0.0), (0.0, 0.0), (half, 0.0)), (0.0, 0.0, 0.0))
    sample = render_global(scene, shake, (height, width))
    row = sample.blur[4, :, 0].astype(np.float32) / 255.0
    linear = srgb_to_linear(torch.from_numpy(row)).numpy()
    # A point at x in the sharp frame sits at x + length * t at time t, so pixel x shows white
    # for the part of the exposure where x - length * t >= 48.
    x = np.arange(width)
    expected = np.clip((x - 48) / length + 0.5, 0.0, 1.0)
    assert np.abs(linear - expected).max() < 0.03
    ramp = (x > 48 - half + 2) & (x < 48 + half - 2)
    fit = np.polyval(np.polyfit(x[ramp], linear[ramp], 1), x[ramp])
    assert np.abs(fit - linear[ramp]).max() < 0.01  # straight in linear light
    fit_srgb = np.polyval(np.polyfit(x[ramp], row[ramp], 1), x[ramp])
    assert np.abs(fit_srgb - row[ramp]).max() > 0.05  # and visibly bent in sRGB values
    assert np.array_equal(sample.sharp[4, :, 0], np.where(x >= 48, 255, 0))


def test_sub_frames_are_dense_enough_that_no_ghosts_show() -> None:
    # A 2 px bright dot moving 30 px must leave an even streak, not a row of copies.
    rgba = torch.zeros(4, 9, 9)
    rgba[:, 3:5, 3:5] = 1.0
    motion = ObjectMotion("linear", (30.0, 0.0))
    layer = Layer(rgba, top=10, left=30, motion=motion)
    count = sub_frame_count(30.0)
    assert count >= 30
    background = torch.zeros(3, 24, 80)
    blurred, _, _ = average_exposure(background, [layer], [count])
    # The dot covers frame columns 33-34 at t = 0 and sweeps 15 px either way.
    streak = blurred[0, 13, 22:46]
    assert streak.min() > 0.8 * streak.mean()
    ghosty, _, _ = average_exposure(background, [layer], [5])
    ghost_streak = ghosty[0, 13, 22:46]
    assert ghost_streak.min() < 0.3 * ghost_streak.mean()  # the check can fail


def _local(seed: int, size=(96, 128)) -> tuple:
    rng = np.random.default_rng(seed)
    background = _texture(*size, seed + 100)
    textures = [_texture(40, 36, seed + 200), _texture(30, 44, seed + 300)]
    return synthesize_local(background, textures, rng), background


@pytest.mark.parametrize("seed", range(4))
def test_local_blur_equals_sharp_outside_the_mask_and_differs_inside(seed: int) -> None:
    sample, _ = _local(seed)
    mask = sample.mask
    assert sample.blur.dtype == sample.sharp.dtype == np.uint8 and mask.dtype == bool
    assert np.array_equal(sample.blur[~mask], sample.sharp[~mask])
    differs = np.any(sample.blur != sample.sharp, axis=-1)
    assert differs[mask].mean() > 0.3
    assert 0.005 < mask.mean() < 0.7
    for obj in sample.params["objects"]:
        assert obj["blur_px"] >= 2.9  # every object moves at least ~3 px
        assert obj["sub_frames"] >= obj["blur_px"]  # <= 1 px between sub-frames


def _flat_layer(value: float, top: int, left: int, size: int, motion: ObjectMotion) -> Layer:
    rgba = torch.zeros(4, size, size)
    rgba[:, 1:-1, 1:-1] = torch.tensor([value, value, value, 1.0])[:, None, None]
    return Layer(rgba, top, left, motion)


def test_overlapping_objects_are_occluded_in_depth_order() -> None:
    background = torch.full((3, 40, 60), 0.5)
    mover = _flat_layer(1.0, 10, 10, 16, ObjectMotion("linear", (20.0, 0.0)))
    still = _flat_layer(0.0, 5, 15, 30, ObjectMotion("linear", (0.0, 0.0)))
    below, _, _ = average_exposure(background, [mover, still], [25, 3])
    assert torch.equal(below[:, 10:30, 20:40], torch.zeros(3, 20, 20))  # fully hidden
    above, _, _ = average_exposure(background, [still, mover], [3, 25])
    assert above[0, 17, 18:26].min() > 0.3  # the mover's streak crosses the still object
    # A transparent extra layer sends the mover through the multi-layer path: same result.
    alone, _, _ = average_exposure(background, [mover], [25])
    clear = Layer(torch.zeros(4, 30, 30), 5, 15, ObjectMotion("linear", (0.0, 0.0)))
    together, _, _ = average_exposure(background, [mover, clear], [25, 3])
    assert torch.allclose(alone, together, atol=1e-6)


def test_local_background_is_untouched_and_the_sharp_object_is_not_resampled() -> None:
    background = _texture(64, 64, 1)
    texture = _texture(24, 24, 2)
    alpha = np.zeros((24, 24), dtype=np.float32)
    alpha[4:20, 4:20] = 1.0
    obj = MovingObject(texture, alpha, top=20, left=10, motion=ObjectMotion("linear", (8.0, 3.0)))
    sample = render_local(background, [obj])
    assert np.array_equal(sample.sharp[24:40, 14:30], texture[4:20, 4:20])
    outside = np.ones((64, 64), dtype=bool)
    outside[10:50, 0:45] = False  # well beyond the swept area
    assert np.array_equal(sample.sharp[outside], background[outside])
    assert np.array_equal(sample.blur[outside], background[outside])
    assert not sample.mask[outside].any()


def test_motion_ground_truth_follows_the_object() -> None:
    texture = _texture(40, 40, 3)
    alpha = np.zeros((40, 40), dtype=np.float32)
    alpha[2:38, 2:38] = 1.0
    velocity = (12.0, -4.0)
    acceleration = (0.0, 6.0)
    motion = ObjectMotion("curved", velocity, acceleration)
    obj = MovingObject(texture, alpha, top=30, left=40, motion=motion)
    sample = render_local(_texture(100, 120, 4), [obj])
    assert sample.motion.shape == (100, 120, MOTION_SAMPLES, 2)
    assert sample.motion.dtype == np.float16
    times = motion_times(MOTION_SAMPLES)
    assert times[0] == -0.5 and times[-1] == 0.5
    centre = sample.motion[49, 59]  # the object's centre pixel, covered at every time
    # Content seen at p at time t came from p0 with p0 + v t + a t^2 = p.
    expected = -(np.outer(times, velocity) + np.outer(times**2, acceleration))
    assert np.allclose(centre.astype(np.float32), expected, atol=0.02)
    assert not sample.motion[~sample.mask].any()
    assert np.abs(sample.motion[sample.mask]).max() > 1.0


def test_swapping_the_sign_of_motion_would_be_caught() -> None:
    # Re-blurring the sharp image along the ground-truth motion reproduces the blur much
    # better than along the opposite motion (for an accelerating object the two differ).
    sample, _ = _local(7, size=(96, 96))
    sharp = srgb_to_linear(torch.from_numpy(sample.sharp).float().permute(2, 0, 1)[None] / 255)
    blur = srgb_to_linear(torch.from_numpy(sample.blur).float() / 255).numpy()
    motion = torch.from_numpy(sample.motion.astype(np.float32))
    height, width = sample.mask.shape
    ys, xs = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")

    def reblur(sign: float) -> np.ndarray:
        total = 0
        for k in range(MOTION_SAMPLES):
            gx = (xs + sign * motion[..., k, 0]) / (width - 1) * 2 - 1
            gy = (ys + sign * motion[..., k, 1]) / (height - 1) * 2 - 1
            grid = torch.stack([gx, gy], -1)[None]
            total = total + torch.nn.functional.grid_sample(sharp, grid, align_corners=True)
        return (total[0] / MOTION_SAMPLES).permute(1, 2, 0).numpy()

    mask = sample.mask
    right = np.abs(reblur(1.0) - blur)[mask].mean()
    assert right < 0.6 * np.abs(sample.sharp / 255.0 - sample.blur / 255.0)[mask].mean()


def test_global_blur_covers_the_frame_without_showing_padding() -> None:
    size = (64, 80)
    margin = global_margin(size)
    scene = np.full((size[0] + 2 * margin, size[1] + 2 * margin, 3), 200, dtype=np.uint8)
    for seed in range(5):
        sample = synthesize_global(scene, np.random.default_rng(seed), size)
        assert sample.mask.all() and sample.mask.shape == size
        assert np.abs(sample.blur.astype(int) - 200).max() <= 1  # no black border crept in
        assert sample.params["blur_px"] >= 3.0
    too_small = scene[4:-4, 4:-4]
    shake = sample_camera_shake(np.random.default_rng(0), 30.0, 50.0)
    with pytest.raises(ValueError, match="border"):
        render_global(too_small, shake, size)


def test_global_blur_is_a_real_shake_of_the_scene() -> None:
    size = (64, 64)
    margin = global_margin(size)
    scene = _texture(size[0] + 2 * margin, size[1] + 2 * margin, 9)
    sample = synthesize_global(scene, np.random.default_rng(3), size)
    assert np.array_equal(sample.sharp, scene[margin:-margin, margin:-margin])
    assert np.abs(sample.blur.astype(int) - sample.sharp).mean() > 5
    assert np.abs(sample.motion).max() > 1.0 and sample.motion.shape == (64, 64, 8, 2)


def test_motion_paths_have_the_requested_length_and_rest_at_mid_exposure() -> None:
    rng = np.random.default_rng(0)
    centre = np.zeros((1, 2))
    for kind in ("linear", "curved", "accelerating"):
        motion = sample_object_motion(rng, 25.0, radius=20.0, kind=kind)
        assert path_length(motion, centre) == pytest.approx(25.0, rel=0.01)
        matrix, d = motion.transform(np.array([0.0]))
        assert np.allclose(matrix[0], np.eye(2)) and np.allclose(d, 0)
    rotating = sample_object_motion(rng, 25.0, radius=20.0, kind="rotating")
    rim = np.array([[20.0, 0.0], [0.0, 20.0], [-20.0, 0.0], [0.0, -20.0]])
    assert path_length(rotating, rim) == pytest.approx(25.0, rel=0.25)
    assert rotating.rotation != 0.0
    shake = sample_camera_shake(rng, 30.0, radius=60.0)
    assert path_length(shake, centre) == pytest.approx(30.0, rel=0.01)
    corners = np.array([[60.0, 0.0], [0.0, -60.0]])
    assert max_displacement(shake, corners) <= 1.25 * 30.0 + 1e-6
    _, d = shake.transform(np.array([0.0]))
    assert np.allclose(d, 0)
    with pytest.raises(ValueError, match="unknown motion kind"):
        sample_object_motion(rng, 5.0, 5.0, kind="teleport")


def test_exposure_and_motion_times() -> None:
    assert np.allclose(exposure_times(4), [-0.375, -0.125, 0.125, 0.375])  # slice midpoints
    assert math.isclose(exposure_times(7).mean(), 0.0, abs_tol=1e-12)
    assert np.allclose(motion_times(5), [-0.5, -0.25, 0.0, 0.25, 0.5])  # ends included
    assert np.array_equal(motion_times(1), [0.0])


def test_motion_points_change_the_ground_truth_only() -> None:
    background, texture = _texture(48, 48, 1), _texture(20, 20, 2)
    alpha = np.ones((20, 20), dtype=np.float32)
    obj = MovingObject(texture, alpha, 14, 14, ObjectMotion("linear", (10.0, 0.0)))
    eight, four = render_local(background, [obj]), render_local(background, [obj], 4)
    assert np.array_equal(eight.blur, four.blur) and four.motion.shape == (48, 48, 4, 2)
    # Ends of the exposure: the content at the centre came from 5 px to either side.
    assert np.allclose(four.motion[23, 23, [0, -1], 0].astype(np.float32), [5.0, -5.0])


def test_object_alpha_is_soft_irregular_and_transparent_at_the_border() -> None:
    alpha = object_alpha(60, 80, np.random.default_rng(0), feather=1.2)
    assert alpha.dtype == np.float32 and alpha.shape == (60, 80)
    assert alpha.min() == 0.0 and alpha.max() == pytest.approx(1.0, abs=1e-3)
    border = np.concatenate([alpha[0], alpha[-1], alpha[:, 0], alpha[:, -1]])
    assert not border.any()
    assert 0.3 < (alpha > 0.5).mean() < 0.9
    assert ((alpha > 0.05) & (alpha < 0.95)).any()  # feathered, not a hard cut
    other = object_alpha(60, 80, np.random.default_rng(1), feather=1.2)
    assert not np.array_equal(alpha > 0.5, other > 0.5)


def test_generator_is_deterministic_per_index_and_split(tmp_path: Path) -> None:
    photos = _photos(tmp_path)
    make = lambda **kw: SampleGenerator(photos, (64, 64), **kw)  # noqa: E731
    a, b = make(seed=3)(2), make(seed=3)(2)
    assert np.array_equal(a.blur, b.blur) and a.params == b.params
    assert not np.array_equal(make(seed=4)(2).blur, a.blur)
    assert not np.array_equal(make(seed=3, split="val")(2).blur, a.blur)
    assert not np.array_equal(make(seed=3)(1).blur, a.blur)


def test_noise_and_jpeg_touch_the_blur_only(tmp_path: Path) -> None:
    photos = _photos(tmp_path)
    clean = SampleGenerator(photos, (64, 64), seed=1)(0)
    for kwargs in ({"noise": True}, {"jpeg": 70}):
        degraded = SampleGenerator(photos, (64, 64), seed=1, **kwargs)(0)
        assert np.array_equal(degraded.sharp, clean.sharp)
        assert np.array_equal(degraded.mask, clean.mask)
        assert np.array_equal(degraded.motion, clean.motion)
        assert not np.array_equal(degraded.blur, clean.blur)
        assert np.abs(degraded.blur.astype(int) - clean.blur).mean() < 20
    noisy = SampleGenerator(photos, (64, 64), seed=1, noise=True)(0)
    assert set(noisy.params["noise"]) == {"shot", "read"}


def test_mixed_mode_draws_both_kinds(tmp_path: Path) -> None:
    photos = _photos(tmp_path)
    generator = SampleGenerator(photos, (48, 48), mode="mixed", global_fraction=0.5)
    modes = {generator(i).params["mode"] for i in range(12)}
    assert modes == {"local", "global"}


@pytest.mark.parametrize("fraction", [float("nan"), 7.0, -1.0])
def test_a_global_fraction_outside_the_unit_interval_is_refused(
    tmp_path: Path, fraction: float
) -> None:
    from m2aenet.errors import InputError

    # NaN used to be accepted and written to meta.json as a bare NaN (invalid JSON).
    with pytest.raises(InputError, match="global_fraction must be in"):
        SampleGenerator([tmp_path / "photo.png"], (64, 64), mode="mixed", global_fraction=fraction)
