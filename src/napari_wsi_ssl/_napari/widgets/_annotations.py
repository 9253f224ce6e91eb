"""Slide layers, annotation layers and regions: geometry between napari's world and level-0 pixels.

The reader puts ``metadata={"slide_path": ..., "mpp": ...}`` on slide Image layers, whose scale is
in micrometres. An overlay at downsample ``d`` lies exactly on the slide with
``scale = d * slide_scale`` and ``translate = slide_translate + (d - 1) / 2 * slide_scale``
(pixel ``j`` of the overlay covers level-0 pixels ``j*d .. j*d + d - 1``; its centre is there).

Everything here runs on the GUI thread and turns layers into plain data (paths, arrays, boxes)
before any worker sees them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import zarr
from napari.layers import Image, Labels, Shapes
from napari.utils.colormaps import DirectLabelColormap

from ...errors import AnnotationError, SlideError
from ...qupath import read_qupath_geojson
from ...vocab import CLASS_COLOURS, DEFAULT_CLASS_NAMES, UNLABELLED

#: Names of the annotation classes (the project's class table; 0 is unlabelled, not painted).
CLASS_NAMES: dict[int, str] = {
    k: ("unlabelled" if k == UNLABELLED else v) for k, v in DEFAULT_CLASS_NAMES.items()
}

#: Largest side, in pixels, of an annotation layer made with the automatic downsample.
MAX_ANNOTATION_SIDE = 8192


@dataclass(frozen=True)
class SlideGeometry:
    """Plain facts about a slide layer: where its file is and how it sits in world space (µm)."""

    slide_path: Path | None
    shape: tuple[int, int]  # level-0 (height, width)
    scale: tuple[float, float]  # world units per level-0 pixel (y, x)
    translate: tuple[float, float]  # world position of level-0 pixel (0, 0)'s centre (y, x)
    mpp: float | None
    name: str
    units: tuple[str, ...] | None = None

    def overlay_transform(self, downsample: float) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """(scale, translate) of an overlay whose pixels span ``downsample`` level-0 pixels."""
        d = float(downsample)
        scale = tuple(s * d for s in self.scale)
        translate = tuple(
            t + (d - 1) / 2 * s for t, s in zip(self.translate, self.scale, strict=True)
        )
        return scale, translate

    def world_to_level0(self, world_yx: np.ndarray) -> np.ndarray:
        """World coordinates (..., 2) as (y, x) to level-0 pixel coordinates (y, x)."""
        world_yx = np.asarray(world_yx, dtype=float)
        return (world_yx - np.asarray(self.translate)) / np.asarray(self.scale)


def is_slide_layer(layer: Any) -> bool:
    # overlays computed from a slide carry its path too, and the store they are read from
    return (
        isinstance(layer, Image)
        and bool(layer.metadata.get("slide_path"))
        and not layer.metadata.get("store")
    )


def slide_layers(viewer: Any) -> list[Image]:
    """The Image layers opened from slide files (their metadata carries ``slide_path``)."""
    return [layer for layer in viewer.layers if is_slide_layer(layer)]


def slide_geometry(layer: Image) -> SlideGeometry:
    """Read a slide Image layer into plain data."""
    data = layer.data[0] if layer.multiscale else layer.data
    shape = tuple(int(s) for s in data.shape[:2])
    path = layer.metadata.get("slide_path")
    mpp = layer.metadata.get("mpp")
    if isinstance(mpp, (tuple, list)):
        mpp = float(mpp[0]) if mpp and mpp[0] else None
    return SlideGeometry(
        slide_path=Path(path) if path else None,
        shape=(shape[0], shape[1]),
        scale=(float(layer.scale[-2]), float(layer.scale[-1])),
        translate=(float(layer.translate[-2]), float(layer.translate[-1])),
        mpp=float(mpp) if mpp else None,
        name=layer.name,
        units=tuple(str(u) for u in layer.units[-2:]),
    )


def auto_downsample(shape: tuple[int, int], minimum: int = 4) -> int:
    """A power of two at least ``minimum`` keeping the annotation under MAX_ANNOTATION_SIDE."""
    d = minimum
    while max(shape) / d > MAX_ANNOTATION_SIDE:
        d *= 2
    return d


#: Width of the brush a new annotation layer starts with, in micrometres: regions, not cells.
BRUSH_UM = 100.0


def annotation_colormap(
    colours: dict[int | None, tuple[float, float, float, float]] | None = None,
) -> DirectLabelColormap:
    """The class colours of the table in ``vocab``, with ``colours`` (e.g. QuPath's) on top."""
    return DirectLabelColormap(color_dict=dict(CLASS_COLOURS) | dict(colours or {}))


def region_brush(geometry: SlideGeometry, downsample: int, shape: tuple[int, int]) -> int:
    """A brush (annotation pixels) about ``BRUSH_UM`` wide, or 1/40 of the layer without a
    pixel size; between 10 and 100 pixels."""
    size = BRUSH_UM / (geometry.mpp * downsample) if geometry.mpp else min(shape) / 40
    return int(min(100, max(10, round(size))))


def annotate_slide(viewer: Any, slide_layer: Image | None, downsample: int | None) -> Labels:
    """A new annotation layer over ``slide_layer`` (else the first open slide); SlideError when
    no slide is open."""
    if slide_layer is None:
        layers = slide_layers(viewer)
        slide_layer = layers[0] if layers else None
    if slide_layer is None:
        raise SlideError("open a slide first: the annotation layer is laid over it")
    return new_annotation_layer(viewer, slide_layer, downsample=downsample)


def new_annotation_layer(
    viewer: Any, slide_layer: Image, downsample: int | None = None, name: str = "annotations"
) -> Labels:
    """Add an empty Labels layer aligned with ``slide_layer`` at a working downsample.

    The data is a chunked zarr array in memory: only the chunks that get painted are stored, so
    a gigapixel slide does not allocate a full-size array. Label 1 is "tumour", 2 is "normal";
    the layer is left in paint mode with label 1 selected.
    """
    geometry = slide_geometry(slide_layer)
    d = int(downsample) if downsample else auto_downsample(geometry.shape)
    shape = (math.ceil(geometry.shape[0] / d), math.ceil(geometry.shape[1] / d))
    data = zarr.zeros(shape, chunks=(min(1024, shape[0]), min(1024, shape[1])), dtype=np.uint8)
    layer = viewer.add_labels(
        data, **annotation_kwargs(geometry, slide_layer.name, d, dict(CLASS_NAMES), name=name)
    )
    layer.brush_size = region_brush(geometry, d, shape)
    layer.selected_label = 1
    viewer.layers.selection.active = layer
    layer.mode = "paint"
    return layer


def annotation_kwargs(
    geometry: SlideGeometry,
    slide_name: str,
    downsample: int,
    class_names: dict[int, str],
    colours: dict[int | None, tuple[float, float, float, float]] | None = None,
    name: str = "annotations",
) -> dict[str, Any]:
    """The Labels layer settings of an annotation layer at ``downsample`` over a slide: placement,
    class names (``features`` and ``metadata["class_names"]``) and colours."""
    scale, translate = geometry.overlay_transform(downsample)
    features = pd.DataFrame(
        {"index": list(class_names), "class": pd.Categorical(list(class_names.values()))}
    )
    return {
        "name": name,
        "scale": scale,
        "translate": translate,
        "features": features,
        "colormap": annotation_colormap(colours),
        "metadata": {
            "slide_path": str(geometry.slide_path) if geometry.slide_path else None,
            "downsample": downsample,
            "slide_layer": slide_name,
            "class_names": dict(class_names),
        },
        "opacity": 0.6,
        "units": geometry.units,
    }


def geojson_layer_data(
    slide_layer: Image, path: str | Path, downsample: int | None = None
) -> tuple[np.ndarray, dict[str, Any], str]:
    """A QuPath GeoJSON's annotations as Labels layer data over ``slide_layer``, placed like a new
    annotation layer (``downsample``, default automatic), with the file's class names and colours.

    Tumour and normal keep their values (1, 2, matched by name, "Tumor" too); other classes get
    the next values. Raises AnnotationError for a file without polygon annotations.
    """
    geometry = slide_geometry(slide_layer)
    d = int(downsample) if downsample else auto_downsample(geometry.shape)
    shape = (math.ceil(geometry.shape[0] / d), math.ceil(geometry.shape[1] / d))
    labels, table = read_qupath_geojson(path, shape, d)
    names = dict(CLASS_NAMES) | {v: cls for v, (cls, _) in table.items()}
    colours: dict[int | None, tuple[float, float, float, float]] = {
        v: (r / 255, g / 255, b / 255, 1.0) for v, (_, (r, g, b)) in table.items()
    }
    data = labels.astype(np.uint8) if labels.max(initial=0) < 256 else labels
    kwargs = annotation_kwargs(
        geometry, slide_layer.name, d, names, colours, name=Path(path).name.split(".")[0]
    )
    return data, kwargs, "labels"


def add_geojson_layer(
    viewer: Any, slide_layer: Image | None, path: str | Path, downsample: int | None = None
) -> Labels:
    """Add a QuPath GeoJSON's annotations over ``slide_layer`` (:func:`geojson_layer_data`);
    SlideError when no slide is given."""
    if slide_layer is None:
        raise SlideError("open a slide first: the GeoJSON's annotations are laid over it", path)
    from napari.utils.notifications import show_info

    data, kwargs, _ = geojson_layer_data(slide_layer, path, downsample)
    layer = viewer.add_labels(data, **kwargs)
    names = ", ".join(v for k, v in layer.metadata["class_names"].items() if k)
    show_info(f"Imported {Path(path).name} as {layer.name!r} ({names}); Fine-tune learns from it.")
    return layer


def ask_geojson(parent: Any) -> Path | None:
    """The GeoJSON file the user picks in a file dialog, or None."""
    from qtpy.QtWidgets import QFileDialog

    path, _ = QFileDialog.getOpenFileName(
        parent, "Import a QuPath GeoJSON", "", "GeoJSON (*.geojson *.json)"
    )
    return Path(path) if path else None


@dataclass(frozen=True)
class PaintedAnnotation:
    """Painted labels read out of a layer: ``labels`` (H, W) at ``downsample`` of level 0."""

    labels: np.ndarray
    downsample: float
    class_names: dict[int, str]


def annotation_downsample(labels_layer: Labels, slide: SlideGeometry) -> float:
    """The downsample of a Labels layer relative to the slide, from the layers' scales."""
    stored = labels_layer.metadata.get("downsample")
    if stored:
        return float(stored)
    ratio = float(labels_layer.scale[-1]) / slide.scale[-1]
    return ratio if ratio > 0 else 1.0


def read_painted(
    labels_layer: Labels, slide: SlideGeometry, min_classes: int = 2
) -> PaintedAnnotation:
    """Read the painted pixels into memory and check there is something to learn from.

    Raises
    ------
    AnnotationError
        When nothing is painted, or fewer than ``min_classes`` classes are.
    """
    data = labels_layer.data[0] if labels_layer.multiscale else labels_layer.data
    labels = np.asarray(data)
    if labels.ndim != 2:
        raise AnnotationError(
            f"layer {labels_layer.name!r} is {labels.ndim}-D; a 2-D mask is needed"
        )
    present = [int(v) for v in np.unique(labels) if v != 0]
    names = {
        int(k): str(v) for k, v in labels_layer.metadata.get("class_names", CLASS_NAMES).items()
    }
    if not present:
        raise AnnotationError(
            f"layer {labels_layer.name!r} has no painted pixels",
            hint="paint tumour (label 1) and normal tissue (label 2) with the brush first",
        )
    if len(present) < min_classes:
        only = names.get(present[0], f"label {present[0]}")
        raise AnnotationError(
            f"layer {labels_layer.name!r} has only one class painted ({only})",
            hint="paint both tumour (label 1) and normal tissue (label 2)",
        )
    return PaintedAnnotation(
        labels=labels, downsample=annotation_downsample(labels_layer, slide), class_names=names
    )


def region_box(
    shapes_layer: Shapes | None, slide: SlideGeometry
) -> tuple[int, int, int, int] | None:
    """The bounding box, in level-0 pixels (x0, y0, x1, y1), of the first shape of a Shapes layer.

    Returns ``None`` when no layer is given. Raises AnnotationError when the layer is empty or
    its box misses the slide.
    """
    if shapes_layer is None:
        return None
    if len(shapes_layer.data) == 0:
        raise AnnotationError(
            f"region layer {shapes_layer.name!r} has no shape",
            hint="draw a rectangle, or choose no region",
        )
    vertices = np.asarray(shapes_layer.data[0], dtype=float)[:, -2:]
    world = np.array([shapes_layer.data_to_world(v) for v in vertices])[:, -2:]
    level0 = slide.world_to_level0(world)
    y0, x0 = np.floor(level0.min(axis=0)).astype(int)
    y1, x1 = np.ceil(level0.max(axis=0)).astype(int)
    h, w = slide.shape
    x0, y0 = max(0, int(x0)), max(0, int(y0))
    x1, y1 = min(w, int(x1)), min(h, int(y1))
    if x1 <= x0 or y1 <= y0:
        raise AnnotationError(
            f"region layer {shapes_layer.name!r} lies outside the slide {slide.name!r}"
        )
    return (x0, y0, x1, y1)


def region_xywh(
    shapes_layer: Shapes | None, slide: SlideGeometry
) -> tuple[int, int, int, int] | None:
    """:func:`region_box` as ``(x, y, w, h)`` in level-0 pixels, the order compute takes."""
    box = region_box(shapes_layer, slide)
    return None if box is None else (box[0], box[1], box[2] - box[0], box[3] - box[1])


def require_slide_path(slide: SlideGeometry) -> Path:
    if slide.slide_path is None:
        raise SlideError(
            f"layer {slide.name!r} was not opened from a slide file",
            hint="open the slide with this plugin",
        )
    return slide.slide_path
