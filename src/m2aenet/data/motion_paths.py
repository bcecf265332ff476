"""Motion during one exposure: moving-object paths and camera-shake trajectories.

Time runs over the exposure, t in [-1/2, 1/2]; t = 0 is mid-exposure, the sharp frame. Every motion
maps a content point p0, where it sits in the sharp frame, to where it is at time t:

    p(t) = c + d(t) + A(t) (p0 - c)

with c a fixed centre (the object's centre, or the frame centre for camera shake), d(t) a
translation and A(t) a rotation times a scale, in pixels, x right and y down. d(0) = 0 and
A(0) = I, so the motion is the identity at t = 0 and the sharp frame is never resampled.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

OBJECT_MOTION_KINDS = ("linear", "curved", "accelerating", "rotating")
# Relative frequency of each kind for a random object.
_KIND_WEIGHTS = np.array([0.35, 0.25, 0.2, 0.2])
# "approach": the object comes closer or recedes (mostly a scale change over the exposure). Kept
# out of the default draw above so data made before it reproduces bit for bit.
ALL_OBJECT_MOTION_KINDS = OBJECT_MOTION_KINDS + ("approach",)
# Time samples used to measure path lengths and speeds; fine enough that a piecewise-linear
# shake path (33 control points) is measured exactly and quadratic paths to well under 1%.
_MEASURE_STEPS = 256


def exposure_times(count: int) -> np.ndarray:
    """The midpoints of `count` equal slices of the exposure: float64 (count,) in (-1/2, 1/2).

    Averaging frames rendered at these times is the midpoint rule for the exposure integral.
    """
    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    return (np.arange(count, dtype=np.float64) + 0.5) / count - 0.5


def motion_times(count: int) -> np.ndarray:
    """`count` exposure times evenly spaced over [-1/2, 1/2], ends included ([0] for one):
    float64 (count,). The motion ground truth is given at these times, the same ones the
    model's trajectories use (`m2aenet.models.motion.trajectory_times`)."""
    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    return np.zeros(1) if count == 1 else np.linspace(-0.5, 0.5, count)


