"""Pyramidal tiled OME-TIFF of a mask, probability map or label image.

The reduced levels are SubIFDs of level 0, the OME-TIFF pyramid that Bio-Formats (QuPath) and
tifffile read, and they are also chained into the main sequence of IFDs after level 0, the
generic pyramid that OpenSlide reads: the same IFDs, listed twice, so no byte is stored twice.
The OME sub-resolution design (OME005) allows SubIFDs that are part of the main IFD sequence
"for inter-operability" and asks readers to handle them; each level sets NewSubfileType's
reduced-image bit, which OpenSlide needs to take a page as a level.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .._atomic import atomic_path
from ._arrays import MppLike, as_mpp_xy, downsamples_of, iter_tiles, make_levels


def write_ome_tiff(
    path: str | Path,
    data: Any,
    mpp: MppLike,
    *,
    downsample: float = 1.0,
    tile: int = 256,
    levels: int | None = None,
    compression: str = "zlib",
    name: str = "mask",
) -> Path:
    """Write a 2-D array as a pyramidal, tiled OME-TIFF that OpenSlide opens as a pyramid too.

    Parameters
    ----------
    path
        Target file, ``.ome.tif``; written atomically.
    data
        numpy, dask or zarr 2-D array (uint8 mask, float probabilities, int32 labels), or a
        list of such arrays, one per level. Written tile by tile: a dask array is never
        computed whole.
    mpp
        µm per level-0 pixel of the slide (float or ``(x, y)``), or ``None``.
    downsample
        Slide level-0 pixels per pixel of ``data``; the physical pixel size is
        ``downsample * mpp``.
    tile
        Tile size in pixels (a multiple of 16).
    levels
        Number of pyramid levels; by default halve until one tile holds the level.

    Returns
    -------
    Path
        The written file.
    """
    import tifffile

    path = Path(path)
    arrays = make_levels(data, tile, levels)
    mpp_xy = as_mpp_xy(mpp)
    dtype = np.dtype(arrays[0].dtype)
    if dtype.kind == "b":
        dtype = np.dtype(np.uint8)
        arrays = [a.astype(np.uint8) for a in arrays]
    downs = downsamples_of(arrays, downsample)
    metadata: dict[str, Any] = {"axes": "YX", "Name": name}
    if mpp_xy is not None:
        metadata.update(
            PhysicalSizeX=downs[0] * mpp_xy[0],
            PhysicalSizeXUnit="µm",
            PhysicalSizeY=downs[0] * mpp_xy[1],
            PhysicalSizeYUnit="µm",
        )
    with atomic_path(path) as tmp:
        with tifffile.TiffWriter(tmp, bigtiff=True, ome=True) as tif:
            _write_levels(tif, arrays, dtype, downs, mpp_xy, tile, compression, metadata)
        _chain_subifds(tmp)
    return path


def _write_levels(
    tif: Any,
    arrays: list[Any],
    dtype: np.dtype,
    downs: list[float],
    mpp_xy: tuple[float, float] | None,
    tile: int,
    compression: str,
    metadata: dict[str, Any],
) -> None:
    """Level 0 with the OME-XML and room for the SubIFDs, then the reduced levels into them."""
    for i, arr in enumerate(arrays):
        kwargs: dict[str, Any] = {
            "shape": tuple(arr.shape),
            "dtype": dtype,
            "tile": (tile, tile),
            "compression": compression,
            "photometric": "minisblack",
        }
        if mpp_xy is not None:
            # TIFF resolution is pixels per centimetre: 1e4 µm / (µm per pixel)
            kwargs["resolution"] = (1e4 / (downs[i] * mpp_xy[0]), 1e4 / (downs[i] * mpp_xy[1]))
            kwargs["resolutionunit"] = "CENTIMETER"
        if i == 0:
            kwargs["subifds"] = len(arrays) - 1
            kwargs["metadata"] = metadata
        else:
            kwargs["subfiletype"] = 1
            kwargs["metadata"] = None
        tif.write(iter_tiles(arr.astype(dtype), tile), **kwargs)


def _chain_subifds(path: Path) -> None:
    """Link level 0 and its SubIFDs into one main IFD sequence, largest first (in place)."""
    import struct

    import tifffile

    with tifffile.TiffFile(path) as tif:
        first = tif.pages.first
        chain = [first.offset, *(first.subifds or ())]
        fmt = tif.tiff
    if len(chain) < 2:
        return
    with open(path, "r+b") as fh:
        for here, after in zip(chain, [*chain[1:], 0], strict=True):
            fh.seek(here)
            (count,) = struct.unpack(fmt.tagnoformat, fh.read(fmt.tagnosize))
            # the IFD's entries end with the offset of the next IFD
            fh.seek(here + fmt.tagnosize + count * fmt.tagsize)
            fh.write(struct.pack(fmt.offsetformat, after))
