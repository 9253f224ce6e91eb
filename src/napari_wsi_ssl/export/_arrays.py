"""Helpers shared by the writers: lazy levels of a 2-D array, block iteration, mpp handling."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from ..errors import ExportError
from ..inference.ngff import pyramid_shapes

MppLike = float | tuple[float, float] | None


def as_mpp_xy(mpp: MppLike) -> tuple[float, float] | None:
    """``(x, y)`` µm per level-0 pixel from a float, a pair or ``None``."""
    if mpp is None:
        return None
    if isinstance(mpp, (int, float)):
        return float(mpp), float(mpp)
    mx, my = mpp
    return float(mx), float(my)


def is_labels(dtype: Any) -> bool:
    """Integer and boolean data are labels or masks: reduced by nearest, never averaged."""
    return bool(np.issubdtype(np.dtype(dtype), np.integer) or np.dtype(dtype).kind == "b")


def make_levels(data: Any, tile: int, levels: int | None = None) -> list[Any]:
    """Level 0 and its halvings as lazy dask arrays (nearest for labels, mean otherwise).

    ``data`` may be a numpy, dask or zarr 2-D array, or a list of such arrays, one per level,
    which is used as given.
    """
    import dask.array as da

    if isinstance(data, (list, tuple)):
        out = [da.asarray(a) if not hasattr(a, "dask") else a for a in data]
    else:
        base = data if hasattr(data, "dask") else da.from_array(data, chunks=(tile * 4, tile * 4))
        shapes = pyramid_shapes(tuple(base.shape[:2]), tile)
        n = len(shapes) if levels is None else max(1, min(levels, 12))
        out = [base]
        labels = is_labels(base.dtype)
        for _ in range(1, n):
            prev = out[-1]
            if labels:
                out.append(prev[::2, ::2])
            else:
                h, w = prev.shape
                if h < 2 or w < 2:
                    break
                nxt = da.coarsen(np.mean, prev.astype(np.float32), {0: 2, 1: 2}, trim_excess=True)
                out.append(nxt.astype(base.dtype))
    for a in out:
        if a.ndim != 2:
            raise ExportError(f"expected a 2-D mask or label image, got shape {tuple(a.shape)}")
    return out


def iter_tiles(array: Any, tile: int) -> Iterator[np.ndarray]:
    """Row-major tiles of a 2-D array, computed one row of tiles at a time (bounded memory)."""
    h, w = array.shape
    for y in range(0, h, tile):
        row = np.asarray(array[y : y + tile, :])
        for x in range(0, w, tile):
            yield np.ascontiguousarray(row[:, x : x + tile])


def downsamples_of(levels: Sequence[Any], base_downsample: float) -> list[float]:
    """Level-0 downsample of each level, from the level shapes."""
    h0 = levels[0].shape[0]
    return [base_downsample * h0 / max(lv.shape[0], 1) for lv in levels]