def _rotation_scale(angle: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """(n,) angles (radians, clockwise on screen as y points down) and scales -> (n, 2, 2)."""
    cos, sin = np.cos(angle) * scale, np.sin(angle) * scale
    return np.stack([np.stack([cos, -sin], -1), np.stack([sin, cos], -1)], -2)


@dataclass(frozen=True)
class ObjectMotion:
    """Rigid motion of an object about its centre: d(t) = v t + a t^2, A(t) = exp(s t) R(w t).

    velocity: (x, y) px per exposure; acceleration: (x, y) px per exposure^2 (a path bends when
    it is perpendicular to the velocity and speeds up or slows down when parallel);
    rotation: radians turned over the exposure; log_scale: log of the scale change over it.
    """

    kind: str
    velocity: tuple[float, float]
    acceleration: tuple[float, float] = (0.0, 0.0)
    rotation: float = 0.0
    log_scale: float = 0.0

    def transform(self, times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Times (n,) -> A (n, 2, 2) and d (n, 2) of p(t) = c + d + A (p0 - c)."""
        t = np.asarray(times, dtype=np.float64).reshape(-1, 1)
        d = t * np.asarray(self.velocity) + t**2 * np.asarray(self.acceleration)
        matrix = _rotation_scale(self.rotation * t[:, 0], np.exp(self.log_scale * t[:, 0]))
        return matrix, d

    def to_dict(self) -> dict:
        """JSON-ready description (what meta.json records per object)."""
        return {
            "kind": self.kind,
            "velocity": [round(float(v), 4) for v in self.velocity],
            "acceleration": [round(float(v), 4) for v in self.acceleration],
            "rotation_deg": round(math.degrees(self.rotation), 4),
            "log_scale": round(float(self.log_scale), 5),
        }


@dataclass(frozen=True)
class CameraShake:
    """Camera shake as seen in the image: a translation path and an in-plane rotation.

    `times` are control times over [-1/2, 1/2]; `path` (n, 2) the image displacement and
    `angles` (n,) the rotation (radians, about the frame centre) at each, both zero at t = 0;
    values between control times are interpolated linearly.
    """

    times: tuple[float, ...]
    path: tuple[tuple[float, float], ...]
    angles: tuple[float, ...]

    def transform(self, times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Times (n,) -> A (n, 2, 2) and d (n, 2) of p(t) = c + d + A (p0 - c)."""
        t = np.asarray(times, dtype=np.float64).reshape(-1)
        path = np.asarray(self.path, dtype=np.float64)
        d = np.stack([np.interp(t, self.times, path[:, i]) for i in range(2)], -1)
        angle = np.interp(t, self.times, self.angles)
        return _rotation_scale(angle, np.ones_like(angle)), d

    def to_dict(self) -> dict:
        """JSON-ready description (what meta.json records for a global-blur image)."""
        return {
            "kind": "camera_shake",
            "times": [round(float(v), 5) for v in self.times],
            "path": [[round(float(x), 4), round(float(y), 4)] for x, y in self.path],
            "angles_deg": [round(math.degrees(a), 5) for a in self.angles],
        }


@dataclass(frozen=True)
class JointMotion:
    """A part of an object that turns about a joint while the whole object moves.

    body: the object's motion (about the sprite centre c); joint: the joint's position relative
    to c at t = 0, (x, y) px; swing: radians the part turns about the joint over the exposure.
    A part point p0 goes to p(t) = c + d_b + A_b (j - c) + A_b R(swing t) (p0 - j), i.e.
    A = A_b R and d = d_b + A_b (j - c) - A (j - c): still one affine map per time.
    """

    body: ObjectMotion
    joint: tuple[float, float]
    swing: float

    @property
    def kind(self) -> str:
        return "joint"

    def transform(self, times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Times (n,) -> A (n, 2, 2) and d (n, 2) of p(t) = c + d + A (p0 - c)."""
        body_matrix, body_d = self.body.transform(times)
        t = np.asarray(times, dtype=np.float64).reshape(-1)
        turn = _rotation_scale(self.swing * t, np.ones_like(t))
        matrix = body_matrix @ turn
        joint = np.asarray(self.joint, dtype=np.float64)
        d = body_d + body_matrix @ joint - matrix @ joint
        return matrix, d

    def to_dict(self) -> dict:
        """JSON-ready description (what meta.json records for a jointed part)."""
        return {
            "kind": "joint",
            "body": self.body.to_dict(),
            "joint": [round(float(v), 3) for v in self.joint],
            "swing_deg": round(math.degrees(self.swing), 4),
        }


Motion = ObjectMotion | CameraShake | JointMotion


def point_positions(motion: Motion, points: np.ndarray, times: np.ndarray) -> np.ndarray:
    """Positions (n, P, 2) at `times` (n,) of points given relative to the centre (P, 2)."""
    matrix, d = motion.transform(times)
    return d[:, None, :] + np.einsum("nij,pj->npi", matrix, np.asarray(points, dtype=np.float64))


def path_length(motion: Motion, points: np.ndarray) -> float:
    """Longest path (px) any of `points` (P, 2, relative to the centre) travels in the exposure."""
    positions = point_positions(motion, points, np.linspace(-0.5, 0.5, _MEASURE_STEPS + 1))
    return float(np.linalg.norm(np.diff(positions, axis=0), axis=-1).sum(axis=0).max())


def max_speed(motion: Motion, points: np.ndarray) -> float:
    """Highest speed (px per exposure) any of `points` (P, 2, relative to the centre) reaches."""
    positions = point_positions(motion, points, np.linspace(-0.5, 0.5, _MEASURE_STEPS + 1))
    steps = np.linalg.norm(np.diff(positions, axis=0), axis=-1)
    return float(steps.max() * _MEASURE_STEPS)


def max_displacement(motion: Motion, points: np.ndarray) -> float:
    """Farthest (px) any of `points` (P, 2) gets from where it is at t = 0."""
    positions = point_positions(motion, points, np.linspace(-0.5, 0.5, _MEASURE_STEPS + 1))
    return float(np.linalg.norm(positions - point_positions(motion, points, [0.0]), axis=-1).max())


def sub_frame_count(speed: float, minimum: int = 3) -> int:
    """Sub-frames needed so consecutive ones are at most 1 px apart at `speed` px per exposure."""
    return max(minimum, math.ceil(speed))


def box_corners(width: float, height: float) -> np.ndarray:
    """Corners and edge midpoints (8, 2) of a width x height box, relative to its centre."""
    hx, hy = width / 2.0, height / 2.0
    return np.array(
        [[-hx, -hy], [hx, -hy], [hx, hy], [-hx, hy], [0, -hy], [hx, 0], [0, hy], [-hx, 0]],
        dtype=np.float64,
    )


def sample_object_motion(
    rng: np.random.Generator, length: float, radius: float, kind: str | None = None
) -> ObjectMotion:
    """A random object motion whose farthest-moving point travels about `length` px.

    `radius` is the object's half-size in px (for rotations, which move its rim the most).
    Kinds: linear, curved (acceleration across the velocity), accelerating (along it),
    rotating (turns and slightly changes scale while it drifts) and approach (grows or shrinks
    by up to a factor 1.65 over the exposure, coming closer or receding, while it drifts; only
    when asked for by name).
    """
    if kind is None:
        kind = str(rng.choice(OBJECT_MOTION_KINDS, p=_KIND_WEIGHTS))
    if kind not in ALL_OBJECT_MOTION_KINDS:
        raise ValueError(f"unknown motion kind {kind!r}; expected one of {ALL_OBJECT_MOTION_KINDS}")
    angle = rng.uniform(0.0, 2.0 * math.pi)
    direction = np.array([math.cos(angle), math.sin(angle)])
    normal = np.array([-direction[1], direction[0]])
    acceleration = np.zeros(2)
    rotation = log_scale = 0.0
    translation = length
    if kind == "curved":
        acceleration = normal * rng.choice([-1.0, 1.0]) * rng.uniform(0.6, 2.0)
    elif kind == "accelerating":
        # |a| < |v| keeps the speed v + 2 a t from reversing within the exposure.
        acceleration = direction * rng.choice([-1.0, 1.0]) * rng.uniform(0.4, 0.9)
    elif kind == "rotating":
        share = rng.uniform(0.4, 1.0)  # part of the blur length that comes from turning
        rotation = rng.choice([-1.0, 1.0]) * min(
            share * length / max(radius, 1.0), math.radians(45)
        )
        log_scale = rng.uniform(-0.08, 0.08)
        translation = max(length - abs(rotation) * radius, 0.0)
    elif kind == "approach":
        # The rim moves about radius * |log_scale| by scaling; the rest of the length drifts.
        share = rng.uniform(0.5, 1.0)
        log_scale = rng.choice([-1.0, 1.0]) * min(share * length / max(radius, 1.0), 0.5)
        translation = max(length - abs(log_scale) * radius, 0.0)
    motion = ObjectMotion(kind, tuple(direction), tuple(acceleration), rotation, log_scale)
    # Translation and acceleration scale together, so the path's shape is kept.
    centre_length = path_length(
        ObjectMotion(kind, motion.velocity, motion.acceleration), np.zeros((1, 2))
    )
    gain = translation / centre_length if centre_length > 0 else 0.0
    return ObjectMotion(
        kind,
        (float(direction[0] * gain), float(direction[1] * gain)),
        (float(acceleration[0] * gain), float(acceleration[1] * gain)),
        float(rotation),
        float(log_scale),
    )


def sample_camera_shake(
    rng: np.random.Generator, length: float, radius: float, max_rotation_share: float = 0.25
) -> CameraShake:
    """A smooth random camera-shake trajectory whose centre path is `length` px long.

    The velocity is a drift plus integrated Gaussian noise (so the path wanders and bends like
    hand shake in GoPro-style footage); the rotation is a small smooth wander that moves the
    frame corners (at `radius` px from the centre) by at most `max_rotation_share * length`.
    """
    steps = 32
    times = np.linspace(-0.5, 0.5, steps + 1)
    angle = rng.uniform(0.0, 2.0 * math.pi)
    drift = np.array([math.cos(angle), math.sin(angle)])
    wander = rng.uniform(0.3, 1.5)  # jitter relative to the drift: straight to very curvy
    velocity = drift + wander * np.cumsum(rng.standard_normal((steps, 2)), axis=0) / math.sqrt(
        steps
    )
    path = np.concatenate([np.zeros((1, 2)), np.cumsum(velocity, axis=0)])
    path_len = float(np.linalg.norm(np.diff(path, axis=0), axis=-1).sum())
    path = path * (length / max(path_len, 1e-9))
    path -= path[steps // 2]  # t = 0 is the control point in the middle
    # The angle is a twice-integrated walk, so it turns smoothly (one or two swings at most)
    # instead of jittering: hand shake rotates the camera slowly compared with the exposure.
    turn = np.concatenate([[0.0], np.cumsum(np.cumsum(rng.standard_normal(steps)))])
    turn -= turn[steps // 2]
    peak = float(np.abs(turn).max())
    max_angle = rng.uniform(0.0, max_rotation_share) * length / max(radius, 1.0)
    angles = turn / peak * max_angle if peak > 0 else turn
    return CameraShake(
        tuple(float(v) for v in times),
        tuple((float(x), float(y)) for x, y in path),
        tuple(float(a) for a in angles),
    )
