"""Test slides of real tissue: mosaics of labelled PCam patches as tiled pyramidal TIFFs.

A mosaic is a grid of 96 px patches (class folders ``0`` normal and ``1`` tumour), written at
``MPP`` with levels 1, 2, 4 ...; each patch's centre 32 x 32 px carries its label (PCam's
definition), so ``centre_mask`` gives the known mask: 1 tumour, 2 normal, 0 unknown.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .._atomic import atomic_path
from ..errors import WsiSslError

MPP = 0.97
PATCH = 96
CENTRE = 32


def mosaic_files(
    folder: str | Path, side: int, count: int = 2, seed: int = 0
) -> list[list[tuple[Path, int]]]:
    """``count`` disjoint, class-balanced, shuffled lists of ``(file, label)`` for mosaics of
    ``side`` x ``side`` patches, drawn by ``seed`` from ``folder/0`` and ``folder/1``."""
    folder = Path(folder)
    rng = np.random.default_rng(seed)
    files = {k: sorted((folder / k).glob("*.jpg")) for k in ("0", "1")}
    half = side * side // 2
    if min(len(v) for v in files.values()) < count * half:
        raise WsiSslError(
            f"needs {count * half} .jpg patches in each of the class folders 0 and 1",
            folder,
            "use a smaller --side",
        )
    for k in files:
        files[k] = [files[k][i] for i in rng.permutation(len(files[k]))]
    out = []
    for m in range(count):
        part = [(f, 0) for f in files["0"][m * half : (m + 1) * half]]
        part += [(f, 1) for f in files["1"][m * half : (m + 1) * half]]
        out.append([part[i] for i in rng.permutation(len(part))])
    return out


def write_mosaic(
    files: list[tuple[Path, int]], side: int, path: str | Path, mpp: float = MPP
) -> np.ndarray:
    """Write the mosaic TIFF (levels 1, 2, 4 ...) and return its (side, side) patch labels."""
    import tifffile
    from PIL import Image

    size = side * PATCH
    img = np.full((size, size, 3), 255, np.uint8)
    labels = np.zeros((side, side), np.uint8)
    for i, (f, label) in enumerate(files[: side * side]):
        r, c = divmod(i, side)
        img[r * PATCH : (r + 1) * PATCH, c * PATCH : (c + 1) * PATCH] = np.asarray(
            Image.open(f).convert("RGB")
        )
        labels[r, c] = label
    res = (1e4 / mpp, 1e4 / mpp)
    common: dict[str, Any] = dict(
        tile=(256, 256), compression="zlib", resolution=res, resolutionunit="CENTIMETER"
    )
    with atomic_path(path) as tmp, tifffile.TiffWriter(tmp) as tw:
        tw.write(img, subfiletype=0, **common)
        level = img
        while min(level.shape[:2]) >= 512:
            h, w = level.shape[0] // 2 * 2, level.shape[1] // 2 * 2
            level = (
                level[:h, :w].reshape(h // 2, 2, w // 2, 2, 3).mean(axis=(1, 3)).astype(np.uint8)
            )
            tw.write(level, subfiletype=1, **common)
    return labels


def centre_mask(labels: np.ndarray) -> np.ndarray:
    """Level-0 mask: label 1 (tumour) or 2 (normal) on each patch's centre 32 x 32 px, else 0."""
    side = labels.shape[0]
    mask = np.zeros((side * PATCH, side * PATCH), np.uint8)
    o = (PATCH - CENTRE) // 2
    for r in range(side):
        for c in range(side):
            mask[r * PATCH + o : r * PATCH + o + CENTRE, c * PATCH + o : c * PATCH + o + CENTRE] = (
                1 if labels[r, c] else 2
            )
    return mask
