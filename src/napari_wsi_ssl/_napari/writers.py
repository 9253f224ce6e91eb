"""npe2 writers for Labels and Image layers (File > Save Layers), and the Export dock's back end.

napari calls ``write_labels(path, data, meta)`` / ``write_image(path, data, meta)`` with the
layer's data (a list of arrays when multiscale) and its state (``scale``, ``translate``,
``metadata``, ``name`` ...). The format follows the suffix:

========================  ===========================================================
``.ome.tif``/``.ome.tiff`` pyramidal OME-TIFF with the slide's physical pixel size
``.ome.zarr``/``.zarr``    OME-Zarr (NGFF 0.4) on the slide's coordinates
``.geojson``               QuPath polygons in level-0 pixels (one class per label)
``.png``                   a preview
``.csv``                   per-nucleus measurements (labels of a slide only)
========================  ===========================================================

Where the layer sits on a slide is read from its metadata (``mpp``, ``downsample``,
``slide_path``) or, failing that, from its scale and translate in µm.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .._atomic import atomic_write_text
from ..errors import ExportError

#: Output formats by suffix; the Export dock offers the same names.
FORMATS: dict[str, str] = {
    "OME-TIFF": ".ome.tif",
    "OME-Zarr": ".ome.zarr",
    "GeoJSON": ".geojson",
    "PNG": ".png",
    "CSV": ".csv",
}


def format_of(path: str | Path) -> str:
    """The format name of a target path, from its suffix; ExportError if unknown."""
    name = Path(path).name.lower()
    for suffix, fmt in (
        (".ome.tiff", "OME-TIFF"),
        (".ome.tif", "OME-TIFF"),
        (".tiff", "OME-TIFF"),
        (".tif", "OME-TIFF"),
        (".ome.zarr", "OME-Zarr"),
        (".zarr", "OME-Zarr"),
        (".geojson", "GeoJSON"),
        (".json", "GeoJSON"),
        (".png", "PNG"),
        (".csv", "CSV"),
    ):
        if name.endswith(suffix):
            return fmt
    raise ExportError(
        "unknown file type",
        path,
        hint="use .ome.tif, .ome.zarr, .geojson, .png or .csv",
    )


@dataclass(frozen=True)
class Placement:
    """Where an array lies on its slide: µm per level-0 px, level-0 px per array px, origin."""

    mpp: float | None
    downsample: float
    offset_level0: tuple[float, float]  # (x, y)
    slide_path: Path | None


def placement_of(meta: dict[str, Any]) -> Placement:
    """Read a layer's placement on its slide from the writer ``meta`` dict."""
    metadata = dict(meta.get("metadata") or {})
    scale = [float(s) for s in (meta.get("scale") or (1.0, 1.0))][-2:]
    translate = [float(t) for t in (meta.get("translate") or (0.0, 0.0))][-2:]
    mpp = metadata.get("mpp")
    if isinstance(mpp, (list, tuple)):
        mpp = mpp[0] if mpp else None
    downsample = metadata.get("downsample")
    if downsample is None:
        downsample = scale[-1] / float(mpp) if mpp else 1.0
    downsample = float(downsample)
    if not mpp:
        # without a slide, a scale other than 1 is taken as µm per pixel of this array
        mpp = scale[-1] / downsample if scale[-1] != 1.0 else None
    unit = float(mpp) if mpp else 1.0
    offset_y = translate[0] / unit - (downsample - 1) / 2
    offset_x = translate[1] / unit - (downsample - 1) / 2
    offset = tuple(0.0 if abs(v) < 1e-6 else round(v, 6) for v in (offset_x, offset_y))
    path = metadata.get("slide_path")
    return Placement(
        mpp=float(mpp) if mpp else None,
        downsample=downsample,
        offset_level0=(offset[0], offset[1]),
        slide_path=Path(path) if path else None,
    )


def _level0(data: Any) -> Any:
    return data[0] if isinstance(data, (list, tuple)) else data


def _class_names(meta: dict[str, Any]) -> dict[int, str] | None:
    names = (meta.get("metadata") or {}).get("class_names")
    if not names:
        return None
    return {int(k): str(v) for k, v in names.items() if int(k) != 0}


