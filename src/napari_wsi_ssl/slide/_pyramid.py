"""A slide's levels as lazy dask arrays whose chunks read regions through ``Slide.read_level``."""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import dask.array

    from ._slide import Slide

_token = itertools.count()


class LevelArray:
    """One pyramid level as a numpy-like array whose slicing reads the region directly.

    dask calls ``__getitem__`` once per chunk with the chunk's slices; going straight to
    ``Slide.read_level`` skips zarr's chunk bookkeeping, which costs about as much as decoding a
    JPEG tile and would make every read through the pyramid slower than OpenSlide's own.
    """

    ndim = 3
    dtype = np.dtype(np.uint8)

    def __init__(self, slide: Slide, level: int) -> None:
        self.slide = slide
        self.level = level
        w, h = slide._pyramid_dims[level]
        self.shape = (h, w, 3)

    def __getitem__(self, key: tuple[slice, ...]) -> np.ndarray:
        ys, xs = key[0], key[1]
        y0, y1, _ = ys.indices(self.shape[0])
        x0, x1, _ = xs.indices(self.shape[1])
        out = self.slide.read_level(self.level, x0, y0, x1 - x0, y1 - y0, mark_corrupt=True)
        return out[:, :, key[2]] if len(key) > 2 else out


def build_pyramid(slide: Slide) -> list[dask.array.Array]:
    """One lazy dask array per level, chunked on the file's own tiles (see ``Slide.chunk_size``)."""
    import dask.array as da

    token = f"{slide.path.name}-{next(_token)}"
    levels = []
    for level in range(len(slide._pyramid_dims)):
        cw, ch = slide.chunk_size(level)
        levels.append(
            da.from_array(
                LevelArray(slide, level),
                chunks=(ch, cw, 3),
                name=f"slide-{token}-{level}",
                inline_array=True,
                asarray=False,
                fancy=False,
                meta=np.empty((0, 0, 0), np.uint8),
            )
        )
    return levels
