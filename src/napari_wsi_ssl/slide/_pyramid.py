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
        return self.slide.read_level(level, cx * cw, cy * ch, cw, ch)

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


def build_pyramid(slide: Slide) -> list[dask.array.Array]:
    import dask.array as da
    import zarr

    store = SlideStore(slide)
    group = zarr.open_group(store, mode="r")
    token = f"{slide.path.name}-{next(_token)}"
    levels = []
    for level in range(len(slide._pyramid_dims)):
        arr = group[str(level)]
        levels.append(da.from_zarr(arr, name=f"slide-{token}-{level}", inline_array=True))
    return levels