def export_layer(
    path: str | Path, data: Any, meta: dict[str, Any], kind: str, fmt: str | None = None
) -> Path:
    """Write a layer's data to ``path`` in ``fmt`` (default: from the suffix).

    Parameters
    ----------
    kind
        ``"labels"`` or ``"image"``: labels keep integer ids, images are probability maps.
    """
    from .. import export

    path = Path(path)
    fmt = fmt or format_of(path)
    place = placement_of(meta)
    name = str(meta.get("name") or path.stem)
    level0 = _level0(data)
    if getattr(level0, "ndim", 2) != 2:
        raise ExportError(f"layer {name!r} is not a 2-D mask or map (shape {level0.shape})", path)
    if fmt == "OME-TIFF":
        return export.write_ome_tiff(path, data, place.mpp, downsample=place.downsample, name=name)
    if fmt == "OME-Zarr":
        return export.write_ome_zarr(
            path,
            data,
            place.mpp,
            downsample=place.downsample,
            origin_level0=place.offset_level0,
            name=name,
        )
    if fmt == "PNG":
        return export.write_png(path, level0)
    if fmt == "GeoJSON":
        return _write_geojson(path, np.asarray(level0), meta, kind, place)
    if fmt == "CSV":
        return _write_csv(path, np.asarray(level0), kind, place, name)
    raise ExportError(f"unknown format {fmt!r}", path)


def _write_geojson(
    path: Path, array: np.ndarray, meta: dict[str, Any], kind: str, place: Placement
) -> Path:
    from ..export import mask_features, write_geojson

    names = _class_names(meta)
    if kind == "image":
        mask = array >= (0.5 if np.issubdtype(array.dtype, np.floating) else 128)
        return write_geojson(path, mask, place.downsample, "Tumor", offset=place.offset_level0)
    if names is not None:
        # an annotation layer: one classification per painted class
        features: list[dict[str, Any]] = []
        for value, cls in sorted(names.items()):
            if np.any(array == value):
                features += mask_features(
                    array == value,
                    downsample=place.downsample,
                    offset=place.offset_level0,
                    classification={"tumour": "Tumor", "normal": "Normal"}.get(cls, cls),
                )
        doc = {"type": "FeatureCollection", "features": features}
        atomic_write_text(path, json.dumps(doc, separators=(",", ":")))
        return path
    return write_geojson(path, array, place.downsample, offset=place.offset_level0)


def _write_csv(path: Path, labels: np.ndarray, kind: str, place: Placement, name: str) -> Path:
    from ..export import write_nuclei_csv

    if kind != "labels":
        raise ExportError(f"CSV export is for nuclei labels; layer {name!r} is an image", path)
    if place.slide_path is None:
        raise ExportError(
            f"layer {name!r} is not tied to a slide file, so nuclei cannot be measured",
            path,
            hint="export nuclei predicted on a slide opened with this plugin",
        )
    from ..slide import open_slide

    h, w = labels.shape
    with open_slide(place.slide_path) as slide:
        x0, y0 = (int(round(v)) for v in place.offset_level0)
        rgb = slide.read_scaled((x0, y0), (w, h), place.downsample)
        mpp_xy = slide.mpp
    return write_nuclei_csv(
        path,
        labels,
        rgb,
        mpp_xy if mpp_xy is not None else place.mpp,
        downsample=place.downsample,
        offset=place.offset_level0,
    )


def _write(path: str, data: Any, meta: dict[str, Any], kind: str) -> list[str]:
    return [str(export_layer(path, data, meta, kind))]


def write_labels(path: str, data: Any, meta: dict[str, Any]) -> list[str]:
    """npe2 writer of a Labels layer (mask, annotations or nuclei); returns the written path."""
    return _write(path, data, meta, "labels")


def write_image(path: str, data: Any, meta: dict[str, Any]) -> list[str]:
    """npe2 writer of an Image layer (a probability map); returns the written path."""
    return _write(path, data, meta, "image")
