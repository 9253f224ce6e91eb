"""The prediction store: an OME-Zarr (zarr v2) group per map, written tile by tile.

Layout of ``<slide>.<key>.ome.zarr``::

    .zattrs            {"napari_wsi_ssl": {slide, checkpoint, key, mpp, region, ...}}
    tumour/            NGFF multiscale image "0", "1", ... (uint8 0-255 or float16)
    tumour/done        bool (ny, nx): tile finished (written after its chunks)
    nuclei/            NGFF multiscale int32 labels, same layout

Each tile is one chunk of level 0 and a part of one chunk of every lower level, so a level is
never held in memory. zarr's DirectoryStore replaces chunk files atomically, and a tile is marked
done only after all its chunks are written: a killed run leaves no half-written done tile.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from .ngff import downscale, multiscales_attrs, pyramid_shapes
from .tiling import TileGrid

ATTR = "napari_wsi_ssl"


def slide_fingerprint(path: Path) -> dict[str, Any]:
    """Identity of a slide file: resolved path, size and modification time."""
    st = path.stat()
    return {"path": str(path.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def hash_key(payload: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


class MapWriter:
    """One multiscale map (``tumour`` or ``nuclei``) of a store, written tile by tile."""

    def __init__(self, group: Any, grid: TileGrid, labels: bool) -> None:
        self.group = group
        self.grid = grid
        self.labels = labels
        self.level0_only = False
        n = 0
        while str(n) in group:
            n += 1
        self.levels = [group[str(i)] for i in range(n)]
        self.done = group["done"]

    @classmethod
    def create(
        cls,
        root: Any,
        name: str,
        grid: TileGrid,
        dtype: str,
        mpp: tuple[float, float] | None,
        key: str,
    ) -> MapWriter:
        """Create (or reuse, when its key matches) the group ``name`` of ``root``."""
        labels = np.dtype(dtype).kind in "iu" and dtype != "uint8"
        if name in root and root[name].attrs.get("key") == key:
            return cls(root[name], grid, labels)
        if name in root:
            shutil.rmtree(Path(root.store.path) / name, ignore_errors=True)
        group = root.create_group(name, overwrite=True)
        shapes = pyramid_shapes(grid.shape, grid.tile)
        # every level must be reachable from one tile: 2**level divides the tile size
        shapes = [s for i, s in enumerate(shapes) if grid.tile % (2**i) == 0]
        for i, shape in enumerate(shapes):
            group.create_dataset(
                str(i),
                shape=shape,
                chunks=(grid.tile, grid.tile),
                dtype=dtype,
                fill_value=0,
                dimension_separator="/",
                write_empty_chunks=False,
            )
        group.create_dataset(
            "done", shape=grid.grid, chunks=(256, 256), dtype=bool, fill_value=False
        )
        downs = [grid.out_downsample * 2**i for i in range(len(shapes))]
        group.attrs.update(
            {**multiscales_attrs(name, downs, mpp, grid.origin, labels=labels), "key": key}
        )
        return cls(group, grid, labels)

    def done_tiles(self) -> set[tuple[int, int]]:
        ys, xs = np.nonzero(self.done[:])
        return set(zip(ys.tolist(), xs.tolist(), strict=True))

    def write_tile(self, ty: int, tx: int, block: np.ndarray) -> None:
        """Write a tile's core block to level 0 and its reduction to every lower level, then
        mark the tile done.

        With ``level0_only`` set, only level 0 is written: a worker that computes some tiles of
        a slide writes their own chunks, and one process later calls ``reduce_tile`` for each,
        because the lower levels and ``done`` have chunks shared by several tiles.
        """
        y0, x0, y1, x1 = self.grid.core_box(ty, tx)
        block = block[: y1 - y0, : x1 - x0]
        self.levels[0][y0:y1, x0:x1] = block
        if not self.level0_only:
            self._reduce(ty, tx, block)

    def reduce_tile(self, ty: int, tx: int) -> None:
        """Write the lower levels of a tile from its level 0 block, then mark it done."""
        y0, x0, y1, x1 = self.grid.core_box(ty, tx)
        self._reduce(ty, tx, self.levels[0][y0:y1, x0:x1])

    def _reduce(self, ty: int, tx: int, block: np.ndarray) -> None:
        y0, x0, _, _ = self.grid.core_box(ty, tx)
        for i in range(1, len(self.levels)):
            f = 2**i
            small = downscale(block, f, self.labels)
            arr = self.levels[i]
            ly0, lx0 = y0 // f, x0 // f
            ly1, lx1 = (
                min(ly0 + small.shape[0], arr.shape[0]),
                min(lx0 + small.shape[1], arr.shape[1]),
            )
            arr[ly0:ly1, lx0:lx1] = small[: ly1 - ly0, : lx1 - lx0]
        self.done[ty, tx] = True

    @property
    def complete(self) -> bool:
        return bool(self.group.attrs.get("complete", False))

    def mark_complete(self, n_tiles: int) -> None:
        self.group.attrs.update({"complete": True, "tiles_computed": n_tiles})


def open_root(path: Path, attrs: dict[str, Any]) -> Any:
    """Open the store at ``path`` (created when absent) and record its provenance."""
    import zarr

    root = zarr.open_group(zarr.DirectoryStore(str(path)), mode="a")
    if ATTR not in root.attrs:
        root.attrs[ATTR] = attrs
    return root
