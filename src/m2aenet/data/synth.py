"""The local-blur data engine: sharp photo in, (blur, sharp, mask, motion) out.

Pure functions, arrays in and out (files are written by `synth_writer`):

- `synthesize_local(background, textures, rng)`: 1-3 soft-edged objects cut from `textures`
  move over a static background during the exposure.
- `synthesize_global(scene, rng, size)`: camera shake moves the whole frame.
- `render_local` / `render_global`: the same with the motion given, for exact control.
- `SampleGenerator`: picks photos and crops for image i of a split deterministically from
  (seed, split, i) and calls the above; the CLI writer and the on-the-fly dataset share it.

Conventions: images are (H, W, 3); sizes are (height, width); exposure time t runs over
[-1/2, 1/2] and the sharp image is the frame at t = 0. See docs/data.md.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from m2aenet.data.camera import Camera, sample_camera
from m2aenet.data.compositing import (
    Box,
    Layer,
    average_exposure,
    composite_at_rest,
    image_to_linear,
    linear_to_srgb,
    motion_field,
)
from m2aenet.data.cutouts import Cutouts
from m2aenet.data.depth_of_field import shallow_focus
from m2aenet.data.draws import log_uniform
from m2aenet.data.motion_paths import (
    CameraShake,
    JointMotion,
    Motion,
    box_corners,
    max_displacement,
    max_speed,
    motion_times,
    path_length,
    sample_camera_shake,
    sample_object_motion,
    sub_frame_count,
)
from m2aenet.data.realism import Realism, realistic_objects
from m2aenet.data.sources import SPLITS, PhotoCache, random_crop
from m2aenet.data.synth_degrade import add_sensor_noise, jpeg_roundtrip, sample_noise_levels
from m2aenet.data.synth_shapes import object_alpha
from m2aenet.errors import InputError
from m2aenet.imageio import to_uint8

FORMAT_VERSION = 1
MOTION_SAMPLES = 8  # K: exposure times of the motion ground truth (see `motion_times`)
MODES = ("local", "global", "mixed")
# Coverage above which a pixel counts as touched by a moving object (one 8-bit level).
MASK_ALPHA = 1.0 / 255.0
_REFERENCE_SIDE = 512  # blur lengths below are quoted at this short side and scale with it


@dataclass
class SynthSample:
    """One synthetic pair.

    blur, sharp: uint8 (H, W, 3) sRGB; mask: bool (H, W), True where motion changed the
    content; motion: float16 (H, W, K, 2), see `compositing.motion_field`; params: JSON-ready.
    """

    blur: np.ndarray
    sharp: np.ndarray
    mask: np.ndarray
    motion: np.ndarray
    params: dict = field(default_factory=dict)


@dataclass
class MovingObject:
    """A foreground object: sRGB `texture` (h, w, 3), uint8 or float in [0, 1], cut out by
    `alpha` (h, w) in [0, 1], its top-left pixel at frame (`left`, `top`) at t = 0, moving
    with `motion`."""

    texture: np.ndarray
    alpha: np.ndarray
    top: int
    left: int
    motion: Motion


def image_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """The random stream of image `index`: depends only on (seed, split, index), so image i is
    the same whatever the count, and train / val / test never share a stream."""
    if split not in SPLITS:
        raise InputError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    if seed < 0 or index < 0:
        raise InputError(f"seed and index must be >= 0 (got seed={seed}, index={index})")
    return np.random.default_rng(np.random.SeedSequence([seed, SPLITS.index(split), index]))


def _length_scale(size: tuple[int, int]) -> float:
    return min(size) / _REFERENCE_SIDE


def local_blur_range(size: tuple[int, int]) -> tuple[float, float]:
    """(shortest, longest) object blur length in px: 4-60 px at 512 px, never under 3 px."""
    scale = _length_scale(size)
    low = max(3.0, 4.0 * scale)
    return low, max(2.0 * low, 60.0 * scale)


def global_blur_range(size: tuple[int, int]) -> tuple[float, float]:
    """(shortest, longest) camera-shake path in px: 4-36 px at 512 px (GoPro-like extents)."""
    scale = _length_scale(size)
    low = max(3.0, 4.0 * scale)
    return low, max(2.0 * low, 36.0 * scale)


def global_margin(size: tuple[int, int]) -> int:
    """Extra scene border (px, each side) `synthesize_global` needs around a `size` frame: the
    farthest a frame pixel can move (path plus rotation, see `sample_camera_shake`) + 2."""
    return math.ceil(1.25 * global_blur_range(size)[1]) + 2


def _to_uint8(image: np.ndarray) -> np.ndarray:
    return image if image.dtype == np.uint8 else to_uint8(image)


def _encode_boxes(linear: torch.Tensor, base: np.ndarray, boxes: list[Box]) -> np.ndarray:
    """uint8 sRGB of `linear` (3, H, W) inside `boxes`, `base` (H, W, 3) uint8 elsewhere."""
    out = base.copy()
    for y0, y1, x0, x1 in boxes:
        region = linear_to_srgb(linear[:, y0:y1, x0:x1]).permute(1, 2, 0).numpy()
        out[y0:y1, x0:x1] = to_uint8(region)
    return out


def _finish(
    layers: list[Layer],
    background: np.ndarray,
    sub_frames: list[int],
    motion_points: int,
    force_mask: bool = False,
    camera: Camera | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Render sharp and blur over uint8 `background` (H, W, 3); derive the mask and motion.

    With a `camera`, the layers' RGBA must already be scene radiance (`Camera.scene_radiance`)
    and both frames are developed by it (see `_develop_pair`)."""
    height, width = background.shape[:2]
    base = image_to_linear(background)
    if camera is not None:
        base = camera.scene_radiance(base)
    sharp_linear, at_rest, rest_boxes = composite_at_rest(base, layers)
    blur_linear, swept, blur_boxes = average_exposure(base, layers, sub_frames)
    motion = motion_field(layers, height, width, motion_times(motion_points))
    touched = (torch.maximum(swept, at_rest) > MASK_ALPHA).numpy()
    if camera is not None:
        blur, sharp, mask = _develop_pair(camera, blur_linear, sharp_linear, touched, force_mask)
        return blur, sharp, mask, motion.astype(np.float16)
    # Only boxes the layers reach are encoded; elsewhere both images are the background's
    # own 8-bit values, untouched.
    sharp = _encode_boxes(sharp_linear, background, rest_boxes)
    blur = _encode_boxes(blur_linear, background, blur_boxes)
    # The mask is every pixel a layer touched (at t = 0 or any sub-frame), plus any pixel
    # whose 8-bit value changed through a fainter touch, so blur == sharp exactly outside it.
    mask = touched | np.any(blur != sharp, axis=-1)
    if force_mask:
        mask = np.ones_like(mask)
    return blur, sharp, mask, motion.astype(np.float16)


