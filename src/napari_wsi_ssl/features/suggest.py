"""Where to paint next: regions that are uncertain and that stand for much unpainted tissue.

The slide is cut into square cells of the map. With the feature cache (the default of
``suggest_from_store``), each cell's mean feature vector is taken over its tissue and the cells
are clustered (k-means, as many clusters as painted cells plus ``k``): a cluster with no
strokes is a kind of tissue the head has not been shown. Clusters without strokes come first
(there are at least ``k``), ranked by their tissue times their mean uncertainty to the power
``uncertainty_weight``; each gives its most representative unpainted cell (nearest its
centre), traded against the cell's uncertainty with the same weight. Before any stroke this is the centres of ``k`` clusters. This is uncertainty sampling
weighted by representativeness (as in TypiClust, Hacohen et al. 2022, for few labels).

Without features, the older ranking: a cell's score is its mean uncertainty times its tissue
fraction times ``1 - exp(-d / scale)``, ``d`` being its distance (in cells) from the nearest
painted cell. Painted cells are never suggested. The top ``k`` cells are returned as level-0
boxes, best first.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..inference.store import ATTR

#: Default trade-off of uncertainty against representativeness (0: representativeness only).
UNCERTAINTY_WEIGHT = 0.0
#: Above this many tissue cells, k-means runs in mini-batches.
FULL_KMEANS = 20_000


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


def cell_features(cache: Any, cell: int, weights: np.ndarray | None = None) -> np.ndarray:
    """(ny, nx, C) float32 mean feature of each ``cell`` x ``cell`` block of a feature cache's
    grid (the map's grid), over the pixels where ``weights`` (H, W) is positive; NaN where a
    cell has none on a computed tile. Read tile by tile: the whole cache is never in memory."""
    grid = cache.grid
    h, w = grid.shape
    ny, nx = math.ceil(h / cell), math.ceil(w / cell)
    total = np.zeros((ny, nx, cache.channels), np.float64)
    count = np.zeros((ny, nx), np.float64)
    feats = cache._loaded if cache._loaded is not None else cache.features
    for ty, tx in sorted(cache.done_tiles()):
        y0, x0, y1, x1 = grid.core_box(ty, tx)
        block = np.asarray(feats[y0:y1, x0:x1], np.float32)
        wt = (
            np.ones((y1 - y0, x1 - x0), np.float32)
            if weights is None
            else (np.asarray(weights[y0:y1, x0:x1]) > 0).astype(np.float32)
        )
        # the cells this tile's rows and columns fall in, and where each run of them starts
        cy, cx = np.arange(y0, y1) // cell, np.arange(x0, x1) // cell
        ry, rx = np.flatnonzero(np.diff(cy, prepend=-1)), np.flatnonzero(np.diff(cx, prepend=-1))
        s = np.add.reduceat(np.add.reduceat(block * wt[..., None], ry, 0), rx, 1)
        n = np.add.reduceat(np.add.reduceat(wt, ry, 0), rx, 1)
        total[np.ix_(cy[ry], cx[rx])] += s
        count[np.ix_(cy[ry], cx[rx])] += n
    out = np.full(total.shape, np.nan, np.float32)
    has = count > 0
    out[has] = total[has] / count[has][:, None]
    return out


def _painted_cells(
    labels: np.ndarray,
    labels_downsample: float,
    shape: tuple[int, int],
    out_downsample: float,
    origin: tuple[float, float],
    cells: tuple[int, int],
    cell: int,
) -> np.ndarray:
    """(ny, nx) bool: cells holding a painted pixel (the labels may be finer or coarser)."""
    painted = _resample(np.asarray(labels) != 0, labels_downsample, shape, out_downsample, origin)
    out = _cell_means(painted.astype(np.float32), cell) > 0
    ly, lx = np.nonzero(labels)
    cy = (((ly + 0.5) * labels_downsample - origin[1]) / out_downsample // cell).astype(int)
    cx = (((lx + 0.5) * labels_downsample - origin[0]) / out_downsample // cell).astype(int)
    ok = (cy >= 0) & (cy < cells[0]) & (cx >= 0) & (cx < cells[1])
    out[cy[ok], cx[ok]] = True
    return out


def representative_cells(
    features: np.ndarray,
    uncertainty: np.ndarray,
    tissue: np.ndarray,
    painted: np.ndarray,
    k: int,
    uncertainty_weight: float = UNCERTAINTY_WEIGHT,
    seed: int = 0,
) -> list[tuple[int, float]]:
    """Up to ``k`` unpainted cells ``(index, score)``, one per cluster, best first.

    ``features`` (N, C) are the cells' mean features, ``uncertainty``, ``tissue`` (N,) their
    mean uncertainty and tissue fraction, ``painted`` (N,) bool. See the module's docstring.
    """
    from sklearn.cluster import KMeans, MiniBatchKMeans

    n = len(features)
    if n == 0 or k < 1:
        return []
    n_clusters = int(min(n, int(painted.sum()) + k))
    if n <= FULL_KMEANS:
        km: Any = KMeans(n_clusters, n_init=3, random_state=seed)
    else:
        km = MiniBatchKMeans(n_clusters, n_init=3, random_state=seed, batch_size=4096)
    assign = km.fit_predict(features)
    dist = np.linalg.norm(features - km.cluster_centers_[assign], axis=1)
    w = float(uncertainty_weight)
    candidates = []
    for c in range(n_clusters):
        members = np.flatnonzero(assign == c)
        free = members[~painted[members]]
        if len(free) == 0:
            continue
        strokes = int(painted[members].sum())
        mass = float(tissue[members].sum()) / (1 + strokes)
        cluster_score = mass * max(float(uncertainty[members].mean()), 1e-6) ** w
        # representativeness: 1 at the centre, 0 at the cluster's farthest cell
        spread = float(dist[members].max()) or 1.0
        typical = 1 - dist[free] / spread
        unc = uncertainty[free] / (float(uncertainty[free].max()) or 1.0)
        within = (1 - w) * typical + w * unc
        within = within * np.minimum(1.0, tissue[free] * 2)  # prefer cells mostly of tissue
        candidates.append((strokes == 0, cluster_score, int(free[int(np.argmax(within))])))
    candidates.sort(reverse=True)  # clusters without strokes first (there are at least k)
    total = sum(s for _, s, _ in candidates) or 1.0
    return [(i, s / total) for _, s, i in candidates[:k]]


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
    features: np.ndarray | None = None,
    uncertainty_weight: float = UNCERTAINTY_WEIGHT,
    seed: int = 0,
) -> list[Suggestion]:
    """The best ``k`` cells of ``cell`` map pixels (score > 0), best first.

    Parameters
    ----------
    uncertainty
        (H, W) map in [0, 1] at ``out_downsample`` level-0 px per pixel from ``origin`` (x, y).
    labels, labels_downsample
        The painted labels (0 = unpainted) at their downsample of level 0.
    tissue
        A tissue mask and its downsample (``slide.tissue_mask``); ``None``: every pixel counts.
    features
        (ny, nx, C) mean features of the cells (``cell_features``, NaN: none): rank by
        representativeness and uncertainty; ``None``: by uncertainty and distance from strokes.
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
    painted_cells = np.zeros(unc.shape, bool)
    if labels is not None and np.any(labels):
        painted_cells = _painted_cells(
            labels, labels_downsample, shape, out_downsample, origin, unc.shape, cell
        )
    if features is not None:
        if features.shape[:2] != unc.shape:
            raise ValueError(f"features of {features.shape[:2]} cells for a map of {unc.shape}")
        ok = (tissue_frac > 0) & np.isfinite(features).all(-1)
        idx = np.flatnonzero(ok)
        picked = representative_cells(
            features.reshape(-1, features.shape[-1])[idx],
            unc.ravel()[idx],
            tissue_frac.ravel()[idx],
            painted_cells.ravel()[idx],
            k,
            uncertainty_weight,
            seed,
        )
        ranked = [(int(idx[i]), s) for i, s in picked]
    else:
        factor = np.ones_like(unc)
        if painted_cells.any():
            dist = distance_transform_edt(~painted_cells)
            factor = (1 - np.exp(-dist / distance_scale)).astype(np.float32)
        score = unc * tissue_frac * factor
        order = np.argsort(score, axis=None)[::-1][:k]
        ranked = [(int(f), float(score.flat[f])) for f in order if score.flat[f] > 0]
    out = []
    side = cell * out_downsample
    for flat, s in ranked:
        cy, cx = np.unravel_index(flat, unc.shape)
        y0, x0 = origin[1] + cy * side, origin[0] + cx * side
        # a cell of the last row or column ends where the map ends, not beyond the slide
        y1 = min(y0 + side, origin[1] + shape[0] * out_downsample)
        x1 = min(x0 + side, origin[0] + shape[1] * out_downsample)
        box = (int(y0), int(x0), int(math.ceil(y1)), int(math.ceil(x1)))
        out.append(Suggestion(box, float(s), float(unc[cy, cx]), float(tissue_frac[cy, cx])))
    return out


def suggest_from_store(
    store: str | Path,
    labels: np.ndarray | None = None,
    labels_downsample: float = 1.0,
    tissue: tuple[np.ndarray, float] | None = None,
    k: int = 5,
    cell: int | None = None,
    representative: bool = True,
) -> list[Suggestion]:
    """``suggest_regions`` on the ``uncertainty`` map of a head's prediction store, with the
    features of the cache it was made from (when that cache still exists and ``representative``).

    ``cell`` (map pixels) defaults to 32, smaller on small maps so that the shorter side holds
    at least 8 cells: a slide region of a millimetre or two has only a few cells of 32, all of
    them soon painted, and none left to suggest."""
    import zarr

    from .cache import FeatureCache

    root = zarr.open_group(zarr.DirectoryStore(str(store)), mode="r")
    attrs = root.attrs[ATTR]
    grid = attrs["feature_grid"]
    u = root["uncertainty"]["0"][:].astype(np.float32) / 255.0
    if cell is None:
        cell = max(4, min(32, min(u.shape) // 8))
    ox, oy = grid["origin"]
    feats = None
    cache_path = attrs.get("feature_cache")
    if representative and cache_path and (Path(cache_path) / ".zattrs").is_file():
        feats = cell_features(FeatureCache.open(cache_path), cell)
    return suggest_regions(
        u,
        grid["out_downsample"],
        (ox, oy),
        labels,
        labels_downsample,
        tissue,
        k,
        cell,
        features=feats,
    )
