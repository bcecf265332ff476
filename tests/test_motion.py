"""Trajectories, the reblur operator and the motion analyzer."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from m2aenet.models.motion import (
    MotionAnalyzer,
    densify_trajectory,
    motion_to_trajectory,
    reblur,
    trajectory_times,
    upsample_trajectory,
)


def _uniform_trajectory(batch: int, height: int, width: int, dx: float, dy: float, points: int):
    """Constant velocity (dx, dy) pixels per exposure at every pixel: (B, K, 2, H, W)."""
    motion = torch.zeros(batch, 4, height, width)
    motion[:, 0], motion[:, 1] = dx, dy
    return motion_to_trajectory(motion, trajectory_times(points, motion))


def test_times_span_the_exposure() -> None:
    like = torch.zeros(1)
    assert trajectory_times(5, like).tolist() == [-0.5, -0.25, 0.0, 0.25, 0.5]
    assert trajectory_times(1, like).tolist() == [0.0]


def test_trajectory_is_velocity_times_t_plus_acceleration_times_t_squared() -> None:
    motion = torch.tensor([3.0, -2.0, 4.0, 8.0]).view(1, 4, 1, 1).expand(1, 4, 2, 3)
    times = trajectory_times(3, motion)
    trajectory = motion_to_trajectory(motion, times)
    assert trajectory.shape == (1, 3, 2, 2, 3)
    expected = [[-1.5 + 1.0, 1.0 + 2.0], [0.0, 0.0], [1.5 + 1.0, -1.0 + 2.0]]
    torch.testing.assert_close(trajectory[0, :, :, 0, 0], torch.tensor(expected))


def test_upsampled_trajectory_equals_trajectory_of_upsampled_motion() -> None:
    motion = torch.randn(2, 4, 5, 6)
    times = trajectory_times(4, motion)
    size = (20, 24)
    upsampled_motion = F.interpolate(motion, size=size, mode="bilinear", align_corners=False)
    torch.testing.assert_close(
        upsample_trajectory(motion_to_trajectory(motion, times), size),
        motion_to_trajectory(upsampled_motion, times),
        atol=1e-5,
        rtol=1e-5,
    )


def test_reblur_of_horizontal_translation_is_a_box_blur() -> None:
    image = torch.rand(1, 3, 12, 17, generator=torch.Generator().manual_seed(0))
    # 5 points over a 4-pixel path: integer offsets -2..2, i.e. a 5-tap box filter.
    trajectory = _uniform_trajectory(1, 12, 17, dx=4.0, dy=0.0, points=5)
    padded = F.pad(image, (2, 2, 0, 0), mode="replicate")  # border padding = edge pixels
    box = sum(padded[..., shift : shift + 17] for shift in range(5)) / 5
    torch.testing.assert_close(reblur(image, trajectory), box, atol=1e-6, rtol=1e-6)


def test_reblur_with_half_pixel_offsets_is_bilinear() -> None:
    image = torch.rand(2, 1, 6, 9, generator=torch.Generator().manual_seed(1))
    # Two points at -1/2 and +1/2 pixel vertically: weights 1/4, 1/2, 1/4 in y.
    trajectory = _uniform_trajectory(2, 6, 9, dx=0.0, dy=1.0, points=2)
    padded = F.pad(image, (0, 0, 1, 1), mode="replicate")
    expected = 0.25 * padded[..., :-2, :] + 0.5 * image + 0.25 * padded[..., 2:, :]
    torch.testing.assert_close(reblur(image, trajectory), expected, atol=1e-6, rtol=1e-6)


def test_reblur_without_motion_is_the_identity() -> None:
    image = torch.rand(1, 3, 5, 7)
    trajectory = torch.zeros(1, 4, 2, 5, 7)
    torch.testing.assert_close(reblur(image, trajectory), image)


def test_densify_inserts_points_on_each_segment() -> None:
    trajectory = _uniform_trajectory(1, 2, 2, dx=6.0, dy=0.0, points=3)  # x: -3, 0, 3
    dense = densify_trajectory(trajectory, 3)
    assert dense.shape == (1, 7, 2, 2, 2)
    torch.testing.assert_close(dense[0, :, 0, 0, 0], torch.tensor([-3.0, -2, -1, 0, 1, 2, 3]))
    assert densify_trajectory(trajectory, 1) is trajectory


def test_analyzer_shapes_on_sizes_that_do_not_divide() -> None:
    analyzer = MotionAnalyzer(in_channels=8, width=8, levels=3, motion_scale=8.0)
    motion, context = analyzer(torch.rand(2, 8, 10, 14), torch.rand(2, 1, 10, 14))
    assert motion.shape == (2, 4, 10, 14)
    assert context.shape == (2, 8, 10, 14)
    assert motion.abs().max() < 1.0  # starts from (almost) no motion