def _develop_pair(
    camera: Camera,
    blur_linear: torch.Tensor,
    sharp_linear: torch.Tensor,
    touched: np.ndarray,
    force_mask: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Both frames through the same camera -> (blur, sharp, mask), uint8 / bool.

    The mask is every pixel a layer touched plus every pixel whose developed values differ
    (the optics spread the motion's change a pixel or two). JPEG is applied to both images,
    and the blurred one takes its JPEG pixels inside the mask only, so outside the mask blur
    and sharp stay equal byte for byte even though 8x8 blocks straddle the mask's edge.
    """
    blur, sharp = camera.develop(blur_linear), camera.develop(sharp_linear)
    mask = touched | np.any(blur != sharp, axis=-1)
    if force_mask:
        mask = np.ones_like(mask)
    if camera.jpeg is not None:
        sharp = jpeg_roundtrip(sharp, camera.jpeg)
        blur = np.where(mask[..., None], jpeg_roundtrip(blur, camera.jpeg), sharp)
    return blur, sharp, mask


def render_local(
    background: np.ndarray,
    objects: Sequence[MovingObject],
    motion_points: int = MOTION_SAMPLES,
    camera: Camera | None = None,
    max_sub_frames: int | None = None,
) -> SynthSample:
    """Blur `objects` (bottom to top) moving over the static sRGB `background` (H, W, 3).

    Images (background, textures) are uint8 or float in [0, 1]. With a `camera`, photos become
    scene radiance before the motion and both frames are developed by it after (`camera.py`).

    Sub-frames per object: enough that its fastest point moves <= 1 px between two of them, or
    at most `max_sub_frames` (ghosting: a fast object shows as separate copies, as in frames
    averaged from a low-frame-rate video). The motion ground truth has `motion_points` times.
    """
    layers, sub_frames, described = [], [], []
    for obj in objects:
        alpha = torch.from_numpy(np.ascontiguousarray(obj.alpha, dtype=np.float32))[None]
        radiance = image_to_linear(obj.texture)
        if camera is not None:
            radiance = camera.scene_radiance(radiance)
        rgba = torch.cat([radiance * alpha, alpha])
        layers.append(Layer(rgba, int(obj.top), int(obj.left), obj.motion))
        height, width = obj.alpha.shape
        rim = _alpha_rim(obj.alpha)
        # A limb swinging about a joint fills little of its box, whose far corners would
        # move much faster than any of its pixels: its speed is measured on its own extent.
        points = rim if isinstance(obj.motion, JointMotion) else box_corners(width, height)
        count = sub_frame_count(max_speed(obj.motion, points))
        sub_frames.append(count if max_sub_frames is None else min(count, max_sub_frames))
        described.append(
            {
                "position": [int(obj.left), int(obj.top)],
                "size": [int(width), int(height)],
                "motion": obj.motion.to_dict(),
                "blur_px": round(path_length(obj.motion, rim), 2),
                "sub_frames": sub_frames[-1],
            }
        )
    blur, sharp, mask, motion = _finish(
        layers, _to_uint8(background), sub_frames, motion_points, camera=camera
    )
    params = {"mode": "local", "objects": described, "mask_fraction": round(float(mask.mean()), 5)}
    if camera is not None:
        params["camera"] = camera.to_dict()
    return SynthSample(blur, sharp, mask, motion, params)


def _alpha_rim(alpha: np.ndarray) -> np.ndarray:
    """Points (P, 2) relative to the box centre on the object's half-alpha bounding box."""
    ys, xs = np.nonzero(alpha >= 0.5)
    if len(xs) == 0:
        return np.zeros((1, 2))
    height, width = alpha.shape
    cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
    x0, x1, y0, y1 = xs.min() - cx, xs.max() - cx, ys.min() - cy, ys.max() - cy
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1], [0, 0]], dtype=np.float64)


