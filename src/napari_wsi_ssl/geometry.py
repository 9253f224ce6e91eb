"""The one region type: a rectangle in level-0 pixels.

Every box of the compute layers is a ``Rect``; the tuple orders of other libraries appear only
at the edges, through the named conversions (``from_xywh``/``xywh`` for the command line and
napari's shapes, ``yx_box`` for array indexing). Torch-free and napari-free.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .errors import AnnotationError


@dataclass(frozen=True)
class Rect:
    """A half-open rectangle ``x0 <= x < x1``, ``y0 <= y < y1`` in level-0 pixels."""

    x0: int
    y0: int
    x1: int
    y1: int

    def __post_init__(self) -> None:
        if self.x1 < self.x0 or self.y1 < self.y0:
            raise ValueError(f"a rectangle needs x0 <= x1 and y0 <= y1, got {self}")

    @classmethod
    def from_xywh(cls, x: float, y: float, width: float, height: float) -> Rect:
        """From a corner and a size (the command line's ``x,y,w,h``)."""
        x0, y0 = int(x), int(y)
        return cls(x0, y0, x0 + int(width), y0 + int(height))

    @classmethod
    def coerce(cls, region: Rect | Sequence[float] | None) -> Rect | None:
        """A ``Rect`` from a ``Rect`` or an ``(x, y, w, h)`` sequence (the napari docks' form)."""
        if region is None or isinstance(region, Rect):
            return region
        x, y, w, h = (float(v) for v in region)
        return cls.from_xywh(x, y, w, h)

    @classmethod
    def parse(cls, text: str) -> Rect:
        """From the text ``"x,y,w,h"``; ValueError when it is not four numbers."""
        parts = text.split(",")
        if len(parts) != 4:
            raise ValueError(f"expected x,y,w,h in level-0 pixels, got {text!r}")
        x, y, w, h = (float(v) for v in parts)
        return cls.from_xywh(x, y, w, h)

    @property
    def width(self) -> int:
        return self.x1 - self.x0

    @property
    def height(self) -> int:
        return self.y1 - self.y0

    @property
    def empty(self) -> bool:
        return self.width <= 0 or self.height <= 0

    @property
    def xywh(self) -> tuple[int, int, int, int]:
        return self.x0, self.y0, self.width, self.height

    @property
    def yx_box(self) -> tuple[int, int, int, int]:
        """``(y0, x0, y1, x1)``: the order of array rows and columns."""
        return self.y0, self.x0, self.y1, self.x1

    def scaled(self, factor: float) -> Rect:
        """The rectangle in pixels ``factor`` times finer (``1 / downsample`` to go coarser),
        widened to whole pixels so that it still covers the same area."""

        # a product a rounding error away from a whole number is that number (6 * (1/3) is 2)
        def low(v: float) -> int:
            return math.floor(v * factor + 1e-9)

        def high(v: float) -> int:
            return math.ceil(v * factor - 1e-9)

        return Rect(low(self.x0), low(self.y0), high(self.x1), high(self.y1))

    def clipped(self, width: float, height: float) -> Rect:
        """The part inside ``[0, width) x [0, height)``; empty (not an error) when none is."""
        x0, y0 = min(max(self.x0, 0), int(width)), min(max(self.y0, 0), int(height))
        return Rect(x0, y0, max(x0, min(self.x1, int(width))), max(y0, min(self.y1, int(height))))

    def intersects(self, other: Rect) -> bool:
        return (
            self.x0 < other.x1 and other.x0 < self.x1 and self.y0 < other.y1 and other.y0 < self.y1
        )

    def check_inside(self, width: float, height: float, path: str | Path | None = None) -> Rect:
        """The part of the region on a ``width`` x ``height`` slide; AnnotationError when none is."""
        inside = self.clipped(width, height)
        if inside.empty:
            raise AnnotationError(
                f"the region (x {self.x0}, y {self.y0}, w {self.width}, h {self.height}) lies "
                f"outside the slide ({int(width)} x {int(height)} px)",
                path,
                "choose a region on the slide",
            )
        return inside
