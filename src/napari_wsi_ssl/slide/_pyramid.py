"""A slide as a read-only zarr (v2) store whose chunk getter reads regions, and dask levels over it."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator, MutableMapping
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import dask.array

    from ._slide import Slide

_token = itertools.count()


class SlideStore(MutableMapping):  # type: ignore[type-arg]
    """Keys ``<level>/<cy>.<cx>.0`` map to uncompressed (chunk_h, chunk_w, 3) uint8 chunks."""

    def __init__(self, slide: Slide) -> None:
        self.slide = slide
        self._meta: dict[str, bytes] = {
            ".zgroup": json.dumps({"zarr_format": 2}).encode(),
            ".zattrs": json.dumps({}).encode(),
        }
        for level, (w, h) in enumerate(slide._pyramid_dims):
            cw, ch = slide.chunk_size(level)
            self._meta[f"{level}/.zarray"] = json.dumps(
                {
                    "zarr_format": 2,
                    "shape": [h, w, 3],
                    "chunks": [ch, cw, 3],
                    "dtype": "|u1",
                    "compressor": None,
                    "fill_value": 255,
                    "order": "C",
                    "filters": None,
                }
            ).encode()

    def __getitem__(self, key: str) -> bytes | np.ndarray:
        meta = self._meta.get(key)
        if meta is not None:
            return meta
        try:
            level_s, chunk = key.split("/")
            cy, cx, _ = (int(v) for v in chunk.split("."))
            level = int(level_s)
        except ValueError:
            raise KeyError(key) from None
        cw, ch = self.slide.chunk_size(level)
        # a full chunk, edges padded white, as zarr expects; the array is handed over without a copy
        return self.slide.read_level(level, cx * cw, cy * ch, cw, ch, mark_corrupt=True)

    def __contains__(self, key: object) -> bool:
        if key in self._meta:
            return True
        return isinstance(key, str) and key.count("/") == 1 and key.split("/")[1].count(".") == 2

    def __setitem__(self, key: str, value: object) -> None:
        raise PermissionError("a slide store is read-only")

    def __delitem__(self, key: str) -> None:
        raise PermissionError("a slide store is read-only")

    def __iter__(self) -> Iterator[str]:
        return iter(self._meta)

    def __len__(self) -> int:
        return len(self._meta)


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
    """One lazy dask array per level, chunked on the file's own tiles.

    The levels are also exposed as a read-only zarr store (:class:`SlideStore`) for tools that
    want one; dask reads through :class:`LevelArray`, which is the same reads with less overhead.
    """
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
