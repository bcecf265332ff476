"""A camera after the blur: what a real photo goes through that a clean render does not.

Real locally blurred photos are not clean renders: bright lights are brighter than white and
smear into streaks, the exposure and tone curve vary, the lens is slightly soft, the sensor is
noisy (more so in bright areas), some sensors are gray and every file is JPEG. `CameraRates`
says how often each happens; `sample_camera` draws one camera per image; `Camera.scene_radiance`
is applied to the photos before the motion (so highlights above 1 are averaged over the
exposure and streak), `Camera.develop` to the exposure-averaged frame after it.

The sharp ground truth goes through the same camera (same draws, same noise field) as the
blurred image, so the pair differs only by the motion: outside the motion's reach both are
equal byte for byte. Linear frames are float32 torch (3, H, W); developed ones uint8 (H, W, 3).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F

from m2aenet.data.compositing import linear_to_srgb
from m2aenet.data.draws import log_uniform
from m2aenet.data.hard_negatives import disc_kernel
from m2aenet.imageio import to_uint8

_LUMA = torch.tensor([0.2126, 0.7152, 0.0722]).view(3, 1, 1)  # linear-light luminance (Rec. 709)
_HIGHLIGHT_KNEE = 0.75  # linear value above which a photo pixel may be a clipped light


@dataclass(frozen=True)
class CameraRates:
    """Probability per image of each camera effect (independent draws), each in [0, 1]."""

    highlights: float = 0.5  # near-white photo pixels become 2-8x brighter than white
    exposure: float = 0.5  # exposure gain of 2^(-1..+0.8) before clipping
    tone: float = 0.5  # a tone curve: contrast (S-curve or flatter) and gamma
    defocus: float = 0.2  # slight lens softness: a disc of radius 0.5-1.5 px
    shake: float = 0.15  # slight camera shake: a 1-3 px path over the whole frame
    noise: float = 0.6  # signal-dependent (Poisson-Gaussian) sensor noise
    jpeg: float = 0.5  # JPEG at quality 60-95
    gray: float = 0.1  # a gray (luminance-only) image

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if not 0.0 <= float(value) <= 1.0:
                raise ValueError(f"camera rate {name} must be in [0, 1], got {value}")


@dataclass(frozen=True)
class Camera:
    """One drawn camera. Neutral values (the defaults) leave a frame as a plain sRGB encode."""

    highlight_gain: float = 1.0  # radiance of a pure-white photo pixel (1: no highlights)
    exposure: float = 1.0  # linear gain before clipping
    contrast: float = 0.0  # -0.5..0.8: flatter .. S-curve, in sRGB values
    gamma: float = 1.0  # applied after the contrast curve
    defocus_radius: float = 0.0  # px; 0 = none
    shake_path: tuple[tuple[float, float], ...] = ()  # px; empty = none
    noise_shot: float = 0.0  # variance per unit of linear signal
    noise_read: float = 0.0  # variance floor
    noise_seed: int = 0  # seeds the one noise field shared by blur and sharp
    jpeg: int | None = None
    gray: bool = False

    def to_dict(self) -> dict:
        """JSON-ready description (what meta.json records per image)."""
        described = asdict(self)
        described["shake_path"] = [[round(x, 3), round(y, 3)] for x, y in self.shake_path]
        for key in ("highlight_gain", "exposure", "contrast", "gamma", "defocus_radius"):
            described[key] = round(float(described[key]), 4)
        return described

    @property
    def spreads(self) -> int:
        """How far (px) `develop` spreads a pixel's value to its neighbours (optics)."""
        reach = math.ceil(self.defocus_radius)
        if self.shake_path:
            reach += math.ceil(float(np.abs(np.asarray(self.shake_path)).max()))
        return reach

    def scene_radiance(self, linear: torch.Tensor) -> torch.Tensor:
        """Photo values (C, H, W) in [0, 1] -> scene radiance, with near-white values boosted.

        8-bit photos clip their lights at 1; giving them back radiance above 1 (smoothly,
        from the knee 0.75 to `highlight_gain` at 1) is what makes a moving light smear into a
        bright streak instead of a gray ghost. Monotonic; the identity when the gain is 1.
        """
        if self.highlight_gain == 1.0:
            return linear
        ramp = ((linear - _HIGHLIGHT_KNEE) / (1.0 - _HIGHLIGHT_KNEE)).clamp(0.0, 1.0) ** 2
        return linear * (1.0 + (self.highlight_gain - 1.0) * ramp)

    def develop(self, radiance: torch.Tensor) -> np.ndarray:
        """Exposure-averaged radiance (3, H, W) -> uint8 sRGB (H, W, 3), JPEG not included.

        Order as in a camera: gain, optics (defocus, shake; in linear light, before the
        sensor clips), gray, sensor noise, clipping, tone curve, sRGB encoding.
        """
        frame = radiance * self.exposure
        kernel = self.optics_kernel()
        if kernel is not None:
            pad_y, pad_x = kernel.shape[0] // 2, kernel.shape[1] // 2
            padded = F.pad(frame[:, None], (pad_x, pad_x, pad_y, pad_y), mode="replicate")
            frame = F.conv2d(padded, torch.from_numpy(kernel)[None, None])[:, 0]
        if self.gray:
            frame = (frame * _LUMA).sum(dim=0, keepdim=True).expand(3, -1, -1)
        if self.noise_shot > 0.0 or self.noise_read > 0.0:
            noise_rng = np.random.default_rng(self.noise_seed)
            channels = 1 if self.gray else 3
            normal = noise_rng.standard_normal((channels, *frame.shape[-2:]), dtype=np.float32)
            sigma = (self.noise_shot * frame.clamp_min(0.0) + self.noise_read).sqrt()
            frame = frame + sigma * torch.from_numpy(normal)
        srgb = linear_to_srgb(frame.clamp(0.0, 1.0))
        if self.contrast != 0.0:
            smooth = srgb * srgb * (3.0 - 2.0 * srgb)
            srgb = srgb + self.contrast * (smooth - srgb)
        if self.gamma != 1.0:
            srgb = srgb.clamp(0.0, 1.0) ** self.gamma
        return to_uint8(srgb.permute(1, 2, 0).numpy())

    def optics_kernel(self) -> np.ndarray | None:
        """The normalized point-spread function (k, k) of defocus and shake, or None."""
        kernel = None
        if self.defocus_radius > 0.0:
            kernel = disc_kernel(self.defocus_radius)
        if self.shake_path:
            shake = _path_kernel(np.asarray(self.shake_path))
            kernel = shake if kernel is None else _convolve_kernels(kernel, shake)
        return kernel


