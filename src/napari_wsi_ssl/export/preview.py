"""PNG previews of probability maps, masks and label images."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np

from .._atomic import atomic_write_bytes


def _thumbnail(array: Any, size: int) -> np.ndarray:
    h, w = array.shape[:2]
    step = max(1, int(np.ceil(max(h, w) / (2 * size))))
    return np.asarray(array[::step, ::step])


def write_png(
    path: str | Path,
    array: Any,
    size: int = 1024,
    *,
    colormap: str = "magma",
    vmin: float | None = None,
    vmax: float | None = None,
) -> Path:
    """Write a PNG whose longer side is at most ``size`` px.

    RGB(A) uint8 arrays are written as they are; integer labels get a random colour per label
    (0 black); masks and probability maps (float in [0, 1] or uint8 0-255) go through
    ``colormap``. Large lazy arrays are subsampled before anything is read.
    """
    from PIL import Image

    small = _thumbnail(array, size)
    if small.ndim == 3 and small.shape[2] in (3, 4):
        rgb = small.astype(np.uint8)
    elif np.issubdtype(small.dtype, np.integer) and small.dtype != np.uint8:
        rng = np.random.default_rng(0)
        ids = small.astype(np.int64)
        palette = rng.integers(60, 256, size=(int(ids.max(initial=0)) + 1, 3), dtype=np.uint8)
        palette[0] = 0
        rgb = palette[ids]
    else:
        from matplotlib import colormaps

        values = small.astype(np.float32)
        if small.dtype == np.uint8 and small.max(initial=0) > 1:
            values /= 255.0
        lo = 0.0 if vmin is None else vmin
        hi = 1.0 if vmax is None else vmax
        norm = np.clip((values - lo) / max(hi - lo, 1e-12), 0, 1)
        rgb = (colormaps[colormap](norm)[..., :3] * 255).astype(np.uint8)
    img = Image.fromarray(rgb)
    scale = size / max(img.size)
    if scale < 1:
        new = (max(1, round(img.size[0] * scale)), max(1, round(img.size[1] * scale)))
        img = img.resize(new, Image.Resampling.NEAREST)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return atomic_write_bytes(path, buf.getvalue())
