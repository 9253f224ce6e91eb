"""QuPath's GeoJSON: read annotations into a label image with their classes (no torch, no Qt).

QuPath writes a FeatureCollection (or a list of features) of Polygon/MultiPolygon geometries in
level-0 pixels, each with ``properties.objectType`` ("annotation", "detection", ...) and
``properties.classification`` ``{"name", "color"}`` (``color`` an ``[r, g, b]`` list, or a
packed ARGB integer in older versions). Pixel ``i`` of a grid at ``downsample`` covers level-0
``[i, i + 1) * downsample``; a pixel is inside a polygon when its centre is, holes cleared.
Fine-tuning (``training.data``), the export's round trip and the napari reader all rasterise
with :func:`rasterise_features`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .errors import AnnotationError
from .vocab import CLASS_COLOURS, DEFAULT_CLASS_NAMES, UNLABELLED

RGB = tuple[int, int, int]
#: value -> (class name, colour)
ClassTable = dict[int, tuple[str, RGB]]
#: Spellings of one class that QuPath and the project use
SYNONYMS = {"tumor": "tumour", "tumour": "tumour", "normal": "normal"}


def default_classes() -> ClassTable:
    """The painted classes' values, names and colours (1 tumour, 2 normal)."""
    return {
        v: (name, _rgb_of_rgba(CLASS_COLOURS[v]))
        for v, name in DEFAULT_CLASS_NAMES.items()
        if v != UNLABELLED
    }


def load_features(path: str | Path) -> list[dict[str, Any]]:
    """The features of a GeoJSON file (a FeatureCollection, a Feature, or a list of them)."""
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise AnnotationError(
            f"cannot read the GeoJSON ({type(exc).__name__})", path, "give a GeoJSON file"
        ) from None
    if isinstance(doc, list):
        return [f for f in doc if isinstance(f, dict)]
    if isinstance(doc, dict) and doc.get("type") == "FeatureCollection":
        return [f for f in doc.get("features") or [] if isinstance(f, dict)]
    return [doc] if isinstance(doc, dict) else []


def classification_of(feature: Mapping[str, Any]) -> tuple[str, RGB | None]:
    """A feature's class name ("" when unclassified) and colour (None when not given)."""
    props = feature.get("properties") or {}
    cls = props.get("classification") or {}
    if not isinstance(cls, dict):  # some writers put the bare name
        return str(cls).strip(), None
    name = str(cls.get("name", props.get("name", "")) or "").strip()
    return name, parse_color(cls.get("color", props.get("color")))


def parse_color(color: Any) -> RGB | None:
    """QuPath's ``[r, g, b]`` or packed (A)RGB integer as an ``(r, g, b)`` tuple."""
    if isinstance(color, (list, tuple)) and len(color) >= 3:
        return (int(color[0]), int(color[1]), int(color[2]))
    if isinstance(color, int):
        c = color & 0xFFFFFF
        return ((c >> 16) & 255, (c >> 8) & 255, c & 255)
    return None


def polygons(feature: Mapping[str, Any]) -> list[list[Any]]:
    """A feature's polygons, each a list of rings (outer first); [] for other geometries."""
    geom = feature.get("geometry") or {}
    coords = geom.get("coordinates") or []
    if geom.get("type") == "Polygon":
        return [coords]
    if geom.get("type") == "MultiPolygon":
        return list(coords)
    return []


def rasterise_features(
    features: Sequence[Mapping[str, Any]],
    shape: tuple[int, int],
    value_of: Callable[[int, Mapping[str, Any]], int | None],
    downsample: float = 1.0,
    offset: tuple[float, float] = (0.0, 0.0),
    dtype: Any = np.int32,
) -> np.ndarray:
    """Fill each feature's polygons with ``value_of(index, feature)`` on a (h, w) grid.

    ``None`` skips a feature; a polygon's holes keep what lay under them; later features paint
    over earlier ones.
    """
    from skimage.draw import polygon as draw_polygon

    out = np.zeros(shape, dtype=dtype)
    for k, feat in enumerate(features):
        polys = polygons(feat)
        if not polys:
            continue
        value = value_of(k, feat)
        if value is None:
            continue
        for rings in polys:
            grid = [_on_grid(ring, downsample, offset) for ring in rings or []]
            if not grid or grid[0] is None:
                continue
            outer = grid[0]
            r0 = max(0, int(np.floor(outer[0].min())))
            c0 = max(0, int(np.floor(outer[1].min())))
            r1 = min(shape[0], int(np.ceil(outer[0].max())) + 1)
            c1 = min(shape[1], int(np.ceil(outer[1].max())) + 1)
            if r1 <= r0 or c1 <= c0:
                continue
            inside = np.zeros((r1 - r0, c1 - c0), bool)
            for i, ring in enumerate(grid):
                if ring is not None:
                    rr, cc = draw_polygon(ring[0] - r0, ring[1] - c0, inside.shape)
                    inside[rr, cc] = i == 0
            out[r0:r1, c0:c1][inside] = value
    return out


