"""QuPath-compatible GeoJSON: polygons (with holes) of a mask's regions or of each label."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .._atomic import atomic_write_text
from ..errors import ExportError
from ..qupath import classification_of, load_features, rasterise_features

TUMOUR_COLOR = [200, 0, 0]
NUCLEUS_COLOR = [60, 60, 220]


def _ring(
    contour: np.ndarray, downsample: float, offset: tuple[float, float], tol: float
) -> list[list[float]]:
    """A closed ring in level-0 (x, y) from a find_contours (row, col) contour."""
    from skimage.measure import approximate_polygon

    if tol > 0 and len(contour) > 8:
        contour = approximate_polygon(contour, tolerance=tol)
    # contour coordinates are pixel-centre indices; pixel i covers [i, i+1) * downsample
    xs = (contour[:, 1] + 0.5) * downsample + offset[0]
    ys = (contour[:, 0] + 0.5) * downsample + offset[1]
    ring = [[round(float(x), 2), round(float(y), 2)] for x, y in zip(xs, ys, strict=True)]
    if ring[0] != ring[-1]:
        ring.append(ring[0])
    return ring


def _signed_area(contour: np.ndarray) -> float:
    y, x = contour[:, 0], contour[:, 1]
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))


def _polygons_of(component: np.ndarray) -> list[tuple[np.ndarray, list[np.ndarray]]]:
    """Outer contour and holes of each 8-connected region of a boolean crop (padded by 1)."""
    from skimage.measure import find_contours, label

    lab = label(component, connectivity=2)
    out = []
    for k in range(1, int(lab.max()) + 1):
        region = np.pad(lab == k, 1)
        contours = [c - 1 for c in find_contours(region.astype(np.float32), 0.5) if len(c) >= 4]
        if not contours:
            continue
        areas = [abs(_signed_area(c)) for c in contours]
        outer = int(np.argmax(areas))
        out.append((contours[outer], [c for i, c in enumerate(contours) if i != outer]))
    return out


def mask_features(
    mask: np.ndarray,
    *,
    downsample: float = 1.0,
    offset: tuple[float, float] = (0.0, 0.0),
    classification: str = "Tumor",
    color: list[int] | None = None,
    object_type: str = "annotation",
    simplify: float = 0.5,
    min_area_px: int = 1,
    label_ids: bool = False,
    measurements: Mapping[int, Mapping[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """GeoJSON Polygon features of a boolean mask's regions, or of each label of a label image.

    QuPath's fields: ``objectType``, ``classification`` ``{name, color}`` and, for labels,
    ``measurements`` (a name -> number dict: the label, and ``measurements[label]`` if given).
    """
    from scipy import ndimage

    mask = np.asarray(mask)
    color = color or (NUCLEUS_COLOR if label_ids else TUMOUR_COLOR)
    features: list[dict[str, Any]] = []
    if label_ids:
        slices = ndimage.find_objects(mask.astype(np.int64, copy=False))
        items = [(i + 1, s) for i, s in enumerate(slices) if s is not None]
    else:
        lab, n = ndimage.label(mask > 0, structure=np.ones((3, 3)))
        mask = lab
        items = [(i + 1, s) for i, s in enumerate(ndimage.find_objects(lab)) if s is not None]
    for value, sl in items:
        crop = mask[sl] == value
        if int(crop.sum()) < min_area_px:
            continue
        off = (offset[0] + sl[1].start * downsample, offset[1] + sl[0].start * downsample)
        for outer, holes in _polygons_of(crop):
            rings = [_ring(outer, downsample, off, simplify)]
            rings += [_ring(h, downsample, off, simplify) for h in holes]
            props: dict[str, Any] = {
                "objectType": object_type,
                "classification": {"name": classification, "color": list(color)},
            }
            if label_ids:
                extra = (measurements or {}).get(int(value), {})
                props["measurements"] = {"label": int(value), **_numbers(extra)}
            features.append(
                {
                    "type": "Feature",
                    "geometry": {"type": "Polygon", "coordinates": rings},
                    "properties": props,
                }
            )
    return features


def _numbers(values: Mapping[str, Any]) -> dict[str, float]:
    """QuPath's measurements are numbers: booleans become 0/1, other values are left out."""
    out: dict[str, float] = {}
    for k, v in values.items():
        if isinstance(v, bool):
            out[k] = float(v)
        elif isinstance(v, (int, float)):
            out[k] = v
    return out


def write_geojson(
    path: str | Path,
    mask_or_labels: Any,
    downsample: float = 1.0,
    classification: str | None = None,
    *,
    offset: tuple[float, float] = (0.0, 0.0),
    labels: bool | None = None,
    color: list[int] | None = None,
    simplify: float = 0.5,
    min_area_px: int = 1,
    measurements: Mapping[int, Mapping[str, Any]] | None = None,
) -> Path:
    """Write a QuPath-compatible GeoJSON FeatureCollection of polygons in level-0 pixels.

    Parameters
    ----------
    mask_or_labels
        Boolean/0-1 mask (one ``annotation`` per connected region, holes kept) or integer label
        image (one ``detection`` per label; pass ``labels=True`` or it is inferred from more than
        two distinct values).
    downsample
        Level-0 pixels per pixel of the array.
    classification
        Class name; "Tumor" for masks and "Nucleus" for labels by default.
    offset
        Level-0 ``(x, y)`` of the array's top-left corner (a region's origin).
    simplify
        Douglas-Peucker tolerance in pixels of the array (0 keeps every vertex).
    """
    arr = np.asarray(mask_or_labels)
    if arr.ndim != 2:
        raise ExportError(f"expected a 2-D mask or labels, got shape {arr.shape}", path)
    if labels is None:
        labels = bool(np.issubdtype(arr.dtype, np.integer) and arr.max(initial=0) > 1)
    name = classification or ("Nucleus" if labels else "Tumor")
    features = mask_features(
        arr,
        downsample=downsample,
        offset=offset,
        classification=name,
        color=color,
        object_type="detection" if labels else "annotation",
        simplify=simplify,
        min_area_px=min_area_px,
        label_ids=labels,
        measurements=measurements,
    )
    doc = {"type": "FeatureCollection", "features": features}
    atomic_write_text(path, json.dumps(doc, separators=(",", ":")))
    return Path(path)


def read_geojson_mask(
    path: str | Path,
    shape: tuple[int, int],
    downsample: float = 1.0,
    *,
    offset: tuple[float, float] = (0.0, 0.0),
    classification: str | None = None,
    labels: bool = False,
) -> np.ndarray:
    """Rasterise a GeoJSON's polygons onto a (h, w) grid at ``downsample`` (holes cleared).

    Returns a boolean mask, or with ``labels=True`` an int32 image numbering the features 1..n.
    Features whose classification name differs from ``classification`` are skipped.
    """
    kept = [
        f
        for f in load_features(path)
        if classification is None or classification_of(f)[0] == classification
    ]
    out = rasterise_features(kept, shape, lambda k, _: k + 1, downsample, offset)
    return out if labels else out > 0
