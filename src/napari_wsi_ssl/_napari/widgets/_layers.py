"""Overlay layers backed by the prediction store (OME-Zarr written tile by tile).

The layers read the store's zarr arrays through :class:`PredictionStore` (no dask, whose cache
would keep showing tiles from before they were computed), so ``layer.refresh()`` shows the
tiles finished since. The store is a cache on disk: panning reads it and never recomputes.

The probability layer is named after the class it shows, from the store's class table (the
checkpoint's or the painted layer's names): "tumour probability", "carcinoma probability".
Each layer says which map of a store it shows in ``metadata["map"]`` (``ROLE``), by which the
docks find it whatever its name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from napari.layers import Image, Labels

from ...inference.store import PredictionStore, ProbabilityView, StoredMap
from ._annotations import SlideGeometry, annotation_colormap

#: The layer metadata key that names the map a layer shows ("tumour", "uncertainty", ...).
ROLE = "map"
#: The class a probability map shows when its store names none, and that layer's name.
DEFAULT_CLASS = "tumour"
PROBABILITY = f"{DEFAULT_CLASS} probability"
NUCLEI = "Nuclei"
#: The head's uncertainty (normalised entropy) of a fast-mode store; hidden until asked for.
UNCERTAINTY = "Uncertainty"
#: The most probable painted class of each pixel (fast-mode stores of more than two classes).
CLASSES = "Classes"
#: Maps whose layers start hidden: the user shows them when wanted.
HIDDEN_MAPS = ("uncertainty", "classes")


def probability_name(class_name: str | None = None) -> str:
    """The name of a probability layer: the class it shows, then "probability"."""
    return f"{class_name or DEFAULT_CLASS} probability"


def shown_class(reader: PredictionStore) -> str:
    """The class whose probability a store's ``tumour`` map holds: label 1, as the checkpoint or
    the painted layer named it (the first painted label when 1 was not painted)."""
    names = {k: v for k, v in (reader.class_names or {}).items() if k != 0}
    if not names:
        return DEFAULT_CLASS
    return names.get(1) or names[min(names)]


def map_layer(layers: Any, role: str) -> Any:
    """The layer among ``layers`` (a viewer's layer list or a dict of layers) that shows the
    ``role`` map of a store ("tumour", "uncertainty", "nuclei", "classes"), or None."""
    items = layers.values() if isinstance(layers, dict) else layers
    return next((layer for layer in items if layer.metadata.get(ROLE) == role), None)


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


def _map_metadata(
    slide: SlideGeometry, downsample: float, store: Path, role: str
) -> dict[str, Any]:
    """What the Export dock and the writers need to place a map on its slide, and its role."""
    return {
        "slide_path": str(slide.slide_path) if slide.slide_path else None,
        "mpp": slide.mpp,
        "downsample": downsample,
        "store": str(store),
        "units": slide.units,
        ROLE: role,
    }


def show_store(
    viewer: Any,
    store: Path,
    slide: SlideGeometry,
    visible: bool = True,
    new_layers: int | None = None,
    pending: list[str] | None = None,
) -> dict[str, Any]:
    """Add (or point at ``store``) the probability layer (named after its class), the
    uncertainty and classes layers of fast-mode stores (hidden by default) and the nuclei
    layer; return them by name.

    ``visible=False`` adds new layers hidden, so that adding them (layer controls, visuals) and
    their first read and draw can run in two turns of the event loop instead of one long one.
    ``new_layers`` adds at most that many new layers (each costs about 100 ms of the GUI
    thread on a software-GL display), the maps left go to ``pending`` (their roles), for a
    later call: the layers of a store can be added one per turn of the event loop.
    """
    reader = PredictionStore(store)
    shown: dict[str, Any] = {}
    added = [0]

    def put(role: str, name: str, kind: str, stored: StoredMap, **kwargs: Any) -> Any:
        if map_layer(viewer.layers, role) is None and name not in viewer.layers:
            if new_layers is not None and added[0] >= new_layers:
                if pending is not None:
                    pending.append(role)
                return None
            added[0] += 1
        scale, translate, downsample = _world_transform(stored, slide)
        metadata = _map_metadata(slide, downsample, store, role)
        data = stored.levels if kind == "labels" else stored.probabilities()
        layer = _put_layer(
            viewer, name, kind, data, scale=scale, translate=translate, metadata=metadata, **kwargs
        )
        shown[layer.name] = layer
        return layer

    if "tumour" in reader:
        put(
            "tumour",
            probability_name(shown_class(reader)),
            "image",
            reader["tumour"],
            colormap=probability_colormap(),
            opacity=0.5,
            contrast_limits=(0.0, 1.0),
            blending="translucent",
            visible=visible,
        )
    for role, name in (("uncertainty", UNCERTAINTY), ("classes", CLASSES)):
        if role in reader.root and "multiscales" in reader.root[role].attrs:
            stored = StoredMap(reader.root[role], reader.mpp)
            extra: dict[str, Any] = (
                {"colormap": "viridis", "opacity": 0.6, "contrast_limits": (0.0, 1.0)}
                if role == "uncertainty"
                else {"colormap": annotation_colormap(), "opacity": 0.6}
            )
            kind = "image" if role == "uncertainty" else "labels"
            layer = put(role, name, kind, stored, visible=False, keep_visibility=True, **extra)
            if (
                role == "classes" and layer is not None
            ):  # what the Export dock's GeoJSON names the classes
                layer.metadata["class_names"] = {
                    k: v for k, v in (reader.class_names or {}).items() if k != 0
                }
    if "nuclei" in reader and _has_tiles(reader.root["nuclei"]):  # none: a cancelled start
        put("nuclei", NUCLEI, "labels", reader["nuclei"], opacity=0.7, visible=visible)
    return shown


def _has_tiles(group: Any) -> bool:
    """Whether any tile of a stored map was computed (its ``done`` flags; maps without them are
    written whole)."""
    return "done" not in group or bool(np.any(group["done"][:]))


def _put_layer(viewer: Any, name: str, kind: str, data: list[Any], **kwargs: Any) -> Any:
    """Point the layer of the same map (``metadata[ROLE]``, else the same name) at ``data`` when
    it exists (a new store: its data, placement and name are replaced in place, which is much
    cheaper for the GUI than a new layer), else add it.

    A store of the same grid as the layer's (same level shapes, types and placement: the same
    slide predicted again) is swapped under the layer's own level views (:func:`swap_levels`):
    no napari setter runs, and the layer is refreshed once. napari's data, scale, translate and
    visible setters each refresh the layer and update the layer list (50-90 ms of the GUI
    thread's time on a loaded 2-core machine, against about 10 ms for a refresh).
    """
    keep_visibility = kwargs.pop("keep_visibility", False)
    if kwargs["metadata"].get("units"):
        kwargs["units"] = kwargs["metadata"].pop("units")
    layer = map_layer(viewer.layers, kwargs["metadata"][ROLE])
    if layer is None and name in viewer.layers:
        layer = viewer.layers[name]
    if layer is not None:
        if layer.metadata.get("store") == kwargs["metadata"].get("store"):
            layer.refresh()
            return layer
        # isinstance, not the type's name: a plugin dock's viewer hands out proxies of layers
        if layer.multiscale and isinstance(layer, Image if kind == "image" else Labels):
            limits = kwargs.get("contrast_limits")
            if limits is not None and tuple(layer.contrast_limits) != tuple(limits):
                layer.contrast_limits = limits  # a weak map's stretch does not carry over
            if _same_placement(layer, kwargs) and swap_levels(
                layer, [getattr(d, "array", d) for d in data], kwargs["metadata"]
            ):
                _rename_show(layer, name, keep_visibility)
                return layer
            try:
                _retarget(layer, data, kwargs)
                _rename_show(layer, name, keep_visibility, refreshed=True)
                return layer
            except (ValueError, TypeError):  # napari refused the swap: fall back to a new layer
                pass
        viewer.layers.remove(layer)
    # one level (a small region's map) goes as a plain array: napari cannot take it as a pyramid
    levels: Any = data if len(data) > 1 else data[0]
    if kind == "image":
        return viewer.add_image(levels, name=name, multiscale=len(data) > 1, **kwargs)
    return viewer.add_labels(levels, name=name, multiscale=len(data) > 1, **kwargs)


def _same_placement(layer: Any, kwargs: dict[str, Any]) -> bool:
    return bool(
        np.allclose(layer.scale[-2:], kwargs["scale"])
        and np.allclose(layer.translate[-2:], kwargs["translate"])
    )


def can_swap(layer: Any, arrays: list[Any]) -> bool:
    """Whether ``layer``'s levels are :class:`ProbabilityView` s of arrays of the shapes and
    types of ``arrays`` (the raw zarr levels of another store of the same map grid)."""
    views = list(layer.data) if layer.multiscale else []
    return len(views) == len(arrays) and all(
        isinstance(v, ProbabilityView)
        and v.shape == tuple(a.shape)
        and np.dtype(v.array.dtype) == np.dtype(a.dtype)
        for v, a in zip(views, arrays, strict=False)
    )


def swap_levels(layer: Any, arrays: list[Any], metadata: dict[str, Any]) -> bool:
    """Point ``layer``'s level views at ``arrays`` and update its metadata, in place (no napari
    event: nothing is redrawn until the layer is refreshed); False when it cannot
    (:func:`can_swap`)."""
    if not can_swap(layer, arrays):
        return False
    for view, array in zip(layer.data, arrays, strict=True):
        view.array = array
    layer.metadata.update(metadata)
    return True


def _rename_show(layer: Any, name: str, keep_visibility: bool, refreshed: bool = False) -> None:
    """Name the layer, show it (unless ``keep_visibility``) and redraw it once (unless
    ``refreshed`` already): each napari setter runs only when its value changes (each one
    refreshes the layer)."""
    if layer.name != name:
        layer.name = name
    if not keep_visibility and not layer.visible:
        layer.visible = True  # shows, and reads, the new data
    elif layer.visible and not refreshed:
        layer.refresh()


def _retarget(layer: Any, data: list[Any], kwargs: dict[str, Any]) -> None:
    """Give an existing multiscale layer new levels, placement and metadata."""
    layer.metadata = kwargs["metadata"]
    layer.data = data
    if not np.allclose(layer.scale[-2:], kwargs["scale"]):
        layer.scale = kwargs["scale"]
    if not np.allclose(layer.translate[-2:], kwargs["translate"]):
        layer.translate = kwargs["translate"]


def refresh_layers(viewer: Any, store: Path) -> None:
    """Re-read the visible tiles of the layers backed by ``store`` while tiles come in.

    Only what is on the canvas: the thumbnail (a read of the whole lowest level, and a repaint
    of the layer list, which under software GL composes the whole window again), the extent
    and the highlight wait for the full refresh at the end of the run.
    """
    for layer in list(viewer.layers):
        if layer.metadata.get("store") == str(store):
            layer.refresh(thumbnail=False, extent=False, highlight=False)


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