def synthesize_local(
    background: np.ndarray,
    textures: Sequence[np.ndarray],
    rng: np.random.Generator,
    blur_range: tuple[float, float] | None = None,
    motion_points: int = MOTION_SAMPLES,
) -> SynthSample:
    """Local motion blur: each texture (h, w, 3) becomes one soft-edged object on `background`.

    background: sRGB (H, W, 3) and textures: sRGB (h, w, 3), each at least 16 px a side, uint8
    or float in [0, 1];
    the object shape, its feather (0.5-1.5 px), position (up to ~35% outside the frame) and a
    random motion (blur length log-uniform in `blur_range`, default `local_blur_range`) come
    from `rng`. Later textures are on top.
    """
    height, width = background.shape[:2]
    low, high = blur_range or local_blur_range((height, width))
    objects = []
    for texture in textures:
        h, w = texture.shape[:2]
        feather = rng.uniform(0.5, 1.5)
        alpha = object_alpha(h, w, rng, feather)
        cx = rng.uniform(-0.15 * w, width - 1 + 0.15 * w)
        cy = rng.uniform(-0.15 * h, height - 1 + 0.15 * h)
        length = log_uniform(rng, low, high)
        motion = sample_object_motion(rng, length, radius=0.4 * max(h, w))
        top, left = round(cy - (h - 1) / 2), round(cx - (w - 1) / 2)
        objects.append(MovingObject(texture, alpha, top, left, motion))
    sample = render_local(background, objects, motion_points)
    for described, obj in zip(sample.params["objects"], objects, strict=True):
        described["feather_px"] = round(float(_feather_of(obj)), 3)
    return sample


def _feather_of(obj: MovingObject) -> float:
    """Edge width actually rendered: pixels with 0 < alpha < 1 per pixel of outline (approx)."""
    soft = float(((obj.alpha > 0.02) & (obj.alpha < 0.98)).sum())
    outline = max(float((obj.alpha >= 0.5).sum()) ** 0.5 * 4.0, 1.0)
    return soft / outline


