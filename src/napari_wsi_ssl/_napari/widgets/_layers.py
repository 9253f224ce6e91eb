"""Overlay layers backed by the prediction store (OME-Zarr written tile by tile).

The layers read the zarr arrays directly (no dask, whose cache would keep showing tiles from
before they were computed), so ``layer.refresh()`` shows the tiles finished since. The store is
a cache on disk: panning reads it and never recomputes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ._annotations import SlideGeometry

PROBABILITY = "Metastasis probability"
NUCLEI = "Nuclei"


class ScaledArray:
    """A read-only float32 view of a uint8 array as values in [0, 1], read lazily.

    The store keeps probabilities as uint8 (p * 255); the layer shows probability 0..1.
    """

    def __init__(self, array: Any, factor: float = 1.0 / 255.0) -> None:
        self.array = array
        self.factor = factor
        self.shape = tuple(array.shape)
        self.ndim = len(self.shape)
        self.dtype = np.dtype(np.float32)
        self.size = int(np.prod(self.shape))

    def __getitem__(self, key: Any) -> np.ndarray:
        return np.asarray(self.array[key], dtype=np.float32) * np.float32(self.factor)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        out = self[...]
        return out if dtype is None else out.astype(dtype)

    def __len__(self) -> int:
        return self.shape[0]


def _levels(group: Any) -> list[Any]:
    levels: list[Any] = []
    while str(len(levels)) in group:
        levels.append(group[str(len(levels))])
    return levels


def ngff_transform(group: Any) -> tuple[tuple[float, float], tuple[float, float]]:
    """Scale and translation (y, x) of level 0 of an NGFF multiscale group."""
    dataset = group.attrs["multiscales"][0]["datasets"][0]
    scale = (1.0, 1.0)
    translate = (0.0, 0.0)
    for t in dataset.get("coordinateTransformations", []):
        if t["type"] == "scale":
            scale = (float(t["scale"][-2]), float(t["scale"][-1]))
        elif t["type"] == "translation":
            translate = (float(t["translation"][-2]), float(t["translation"][-1]))
    return scale, translate


def _world_transform(
    group: Any, slide: SlideGeometry
) -> tuple[tuple[float, float], tuple[float, float], float]:
    """Layer scale and translate on the slide's world, and the map's downsample of level 0.

    The store is in µm when the slide has an mpp, else in level-0 pixels; the slide layer's
    own scale and translate map either onto the viewer's world.
    """
    scale, translate = ngff_transform(group)
    unit = group.attrs["multiscales"][0]["axes"][-1].get("unit")
    if unit is None:  # level-0 pixels: into the slide's world units
        scale = (scale[0] * slide.scale[0], scale[1] * slide.scale[1])
        translate = (translate[0] * slide.scale[0], translate[1] * slide.scale[1])
    downsample = scale[1] / slide.scale[1]
    world_translate = (translate[0] + slide.translate[0], translate[1] + slide.translate[1])
    return scale, world_translate, downsample


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
    """Add (or point at ``store``) the probability and nuclei layers; return them by name.

    ``visible=False`` adds new layers hidden, so that adding them (layer controls, visuals) and
    their first read and draw can run in two turns of the event loop instead of one long one.
    """
    import zarr

    root = zarr.open_group(str(store), mode="r")
    shown: dict[str, Any] = {}
    if "tumour" in root and _levels(root["tumour"]):
        group = root["tumour"]
        levels = _levels(group)
        data = [ScaledArray(a) if a.dtype == np.uint8 else a for a in levels]
        scale, translate, downsample = _world_transform(group, slide)
        metadata = _map_metadata(slide, downsample, store)
        shown[PROBABILITY] = _put_layer(
            viewer,
            PROBABILITY,
            "image",
            data,
            scale=scale,
            translate=translate,
            metadata=metadata,
            colormap=probability_colormap(),
            opacity=0.5,
            contrast_limits=(0.0, 1.0),
            blending="translucent",
            visible=visible,
        )
    if "nuclei" in root and _levels(root["nuclei"]):
        group = root["nuclei"]
        scale, translate, downsample = _world_transform(group, slide)
        metadata = _map_metadata(slide, downsample, store)
        shown[NUCLEI] = _put_layer(
            viewer,
            NUCLEI,
            "labels",
            _levels(group),
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
    if kwargs["metadata"].get("units"):
        kwargs["units"] = kwargs["metadata"].pop("units")
    if name in viewer.layers:
        layer = viewer.layers[name]
        if layer.metadata.get("store") == kwargs["metadata"].get("store"):
            layer.refresh()
            return layer
        if layer.multiscale and layer._type_string == kind:
            try:
                _retarget(layer, data, kwargs)
                return layer
            except (ValueError, TypeError):  # napari refused the swap: fall back to a new layer
                pass
        viewer.layers.remove(layer)
    if kind == "image":
        return viewer.add_image(data, name=name, multiscale=True, **kwargs)
    return viewer.add_labels(data, name=name, multiscale=True, **kwargs)


def _retarget(layer: Any, data: list[Any], kwargs: dict[str, Any]) -> None:
    """Give an existing multiscale layer new levels, placement and metadata."""
    layer.metadata = kwargs["metadata"]
    layer.data = data
    layer.scale = kwargs["scale"]
    layer.translate = kwargs["translate"]
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
