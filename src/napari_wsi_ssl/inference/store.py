"""The prediction store: an OME-Zarr (zarr v2) group per map, written tile by tile.

``MapWriter`` writes it and ``PredictionStore`` reads it (numpy and zarr only, no torch: export and
evaluation read stores). Layout of ``<slide>.<key>.ome.zarr``::

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

from ..errors import ExportError
from .ngff import downscale, level_transform, multiscales_attrs, pyramid_shapes
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


# ---------------------------------------------------------------------------------- reading


def encode_probability(prob: np.ndarray) -> np.ndarray:
    """Probabilities in [0, 1] as the store keeps them: uint8, p x 255 (``ProbabilityView``
    decodes them)."""
    return np.clip(np.rint(np.asarray(prob, dtype=np.float32) * 255), 0, 255).astype(np.uint8)


class ProbabilityView:
    """A lazy, read-only float32 view of a stored probability level as values in [0, 1].

    The store keeps probabilities as uint8 (p x 255) or float16; indexing reads only the asked
    part and decodes it. napari and dask take it as an array (shape, dtype, ``__getitem__``).
    """

    def __init__(self, array: Any) -> None:
        self.array = array
        self.factor = 1.0 / 255.0 if np.dtype(array.dtype) == np.uint8 else 1.0
        self.shape = tuple(array.shape)
        self.ndim = len(self.shape)
        self.dtype = np.dtype(np.float32)
        self.size = int(np.prod(self.shape))
        self.chunks = getattr(array, "chunks", None)

    def __getitem__(self, key: Any) -> np.ndarray:
        return np.asarray(self.array[key], dtype=np.float32) * np.float32(self.factor)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        out = self[...]
        return out if dtype is None else out.astype(dtype)

    def __len__(self) -> int:
        return self.shape[0]


class StoredMap:
    """One map of a prediction store (``tumour`` or ``nuclei``): its levels and placement.

    Attributes
    ----------
    levels
        The zarr arrays, level 0 first (raw: uint8/float16 probabilities or int32 labels).
    downsamples
        Slide level-0 pixels per pixel of each level.
    origin
        Level-0 ``(x, y)`` of the map's top-left corner (the predicted region's offset).
    mpp
        ``(x, y)`` µm per slide level-0 pixel, or ``None`` when the slide's pixel size is unknown
        (then the store's coordinates are level-0 pixels and ``unit_known`` is False).
    """

    def __init__(self, group: Any, mpp: tuple[float, float] | None) -> None:
        ms = group.attrs["multiscales"][0]
        self.name = str(ms.get("name", ""))
        self.group = group
        self.labels = ms.get("type") == "nearest" or np.dtype(group["0"].dtype).kind == "i"
        self.unit_known = "unit" in ms["axes"][-1]
        self.mpp = mpp if self.unit_known else None
        mx, my = self.mpp if self.mpp is not None else (1.0, 1.0)
        self.levels: list[Any] = []
        self.downsamples: list[float] = []
        origin = (0.0, 0.0)
        for i, ds in enumerate(ms["datasets"]):
            transforms = {t["type"]: t for t in ds["coordinateTransformations"]}
            sy, sx = (float(v) for v in transforms["scale"]["scale"][-2:])
            ty, tx = (
                float(v)
                for v in transforms.get("translation", {"translation": [0.0, 0.0]})["translation"][
                    -2:
                ]
            )
            d, dy = _clean(sx / mx), _clean(sy / my)
            if i == 0:
                origin = (_clean(tx / mx - (d - 1) / 2), _clean(ty / my - (dy - 1) / 2))
            self.levels.append(group[ds["path"]])
            self.downsamples.append(d)
        self.origin = origin

    @property
    def downsample(self) -> float:
        """Slide level-0 pixels per pixel of level 0."""
        return self.downsamples[0]

    def transform(self, level: int = 0) -> tuple[tuple[float, float], tuple[float, float]]:
        """Scale and translation ``(y, x)`` of a level: µm when ``unit_known``, else level-0 px."""
        scale, translate = level_transform(self.downsamples[level], self.mpp, self.origin)
        return (scale[0], scale[1]), (translate[0], translate[1])

    def probability(self, level: int = 0) -> ProbabilityView:
        """Level ``level`` decoded to float32 probabilities in [0, 1] (lazily)."""
        if self.labels:
            raise ValueError(f"the {self.name} map holds labels, not probabilities")
        return ProbabilityView(self.levels[level])

    def probabilities(self) -> list[ProbabilityView]:
        return [self.probability(i) for i in range(len(self.levels))]

    @property
    def done(self) -> np.ndarray:
        """Which tiles are finished, (ny, nx) bool."""
        return np.asarray(self.group["done"][:]) if "done" in self.group else np.ones((1, 1), bool)

    @property
    def complete(self) -> bool:
        return bool(self.group.attrs.get("complete", False))


class PredictionStore:
    """The reader of a prediction store written by :class:`MapWriter` (see the module docstring).

    ``store.maps`` lists the maps present (``"tumour"``, ``"nuclei"``); ``store[name]`` gives a
    :class:`StoredMap`; ``slide``, ``checkpoint``, ``class_names`` and ``attrs`` are the provenance.
    """

    def __init__(self, path: str | Path) -> None:
        import zarr

        self.path = Path(path)
        try:
            self.root = zarr.open_group(str(self.path), mode="r")
        except Exception as exc:  # noqa: BLE001 - zarr raises several types for a non-store
            raise ExportError("not a prediction store (no zarr group)", self.path) from exc
        self.attrs: dict[str, Any] = dict(self.root.attrs.get(ATTR, {}))
        mpp = self.attrs.get("mpp")
        self.mpp: tuple[float, float] | None = (float(mpp[0]), float(mpp[1])) if mpp else None

    @classmethod
    def is_store(cls, path: str | Path) -> bool:
        return (Path(path) / ".zgroup").is_file()

    @property
    def maps(self) -> list[str]:
        return [
            name
            for name in ("tumour", "nuclei")
            if name in self.root and "multiscales" in self.root[name].attrs
        ]

    def __contains__(self, name: str) -> bool:
        return name in self.maps

    def __getitem__(self, name: str) -> StoredMap:
        if name not in self:
            hint = "predict with nuclei first" if name == "nuclei" else "predict with a model first"
            raise ExportError(f"the store holds no {name} map", self.path, hint=hint)
        return StoredMap(self.root[name], self.mpp)

    @property
    def slide(self) -> Path | None:
        slide = self.attrs.get("slide")
        return Path(slide) if slide else None

    @property
    def checkpoint(self) -> str | None:
        return self.attrs.get("checkpoint")

    @property
    def class_names(self) -> dict[int, str] | None:
        """Class value -> name: a checkpoint's list (channel k is value k), a head's list beside
        its ``label_values``, or a mapping."""
        names = self.attrs.get("class_names")
        if not names:
            return None
        if isinstance(names, dict):
            return {int(k): str(v) for k, v in names.items()}
        values = self.attrs.get("label_values") or range(len(names))
        return {int(k): str(v) for k, v in zip(values, names, strict=False)}


def _clean(v: float) -> float:
    return 0.0 if abs(v) < 1e-6 else round(v, 6)
