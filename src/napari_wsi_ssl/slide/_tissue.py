"""Tissue detection: Otsu on HSV saturation at a low resolution, cleaned of specks and holes."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from ._slide import Slide

DEFAULT_MASK_MPP = 8.0  # µm/px of the mask when the slide's mpp is known
MAX_MASK_SIDE = 2048  # longest side of the mask
MIN_MASK_SIDE = 256
BLOCK = 1024  # mask pixels read per block, so memory stays small on huge slides


def saturation(rgb: np.ndarray) -> np.ndarray:
    """HSV saturation in [0, 1] of an (h, w, 3) uint8 image."""
    mx = rgb.max(axis=-1).astype(np.float32)
    mn = rgb.min(axis=-1).astype(np.float32)
    return np.where(mx > 0, (mx - mn) / np.maximum(mx, 1), 0.0).astype(np.float32)


def mask_downsample(slide: Slide, mpp: float | None = None) -> float:
    """The downsample of the tissue mask: ``mpp`` (default 8 µm/px) when known, kept to 256..2048 px."""
    longest = max(slide.dimensions)
    if slide.mpp is not None:
        ds = (mpp or DEFAULT_MASK_MPP) / slide.mpp[0]
    else:
        ds = longest / MAX_MASK_SIDE
    ds = max(ds, longest / MAX_MASK_SIDE)
    ds = min(ds, max(longest / MIN_MASK_SIDE, 1.0))
    return max(ds, 1.0)


def tissue_mask(slide: Slide, mpp: float | None = None) -> tuple[np.ndarray, float]:
    """Boolean tissue mask of a slide at a low resolution.

    Parameters
    ----------
    slide
        The open slide.
    mpp
        Resolution of the mask in µm/px (default 8, or a ~2000 px longest side without mpp).

    Returns
    -------
    mask, downsample
        The mask (True on tissue) and its downsample relative to level 0.
    """
    from skimage import morphology
    from skimage.filters import threshold_otsu

    ds = mask_downsample(slide, mpp)
    w0, h0 = slide.dimensions
    mw, mh = max(1, math.ceil(w0 / ds)), max(1, math.ceil(h0 / ds))
    sat = np.empty((mh, mw), np.float32)
    for by in range(0, mh, BLOCK):
        for bx in range(0, mw, BLOCK):
            bw, bh = min(BLOCK, mw - bx), min(BLOCK, mh - by)
            rgb = slide.read_scaled((round(bx * ds), round(by * ds)), (bw, bh), ds)
            sat[by : by + bh, bx : bx + bw] = saturation(rgb)
    if float(sat.max() - sat.min()) < 0.02:
        return np.zeros((mh, mw), bool), ds
    threshold = threshold_otsu(sat)
    mask = sat > threshold
    # specks and holes below ~0.05 % of the mask (at least a few pixels) are noise
    min_area = max(16, mask.size // 2000)
    mask = morphology.remove_small_objects(mask, max_size=min_area)
    mask = morphology.remove_small_holes(mask, max_size=min_area)
    return mask, ds
