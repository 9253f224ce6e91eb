"""OME-NGFF 0.4 metadata and chunk-wise pyramid maths (numpy and zarr only, no torch).

An overlay computed at downsample ``d`` of a slide with ``mpp`` µm/px lies on the slide when its
scale is ``d * mpp`` and its translation ``(d - 1) / 2 * mpp`` (pixel centres, as napari draws them),
plus the offset of the region it covers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def level_transform(
    downsample: float,
    mpp: tuple[float, float] | None,
    origin_level0: tuple[float, float] = (0.0, 0.0),
) -> tuple[list[float], list[float]]:
    """Scale and translation ``([sy, sx], [ty, tx])`` of a level at ``downsample`` of level 0.

    Parameters
    ----------
    downsample
        Level-0 pixels per pixel of the level.
    mpp
        ``(x, y)`` µm per level-0 pixel, or ``None`` (then the unit is level-0 pixels).
    origin_level0
        ``(x, y)`` level-0 pixel of the level's top-left corner (the region offset).
    """
    mx, my = mpp if mpp is not None else (1.0, 1.0)
    ox, oy = origin_level0
    scale = [downsample * my, downsample * mx]
    translate = [((downsample - 1) / 2 + oy) * my, ((downsample - 1) / 2 + ox) * mx]
    return scale, translate


def multiscales_attrs(
    name: str,
    downsamples: Sequence[float],
    mpp: tuple[float, float] | None,
    origin_level0: tuple[float, float] = (0.0, 0.0),
    paths: Sequence[str] | None = None,
    labels: bool = False,
) -> dict[str, Any]:
    """The ``.zattrs`` content of an NGFF 0.4 multiscale (y, x) image or label image."""
    unit = {"unit": "micrometer"} if mpp is not None else {}
    datasets = []
    for i, d in enumerate(downsamples):
        scale, translate = level_transform(d, mpp, origin_level0)
        datasets.append(
            {
                "path": paths[i] if paths is not None else str(i),
                "coordinateTransformations": [
                    {"type": "scale", "scale": scale},
                    {"type": "translation", "translation": translate},
                ],
            }
        )
    attrs: dict[str, Any] = {
        "multiscales": [
            {
                "version": "0.4",
                "name": name,
                "axes": [
                    {"name": "y", "type": "space", **unit},
                    {"name": "x", "type": "space", **unit},
                ],
                "datasets": datasets,
                "type": "nearest" if labels else "mean",
            }
        ]
    }
    return attrs


def pyramid_shapes(
    shape: tuple[int, int], chunk: int, max_levels: int = 12
) -> list[tuple[int, int]]:
    """Shapes of the levels, halving until the level fits one chunk (level 0 first).

    The number of levels is capped so that ``2**level`` never exceeds ``chunk``: each tile then
    maps onto at least one whole pixel of every level, which lets a tile update all the levels
    from its own pixels.
    """
    shapes = [shape]
    while max(shapes[-1]) > chunk and 2 ** len(shapes) <= chunk and len(shapes) < max_levels:
        h, w = shapes[-1]
        shapes.append(((h + 1) // 2, (w + 1) // 2))
    return shapes


def downscale(block: np.ndarray, factor: int, labels: bool) -> np.ndarray:
    """Reduce a 2-D block by an integer factor: nearest (stride) for labels, mean otherwise.

    Edge blocks whose size is not a multiple of ``factor`` are padded by edge replication, so a
    block downscaled at once equals the same block downscaled by 2 repeatedly (up to rounding).
    """
    if factor == 1:
        return block
    if labels:
        return block[::factor, ::factor]
    h, w = block.shape
    ph, pw = (-h) % factor, (-w) % factor
    if ph or pw:
        block = np.pad(block, ((0, ph), (0, pw)), mode="edge")
    hh, ww = block.shape[0] // factor, block.shape[1] // factor
    mean = block.reshape(hh, factor, ww, factor).astype(np.float32).mean(axis=(1, 3))
    if np.issubdtype(block.dtype, np.integer):
        return np.rint(mean).astype(block.dtype)
    return mean.astype(block.dtype)


__all__ = ["downscale", "level_transform", "multiscales_attrs", "pyramid_shapes"]
