"""The realistic scene mix of the data engine (`m2aenet synth --realism`).

The default engine moves 1-3 feathered blobs over a clean photo. A model trained on that learns
blobs: on real photos it missed moving cars and marked sharp shirts (issue 19). With `Realism`,
a local scene has 1-4 objects whose outlines come from real photo structure (merged image
segments, cut by or joined with polygons for straight edges, thin limbs; photographed objects
with their own alpha, `cutouts.py`; blobs stay one kind among others), up to 40% of the
frame, cut from other photos or from the background photo itself (what they uncover is
inpainted); limbs may swing about a joint while the body moves,
objects may approach or recede; and every frame goes through a random camera (`camera.py`).

`Realism` is a typed settings record (frozen dataclass); `realism_from_overrides` builds one
from `KEY=VALUE` strings (the CLI's `--realism-set`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from m2aenet.data.camera import CameraRates
from m2aenet.data.draws import log_uniform
from m2aenet.data.motion_paths import JointMotion, Motion, path_length, sample_object_motion
from m2aenet.data.segment_shapes import (
    feathered_alpha,
    fill_behind,
    segment_region,
    thin_part,
    with_straight_edges,
)
from m2aenet.data.synth_shapes import object_alpha
from m2aenet.errors import InputError

SHAPE_KINDS = ("segment", "polygon", "blob", "cutout")
_LUMA = np.array([0.2126, 0.7152, 0.0722], dtype=np.float32) / 255.0
# Mean luma step between neighbouring pixels (0-1 scale) a same-photo cut-out needs: sky and
# smooth gradients have 0.002-0.003, defocused backgrounds about 0.005; crops of the train photos
# have a median of 0.008 (the half under it comes from another photo instead).
_MIN_SAME_PHOTO_EDGES = 0.008


@dataclass(frozen=True)
class Realism:
    """How realistic local scenes are drawn. Weights are relative; rates are probabilities.

    segment / polygon / blob / cutout: weights of the shape kinds (merged photo segments;
    segments cut by or joined with a polygon; the default engine's noisy ellipses;
    photographed objects with their own alpha from the folder `cutouts`, which a cutout
    weight > 0 needs; weight 0 draws nothing, so data made before stays the same).
    same_photo: share of segment/polygon objects cut from the background photo at their own
    place (the hole they leave is inpainted). max_objects: 1..max_objects objects per image
    (fewer more likely).
    min_area / max_area: object area as a share of the frame, log-uniform (the largest object
    of an image may reach max_area; more objects are smaller). thin_part: rate of a thin limb
    attached to an object; joint: rate that the limb swings about its joint while the body
    moves; approach: rate of the approach/recede motion (scale change over the exposure).
    ghosting: rate of an image rendered from only 3-8 sub-frames, as frames averaged from a
    low-frame-rate video are (fast movers leave separate, see-through copies instead of a
    smooth smear); 0 draws nothing, so data made before the option stays bit for bit the same.
    depth_of_field: rate of a background partly out of focus behind in-focus moving objects
    (`depth_of_field.shallow_focus`; labelled sharp). min_view: the smallest share of the
    photo's short side a frame shows (1: always the whole photo, downscaled, as users' photos
    are; the default 0.4 zooms in up to 2.5x). Both at their defaults draw as before.
    camera: the camera effect rates.
    """

    segment: float = 0.45
    polygon: float = 0.35
    blob: float = 0.2
    same_photo: float = 0.3
    max_objects: int = 4
    min_area: float = 0.01
    max_area: float = 0.4
    thin_part: float = 0.3
    joint: float = 0.6
    approach: float = 0.15
    ghosting: float = 0.0
    depth_of_field: float = 0.0
    min_view: float = 0.4
    cutout: float = 0.0
    cutouts: str | None = None
    camera: CameraRates = field(default_factory=CameraRates)

    def __post_init__(self) -> None:
        weights = (self.segment, self.polygon, self.blob, self.cutout)
        if min(weights) < 0.0 or sum(weights) <= 0.0:
            raise ValueError(f"shape weights must be >= 0 with a positive sum, got {weights}")
        if self.cutout > 0.0 and not self.cutouts:
            raise ValueError("cutout > 0 needs cutouts=FOLDER (scripts/collect_cutouts.py)")
        for name in ("same_photo", "thin_part", "joint", "approach", "ghosting", "depth_of_field"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"realism rate {name} must be in [0, 1], got {value}")
        if not 0.0 < self.min_view <= 1.0:
            raise ValueError(f"min_view must be in (0, 1], got {self.min_view}")
        if not 1 <= self.max_objects <= 8:
            raise ValueError(f"max_objects must be in 1..8, got {self.max_objects}")
        if not 0.0 < self.min_area <= self.max_area <= 0.6:
            raise ValueError(
                f"need 0 < min_area <= max_area <= 0.6, got {self.min_area}, {self.max_area}"
            )

    def to_dict(self) -> dict:
        """JSON-ready settings (what meta.json records)."""
        return dataclasses.asdict(self)


def realism_from_overrides(overrides: Sequence[str] = ()) -> Realism:
    """`Realism` defaults changed by `KEY=VALUE` strings (`camera.KEY=VALUE` for camera rates).

    Raises InputError naming the key or value when one is unknown or out of range.
    """
    top: dict[str, object] = {}
    camera: dict[str, object] = {}
    top_fields = {f.name: f for f in dataclasses.fields(Realism) if f.name != "camera"}
    camera_fields = {f.name for f in dataclasses.fields(CameraRates)}
    for item in overrides:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep:
            raise InputError(f"bad --realism-set {item!r}: expected KEY=VALUE")
        try:
            if key.startswith("camera.") and key[7:] in camera_fields:
                camera[key[7:]] = float(text)
            elif key == "cutouts":
                top[key] = text.strip()
            elif key in top_fields:
                top[key] = int(text) if key == "max_objects" else float(text)
            else:
                known = sorted(top_fields) + [f"camera.{n}" for n in sorted(camera_fields)]
                raise InputError(f"unknown --realism-set key {key!r}; known: {', '.join(known)}")
        except ValueError:
            raise InputError(f"bad --realism-set {item!r}: {text!r} is not a number") from None
    try:
        return Realism(**top, camera=CameraRates(**camera))
    except ValueError as error:
        raise InputError(f"bad --realism-set: {error}") from None


@dataclass
class SceneObject:
    """A realistic object before rendering: texture (h, w, 3) uint8, alpha (h, w), its box's
    top-left at t = 0, motion, and a JSON-ready description."""

    texture: np.ndarray
    alpha: np.ndarray
    top: int
    left: int
    motion: Motion
    described: dict


# (rng, (h, w)) -> (texture uint8 (h, w, 3), description of where it came from)
TexturePicker = Callable[[np.random.Generator, tuple[int, int]], tuple[np.ndarray, dict]]
# (rng, opaque area in px, largest (h, w)) -> (texture uint8, alpha float32, description):
# `cutouts.Cutouts.pick`
CutoutPicker = Callable[
    [np.random.Generator, float, tuple[int, int]], tuple[np.ndarray, np.ndarray, dict]
]


def _edge_strength(texture: np.ndarray) -> float:
    """Mean absolute luma difference between neighbouring pixels of a uint8 (h, w, 3) crop."""
    luma = texture @ _LUMA
    return 0.5 * float(np.abs(np.diff(luma, axis=0)).mean() + np.abs(np.diff(luma, axis=1)).mean())


def _limit_area(hard: np.ndarray, max_pixels: int) -> np.ndarray:
    """Keep at most `max_pixels` of `hard`: the ones nearest its centroid (a rare trim when
    merging overshot the target)."""
    count = int(hard.sum())
    if count <= max_pixels:
        return hard
    ys, xs = np.nonzero(hard)
    distance = np.hypot(ys - ys.mean(), xs - xs.mean())
    keep = np.argsort(distance, kind="stable")[:max_pixels]
    out = np.zeros_like(hard)
    out[ys[keep], xs[keep]] = True
    return out


def object_count(rng: np.random.Generator, settings: Realism) -> int:
    """1..max_objects, each one 0.7x as likely as one fewer."""
    weights = 0.7 ** np.arange(settings.max_objects)
    return 1 + int(rng.choice(settings.max_objects, p=weights / weights.sum()))


def realistic_objects(
    background: np.ndarray,
    pick_texture: TexturePicker,
    rng: np.random.Generator,
    settings: Realism,
    blur_range: tuple[float, float],
    pick_cutout: CutoutPicker | None = None,
) -> tuple[np.ndarray, list[SceneObject]]:
    """Draw a realistic scene over uint8 `background` (H, W, 3); `pick_cutout` serves the
    cutout kind (needed when its weight is > 0).

    Returns the background with the holes of same-photo objects filled, and the objects bottom
    to top (a swinging limb follows its body as an object of its own, sharing its box).
    """
    height, width = background.shape[:2]
    frame = height * width
    count = object_count(rng, settings)
    high = max(settings.min_area, settings.max_area / math.sqrt(count))
    # The cutout kind joins the draw only when weighted, so older settings draw as before.
    kinds = SHAPE_KINDS if settings.cutout > 0 else SHAPE_KINDS[:3]
    weights = np.array([settings.segment, settings.polygon, settings.blob, settings.cutout])
    weights = weights[: len(kinds)]
    if settings.cutout > 0 and pick_cutout is None:
        raise InputError("the realism settings weight cut-outs, but none were given")
    original = background
    objects: list[SceneObject] = []
    for index in range(count):
        area = (
            log_uniform(rng, settings.min_area, high)
            if index
            else log_uniform(rng, settings.min_area, settings.max_area)
        )
        kind = kinds[int(rng.choice(len(kinds), p=weights / weights.sum()))]
        if kind == "cutout":
            largest = (int(0.95 * height), int(0.95 * width))
            texture, alpha, source = pick_cutout(rng, area * frame, largest)
            top, left = _overhanging_place(rng, alpha.shape, (height, width))
            motion = _object_motion(rng, settings, blur_range, alpha.shape)
            described = {"shape": "cutout", "same_photo": False, **source}
            objects.append(SceneObject(texture, alpha, top, left, motion, described))
            continue
        fill = rng.uniform(0.35, 0.7) if kind != "blob" else 0.7
        aspect = log_uniform(rng, 0.5, 2.0)
        box_area = area * frame / fill
        h = int(np.clip(round(math.sqrt(box_area / aspect)), 24, 0.95 * height))
        w = int(np.clip(round(math.sqrt(box_area * aspect)), 24, 0.95 * width))
        same = kind != "blob" and rng.random() < settings.same_photo
        if same:  # cut at its own place: the sharp frame shows the photo as it was
            top = int(rng.integers(0, height - h + 1))
            left = int(rng.integers(0, width - w + 1))
            texture = np.ascontiguousarray(original[top : top + h, left : left + w])
            source = {"source": "background", "box": [left, top, w, h]}
            # A flat patch moving over its own inpainted copy changes almost nothing visible,
            # yet the mask would mark it: such objects come from another photo instead.
            same = _edge_strength(texture) >= _MIN_SAME_PHOTO_EDGES
        if not same:
            texture, source = pick_texture(rng, (h, w))
            top, left = _overhanging_place(rng, (h, w), (height, width))
        feather = float(rng.uniform(0.5, 1.5))
        max_pixels = int(settings.max_area * frame)
        if kind == "blob":
            hard = object_alpha(h, w, rng, feather) >= 0.5
        else:
            hard = segment_region(texture, rng, fill=(fill, fill))
            if kind == "polygon":
                hard = with_straight_edges(hard, rng)
        hard = _limit_area(hard, max_pixels)
        limb = joint = None
        if rng.random() < settings.thin_part:
            limb, joint = thin_part(hard, rng)
            limb &= ~hard  # the body keeps its own pixels; the limb is what sticks out
            if rng.random() >= settings.joint or not limb.any():
                hard, limb = _limit_area(hard | limb, max_pixels), None
        full = hard if limb is None else hard | limb
        if same:
            background = fill_behind(background, full, top, left)
        motion = _object_motion(rng, settings, blur_range, (h, w))
        described = {"shape": kind, "same_photo": same, **source}
        full_alpha = feathered_alpha(full, feather)
        if limb is not None:
            # Body and limb share the box and texture; the limb's alpha reaches 2 px into the
            # body, so at t = 0 the two composite to the whole object without a seam.
            reach = ndimage.binary_dilation(limb, iterations=2) & full
            limb_alpha = np.minimum(feathered_alpha(reach, feather), full_alpha)
        if limb is None or not limb_alpha.any():  # (a limb can lie in the cleared box border)
            objects.append(SceneObject(texture, full_alpha, top, left, motion, described))
            continue
        body_alpha = np.minimum(feathered_alpha(hard, feather), full_alpha)
        objects.append(SceneObject(texture, body_alpha, top, left, motion, described))
        swing = _swing(rng, limb, joint, blur_range)
        centre = ((w - 1) / 2.0, (h - 1) / 2.0)
        relative = (joint[0] - centre[0], joint[1] - centre[1])
        part_motion = _within_blur_range(
            JointMotion(motion, relative, swing), limb_alpha > 0, centre, blur_range[1]
        )
        part = {"shape": "limb", "part_of": len(objects) - 1, **source}
        objects.append(SceneObject(texture, limb_alpha, top, left, part_motion, part))
    return background, objects


def _overhanging_place(
    rng: np.random.Generator, box: tuple[int, int], frame: tuple[int, int]
) -> tuple[int, int]:
    """(top, left) of a (h, w) box whose centre falls anywhere in the frame widened by 15% of
    the box: an object from elsewhere may enter or leave the picture."""
    h, w = box
    top = round(rng.uniform(-0.15 * h, frame[0] - 1 + 0.15 * h) - (h - 1) / 2)
    left = round(rng.uniform(-0.15 * w, frame[1] - 1 + 0.15 * w) - (w - 1) / 2)
    return top, left


def _object_motion(
    rng: np.random.Generator,
    settings: Realism,
    blur_range: tuple[float, float],
    box: tuple[int, int],
) -> Motion:
    """An object's own motion over a (h, w) box: a blur length from `blur_range`, approach /
    recede at `settings.approach`."""
    length = log_uniform(rng, *blur_range)
    kind = "approach" if rng.random() < settings.approach else None
    return sample_object_motion(rng, length, radius=0.4 * max(box), kind=kind)


def _within_blur_range(
    motion: JointMotion, limb: np.ndarray, centre: tuple[float, float], longest: float
) -> JointMotion:
    """`motion` with its swing reduced until no corner of the box around `limb` (where its
    alpha is nonzero) travels more than `longest` px: body motion plus swing can otherwise
    exceed the requested blur lengths. Paths of affine motions are longest at a box corner."""
    ys, xs = np.nonzero(limb)
    corners = np.array(
        [[x, y] for x in (xs.min(), xs.max()) for y in (ys.min(), ys.max())], dtype=np.float64
    ) - np.asarray(centre)
    for _ in range(12):
        if path_length(motion, corners) <= longest:
            break
        motion = dataclasses.replace(motion, swing=0.75 * motion.swing)
    return motion


def _swing(
    rng: np.random.Generator,
    limb: np.ndarray,
    joint: tuple[float, float],
    blur_range: tuple[float, float],
) -> float:
    """Radians a limb turns about `joint` so its tip moves a blur length of its own."""
    ys, xs = np.nonzero(limb)
    reach = float(np.hypot(xs - joint[0], ys - joint[1]).max()) if len(xs) else 1.0
    tip_path = log_uniform(rng, *blur_range)
    return float(rng.choice([-1.0, 1.0]) * min(tip_path / max(reach, 1.0), math.radians(60)))