def render_global(
    scene: np.ndarray,
    shake: CameraShake,
    size: tuple[int, int],
    motion_points: int = MOTION_SAMPLES,
    camera: Camera | None = None,
) -> SynthSample:
    """Camera-shake blur of a `size` = (H, W) frame cut from the centre of sRGB `scene`.

    scene: (H + 2m, W + 2m, 3), uint8 or float in [0, 1]; the margin m must hold the shake's
    largest move, so no padding ever shows. The mask is all ones.
    """
    height, width = size
    margin_y, margin_x = (scene.shape[0] - height) / 2, (scene.shape[1] - width) / 2
    if margin_y != margin_x or margin_y < 0 or margin_y != int(margin_y):
        raise ValueError(f"scene {scene.shape[:2]} is not frame {size} plus an even border")
    margin = int(margin_y)
    corners = box_corners(width, height)
    reach = max_displacement(shake, corners)
    if reach > margin - 1:
        raise ValueError(f"shake moves pixels {reach:.1f} px but the scene border is {margin} px")
    rgb = image_to_linear(scene)
    if camera is not None:
        rgb = camera.scene_radiance(rgb)
    rgba = torch.cat([rgb, torch.ones(1, *rgb.shape[-2:])])
    layer = Layer(rgba, -margin, -margin, shake)
    sub_frames = sub_frame_count(max_speed(shake, corners))
    black = np.zeros((height, width, 3), dtype=np.uint8)  # fully covered by the scene layer
    blur, sharp, mask, motion = _finish([layer], black, [sub_frames], motion_points, True, camera)
    params = {
        "mode": "global",
        "shake": shake.to_dict(),
        "blur_px": round(path_length(shake, corners), 2),
        "sub_frames": sub_frames,
        "mask_fraction": 1.0,
    }
    if camera is not None:
        params["camera"] = camera.to_dict()
    return SynthSample(blur, sharp, mask, motion, params)


def synthesize_global(
    scene: np.ndarray,
    rng: np.random.Generator,
    size: tuple[int, int],
    motion_points: int = MOTION_SAMPLES,
    blur_range: tuple[float, float] | None = None,
    camera: Camera | None = None,
) -> SynthSample:
    """Global (camera-shake) blur with a random smooth shake path and a small rotation.

    scene: sRGB (H + 2m, W + 2m, 3), uint8 or float in [0, 1], with m = `global_margin(size)`
    (or the margin of the size that `blur_range` was taken from, if that is larger).
    """
    height, width = size
    low, high = blur_range or global_blur_range(size)
    radius = 0.5 * math.hypot(width, height)
    shake = sample_camera_shake(rng, log_uniform(rng, low, high), radius)
    return render_global(scene, shake, size, motion_points, camera)


_LUMA = np.array([0.2126, 0.7152, 0.0722], dtype=np.float32) / 255.0


def _visible(texture: np.ndarray, background: np.ndarray, attempt: int) -> bool:
    """Whether an object cut from `texture` would show its motion well on `background` (both
    uint8). The first tries insist on texture of its own (blur shows all over the object, as
    on most real moving things); later ones also take a flat crop of a clearly different
    brightness (blur then shows at its edges only)."""
    luma = texture @ _LUMA
    if float(luma.std()) >= (0.06 if attempt < 3 else 0.03):
        return True
    return attempt >= 3 and abs(float(luma.mean() - (background @ _LUMA).mean())) >= 0.12


