"""npe2 reader: a whole-slide image as one lazy, multiscale RGB image layer in micrometres."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import SlideError

LayerData = tuple[Any, dict[str, Any], str]
ReaderFunction = Callable[[Any], list[LayerData]]

_SLIDE_SUFFIXES = {
    ".svs",
    ".tif",
    ".tiff",
    ".ndpi",
    ".vms",
    ".vmu",
    ".mrxs",
    ".scn",
    ".svslide",
    ".bif",
}


def get_reader(path: str | list[str]) -> ReaderFunction | None:
    """Return a reader for ``path`` when it looks like a slide, else None (never raises)."""
    if isinstance(path, list):
        if len(path) != 1:
            return None
        path = path[0]
    try:
        p = Path(path)
        if not _looks_like_slide(p):
            return None
    except Exception:
        return None
    return read_slide


def _looks_like_slide(path: Path) -> bool:
    if path.is_dir():
        return any((path / n).exists() for n in (".zgroup", ".zattrs", "zarr.json"))
    if not path.is_file():
        return False
    with open(path, "rb") as fh:
        head = fh.read(4)
    if head in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return True
    # non-TIFF vendor formats (mrxs, vms) are index files that OpenSlide recognises
    if path.suffix.lower() in _SLIDE_SUFFIXES:
        try:
            import openslide

            return openslide.OpenSlide.detect_format(str(path)) is not None
        except Exception:
            return False
    return False


def read_slide(path: str | list[str], mpp: float | None = None) -> list[LayerData]:
    """Open a slide as ``[(pyramid, kwargs, "image")]``; SlideError (one line) when it is unreadable."""
    from ..slide import open_slide

    if isinstance(path, list):
        path = path[0]
    slide = open_slide(path, mpp=mpp)
    return [slide_layer_data(slide)]


def slide_layer_data(slide: Any, name: str | None = None) -> LayerData:
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
        "napari_wsi_ssl": True,
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


__all__ = ["SlideError", "get_reader", "read_slide", "slide_layer_data"]
