"""The one export entry point: a map, mask or label image to a file, the format from its suffix.

``wsi-ssl export`` (a prediction store or a mask image), napari's File > Save Layers (the npe2
writers) and the Export dock all call :func:`export_arrays` (through :func:`export_store` for a
store), so the suffix table, the threshold and the nuclei measurements are the same everywhere.

Units are stated only when known: without a pixel size, OME-TIFF carries no physical size,
OME-Zarr axes no unit, and the nuclei CSV names its columns in pixels.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from .._atomic import atomic_write_text
from ..errors import ExportError
from ..inference.store import PredictionStore, encode_probability
from ..qupath import class_colour
from ..slide import open_slide
from ._arrays import MppLike, as_mpp_xy
from .geojson import mask_features, write_geojson
from .nuclei_csv import nuclei_table, write_nuclei_csv
from .ome_tiff import write_ome_tiff
from .ome_zarr import write_ome_zarr
from .preview import write_png

#: Output formats and their suffixes (the first is the one a new name gets).
FORMATS: dict[str, tuple[str, ...]] = {
    "OME-TIFF": (".ome.tif", ".ome.tiff", ".tiff", ".tif"),
    "OME-Zarr": (".ome.zarr", ".zarr"),
    "GeoJSON": (".geojson", ".json"),
    "PNG": (".png",),
    "CSV": (".csv",),
}
#: Tumour probability from which a pixel counts as tumour, in masks and polygons.
DEFAULT_THRESHOLD = 0.5
#: GeoJSON, PNG and CSV read one whole level: the finest under this many pixels
MAX_VECTOR_PIXELS = 8192 * 8192
#: Class names of annotation labels as QuPath spells them.
QUPATH_CLASSES = {"tumour": "Tumor", "normal": "Normal"}

Kind = Literal["probability", "mask", "labels"]
#: A tumour probability map to sample: (level-0 map, its downsample, its level-0 origin)
Tumour = tuple[Any, float, tuple[float, float]]


def suffix_of(fmt: str) -> str:
    """The suffix a new file of format ``fmt`` gets."""
    return FORMATS[fmt][0]


def format_of(path: str | Path) -> str:
    """The format name of a target path, from its suffix; ExportError if unknown."""
    name = Path(path).name.lower()
    pairs = sorted(
        ((s, fmt) for fmt, suffixes in FORMATS.items() for s in suffixes), key=lambda p: -len(p[0])
    )
    for suffix, fmt in pairs:
        if name.endswith(suffix):
            return fmt
    raise ExportError(
        "unknown output format",
        path,
        hint="use a name ending in " + ", ".join(s[0] for s in FORMATS.values()),
    )


@dataclass(frozen=True)
class Placement:
    """Where an array lies on its slide.

    ``mpp`` is µm per slide level-0 pixel ``(x, y)`` or ``None`` when unknown; ``downsample`` is
    level-0 pixels per array pixel; ``offset_level0`` the level-0 ``(x, y)`` of its corner.
    """

    mpp: tuple[float, float] | None = None
    downsample: float = 1.0
    offset_level0: tuple[float, float] = (0.0, 0.0)
    slide_path: Path | None = None


@dataclass(frozen=True)
class ExportSettings:
    """What a front end may choose: the threshold, values or a mask, the probability encoding.

    ``values``: write probabilities (raster formats) rather than the mask above ``threshold``;
    GeoJSON is always the mask's polygons. ``float32``: probabilities as float32 instead of
    uint8 (p x 255), which OpenSlide cannot decode.
    """

    threshold: float = DEFAULT_THRESHOLD
    values: bool = False
    float32: bool = False


@dataclass(frozen=True)
class ExportResult:
    """What was written; ``warnings`` says when it holds nothing (the front ends show them)."""

    path: Path
    format: str
    features: int | None = None
    nuclei: int | None = None
    warnings: tuple[str, ...] = field(default_factory=tuple)


def export_store(
    store: str | Path,
    out: str | Path,
    name: str = "tumour",
    *,
    settings: ExportSettings = ExportSettings(),
    mpp: MppLike = None,
) -> ExportResult:
    """Export the map ``name`` of a prediction store (``mpp`` replaces the store's, if given)."""
    reader = PredictionStore(store)
    stored = reader[name]
    place = Placement(
        as_mpp_xy(mpp) if mpp is not None else stored.mpp,
        stored.downsample,
        stored.origin,
        reader.slide,
    )
    kind: Kind = "labels" if stored.labels else "probability"
    levels = stored.levels if stored.labels else stored.probabilities()
    tumour = None
    if stored.labels and "tumour" in reader.maps and name != "tumour":
        t = reader["tumour"]
        tumour = (t.probability(0), t.downsample, t.origin)
    return export_arrays(
        out,
        levels,
        kind,
        place,
        name=name,
        settings=settings,
        instances=stored.labels,
        tumour=tumour,
    )


def export_arrays(
    out: str | Path,
    data: Any,
    kind: Kind,
    place: Placement,
    *,
    name: str = "mask",
    settings: ExportSettings = ExportSettings(),
    class_names: dict[int, str] | None = None,
    instances: bool | None = None,
    fmt: str | None = None,
    tumour: Tumour | None = None,
) -> ExportResult:
    """Write ``data`` (a 2-D array or its levels, level 0 first) to ``out``.

    Parameters
    ----------
    kind
        ``"probability"``: floats in [0, 1]; ``"mask"``: any image, its mask is ``>= threshold``;
        ``"labels"``: integer labels, written as they are.
    class_names
        Names of the label values (annotations): GeoJSON gets one classification per class.
    instances
        Labels are instances (nuclei: one detection each); ``None`` infers it from the values.
    tumour
        ``(probability map, its downsample, its level-0 origin)``: nuclei get the tumour
        probability at their centroid and a tumour call (CSV columns, GeoJSON measurements).
    """
    out = Path(out)
    fmt = fmt or format_of(out)
    levels = as_levels(data)
    if getattr(levels[0], "ndim", 2) != 2:
        raise ExportError(f"{name!r} is not a 2-D mask or map (shape {levels[0].shape})", out)
    if fmt == "CSV" and kind != "labels":
        raise ExportError(
            "a CSV lists nuclei", out, hint="export a nuclei labels layer (--layer nuclei)"
        )
    if kind != "labels":
        # polygons are always of the mask; raster formats may keep the values
        values = settings.values and fmt != "GeoJSON"
        levels = [_raster(a, kind, settings, values) for a in levels]
    warnings: list[str] = []
    result: dict[str, Any] = {}
    # one level: the writers build the pyramid; several: they are written as given
    pyramid = levels if len(levels) > 1 else levels[0]
    if fmt == "OME-TIFF":
        write_ome_tiff(out, pyramid, place.mpp, downsample=place.downsample, name=name)
    elif fmt == "OME-Zarr":
        write_ome_zarr(
            out,
            pyramid,
            place.mpp,
            downsample=place.downsample,
            origin_level0=place.offset_level0,
            name=name,
        )
    else:
        # vector and preview formats read one whole level: the finest that is small enough
        k = 0
        while k + 1 < len(levels) and levels[k].size > MAX_VECTOR_PIXELS:
            k += 1
        arr = np.asarray(levels[k])
        level_place = Placement(
            place.mpp,
            place.downsample * levels[0].shape[0] / arr.shape[0],
            place.offset_level0,
            place.slide_path,
        )
        if fmt == "PNG":
            write_png(out, arr)
        elif fmt == "GeoJSON":
            n = _write_geojson(out, arr, kind, level_place, class_names, instances, tumour)
            result["features"] = n
            if n == 0:
                what = (
                    f"no pixel at or above the threshold {settings.threshold:g}"
                    if kind != "labels"
                    else "no labelled pixel"
                )
                warnings.append(f"{out.name}: {what}, so the GeoJSON holds no feature")
        else:
            n = len(measure_nuclei(out, arr, level_place, name=name, tumour=tumour))
            result["nuclei"] = n
            if n == 0:
                warnings.append(f"{out.name}: no nucleus in {name!r}, so the CSV has no row")
    raster_mask = kind != "labels" and fmt in ("OME-TIFF", "OME-Zarr", "PNG")
    if raster_mask and not settings.values and _empty(levels):
        warnings.append(
            f"{out.name}: no pixel at or above the threshold {settings.threshold:g}, "
            "so the mask is empty"
        )
    return ExportResult(out, fmt, warnings=tuple(warnings), **result)


def _empty(masks: list[Any]) -> bool:
    """Whether every level of a mask is empty, from the coarsest level up: a map with tumour
    shows it at a coarse level already, and only an empty one is read whole."""
    return not any(bool(m.any().compute()) for m in reversed(masks))


def as_levels(data: Any) -> list[Any]:
    """One array, or a sequence of levels (a list, or napari's multiscale data), as a list."""
    return list(data) if isinstance(data, Sequence) else [data]


def _raster(array: Any, kind: Kind, settings: ExportSettings, values: bool) -> Any:
    """A probability map or image as a lazy dask array of what is written: the mask at the
    threshold, or the values (probabilities as uint8 p x 255, or float32)."""
    import dask.array as da

    arr = array if hasattr(array, "dask") else da.from_array(array, chunks=_chunks(array))
    if not values:
        return (arr >= np.float32(settings.threshold)).astype(np.uint8)
    if kind == "mask":
        return arr
    if settings.float32:
        return arr.astype(np.float32)
    return arr.map_blocks(encode_probability, dtype=np.uint8)


def _chunks(array: Any) -> Any:
    """Dask chunks of about 1024 px that are whole multiples of the array's own chunks."""
    chunks = getattr(array, "chunks", None)
    if isinstance(chunks, tuple) and len(chunks) == 2 and all(isinstance(c, int) for c in chunks):
        return tuple(c * max(1, -(-1024 // c)) for c in chunks)
    return (2048, 2048)


def _write_geojson(
    out: Path,
    arr: np.ndarray,
    kind: Kind,
    place: Placement,
    class_names: dict[int, str] | None,
    instances: bool | None,
    tumour: Tumour | None = None,
) -> int:
    """Write the polygons (of a 0/1 mask, or of labels); return how many features were written.

    Annotations carry their class name and colour; nuclei are detections with their
    measurements (when the slide is at hand to measure them on).
    """
    names = {k: v for k, v in (class_names or {}).items() if int(k) != 0}
    if kind == "labels" and names and not instances:
        features: list[dict[str, Any]] = []
        for value, cls in sorted(names.items()):
            if np.any(arr == value):
                features += mask_features(
                    arr == value,
                    downsample=place.downsample,
                    offset=place.offset_level0,
                    classification=QUPATH_CLASSES.get(cls, cls),
                    color=list(class_colour(value, cls)),
                )
        atomic_write_text(
            out,
            json.dumps({"type": "FeatureCollection", "features": features}, separators=(",", ":")),
        )
        return len(features)
    labels = instances if kind == "labels" else False
    if labels is None:
        labels = bool(arr.max(initial=0) > 1)
    measured = None
    if labels and place.slide_path is not None:
        rows = measure_nuclei(None, arr, place, tumour=tumour)
        measured = {int(r["id"]): {k: v for k, v in r.items() if k != "id"} for r in rows}
    write_geojson(
        out, arr, place.downsample, offset=place.offset_level0, labels=labels, measurements=measured
    )
    return len(json.loads(out.read_text(encoding="utf-8"))["features"])


def measure_nuclei(
    out: Path | None,
    labels: np.ndarray,
    place: Placement,
    name: str = "nuclei",
    tumour: Tumour | None = None,
) -> list[dict[str, Any]]:
    """The measurements of ``labels`` on the slide's pixels, written as CSV to ``out`` (if given)."""
    if place.slide_path is None:
        raise ExportError(
            f"{name!r} is not tied to a slide file, so nuclei cannot be measured",
            out,
            hint="export nuclei predicted on a slide (from a prediction store or the plugin)",
        )
    h, w = labels.shape
    loc = (int(round(place.offset_level0[0])), int(round(place.offset_level0[1])))
    with open_slide(place.slide_path) as slide:
        if place.downsample == 1:
            rgb = slide.read_region(loc, 0, (w, h))
        else:
            rgb = slide.read_scaled(loc, (w, h), place.downsample)
    rows = nuclei_table(
        labels,
        rgb,
        place.mpp,
        downsample=place.downsample,
        offset=place.offset_level0,
        tumour=tumour,
        path=out,
    )
    if out is not None:
        write_nuclei_csv(out, labels, rgb, place.mpp, rows=rows)
    return rows
