"""Per-nucleus measurements as CSV."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import numpy as np

from .._atomic import atomic_write_text
from ..errors import ExportError
from ._arrays import MppLike, as_mpp_xy

COLUMNS = ("id", "centroid_x_um", "centroid_y_um", "area_um2", "mean_haematoxylin")


def haematoxylin(rgb: np.ndarray) -> np.ndarray:
    """The haematoxylin optical density of an RGB image (``skimage.color.rgb2hed`` channel 0)."""
    from skimage.color import rgb2hed

    return rgb2hed(np.asarray(rgb)[..., :3]).astype(np.float32)[..., 0]


def write_nuclei_csv(
    path: str | Path,
    labels: Any,
    rgb_or_hema: Any,
    mpp: MppLike,
    *,
    downsample: float = 1.0,
    offset: tuple[float, float] = (0.0, 0.0),
) -> Path:
    """Write one row per nucleus: id, centroid (µm), area (µm²), mean haematoxylin.

    Parameters
    ----------
    labels
        int instance labels (0 = background).
    rgb_or_hema
        The RGB image under the labels (haematoxylin is computed by colour deconvolution), or a
        2-D haematoxylin image of the same shape.
    mpp
        µm per level-0 pixel; without it, the lengths are in level-0 pixels.
    downsample, offset
        Level-0 pixels per pixel of ``labels`` and level-0 ``(x, y)`` of their top-left corner.
    """
    from skimage.measure import regionprops

    lab = np.asarray(labels)
    img = np.asarray(rgb_or_hema)
    hema = haematoxylin(img) if img.ndim == 3 else img.astype(np.float32)
    if hema.shape != lab.shape:
        raise ExportError(f"labels {lab.shape} and image {hema.shape[:2]} differ in shape", path)
    mx, my = as_mpp_xy(mpp) or (1.0, 1.0)
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(COLUMNS)
    for region in regionprops(lab.astype(np.int64, copy=False), intensity_image=hema):
        cy, cx = region.centroid
        writer.writerow(
            [
                region.label,
                f"{((cx + 0.5) * downsample + offset[0]) * mx:.3f}",
                f"{((cy + 0.5) * downsample + offset[1]) * my:.3f}",
                f"{region.area * downsample**2 * mx * my:.3f}",
                f"{float(region.intensity_mean):.5f}",
            ]
        )
    return atomic_write_text(path, buf.getvalue())
