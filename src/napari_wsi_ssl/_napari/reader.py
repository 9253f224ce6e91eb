"""npe2 reader: a whole-slide image as one lazy, multiscale RGB image layer in micrometres."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

from ..errors import SlideError
from ..slide import SLIDE_SUFFIXES, Slide, looks_like_slide, open_slide
from .project import is_project

LayerData = tuple[Any, dict[str, Any], str]
ReaderFunction = Callable[[Any], list[LayerData]]


PLUGIN = "napari-wsi-ssl"
#: Suffixes of the slide vendors' own formats: napari's built-in reader also accepts some (.svs,
#: .ndpi, .scn, .bif) but reads a slide as one full-resolution array, so this plugin is made their
#: reader; TIFF and zarr stay the user's choice, as they also hold images that are not slides.
VENDOR_SUFFIXES = tuple(s for s in SLIDE_SUFFIXES if s not in (".tif", ".tiff", ".zarr"))


def get_reader(path: str | list[str]) -> ReaderFunction | None:
    """Return a reader for ``path`` when it is, or is named like, a slide; else None (never raises).

    A file named like a slide that is not one is still claimed: reading it then shows the
    plugin's one-line error, instead of napari's reader dialog and a bare ``ValueError``.
    """
    claim_slide_suffixes()
    if isinstance(path, list):
        if len(path) != 1:
            return None
        path = path[0]
    if is_project(path):  # a saved project folder: its slides, layers and docks
        from .widgets.project import read_project_folder  # napari and Qt, only for a project

        return read_project_folder
    try:
        if not looks_like_slide(path):
            return None
    except Exception:
        return None
    return read_slide


def claim_slide_suffixes() -> None:
    """Make this plugin napari's reader of the vendor suffixes that have none yet, so that a
    dropped slide opens (or says why it cannot) without napari's "Choose reader" dialog.

    napari runs no plugin code before the plugin is first used (a dock, a sample, a read): the
    reader, every dock and the sample data call this. The association is saved in napari's
    settings, so every later session, from its first drop on, goes straight to the plugin;
    Preferences > Plugins shows it and lets the user change it, and a user's own choice is kept.
    Only the very first drop after installing, before the plugin has ever run, can still show
    napari's dialog.
    """
    try:
        from napari.settings import get_settings

        plugins = get_settings().plugins
        merged = {f"*{s}": PLUGIN for s in VENDOR_SUFFIXES} | dict(plugins.extension2reader)
        if merged != plugins.extension2reader:
            plugins.extension2reader = merged
    except Exception:  # no napari settings (a plain Python session): nothing to associate
        pass


def read_slide(path: str | list[str], mpp: float | None = None) -> list[LayerData]:
    """Open a slide as ``[(pyramid, kwargs, "image")]``.

    A file that cannot be opened shows the ``SlideError``'s one line as an error notification and
    gives napari's "no layers" value: raising would make napari offer its reader dialog, whose
    other readers cannot open a slide either.
    """
    if isinstance(path, list):
        path = path[0]
    try:
        slide = open_slide(path, mpp=mpp)
    except SlideError as exc:
        from napari.utils.notifications import show_error

        show_error(str(exc))
        return [(None,)]  # type: ignore[list-item]
    return [slide_layer_data(slide)]


def slide_layer_data(slide: Slide, name: str | None = None) -> LayerData:
    """The image layer data of an open ``Slide``: lazy levels, scale in µm (1 when mpp is unknown)."""
    if slide.mpp is None:
        scale: tuple[float, float] = (1.0, 1.0)
        message = f"{slide.path}: the slide has no pixel size (mpp); it opens in pixels (scale 1). Set mpp to work in micrometres."
        warnings.warn(message, UserWarning, stacklevel=2)
        try:
            from napari.utils.notifications import show_warning

            show_warning(message)
        except Exception:  # no napari notification manager: the warning above is enough
            pass
    else:
        scale = (slide.mpp[1], slide.mpp[0])
    pyramid = slide.pyramid()
    meta = {
        "slide_path": str(slide.path),
        "mpp": None if slide.mpp is None else list(slide.mpp),
        "properties": dict(slide.properties),
        "level_downsamples": list(slide.pyramid_downsamples),
        "level_count": slide.level_count,
        "vendor": slide.vendor,
        "slide": slide,  # keeps the file open for the lazy levels
    }
    kwargs = {
        "name": name or slide.path.name,
        "multiscale": True,
        "rgb": True,
        "scale": scale,
        "metadata": meta,
        "contrast_limits": [0, 255],
    }
    if slide.mpp is not None:
        kwargs["units"] = ("um", "um")  # napari's scale bar then reads in micrometres
    return (pyramid, kwargs, "image")


def get_geojson_reader(path: str | list[str]) -> ReaderFunction | None:
    """Return the reader of a QuPath GeoJSON (``*.geojson``); else None (never raises)."""
    if isinstance(path, list):
        if len(path) != 1:
            return None
        path = path[0]
    return read_geojson if str(path).lower().endswith(".geojson") else None


def read_geojson(path: str | list[str]) -> list[LayerData]:
    """A QuPath GeoJSON as an annotation layer over the open slide (the selected layer's, else
    the first), placed as "New annotation layer" places one, with the file's classes.

    Without an open slide, or for a file without polygon annotations, a one-line notification
    and no layer: a GeoJSON is in level-0 pixels of a slide, and means nothing without one.
    """
    from napari import current_viewer
    from napari.utils.notifications import show_error, show_info

    from ..errors import WsiSslError
    from .widgets._annotations import geojson_layer_data, slide_layers
    from .widgets._slide_mpp import slide_of

    if isinstance(path, list):
        path = path[0]
    viewer = current_viewer()
    slides = slide_layers(viewer) if viewer is not None else []
    if not slides:
        show_info(
            f"{path}: a QuPath GeoJSON is laid over its slide; open the slide first, then the GeoJSON"
        )
        return [(None,)]  # type: ignore[list-item]
    slide = slide_of(viewer, viewer.layers.selection.active) or slides[0]
    try:
        return [geojson_layer_data(slide, path)]
    except WsiSslError as exc:
        show_error(str(exc))
        return [(None,)]  # type: ignore[list-item]


__all__ = [
    "SlideError",
    "claim_slide_suffixes",
    "get_geojson_reader",
    "get_reader",
    "read_geojson",
    "read_slide",
    "slide_layer_data",
]
