"""Shallow depth of field for realistic scenes: part of the background photo out of focus.

Photos of moving things are often taken with a sharp subject before a strongly defocused
background (sports, animals, street portraits). A mask predictor that never saw such
backgrounds labelled sharp marks them as motion blur: 40-48% of the devset's butterfly and
footballer photos (issue 19). Here a smooth region of the background, growing from one side of
the frame as distance does, is blurred by a lens disc before the objects are drawn; the
moving objects stay in focus. The defocus belongs to the scene, so the blurred and the sharp
frame both carry it and the motion mask is 0 there: nothing to restore.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from m2aenet.data.draws import log_uniform
from m2aenet.data.hard_negatives import defocus
from m2aenet.data.masks import smooth_noise
from m2aenet.imageio import to_uint8

# Disc radii in px of a 512-px frame (scaled with the frame's short side): 2 px is a soft
# background, 16 px the bokeh of a telephoto lens at f/2.8.
SMALLEST_RADIUS, LARGEST_RADIUS = 2.0, 16.0


def shallow_focus(background: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """`background` (H, W, 3) uint8 with 30-95% of it out of focus, and a JSON-ready description
    {"radius" (px), "share" (of the frame defocused)}.

    The far region is a smooth random field tilted along a random direction (the far side of
    a scene lies to one side of the frame), thresholded at the drawn share; focus falls off
    over about one radius at its border, as it does through a real scene's depth.
    """
    height, width = background.shape[:2]
    scale = min(height, width) / 512.0
    radius = max(1.5, scale * log_uniform(rng, SMALLEST_RADIUS, LARGEST_RADIUS))
    share = float(rng.uniform(0.3, 0.95))
    angle = rng.uniform(0.0, 2.0 * math.pi)
    tilt = rng.uniform(0.0, 4.0)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    ramp = (math.cos(angle) * (xs - width / 2) + math.sin(angle) * (ys - height / 2)) / max(
        height, width
    )
    field = 0.5 * smooth_noise(height, width, max(height, width) / 3.0, rng) + tilt * ramp
    far = field >= np.quantile(field, 1.0 - share)
    weight = ndimage.gaussian_filter(far.astype(np.float32), sigma=radius)[..., None]
    blurred = defocus(background, radius).astype(np.float32)
    out = to_uint8((background + weight * (blurred - background)) / 255.0)
    return out, {"radius": round(float(radius), 3), "share": round(share, 4)}
