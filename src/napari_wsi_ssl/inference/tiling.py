"""Tile grids over a working resolution, tile order, tissue selection and window reading."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..geometry import Rect
from ..slide import Slide

Box = tuple[int, int, int, int]  # (y0, x0, y1, x1)


@dataclass(frozen=True)
class TileGrid:
    """Tiles of ``tile`` x ``tile`` output pixels over a region of a slide.

    Output pixel (y, x) covers level-0 pixels ``origin + (x, y) * downsample`` onwards; each
    output pixel is ``cell`` working pixels (1 for segmentation, the patch size for a
    classification map). A tile's window adds ``margin`` working pixels on each side.
    """

    shape: tuple[int, int]  # output (h, w)
    tile: int
    margin: int
    downsample: float  # level-0 px per working px
    origin: tuple[int, int]  # level-0 (x, y) of the region
    extent: tuple[int, int]  # output (h, w) of the whole slide from the origin (for clipping reads)
    cell: int = 1

    @property
    def grid(self) -> tuple[int, int]:
        return math.ceil(self.shape[0] / self.tile), math.ceil(self.shape[1] / self.tile)

    @property
    def out_downsample(self) -> float:
        """Level-0 pixels per output pixel."""
        return self.downsample * self.cell

    def core_box(self, ty: int, tx: int) -> Box:
        """The tile's output pixels, clipped to the output shape."""
        y0, x0 = ty * self.tile, tx * self.tile
        return y0, x0, min(y0 + self.tile, self.shape[0]), min(x0 + self.tile, self.shape[1])

    def level0_rect(self, ty: int, tx: int) -> Rect:
        """The tile's core in level-0 pixels."""
        y0, x0, y1, x1 = self.core_box(ty, tx)
        d = self.out_downsample
        ox, oy = self.origin
        return Rect(
            int(ox + x0 * d), int(oy + y0 * d), math.ceil(ox + x1 * d), math.ceil(oy + y1 * d)
        )

    def level0_box(self, ty: int, tx: int) -> Box:
        """The tile's core in level-0 pixels ``(y0, x0, y1, x1)`` (the order of ``TilesDone``)."""
        return self.level0_rect(ty, tx).yx_box

    def tiles(self) -> list[tuple[int, int]]:
        ny, nx = self.grid
        return [(ty, tx) for ty in range(ny) for tx in range(nx)]

    def window_size(self) -> int:
        """Working pixels per side of a window (core plus margins)."""
        return self.tile * self.cell + 2 * self.margin

    def read_window(self, slide: Slide, ty: int, tx: int) -> np.ndarray:
        """The (s, s, 3) uint8 window of a tile at the working resolution, white outside the slide."""
        s = self.window_size()
        wy0 = ty * self.tile * self.cell - self.margin
        wx0 = tx * self.tile * self.cell - self.margin
        eh, ew = self.extent[0] * self.cell, self.extent[1] * self.cell
        vy0, vx0 = max(wy0, 0), max(wx0, 0)
        vy1, vx1 = min(wy0 + s, eh), min(wx0 + s, ew)
        out = np.full((s, s, 3), 255, np.uint8)
        if vy1 <= vy0 or vx1 <= vx0:
            return out
        d = self.downsample
        ox, oy = self.origin
        loc = (int(round(ox + vx0 * d)), int(round(oy + vy0 * d)))
        size = (vx1 - vx0, vy1 - vy0)
        img = slide.read_region(loc, 0, size) if d == 1 else slide.read_scaled(loc, size, d)
        out[vy0 - wy0 : vy1 - wy0, vx0 - wx0 : vx1 - wx0] = np.asarray(img)[..., :3]
        return out


def make_grid(
    slide_dims: tuple[int, int],
    downsample: float,
    tile: int,
    margin: int,
    region: Rect | tuple[int, int, int, int] | None = None,
    cell: int = 1,
) -> TileGrid:
    """A grid over the part of ``region`` on the slide (level-0 px; the whole slide when ``None``;
    a tuple is ``(x, y, w, h)``)."""
    w0, h0 = slide_dims
    rect = Rect.coerce(region) or Rect(0, 0, w0, h0)
    x, y, w, h = rect.check_inside(w0, h0).xywh
    od = downsample * cell
    shape = (max(1, int(h // od)), max(1, int(w // od)))
    extent = (max(1, int((h0 - y) // od)), max(1, int((w0 - x) // od)))
    return TileGrid(shape, tile, margin, downsample, (x, y), extent, cell)


def tissue_tiles(
    grid: TileGrid, mask: np.ndarray | None, mask_downsample: float
) -> set[tuple[int, int]]:
    """Tiles whose level-0 core holds at least one tissue pixel of the (coarse) mask."""
    if mask is None:
        return set(grid.tiles())
    keep = set()
    mh, mw = mask.shape
    for ty, tx in grid.tiles():
        m = grid.level0_rect(ty, tx).scaled(1 / mask_downsample)
        if (
            m.y0 < mh
            and m.x0 < mw
            and mask[m.y0 : max(m.y1, m.y0 + 1), m.x0 : max(m.x1, m.x0 + 1)].any()
        ):
            keep.add((ty, tx))
    return keep


def order_tiles(
    grid: TileGrid, tiles: set[tuple[int, int]] | list[tuple[int, int]], visible_first: Box | None
) -> list[tuple[int, int]]:
    """Raster order, or with ``visible_first=(y0, x0, y1, x1)`` (level-0 px) the tiles under the
    view first, each group sorted by distance from the view's centre."""
    tiles = sorted(tiles)
    if visible_first is None:
        return tiles
    vy0, vx0, vy1, vx1 = visible_first
    view = Rect(math.floor(vx0), math.floor(vy0), math.ceil(vx1), math.ceil(vy1))
    cy, cx = (vy0 + vy1) / 2, (vx0 + vx1) / 2

    def key(t: tuple[int, int]) -> tuple[int, float]:
        r = grid.level0_rect(*t)
        dist = math.hypot((r.y0 + r.y1) / 2 - cy, (r.x0 + r.x1) / 2 - cx)
        return (0 if r.intersects(view) else 1, dist)

    return sorted(tiles, key=key)
