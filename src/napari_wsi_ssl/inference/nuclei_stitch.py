"""The learned nuclei map of a tile grid, stitched so that every tile sees the same numbers.

A network's output near the edge of its window depends on where the window lies. When two tiles
each split a nucleus on their shared border from their own window's probabilities, they draw it a
pixel apart, its centroid moves, and it gets two ids (``global_ids``), or, at a corner of four
tiles, one id on two diagonal pieces. Here the probability of a pixel always comes from the window
of the tile whose core holds it: a tile is split into instances on that stitched map over its core
plus a margin, so the tiles around a nucleus see the same numbers and give it the same id. Each
tile's probabilities are kept in a small cache while its neighbours need them; one evicted, or
needed by another worker of a distributed run, is computed again from the same window.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

import numpy as np

from .nuclei import nuclei_from_probs
from .tiling import TileGrid

Tile = tuple[int, int]


class StitchedProbs:
    """Foreground and boundary probabilities (uint8, 255 = 1) of a tile grid's cores, on demand.

    Parameters
    ----------
    grid
        The nuclei grid; its ``margin`` is the network's context around a core.
    read
        ``(ty, tx) -> (s, s, 3)`` uint8 window of a tile (``grid.read_window``).
    predict
        ``(B, s, s, 3)`` uint8 windows -> ``(B, 3, s, s)`` background/foreground/boundary
        probabilities.
    margin
        Pixels of stitched map around a core that the instance split sees (the nucleus size
        bounds it: a nucleus on the border must lie wholly inside both tiles' views).
    batch_size
        Windows per forward pass.
    """

    def __init__(
        self,
        grid: TileGrid,
        read: Callable[[int, int], np.ndarray],
        predict: Callable[[np.ndarray], np.ndarray],
        margin: int,
        batch_size: int,
    ) -> None:
        self.grid, self.read, self.predict = grid, read, predict
        self.margin, self.batch_size = margin, max(1, batch_size)
        self.reach = max(1, math.ceil(margin / grid.tile))
        # about the rows of tiles a raster walk still needs, so each core is computed once
        side = 2 * self.reach + 1
        self.capacity = side * (grid.grid[1] + side) + 4 * side * side
        self._cores: OrderedDict[Tile, np.ndarray] = OrderedDict()
        self._reads: dict[Tile, Future[np.ndarray]] = {}
        self._lock = threading.Lock()

    def neighbours(self, ty: int, tx: int) -> list[Tile]:
        """The tiles of the grid whose cores a tile's stitched window overlaps."""
        ny, nx = self.grid.grid
        r = self.reach
        return [
            (y, x)
            for y in range(max(0, ty - r), min(ny, ty + r + 1))
            for x in range(max(0, tx - r), min(nx, tx + r + 1))
        ]

    def prepare(self, ty: int, tx: int) -> Tile:
        """Read ahead the windows around ``(ty, tx)`` that no one has computed or read yet."""
        mine: list[tuple[Tile, Future[np.ndarray]]] = []
        with self._lock:
            for n in self.neighbours(ty, tx):
                if n not in self._cores and n not in self._reads:
                    self._reads[n] = Future()
                    mine.append((n, self._reads[n]))
        for n, future in mine:
            try:
                future.set_result(self.read(*n))
            except BaseException as exc:  # the batch that needs it raises it
                future.set_exception(exc)
        return ty, tx

    def compute(self, tiles: list[Tile]) -> list[np.ndarray]:
        """The stitched ``(2, t + 2 * margin, t + 2 * margin)`` map of each tile of a batch."""
        with self._lock:
            needed = sorted({n for tile in tiles for n in self.neighbours(*tile)})
            for n in needed:
                if n in self._cores:
                    self._cores.move_to_end(n)
            todo = [(n, self._reads.get(n)) for n in needed if n not in self._cores]
        # one read missing here was cached when its neighbours read ahead, and evicted since
        windows = {n: self.read(*n) if r is None else r.result() for n, r in todo}
        t, m = self.grid.tile, self.grid.margin
        keys = list(windows)
        for i in range(0, len(keys), self.batch_size):
            part = keys[i : i + self.batch_size]
            probs = self.predict(np.stack([windows[k] for k in part]))
            cores = np.rint(probs[:, 1:3, m : m + t, m : m + t] * 255).astype(np.uint8)
            with self._lock:
                self._cores.update(zip(part, cores, strict=True))
                for k in part:  # only now: a read ahead meanwhile finds the core cached
                    self._reads.pop(k, None)
        stitched = [self._stitch(*tile) for tile in tiles]
        with self._lock:
            while len(self._cores) > self.capacity:
                self._cores.popitem(last=False)
        return stitched

    def _stitch(self, ty: int, tx: int) -> np.ndarray:
        t, r, m = self.grid.tile, self.reach, self.margin
        side = (2 * r + 1) * t
        out = np.zeros((2, side, side), np.uint8)
        with self._lock:
            for y, x in self.neighbours(ty, tx):
                oy, ox = (y - ty + r) * t, (x - tx + r) * t
                out[:, oy : oy + t, ox : ox + t] = self._cores[(y, x)]
        start = r * t - m
        return out[:, start : start + t + 2 * m, start : start + t + 2 * m]


def split_stitched(
    stitched: np.ndarray, mpp: float | None, min_area_um2: float, **kwargs: Any
) -> np.ndarray:
    """Instances of a stitched uint8 ``(2, h, w)`` foreground/boundary map (``nuclei_from_probs``)."""
    fg, bd = stitched.astype(np.float32) / 255.0
    probs = np.stack([np.clip(1.0 - fg - bd, 0.0, 1.0), fg, bd])
    return nuclei_from_probs(probs, mpp, min_area_um2, **kwargs)


__all__ = ["StitchedProbs", "split_stitched"]
