"""Per-nucleus measurements as CSV (haematoxylin from ``inference.nuclei``, torch-free)."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import numpy as np

from .._atomic import atomic_write_text
from ..errors import ExportError
from ..inference.nuclei import haematoxylin
from ._arrays import MppLike, as_mpp_xy

#: Columns with a known pixel size (µm) and without one (level-0 pixels).
COLUMNS = ("id", "centroid_x_um", "centroid_y_um", "area_um2", "mean_haematoxylin")
COLUMNS_PX = ("id", "centroid_x_px", "centroid_y_px", "area_px2", "mean_haematoxylin")


def write_nuclei_csv(
    path: str | Path,
    labels: Any,
    rgb_or_hema: Any,
    mpp: MppLike,
    *,
    downsample: float = 1.0,
    offset: tuple[float, float] = (0.0, 0.0),
) -> Path:
    """Write one row per nucleus: id, centroid, area and mean haematoxylin.

    Lengths are in µm (``centroid_x_um``, ``area_um2``) when ``mpp`` is given, else in level-0
    pixels (``centroid_x_px``, ``area_px2``): a column never names a unit it does not have.

    Parameters
    ----------
    labels
        int instance labels (0 = background).
    rgb_or_hema
        The RGB image under the labels (haematoxylin is computed by colour deconvolution), or a
        2-D haematoxylin image of the same shape.
    mpp
        µm per level-0 pixel, or ``None`` (unknown).
    downsample, offset
        Level-0 pixels per pixel of ``labels`` and level-0 ``(x, y)`` of their top-left corner.
    """
    from skimage.measure import regionprops

    lab = np.asarray(labels)
    img = np.asarray(rgb_or_hema)
    hema = haematoxylin(img) if img.ndim == 3 else img.astype(np.float32)
    if hema.shape != lab.shape:
        raise ExportError(f"labels {lab.shape} and image {hema.shape[:2]} differ in shape", path)
    mpp_xy = as_mpp_xy(mpp)
    mx, my = mpp_xy or (1.0, 1.0)
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(COLUMNS if mpp_xy is not None else COLUMNS_PX)
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
