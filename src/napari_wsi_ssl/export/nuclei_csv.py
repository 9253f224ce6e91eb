"""Per-nucleus measurements as CSV (haematoxylin from ``inference.nuclei``, torch-free)."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import numpy as np

from .._atomic import atomic_write_text
from ..errors import ExportError
from ..inference.nuclei import haematoxylin, nucleus_measurements
from ._arrays import MppLike, as_mpp_xy


def nuclei_table(
    labels: Any,
    rgb_or_hema: Any,
    mpp: MppLike,
    *,
    downsample: float = 1.0,
    offset: tuple[float, float] = (0.0, 0.0),
    tumour: tuple[Any, float, tuple[float, float]] | None = None,
    path: str | Path | None = None,
) -> list[dict[str, Any]]:
    """The measurements of each nucleus (``inference.nuclei.nucleus_measurements``)."""
    lab = np.asarray(labels)
    img = np.asarray(rgb_or_hema)
    hema = haematoxylin(img) if img.ndim == 3 else img.astype(np.float32)
    if hema.shape != lab.shape:
        raise ExportError(f"labels {lab.shape} and image {hema.shape[:2]} differ in shape", path)
    return nucleus_measurements(
        lab, hema, as_mpp_xy(mpp), downsample=downsample, offset=offset, tumour=tumour
    )


def write_nuclei_csv(
    path: str | Path,
    labels: Any,
    rgb_or_hema: Any,
    mpp: MppLike,
    *,
    rows: list[dict[str, Any]] | None = None,
    tumour: tuple[Any, float, tuple[float, float]] | None = None,
    offset: tuple[float, float] = (0.0, 0.0),
    downsample: float = 1.0,
) -> Path:
    """Write one row per nucleus: id, centroid, area, perimeter, eccentricity, haematoxylin,
    and with ``tumour`` the tumour probability at the centroid and the call.

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
    tumour
        ``(probability map, its downsample, its level-0 origin)`` to sample at each centroid.
    rows
        Measurements already made (``nuclei_table``), to write as they are.
    """
    if rows is None:
        rows = nuclei_table(
            labels, rgb_or_hema, mpp, downsample=downsample, offset=offset, tumour=tumour, path=path
        )
    header = list(rows[0]) if rows else list(COLUMNS if as_mpp_xy(mpp) is not None else COLUMNS_PX)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=header, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return atomic_write_text(path, buf.getvalue())


#: The first columns with a known pixel size (µm) and without one (level-0 pixels).
COLUMNS = ("id", "centroid_x_um", "centroid_y_um", "area_um2", "mean_haematoxylin")
COLUMNS_PX = ("id", "centroid_x_px", "centroid_y_px", "area_px2", "mean_haematoxylin")