def _on_grid(
    ring: Any, downsample: float, offset: tuple[float, float]
) -> tuple[np.ndarray, np.ndarray] | None:
    """A ring's level-0 ``(x, y)`` points as (rows, cols) pixel-centre indices of the grid."""
    xy = np.asarray(ring, dtype=np.float64)
    if xy.ndim != 2 or len(xy) < 3:
        return None
    cols = (xy[:, 0] - offset[0]) / downsample - 0.5
    rows = (xy[:, 1] - offset[1]) / downsample - 0.5
    return rows, cols


def read_qupath_geojson(
    path: str | Path,
    shape: tuple[int, int],
    downsample: float = 1.0,
    *,
    offset: tuple[float, float] = (0.0, 0.0),
    classes: Mapping[int, tuple[str, RGB]] | None = None,
    object_types: Sequence[str] | None = ("annotation",),
) -> tuple[np.ndarray, ClassTable]:
    """A QuPath GeoJSON's polygons as a label image at ``downsample``, and its class table.

    Classes are matched to ``classes`` (default: 1 tumour, 2 normal) by name, case-insensitive
    and with QuPath's spelling "Tumor"; a class not in the table gets the next free value, not
    an error; unclassified polygons get one class "Unclassified". The table returned holds the
    values used, with the names and colours of the file (the table's where the file has none).
    ``object_types`` keeps only those ``properties.objectType`` (features without one are
    kept); ``None`` keeps all. Returns ``(labels uint16, {value: (name, (r, g, b))})``.
    """
    features = load_features(path)
    table: dict[int, tuple[str, RGB]] = dict(default_classes() if classes is None else classes)
    by_key = {_key(name): v for v, (name, _) in table.items()}
    used: ClassTable = {}

    def value_of(_: int, feat: Mapping[str, Any]) -> int | None:
        kind = (feat.get("properties") or {}).get("objectType")
        if object_types is not None and kind is not None and kind not in object_types:
            return None
        name, colour = classification_of(feat)
        name = name or "Unclassified"
        value = by_key.get(_key(name))
        if value is None:
            value = max([*table, *used, UNLABELLED]) + 1
            by_key[_key(name)] = value
        known = table.get(value)
        used.setdefault(value, (name, colour or (known[1] if known else _new_colour(value))))
        return value

    labels = rasterise_features(features, shape, value_of, downsample, offset, np.uint16)
    if not used:
        raise AnnotationError(
            "the GeoJSON holds no polygon annotation", path, "export annotations from QuPath"
        )
    return labels, dict(sorted(used.items()))


def class_colour(value: int, name: str) -> RGB:
    """The colour a class is exported with: the default class's of that name, else a new one."""
    key = _key(name)
    for known, colour in default_classes().values():
        if _key(known) == key:
            return colour
    return _new_colour(value)


def _key(name: str) -> str:
    low = name.strip().lower()
    return SYNONYMS.get(low, low)


def _rgb_of_rgba(rgba: tuple[float, float, float, float]) -> RGB:
    return (round(rgba[0] * 255), round(rgba[1] * 255), round(rgba[2] * 255))


def _new_colour(value: int) -> RGB:
    """A distinct colour for a class the file gives none (golden-angle hues)."""
    import colorsys

    r, g, b = colorsys.hsv_to_rgb((value * 0.618034) % 1.0, 0.7, 0.9)
    return (round(r * 255), round(g * 255), round(b * 255))
