"""Patch coordinates at a working resolution.

All coordinates are the top-left corners of patches in level-0 pixels; a patch covers
``patch_size * downsample`` level-0 pixels on a side. Masks come with their own downsample
relative to level 0. A region is a ``Rect`` in level-0 pixels.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..errors import AnnotationError
from ..geometry import Rect
from ..vocab import UNLABELLED


def mask_window(shape: tuple[int, int], mask_downsample: float, region: Rect | None) -> Rect:
    """The part of a mask (in its own pixels) covered by a level-0 region; the whole mask for None."""
    h, w = shape
    if region is None:
        return Rect(0, 0, w, h)
    return region.scaled(1 / mask_downsample).clipped(w, h)


def grid_coords(
    mask: np.ndarray,
    mask_downsample: float,
    patch_size: int,
    downsample: float,
    *,
    region: Rect | None = None,
    min_fraction: float = 0.5,
    stride: int | None = None,
) -> np.ndarray:
    """A grid of patches whose footprint holds at least ``min_fraction`` of ``mask`` (e.g. tissue).

    Returns an (N, 2) int64 array of (x, y) level-0 top-left corners.
    """
    mask = np.asarray(mask, dtype=bool)
    span = patch_size * downsample  # level-0 pixels per patch
    step = (stride or patch_size) * downsample
    h, w = mask.shape
    x0, y0, rw, rh = (
        region.xywh
        if region is not None
        else (0, 0, int(w * mask_downsample), int(h * mask_downsample))
    )
    xs = np.arange(x0, x0 + rw - span + 1, step) if rw >= span else np.array([x0])
    ys = np.arange(y0, y0 + rh - span + 1, step) if rh >= span else np.array([y0])
    integral = np.pad(mask.astype(np.int64).cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    out = []
    for y in ys:
        r0 = int(np.clip(np.floor(y / mask_downsample), 0, h))
        r1 = int(np.clip(np.ceil((y + span) / mask_downsample), 0, h))
        for x in xs:
            c0 = int(np.clip(np.floor(x / mask_downsample), 0, w))
            c1 = int(np.clip(np.ceil((x + span) / mask_downsample), 0, w))
            area = max((r1 - r0) * (c1 - c0), 1)
            inside = integral[r1, c1] - integral[r0, c1] - integral[r1, c0] + integral[r0, c0]
            if inside / area >= min_fraction:
                out.append((int(x), int(y)))
    return np.asarray(out, dtype=np.int64).reshape(-1, 2)


def _centres_to_corners(
    rows: np.ndarray,
    cols: np.ndarray,
    mask_downsample: float,
    span: float,
    rng: np.random.Generator,
) -> np.ndarray:
    # a random point inside the chosen mask pixel, then the patch centred on it
    cx = (cols + rng.random(cols.shape)) * mask_downsample
    cy = (rows + rng.random(rows.shape)) * mask_downsample
    return np.stack([np.floor(cx - span / 2), np.floor(cy - span / 2)], axis=1).astype(np.int64)


def random_coords(
    mask: np.ndarray,
    mask_downsample: float,
    patch_size: int,
    downsample: float,
    n: int,
    rng: np.random.Generator,
    *,
    region: Rect | None = None,
) -> np.ndarray:
    """``n`` patches centred on random pixels of ``mask`` (e.g. tissue), as (N, 2) level-0 corners."""
    win = mask_window(np.shape(mask), mask_downsample, region)
    r0, c0 = win.y0, win.x0
    rows, cols = np.nonzero(np.asarray(mask, dtype=bool)[win.y0 : win.y1, win.x0 : win.x1])
    if rows.size == 0:
        raise AnnotationError(
            "no tissue (or no mask pixel) in the sampling area", hint="check the region and mask"
        )
    pick = rng.integers(0, rows.size, size=n)
    return _centres_to_corners(
        rows[pick] + r0, cols[pick] + c0, mask_downsample, patch_size * downsample, rng
    )


def balanced_coords(
    labels: np.ndarray,
    mask_downsample: float,
    patch_size: int,
    downsample: float,
    n: int,
    rng: np.random.Generator,
    *,
    region: Rect | None = None,
    classes: Sequence[int] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Patches centred on labelled pixels, each class drawn with equal probability (paper 2).

    Unlabelled pixels (``UNLABELLED``) are never drawn. Returns ((N, 2) level-0 corners, (N,) drawn classes).

    Raises
    ------
    AnnotationError
        When no pixel is labelled in the sampling area.
    """
    win = mask_window(np.shape(labels), mask_downsample, region)
    r0, c0 = win.y0, win.x0
    window = np.asarray(labels)[win.y0 : win.y1, win.x0 : win.x1]
    present = [int(c) for c in np.unique(window) if c != UNLABELLED]
    if classes is not None:
        present = [c for c in present if c in set(classes)]
    if not present:
        raise AnnotationError(
            "no labelled pixel in the sampling area",
            hint="paint at least one class inside the region",
        )
    drawn = rng.choice(np.asarray(present), size=n)
    corners = np.zeros((n, 2), dtype=np.int64)
    span = patch_size * downsample
    for c in present:
        sel = np.flatnonzero(drawn == c)
        if sel.size == 0:
            continue
        rows, cols = np.nonzero(window == c)
        pick = rng.integers(0, rows.size, size=sel.size)
        corners[sel] = _centres_to_corners(
            rows[pick] + r0, cols[pick] + c0, mask_downsample, span, rng
        )
    return corners, drawn.astype(np.int64)
