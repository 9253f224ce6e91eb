"""Where to paint next: regions ranked by the head's uncertainty, tissue and distance from strokes.

The slide is cut into square cells of the map; a cell's score is its mean uncertainty times its
tissue fraction times ``1 - exp(-d / scale)``, ``d`` being its distance (in cells) from the
nearest painted cell. Painted cells score 0. The top ``k`` cells are returned as level-0 boxes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..inference.store import ATTR


@dataclass(frozen=True)
class Suggestion:
    """A region to paint: ``box`` is ``(y0, x0, y1, x1)`` in level-0 pixels."""

    box: tuple[int, int, int, int]
    score: float
    uncertainty: float
    tissue: float

    @property
    def centre(self) -> tuple[float, float]:
        y0, x0, y1, x1 = self.box
        return (y0 + y1) / 2, (x0 + x1) / 2


def _cell_means(a: np.ndarray, cell: int) -> np.ndarray:
    ny, nx = math.ceil(a.shape[0] / cell), math.ceil(a.shape[1] / cell)
    pad = np.full((ny * cell, nx * cell), np.nan, np.float32)
    pad[: a.shape[0], : a.shape[1]] = a
    cells = pad.reshape(ny, cell, nx, cell)
    # the mean of each cell's known pixels; a cell with none is 0 (no "mean of empty slice")
    count = np.count_nonzero(~np.isnan(cells), axis=(1, 3))
    total = np.nansum(cells, axis=(1, 3))
    return np.divide(total, count, out=np.zeros_like(total), where=count > 0)


def _resample(
    mask: np.ndarray, mask_ds: float, shape: tuple[int, int], ds: float, origin: tuple[float, float]
) -> np.ndarray:
    """A level-0-aligned array sampled at the centres of a (shape) grid of ``ds`` pixels."""
    ys = ((origin[1] + (np.arange(shape[0]) + 0.5) * ds) / mask_ds).astype(np.int64)
    xs = ((origin[0] + (np.arange(shape[1]) + 0.5) * ds) / mask_ds).astype(np.int64)
    ys = np.clip(ys, 0, mask.shape[0] - 1)
    xs = np.clip(xs, 0, mask.shape[1] - 1)
    return mask[np.ix_(ys, xs)]


def suggest_regions(
    uncertainty: np.ndarray,
    out_downsample: float,
    origin: tuple[float, float] = (0.0, 0.0),
    labels: np.ndarray | None = None,
    labels_downsample: float = 1.0,
    tissue: tuple[np.ndarray, float] | None = None,
    k: int = 5,
    cell: int = 32,
    distance_scale: float = 2.0,
) -> list[Suggestion]:
    """Rank cells of ``cell`` map pixels; return the best ``k`` (score > 0), best first.

    Parameters
    ----------
    uncertainty
        (H, W) map in [0, 1] at ``out_downsample`` level-0 px per pixel from ``origin`` (x, y).
    labels, labels_downsample
        The painted labels (0 = unpainted) at their downsample of level 0.
    tissue
        A tissue mask and its downsample (``slide.tissue_mask``); ``None``: every pixel counts.
    """
    from scipy.ndimage import distance_transform_edt

    u = np.asarray(uncertainty, np.float32)
    shape = (u.shape[0], u.shape[1])
    t = (
        np.ones(shape, np.float32)
        if tissue is None
        else _resample(tissue[0], tissue[1], shape, out_downsample, origin).astype(np.float32)
    )
    tissue_frac = _cell_means(t, cell)
    unc = _cell_means(np.where(t > 0, u, np.nan), cell)
    factor = np.ones_like(unc)
    if labels is not None and np.any(labels):
        painted = _resample(
            np.asarray(labels) != 0, labels_downsample, shape, out_downsample, origin
        )
        painted_cells = _cell_means(painted.astype(np.float32), cell) > 0
        # the painted pixels may be finer than the map: add the cells of every painted pixel
        ly, lx = np.nonzero(labels)
        cy = (((ly + 0.5) * labels_downsample - origin[1]) / out_downsample // cell).astype(int)
        cx = (((lx + 0.5) * labels_downsample - origin[0]) / out_downsample // cell).astype(int)
        ok = (cy >= 0) & (cy < unc.shape[0]) & (cx >= 0) & (cx < unc.shape[1])
        painted_cells[cy[ok], cx[ok]] = True
        dist = distance_transform_edt(~painted_cells)
        factor = (1 - np.exp(-dist / distance_scale)).astype(np.float32)
    score = unc * tissue_frac * factor
    order = np.argsort(score, axis=None)[::-1]
    out = []
    side = cell * out_downsample
    for flat in order[:k]:
        cy, cx = np.unravel_index(flat, score.shape)
        if score[cy, cx] <= 0:
            break
        y0, x0 = origin[1] + cy * side, origin[0] + cx * side
        box = (int(y0), int(x0), int(math.ceil(y0 + side)), int(math.ceil(x0 + side)))
        out.append(
            Suggestion(box, float(score[cy, cx]), float(unc[cy, cx]), float(tissue_frac[cy, cx]))
        )
    return out


def suggest_from_store(
    store: str | Path,
    labels: np.ndarray | None = None,
    labels_downsample: float = 1.0,
    tissue: tuple[np.ndarray, float] | None = None,
    k: int = 5,
    cell: int = 32,
) -> list[Suggestion]:
    """``suggest_regions`` on the ``uncertainty`` map of a head's prediction store."""
    import zarr

    root = zarr.open_group(zarr.DirectoryStore(str(store)), mode="r")
    grid = root.attrs[ATTR]["feature_grid"]
    u = root["uncertainty"]["0"][:].astype(np.float32) / 255.0
    ox, oy = grid["origin"]
    return suggest_regions(
        u, grid["out_downsample"], (ox, oy), labels, labels_downsample, tissue, k, cell
    )