class SampleGenerator:
    """Makes image `index` of a synthetic set from a photo pool, deterministically.

    photos: the pool (see `sources.photo_pool`); size: (H, W); mode: local, global or mixed
    (global with probability `global_fraction`); noise: add random Poisson-Gaussian noise to
    the blur; jpeg: JPEG quality for the blur, or None; motion_points: K of the motion ground
    truth (it does not change the images); blur_reference_side: draw blur lengths as for a
    square frame of this side (training crops of 256 px can then carry the 4-60 px blur of
    512 px photos), default the frame itself; blur_length: (shortest, longest) blur path in
    pixels of the generated frame, drawn log-uniformly, for objects and camera shake alike
    (replaces the ranges scaled from the reference side); realism: the realistic scene mix
    and camera (`realism.Realism`; None: the original blob engine, bit for bit as before).
    Same arguments -> same pixels.
    """

    def __init__(
        self,
        photos: Sequence[Path],
        size: tuple[int, int] = (512, 512),
        mode: str = "local",
        seed: int = 0,
        split: str = "train",
        global_fraction: float = 0.2,
        noise: bool = False,
        jpeg: int | None = None,
        cache: PhotoCache | None = None,
        motion_points: int = MOTION_SAMPLES,
        blur_reference_side: int | None = None,
        blur_length: tuple[float, float] | None = None,
        realism: Realism | None = None,
    ) -> None:
        if mode not in MODES:
            raise InputError(f"unknown mode {mode!r}; expected one of {', '.join(MODES)}")
        if not photos:
            raise InputError("the photo pool is empty")
        if jpeg is not None and not 1 <= jpeg <= 95:
            raise InputError(f"JPEG quality must be in 1..95, got {jpeg}")
        check_size(size)
        # `not 0 <= x <= 1` also refuses NaN, which would reach meta.json as invalid JSON.
        if not 0.0 <= float(global_fraction) <= 1.0:
            raise InputError(f"global_fraction must be in [0, 1], got {global_fraction}")
        self.photos = [Path(p) for p in photos]
        self.size = (int(size[0]), int(size[1]))
        self.mode, self.seed, self.split = mode, int(seed), split
        self.global_fraction = float(global_fraction)
        self.noise, self.jpeg = bool(noise), jpeg
        if motion_points < 1:
            raise InputError(f"motion_points must be >= 1, got {motion_points}")
        self.motion_points = int(motion_points)
        side = int(blur_reference_side) if blur_reference_side else None
        self.length_size = (side, side) if side else self.size
        self.blur_length = check_blur_length(blur_length) if blur_length else None
        self.realism = realism
        weighted = realism is not None and realism.cutout > 0
        self.cutouts = Cutouts(realism.cutouts) if weighted else None  # decoded when drawn
        # Crops zoom in to 40% of a photo's short side at most, so 2.5x the frame side suffices.
        side = math.ceil(2.5 * (min(self.size) + 2 * self._margin()))
        self.cache = cache or PhotoCache(short_side=side)

    def __call__(self, index: int) -> SynthSample:
        rng = image_rng(self.seed, self.split, index)
        mode = self.mode
        if mode == "mixed":
            mode = "global" if rng.random() < self.global_fraction else "local"
        if self.realism is not None:
            camera = sample_camera(rng, self.realism.camera)
            if mode == "local":
                sample = self._realistic(rng, camera, self.realism)
            else:
                sample = self._global(rng, camera)
        else:
            sample = self._local(rng) if mode == "local" else self._global(rng)
        if self.noise:
            levels = sample_noise_levels(rng)
            sample.blur = add_sensor_noise(sample.blur, levels["shot"], levels["read"], rng)
            sample.params["noise"] = levels
        if self.jpeg is not None:
            sample.blur = jpeg_roundtrip(sample.blur, self.jpeg)
            sample.params["jpeg"] = self.jpeg
        return sample

    def _pick(
        self, rng: np.random.Generator, frame: tuple[int, int], avoid: Path | None = None
    ) -> tuple[Path, np.ndarray]:
        """A random photo of the pool; prefers ones that need no upscaling to 3/4 of `frame`."""
        candidates = [p for p in self.photos if p != avoid] or self.photos
        for _ in range(6):
            path = candidates[int(rng.integers(len(candidates)))]
            photo = self.cache.get(path)
            if min(photo.shape[0] / frame[0], photo.shape[1] / frame[1]) >= 0.75:
                break
        return path, photo

    def _local(self, rng: np.random.Generator) -> SynthSample:
        height, width = self.size
        path, photo = self._pick(rng, self.size)
        background, crop = random_crop(photo, self.size, rng)
        count = int(rng.choice([1, 2, 3], p=[0.45, 0.35, 0.2]))
        textures, sources = [], []
        for _ in range(count):
            area = log_uniform(rng, 0.03, 0.25) / math.sqrt(count) * height * width
            aspect = log_uniform(rng, 0.5, 2.0)
            h = int(np.clip(round(math.sqrt(area / aspect)), 16, max(16, 0.9 * height)))
            w = int(np.clip(round(math.sqrt(area * aspect)), 16, max(16, 0.9 * width)))
            for attempt in range(6):  # retry flat crops: an object must show its motion
                # Mostly cut from another photo, sometimes from elsewhere in the same one.
                same = rng.random() < 0.2 or len(self.photos) == 1
                source, source_photo = (path, photo) if same else self._pick(rng, (h, w), path)
                texture, info = random_crop(source_photo, (h, w), rng, reference=self.size)
                if _visible(texture, background, attempt):
                    break
            textures.append(texture)
            sources.append({"source": str(source), **info})
        sample = synthesize_local(
            background,
            textures,
            rng,
            blur_range=self.blur_length or local_blur_range(self.length_size),
            motion_points=self.motion_points,
        )
        sample.params["background"] = {"source": str(path), **crop}
        for described, source in zip(sample.params["objects"], sources, strict=True):
            described.update(source)
        return sample

    def _realistic(
        self, rng: np.random.Generator, camera: Camera, settings: Realism
    ) -> SynthSample:
        """A local scene of `realism.realistic_objects` through `camera`."""
        path, photo = self._pick(rng, self.size)
        background, crop = random_crop(photo, self.size, rng, min_fraction=settings.min_view)
        # Drawn only when the rate is set, so data made without the option stays the same.
        if settings.depth_of_field > 0 and rng.random() < settings.depth_of_field:
            background, crop["depth_of_field"] = shallow_focus(background, rng)

        def pick_texture(rng: np.random.Generator, size: tuple[int, int]) -> tuple:
            for attempt in range(6):  # retry flat crops, as `_local` does
                source, source_photo = self._pick(rng, size, path)
                texture, info = random_crop(source_photo, size, rng, reference=self.size)
                if _visible(texture, background, attempt):
                    break
            return texture, {"source": str(source), **info}

        blur_range = self.blur_length or local_blur_range(self.length_size)
        pick_cutout = self.cutouts.pick if self.cutouts is not None else None
        background, scene = realistic_objects(
            background, pick_texture, rng, settings, blur_range, pick_cutout
        )
        objects = [MovingObject(o.texture, o.alpha, o.top, o.left, o.motion) for o in scene]
        # Drawn only when the rate is set, so data made without the option stays the same.
        ghost = settings.ghosting > 0 and rng.random() < settings.ghosting
        sub_frames = int(rng.integers(3, 9)) if ghost else None
        sample = render_local(background, objects, self.motion_points, camera, sub_frames)
        sample.params["background"] = {"source": str(path), **crop}
        for described, obj in zip(sample.params["objects"], scene, strict=True):
            described.update(obj.described)
            if described.get("source") == "background":
                described["source"] = str(path)
        return sample

    def _margin(self) -> int:
        margin = max(global_margin(self.size), global_margin(self.length_size))
        if self.blur_length:  # the farthest a frame pixel can move (see `global_margin`)
            margin = max(margin, math.ceil(1.25 * self.blur_length[1]) + 2)
        return margin

    def _global(self, rng: np.random.Generator, camera: Camera | None = None) -> SynthSample:
        margin = self._margin()
        scene_size = (self.size[0] + 2 * margin, self.size[1] + 2 * margin)
        path, photo = self._pick(rng, scene_size)
        scene, crop = random_crop(photo, scene_size, rng)
        sample = synthesize_global(
            scene,
            rng,
            self.size,
            self.motion_points,
            self.blur_length or global_blur_range(self.length_size),
            camera,
        )
        sample.params["background"] = {"source": str(path), **crop}
        return sample


def check_blur_length(blur_length: Sequence[float]) -> tuple[float, float]:
    """(low, high) blur path lengths in px, checked: 1 <= low <= high <= 1000."""
    try:
        low, high = (float(value) for value in blur_length)
    except (TypeError, ValueError):
        raise InputError(
            f"bad blur length {blur_length!r}: expected (shortest, longest) in px"
        ) from None
    if not (math.isfinite(low) and math.isfinite(high) and 1.0 <= low <= high <= 1000.0):
        raise InputError(f"bad blur length {low:g}-{high:g} px: expected 1 <= low <= high <= 1000")
    return low, high


def check_size(size: tuple[int, int]) -> None:
    """Raise InputError unless size = (height, width) is two integers in 32..8192."""
    if len(size) != 2 or not all(isinstance(s, int | np.integer) and 32 <= s <= 8192 for s in size):
        raise InputError(f"bad image size {size!r}: expected (height, width), each 32..8192 px")
