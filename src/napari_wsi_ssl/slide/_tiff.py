"""Region reads from TIFF pages by decoding only the tiles or strips a region touches."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np


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


class PageReader:
    """Reads regions of one TIFF page (tiled or stripped) through tifffile's segment decoder."""

    def __init__(self, page: Any, fh: Any, lock: threading.Lock) -> None:
        self.page = page
        self.fh = fh
        self.lock = lock
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

    def _segment(self, index: int) -> np.ndarray:
        page = self.page
        offset = int(page.dataoffsets[index])
        count = int(page.databytecounts[index])
        with self.lock:
            self.fh.seek(offset)
            data = self.fh.read(count)
        if len(data) < count:
            raise OSError(f"tile {index} is cut short: the file is truncated")
        seg, _, _ = page.decode(data, index, jpegtables=page.jpegtables)
        if seg is None:
            raise OSError(f"tile {index} is empty")
        return seg.reshape(seg.shape[-3:])  # (length, width, samples)

    def read(self, x: int, y: int, w: int, h: int) -> np.ndarray:
        """The in-bounds region (x, y, w, h) of the page in its own pixels, as (h, w, s)."""
        dtype = self.page.dtype
        out_s = 1 if self.planar else self.samples
        planes = self.samples if self.planar else 1
        out = np.empty((h, w, self.samples), dtype)
        per_plane = self.nx * self.ny
        for ty in range(y // self.seg_h, (y + h - 1) // self.seg_h + 1):
            for tx in range(x // self.seg_w, (x + w - 1) // self.seg_w + 1):
                sx0, sy0 = tx * self.seg_w, ty * self.seg_h
                ax0, ay0 = max(x, sx0), max(y, sy0)
                ax1, ay1 = min(x + w, sx0 + self.seg_w), min(y + h, sy0 + self.seg_h)
                for plane in range(planes):
                    seg = self._segment(plane * per_plane + ty * self.nx + tx)
                    part = seg[ay0 - sy0 : ay1 - sy0, ax0 - sx0 : ax1 - sx0]
                    dst = out[ay0 - y : ay1 - y, ax0 - x : ax1 - x]
                    if self.planar:
                        dst[..., plane : plane + out_s] = part
                    else:
                        dst[...] = part
        return out
