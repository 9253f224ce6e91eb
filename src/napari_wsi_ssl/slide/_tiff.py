"""Region reads from TIFF pages by decoding only the tiles or strips a region touches."""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

import numpy as np

# a damaged tile, where the caller asked for marks instead of errors: a grey checkerboard of
# 16 px squares, plainly not tissue (no saturation, so the tissue mask leaves it out)
MARK_LIGHT, MARK_DARK, MARK_SQUARE = 224, 176, 16


class CorruptTileError(Exception):
    """One tile (or strip) of a TIFF page cannot be read or decoded."""

    def __init__(self, index: int, detail: str) -> None:
        self.index = index
        self.detail = detail
        super().__init__(f"tile {index} cannot be decoded ({detail})")


def corrupt_mark(h: int, w: int, x0: int = 0, y0: int = 0) -> np.ndarray:
    """The (h, w, 3) uint8 checkerboard drawn for unreadable tiles; (x0, y0) keep its phase."""
    ys = ((np.arange(h) + y0) // MARK_SQUARE)[:, None]
    xs = ((np.arange(w) + x0) // MARK_SQUARE)[None, :]
    grey = np.where((ys + xs) % 2 == 0, MARK_LIGHT, MARK_DARK).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=-1)


def to_rgb8(arr: np.ndarray) -> np.ndarray:
    """Any (h, w[, s]) image as (h, w, 3) uint8: grey repeated, alpha dropped, wide types scaled."""
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.dtype != np.uint8:
        if np.issubdtype(arr.dtype, np.integer):
            arr = (arr.astype(np.float32) * (255.0 / np.iinfo(arr.dtype).max)).astype(np.uint8)
        else:
            arr = (np.clip(arr, 0, 1) * 255).astype(np.uint8)
    if arr.shape[-1] == 1:
        return np.repeat(arr, 3, axis=-1)
    return arr[..., :3]


TILE_CACHE_BYTES = 32 << 20  # as OpenSlide's default cache of decoded tiles


class TileCache:
    """Decoded tiles of one file, the least recently used dropped beyond ``max_bytes``.

    Panning and zooming read the same tiles again; OpenSlide keeps them decoded too, so without
    a cache every redraw would pay for decoding that OpenSlide does once.
    """

    def __init__(self, max_bytes: int = TILE_CACHE_BYTES) -> None:
        self.max_bytes = max_bytes
        self.nbytes = 0
        self._tiles: OrderedDict[tuple[int, int], np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[int, int]) -> np.ndarray | None:
        with self._lock:
            tile = self._tiles.get(key)
            if tile is not None:
                self._tiles.move_to_end(key)
            return tile

    def put(self, key: tuple[int, int], tile: np.ndarray) -> None:
        if tile.nbytes > self.max_bytes:
            return
        tile.flags.writeable = False  # shared by every later read
        with self._lock:
            if key in self._tiles:
                return
            self._tiles[key] = tile
            self.nbytes += tile.nbytes
            while self.nbytes > self.max_bytes:
                _, old = self._tiles.popitem(last=False)
                self.nbytes -= old.nbytes


class PageReader:
    """Reads regions of one TIFF page (tiled or stripped) through tifffile's segment decoder."""

    def __init__(
        self,
        page: Any,
        fh: Any,
        lock: threading.Lock,
        cache: TileCache | None = None,
        level: int = 0,
    ) -> None:
        self.page = page
        self.fh = fh
        self.lock = lock
        self.cache = cache
        self.key = level  # of the tiles in ``cache``
        self.width = int(page.imagewidth)
        self.height = int(page.imagelength)
        self.samples = int(page.samplesperpixel)
        self.planar = int(page.planarconfig) == 2 and self.samples > 1
        if page.is_tiled:
            self.seg_w, self.seg_h = int(page.tilewidth), int(page.tilelength)
        else:
            self.seg_w = self.width
            self.seg_h = min(int(page.rowsperstrip or self.height), self.height)
        self.nx = -(-self.width // self.seg_w)
        self.ny = -(-self.height // self.seg_h)
        self.tile_size = (self.seg_w, self.seg_h) if page.is_tiled else None
        self.corrupt: set[int] = set()
        # read every tag the decoder needs now, in one thread: tifffile loads large tag values
        # (the tile offsets) lazily, and a lazy load seeks the shared file handle outside our
        # lock, which hands another thread's read the wrong bytes
        self.offsets = np.asarray(page.dataoffsets, dtype=np.int64)
        self.counts = np.asarray(page.databytecounts, dtype=np.int64)
        self.jpegtables = page.jpegtables
        self.decode = page.decode
        self.dtype = page.dtype

    def _segment(self, index: int) -> np.ndarray:
        if self.cache is None:
            return self._decode(index)
        seg = self.cache.get((self.key, index))
        if seg is None:
            seg = self._decode(index)
            self.cache.put((self.key, index), seg)
        return seg

    def _decode(self, index: int) -> np.ndarray:
        offset = int(self.offsets[index])
        count = int(self.counts[index])
        with self.lock:
            self.fh.seek(offset)
            data = self.fh.read(count)
        if len(data) < count:
            raise CorruptTileError(index, "cut short: the file is truncated")
        try:
            seg, _, _ = self.decode(data, index, jpegtables=self.jpegtables)
        except Exception as exc:  # codecs raise their own kinds for damaged data
            raise CorruptTileError(index, "its data are damaged") from exc
        if seg is None:
            raise CorruptTileError(index, "the tile is empty")
        return seg.reshape(seg.shape[-3:])  # (length, width, samples)

    def read(self, x: int, y: int, w: int, h: int, mark_corrupt: bool = False) -> np.ndarray:
        """The in-bounds region (x, y, w, h) of the page in its own pixels, as (h, w, s).

        A tile that cannot be decoded raises :class:`CorruptTileError`, or with ``mark_corrupt``
        is drawn as the grey checkerboard of :func:`corrupt_mark` (its index is added to
        ``self.corrupt``).
        """
        dtype = self.dtype
        out_s = 1 if self.planar else self.samples
        planes = self.samples if self.planar else 1
        out = np.empty((h, w, self.samples), dtype)
        per_plane = self.nx * self.ny
        for ty in range(y // self.seg_h, (y + h - 1) // self.seg_h + 1):
            for tx in range(x // self.seg_w, (x + w - 1) // self.seg_w + 1):
                sx0, sy0 = tx * self.seg_w, ty * self.seg_h
                ax0, ay0 = max(x, sx0), max(y, sy0)
                ax1, ay1 = min(x + w, sx0 + self.seg_w), min(y + h, sy0 + self.seg_h)
                dst = out[ay0 - y : ay1 - y, ax0 - x : ax1 - x]
                for plane in range(planes):
                    try:
                        seg = self._segment(plane * per_plane + ty * self.nx + tx)
                    except CorruptTileError as exc:
                        if not mark_corrupt:
                            raise
                        self.corrupt.add(exc.index)
                        mark = corrupt_mark(ay1 - ay0, ax1 - ax0, ax0, ay0)
                        dst[...] = _as_samples(mark, self.samples, dtype)
                        break
                    part = seg[ay0 - sy0 : ay1 - sy0, ax0 - sx0 : ax1 - sx0]
                    if self.planar:
                        dst[..., plane : plane + out_s] = part
                    else:
                        dst[...] = part
        return out


def _as_samples(mark: np.ndarray, samples: int, dtype: np.dtype) -> np.ndarray:
    """The uint8 RGB mark in a page's own samples and dtype (it becomes the same grey again)."""
    grey = mark[..., :1]
    if np.dtype(dtype) != np.uint8:
        if np.issubdtype(dtype, np.integer):
            grey = grey.astype(np.float64) * (np.iinfo(dtype).max / 255.0)
        else:
            grey = grey / 255.0
    return np.repeat(grey, samples, axis=-1).astype(dtype)
