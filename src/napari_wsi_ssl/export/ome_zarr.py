"""OME-Zarr (NGFF 0.4, zarr v2) multiscale image or label image of a 2-D array."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .._atomic import atomic_path
from ..inference.ngff import multiscales_attrs
from ._arrays import MppLike, as_mpp_xy, downsamples_of, is_labels, make_levels


def write_ome_zarr(
    path: str | Path,
    data: Any,
    mpp: MppLike,
    *,
    downsample: float = 1.0,
    origin_level0: tuple[float, float] = (0.0, 0.0),
    chunk: int = 256,
    levels: int | None = None,
    name: str = "mask",
) -> Path:
    """Write a 2-D array as an OME-Zarr multiscale group (``0``, ``1``, ... chunked ``chunk``).

    Integer data are written as a label image (nearest downsampling, ``image-label`` metadata),
    floats as an image (mean). Scales are ``downsample * 2**level * mpp`` µm with the half-pixel
    translation, so the result lies on the slide. The store is written beside the target and
    renamed into place.
    """
    import dask.array as da
    import zarr

    path = Path(path)
    arrays = make_levels(data, chunk, levels)
    labels = is_labels(arrays[0].dtype)
    downs = downsamples_of(arrays, downsample)
    with atomic_path(path, is_dir=True) as tmp:
        root = zarr.open_group(zarr.DirectoryStore(str(tmp)), mode="w")
        for i, arr in enumerate(arrays):
            dtype = np.uint8 if arr.dtype == bool else arr.dtype
            target = root.create_dataset(
                str(i),
                shape=arr.shape,
                chunks=(chunk, chunk),
                dtype=dtype,
                fill_value=0,
                dimension_separator="/",
            )
            da.store(da.asarray(arr).astype(dtype).rechunk((chunk, chunk)), target, lock=False)
        root.attrs.update(
            multiscales_attrs(name, downs, as_mpp_xy(mpp), origin_level0, labels=labels)
        )
    return path
