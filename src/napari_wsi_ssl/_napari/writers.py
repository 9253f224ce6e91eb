"""npe2 writers for Labels and Image layers (File > Save Layers), and the Export dock's back end.

napari calls ``write_labels(path, data, meta)`` / ``write_image(path, data, meta)`` with the
layer's data (a list of arrays when multiscale) and its state (``scale``, ``translate``,
``units``, ``metadata``, ``name`` ...). Both go through :func:`napari_wsi_ssl.export.export_arrays`,
the entry point of ``wsi-ssl export`` too, so the format follows the same suffix table:

========================  ===========================================================
``.ome.tif``/``.ome.tiff`` pyramidal OME-TIFF with the slide's physical pixel size (when known)
``.ome.zarr``/``.zarr``    OME-Zarr (NGFF 0.4) on the slide's coordinates
``.geojson``               QuPath polygons in level-0 pixels (one class per label; a map's
                           region above the threshold)
``.png``                   a preview
``.csv``                   per-nucleus measurements (labels of a slide only)
========================  ===========================================================

Where the layer sits on a slide is read from its metadata (``mpp``, ``downsample``,
``slide_path``) or, failing that, from its scale and translate. The scale is taken for
micrometres only when the layer's units say so: a layer in pixels states no physical size.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ..export import (
    FORMATS,
    ExportResult,
    ExportSettings,
    Placement,
    as_levels,
    export_arrays,
    format_of,
    suffix_of,
)
from ..export._arrays import as_mpp_xy
from ..inference.store import PredictionStore, ProbabilityView

__all__ = [
    "FORMATS",
    "export_layer",
    "format_of",
    "placement_of",
    "suffix_of",
    "write_image",
    "write_labels",
]

_MICROMETRE = ("micrometer", "micrometre", "um", "µm", "micron")


def _in_micrometres(units: Any) -> bool:
    if not units:
        return False
    return all(str(u).strip().lower() in _MICROMETRE for u in list(units)[-2:])


def placement_of(meta: dict[str, Any], kind: str | None = None) -> Placement:
    """Read a layer's placement on its slide from the writer ``meta`` dict.

    A map layer shown from a prediction store (``metadata["store"]``) is placed by the store's
    own reader; its pixel size is the slide layer's (``metadata["mpp"]``), which may be one the
    user gave.
    """
    metadata = dict(meta.get("metadata") or {})
    store = metadata.get("store")
    if store and kind is not None and PredictionStore.is_store(store):
        reader = PredictionStore(store)
        name = "tumour" if kind == "image" else "nuclei"
        if name in reader:
            stored = reader[name]
            given = metadata.get("mpp")
            given_xy = as_mpp_xy(given[0] if isinstance(given, (list, tuple)) else given)
            return Placement(given_xy or stored.mpp, stored.downsample, stored.origin, reader.slide)
    scale = [float(s) for s in (meta.get("scale") or (1.0, 1.0))][-2:]
    translate = [float(t) for t in (meta.get("translate") or (0.0, 0.0))][-2:]
    mpp = metadata.get("mpp")
    if isinstance(mpp, (list, tuple)):
        mpp = mpp[0] if mpp else None
    downsample = metadata.get("downsample")
    if downsample is None:
        downsample = scale[-1] / float(mpp) if mpp else 1.0
    downsample = float(downsample)
    if not mpp and _in_micrometres(meta.get("units")):
        # no slide pixel size in the metadata: the layer's scale, in µm, gives it
        mpp = scale[-1] / downsample
    world = float(mpp) if mpp else scale[-1] / downsample  # world units per level-0 pixel
    offset_y = translate[0] / world - (downsample - 1) / 2
    offset_x = translate[1] / world - (downsample - 1) / 2
    offset = tuple(0.0 if abs(v) < 1e-6 else round(v, 6) for v in (offset_x, offset_y))
    path = metadata.get("slide_path")
    return Placement(
        mpp=(float(mpp), float(mpp)) if mpp else None,
        downsample=downsample,
        offset_level0=(offset[0], offset[1]),
        slide_path=Path(path) if path else None,
    )


def _class_names(meta: dict[str, Any]) -> dict[int, str] | None:
    names = (meta.get("metadata") or {}).get("class_names")
    if not names:
        return None
    return {int(k): str(v) for k, v in names.items() if int(k) != 0}


def _as_probability(array: Any) -> Any:
    """An image layer's data as probabilities in [0, 1] (uint8 images are p x 255)."""
    if isinstance(array, ProbabilityView) or np.dtype(array.dtype).kind == "f":
        return array
    return ProbabilityView(array)


def export_layer(
    path: str | Path,
    data: Any,
    meta: dict[str, Any],
    kind: str,
    fmt: str | None = None,
    settings: ExportSettings | None = None,
) -> ExportResult:
    """Write a layer's data to ``path`` in ``fmt`` (default: from the suffix).

    Parameters
    ----------
    kind
        ``"labels"`` or ``"image"``: labels keep integer ids, images are probability maps,
        written as probabilities (uint8 p x 255) unless ``settings`` asks for the mask.
    settings
        Threshold and encoding; by default the values, at the default threshold for polygons.
    """
    name = str(meta.get("name") or Path(path).stem)
    levels = as_levels(data)
    if kind == "image":
        levels = [_as_probability(a) for a in levels]
    return export_arrays(
        path,
        levels,
        "probability" if kind == "image" else "labels",
        placement_of(meta, kind),
        name=name,
        settings=settings if settings is not None else ExportSettings(values=True),
        class_names=_class_names(meta) if kind == "labels" else None,
        fmt=fmt,
    )


def _write(path: str, data: Any, meta: dict[str, Any], kind: str) -> list[str]:
    result = export_layer(path, data, meta, kind)
    for message in result.warnings:
        warnings.warn(message, UserWarning, stacklevel=3)  # napari shows it as a notification
    return [str(result.path)]


def write_labels(path: str, data: Any, meta: dict[str, Any]) -> list[str]:
    """npe2 writer of a Labels layer (mask, annotations or nuclei); returns the written path."""
    return _write(path, data, meta, "labels")


def write_image(path: str, data: Any, meta: dict[str, Any]) -> list[str]:
    """npe2 writer of an Image layer (a probability map); returns the written path."""
    return _write(path, data, meta, "image")