def _path_kernel(path: np.ndarray) -> np.ndarray:
    """A motion PSF: the points of `path` (n, 2) (x, y px) splatted bilinearly, normalized."""
    reach = math.ceil(float(np.abs(path).max())) + 1
    size = 2 * reach + 1
    kernel = np.zeros((size, size), dtype=np.float64)
    dense = np.concatenate(
        [np.linspace(a, b, 16, endpoint=False) for a, b in zip(path[:-1], path[1:], strict=True)]
        + [path[-1:]]
    )
    for x, y in dense + reach:
        x0, y0 = int(math.floor(x)), int(math.floor(y))
        fx, fy = x - x0, y - y0
        kernel[y0, x0] += (1 - fx) * (1 - fy)
        kernel[y0, x0 + 1] += fx * (1 - fy)
        kernel[y0 + 1, x0] += (1 - fx) * fy
        kernel[y0 + 1, x0 + 1] += fx * fy
    return (kernel / kernel.sum()).astype(np.float32)


def _convolve_kernels(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Full 2-D convolution of two odd-sized kernels (the PSF of applying both)."""
    out = F.conv2d(
        torch.from_numpy(a)[None, None],
        torch.from_numpy(b[::-1, ::-1].copy())[None, None],
        padding=(b.shape[0] - 1, b.shape[1] - 1),
    )
    return out[0, 0].numpy()


def sample_camera(rng: np.random.Generator, rates: CameraRates) -> Camera:
    """Draw one camera: every effect is drawn (so each rate changes only its own effect)."""
    draws = rng.random(8)
    highlight_gain = rng.uniform(2.0, 8.0)
    exposure = 2.0 ** rng.uniform(-1.0, 0.8)
    contrast, gamma = rng.uniform(-0.5, 0.8), log_uniform(rng, 0.8, 1.25)
    radius = rng.uniform(0.5, 1.5)
    angle, length = rng.uniform(0.0, 2.0 * math.pi), rng.uniform(1.0, 3.0)
    bend = rng.uniform(-0.5, 0.5) * length
    shot, read = log_uniform(rng, 1e-4, 4e-3), log_uniform(rng, 1e-6, 1e-4)
    noise_seed = int(rng.integers(2**31))
    quality = int(rng.integers(60, 96))
    direction = np.array([math.cos(angle), math.sin(angle)])
    normal = np.array([-direction[1], direction[0]])
    times = np.linspace(-0.5, 0.5, 5)
    path = times[:, None] * direction * length + (times[:, None] ** 2 - 1 / 12) * normal * bend
    return Camera(
        highlight_gain=float(highlight_gain) if draws[0] < rates.highlights else 1.0,
        exposure=float(exposure) if draws[1] < rates.exposure else 1.0,
        contrast=float(contrast) if draws[2] < rates.tone else 0.0,
        gamma=float(gamma) if draws[2] < rates.tone else 1.0,
        defocus_radius=float(radius) if draws[3] < rates.defocus else 0.0,
        shake_path=tuple((float(x), float(y)) for x, y in path) if draws[4] < rates.shake else (),
        noise_shot=float(shot) if draws[5] < rates.noise else 0.0,
        noise_read=float(read) if draws[5] < rates.noise else 0.0,
        noise_seed=noise_seed,
        jpeg=quality if draws[6] < rates.jpeg else None,
        gray=bool(draws[7] < rates.gray),
    )
