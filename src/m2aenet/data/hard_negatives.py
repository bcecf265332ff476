"""Sharp-labelled look-alikes of motion blur, for the mask predictor (training crops only).

A predictor that only ever saw motion blur over clean photos learns "soft means blurred" and
marks defocus, flat dark areas, noise and JPEG blocks too: the stage-1 predictor marked 20% of
the test photos where 8% were blurred. Each transform here changes the blurred and the sharp
image *alike*, outside the motion mask (or everywhere, for global changes like gray), so those
pixels stay labelled sharp and their target stays their input: nothing to restore there.

Images are uint8 (H, W, 3); the mask is (H, W), nonzero where motion blurred the content.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from m2aenet.data.masks import blob_mask
from m2aenet.data.synth_degrade import jpeg_roundtrip
from m2aenet.imageio import to_uint8

_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)
# Defocus radii (px): the smallest drawn, and the largest a setting may ask for.
MIN_DEFOCUS_RADIUS, MAX_DEFOCUS_RADIUS = 1.5, 64.0


@dataclass(frozen=True)
class HardNegatives:
    """Probability of each transform per crop (independent draws)."""

    defocus: float = 0.25  # a blob region blurred by a disc, as out-of-focus background
    dark: float = 0.15  # a blob region darkened to 5-30%, flat and low in contrast
    noise: float = 0.15  # one Gaussian noise field added to both images
    jpeg: float = 0.15  # both images through JPEG at quality 30-90
    gray: float = 0.1  # both images gray
    # The disc's radius is drawn uniformly from [1.5, this] px: 5 px is a soft lens; a strongly
    # defocused background (the real sharp photos' bokeh) reaches 10-20 px.
    defocus_max_radius: float = 5.0

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if name == "defocus_max_radius":
                if not MIN_DEFOCUS_RADIUS <= value <= MAX_DEFOCUS_RADIUS:
                    raise ValueError(
                        f"defocus_max_radius must be in [{MIN_DEFOCUS_RADIUS:g}, "
                        f"{MAX_DEFOCUS_RADIUS:g}] px, got {value}"
                    )
            elif not 0.0 <= value <= 1.0:
                raise ValueError(f"hard negative probability {name} must be in [0, 1], got {value}")


def disc_kernel(radius: float) -> np.ndarray:
    """A normalized (2R+1, 2R+1) disc of `radius` px with anti-aliased rim (R = ceil(radius))."""
    size = int(np.ceil(radius))
    taps = np.arange(-size, size + 1, dtype=np.float32)
    distance = np.hypot(taps[:, None], taps[None, :])
    kernel = np.clip(radius + 0.5 - distance, 0.0, 1.0)
    return kernel / kernel.sum()


def defocus(image: np.ndarray, radius: float) -> np.ndarray:
    """`image` (H, W, 3) uint8 convolved with a disc of `radius` px (reflect padding)."""
    kernel = torch.from_numpy(disc_kernel(radius))
    pad = kernel.shape[0] // 2
    x = torch.from_numpy(image).permute(2, 0, 1)[:, None].float()  # (3, 1, H, W)
    x = F.conv2d(F.pad(x, (pad, pad, pad, pad), mode="reflect"), kernel[None, None])
    return to_uint8(x[:, 0].permute(1, 2, 0).numpy() / 255.0)


def _region_outside(mask: np.ndarray, rng: np.random.Generator, margin: int) -> np.ndarray:
    """A blob region (20-60% of the crop) that keeps `margin` px away from the motion mask."""
    height, width = mask.shape
    region = blob_mask(height, width, float(rng.uniform(0.2, 0.6)), rng)
    near = torch.from_numpy((mask > 0).astype(np.float32))[None, None]
    near = F.max_pool2d(near, 2 * margin + 1, stride=1, padding=margin)[0, 0].numpy() > 0
    return region & ~near


def apply_hard_negatives(
    blur: np.ndarray,
    sharp: np.ndarray,
    mask: np.ndarray,
    rng: np.random.Generator,
    settings: HardNegatives,
) -> tuple[np.ndarray, np.ndarray]:
    """(blur, sharp) with randomly drawn look-alikes applied to both; the mask is unchanged.

    Outside the mask the two images stay equal wherever they were equal, except near the mask
    after JPEG (8x8 blocks straddle its border; the loss weights those pixels little).
    """
    same = sharp is blur  # one image passed twice (whole sharp photos): transform it once

    def both(transform) -> None:
        nonlocal blur, sharp
        blur = transform(blur)
        sharp = blur if same else transform(sharp)

    if rng.random() < settings.defocus:
        radius = float(rng.uniform(MIN_DEFOCUS_RADIUS, settings.defocus_max_radius))
        # Beyond the disc's reach from the mask, so blurred pixels never leak into the region.
        region = _region_outside(mask, rng, int(np.ceil(radius)) + 1)[..., None]
        both(lambda i: np.where(region, defocus(i, radius), i))
    if rng.random() < settings.dark:
        region = _region_outside(mask, rng, 2)[..., None]
        factor = float(rng.uniform(0.05, 0.3))
        both(lambda i: np.where(region, to_uint8(i / 255.0 * factor), i))
    if rng.random() < settings.gray:
        both(lambda i: np.repeat(to_uint8((i @ _LUMA)[..., None] / 255.0), 3, -1))
    if rng.random() < settings.noise:
        sigma = float(rng.uniform(2.0, 10.0))
        field = rng.normal(0.0, sigma, blur.shape).astype(np.float32)
        both(lambda i: to_uint8((i + field) / 255.0))
    if rng.random() < settings.jpeg:
        quality = int(rng.integers(30, 91))
        both(lambda i: jpeg_roundtrip(i, quality))
    return blur, sharp
