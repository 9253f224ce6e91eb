"""Overlay layers backed by the prediction store (OME-Zarr written tile by tile).

The layers read the store's zarr arrays through :class:`PredictionStore` (no dask, whose cache
would keep showing tiles from before they were computed), so ``layer.refresh()`` shows the
tiles finished since. The store is a cache on disk: panning reads it and never recomputes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from napari.layers import Image, Labels

from ...inference.store import PredictionStore, StoredMap
from ._annotations import SlideGeometry

PROBABILITY = "Metastasis probability"
NUCLEI = "Nuclei"
#: The head's uncertainty (normalised entropy) of a fast-mode store; hidden until asked for.
UNCERTAINTY = "Uncertainty"


def _world_transform(
    stored: StoredMap, slide: SlideGeometry
) -> tuple[tuple[float, float], tuple[float, float], float]:
    """Layer scale and translate of a stored map on the slide's world, and its downsample.

    The map is placed by level-0 pixels (its downsample and origin on the slide), through the
    slide layer's own scale and translate, whatever unit the store or the slide layer is in.
    """
    d = stored.downsample
    ox, oy = stored.origin
    scale = (d * slide.scale[0], d * slide.scale[1])
    translate = (
        slide.translate[0] + ((d - 1) / 2 + oy) * slide.scale[0],
        slide.translate[1] + ((d - 1) / 2 + ox) * slide.scale[1],
    )
    return scale, translate, d


def probability_colormap() -> Any:
    """napari's inferno, transparent at 0 and opaque from 0.3 up: the slide shows through where
    the model sees no tumour, on white glass as on tissue (additive inferno vanishes on white)."""
    from napari.utils.colormaps import Colormap, ensure_colormap

    controls = np.linspace(0.0, 1.0, 64)
    colors = np.asarray(ensure_colormap("inferno").map(controls))
    colors[:, 3] = np.clip(controls / 0.3, 0.0, 1.0)
    return Colormap(colors, controls=controls, name="inferno (transparent low)")


def _map_metadata(slide: SlideGeometry, downsample: float, store: Path) -> dict[str, Any]:
    """What the Export dock and the writers need to place a map on its slide."""
    return {
        "slide_path": str(slide.slide_path) if slide.slide_path else None,
        "mpp": slide.mpp,
        "downsample": downsample,
        "store": str(store),
        "units": slide.units,
    }


def show_store(
    viewer: Any, store: Path, slide: SlideGeometry, visible: bool = True
) -> dict[str, Any]:
    """Add (or point at ``store``) the probability, uncertainty (fast-mode stores, hidden by
    default) and nuclei layers; return them by name.

    ``visible=False`` adds new layers hidden, so that adding them (layer controls, visuals) and
    their first read and draw can run in two turns of the event loop instead of one long one.
    """
    reader = PredictionStore(store)
    shown: dict[str, Any] = {}
    if "tumour" in reader:
        tumour = reader["tumour"]
        scale, translate, downsample = _world_transform(tumour, slide)
        metadata = _map_metadata(slide, downsample, store)
        shown[PROBABILITY] = _put_layer(
            viewer,
            PROBABILITY,
            "image",
            tumour.probabilities(),
            scale=scale,
            translate=translate,
            metadata=metadata,
            colormap=probability_colormap(),
            opacity=0.5,
            contrast_limits=(0.0, 1.0),
            blending="translucent",
            visible=visible,
        )
    if "uncertainty" in reader.root and "multiscales" in reader.root["uncertainty"].attrs:
        uncertainty = StoredMap(reader.root["uncertainty"], reader.mpp)
        scale, translate, downsample = _world_transform(uncertainty, slide)
        shown[UNCERTAINTY] = _put_layer(
            viewer,
            UNCERTAINTY,
            "image",
            uncertainty.probabilities(),
            scale=scale,
            translate=translate,
            metadata=_map_metadata(slide, downsample, store),
            colormap="viridis",
            opacity=0.6,
            contrast_limits=(0.0, 1.0),
            blending="translucent",
            visible=False,
            keep_visibility=True,
        )
    if "nuclei" in reader:
        nuclei = reader["nuclei"]
        scale, translate, downsample = _world_transform(nuclei, slide)
        metadata = _map_metadata(slide, downsample, store)
        shown[NUCLEI] = _put_layer(
            viewer,
            NUCLEI,
            "labels",
            nuclei.levels,
            scale=scale,
            translate=translate,
            metadata=metadata,
            opacity=0.7,
            visible=visible,
        )
    return shown


def _put_layer(viewer: Any, name: str, kind: str, data: list[Any], **kwargs: Any) -> Any:
    """Point layer ``name`` at ``data`` when it exists (a new store: its data and placement are
    replaced in place, which is much cheaper for the GUI than a new layer), else add it."""
    keep_visibility = kwargs.pop("keep_visibility", False)
    if kwargs["metadata"].get("units"):
        kwargs["units"] = kwargs["metadata"].pop("units")
    if name in viewer.layers:
        layer = viewer.layers[name]
        if layer.metadata.get("store") == kwargs["metadata"].get("store"):
            layer.refresh()
            return layer
        # isinstance, not the type's name: a plugin dock's viewer hands out proxies of layers
        if layer.multiscale and isinstance(layer, Image if kind == "image" else Labels):
            try:
                _retarget(layer, data, kwargs, keep_visibility)
                return layer
            except (ValueError, TypeError):  # napari refused the swap: fall back to a new layer
                pass
        viewer.layers.remove(layer)
    # one level (a small region's map) goes as a plain array: napari cannot take it as a pyramid
    levels: Any = data if len(data) > 1 else data[0]
    if kind == "image":
        return viewer.add_image(levels, name=name, multiscale=len(data) > 1, **kwargs)
    return viewer.add_labels(levels, name=name, multiscale=len(data) > 1, **kwargs)


def _retarget(
    layer: Any, data: list[Any], kwargs: dict[str, Any], keep_visibility: bool = False
) -> None:
    """Give an existing multiscale layer new levels, placement and metadata (and show it,
    unless ``keep_visibility``: the user's choice stands)."""
    layer.metadata = kwargs["metadata"]
    layer.data = data
    layer.scale = kwargs["scale"]
    layer.translate = kwargs["translate"]
    if not keep_visibility:
        layer.visible = True


def refresh_layers(viewer: Any, store: Path) -> None:
    """Re-read the visible tiles of the layers backed by ``store``."""
    for layer in list(viewer.layers):
        if layer.metadata.get("store") == str(store):
            layer.refresh()


def visible_box_level0(slide_layer: Any) -> tuple[int, int, int, int] | None:
    """The part of a slide layer on screen, in level-0 pixels (y0, x0, y1, x1).

    napari keeps the corners of the visible part of a multiscale layer, in pixels of the level
    it shows; they are scaled to level 0 here.
    """
    try:
        corners = np.asarray(slide_layer.corner_pixels, dtype=float)[:, -2:]
        level = int(slide_layer.data_level) if slide_layer.multiscale else 0
        factors = np.asarray(slide_layer.downsample_factors[level], dtype=float)[-2:]
        shape = (slide_layer.data[0] if slide_layer.multiscale else slide_layer.data).shape[:2]
    except (AttributeError, IndexError, TypeError, ValueError):
        return None
    y0, x0 = np.floor(corners[0] * factors).astype(int)
    y1, x1 = np.ceil((corners[1] + 1) * factors).astype(int)
    y1, x1 = min(int(y1), shape[0]), min(int(x1), shape[1])
    if y1 <= y0 or x1 <= x0:
        return None
    return (max(0, int(y0)), max(0, int(x0)), y1, x1)
