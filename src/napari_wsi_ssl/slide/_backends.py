"""Slide backends: OpenSlide, tifffile and zarr, chosen by the file's content.

Each backend exposes the same small surface: levels, properties, mpp, ``read(level, x, y, w, h)``
of an in-bounds region in that level's pixels, and ``read_region(location, level, size)`` at a
level-0 location, anywhere, padded white; both return (h, w, 3) uint8. ``properties`` are the
file's own metadata, never values the backend derived (the pixel size is ``mpp``).
The heavy libraries are imported only when a file of their kind is opened.
"""

from __future__ import annotations

import json
import math
import threading
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import SlideError
from ._tiff import CorruptTileError, PageReader, TileCache, corrupt_mark, to_rgb8

TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
_UNIT_TO_UM = {
    "nm": 1e-3,
    "nanometer": 1e-3,
    "µm": 1.0,
    "um": 1.0,
    "micrometer": 1.0,
    "mm": 1e3,
    "millimeter": 1e3,
    "cm": 1e4,
    "m": 1e6,
}


class Backend:
    """What every backend provides; see the module docstring."""

    name = "base"
    vendor = "unknown"
    level_dimensions: list[tuple[int, int]]
    level_downsamples: list[float]
    tile_sizes: list[tuple[int, int] | None]
    properties: dict[str, str]
    mpp: tuple[float, float] | None = None
    objective_power: float | None = None
    corrupt_regions = 0  # regions drawn as marks because they could not be read
    # True where a read decodes only the tiles a region touches, so a chunk of a few file tiles
    # costs one call instead of one per tile (see ``Slide.chunk_size``)
    reads_tiles = False

    def read_region(
        self, location: tuple[int, int], level: int, size: tuple[int, int]
    ) -> np.ndarray:
        """(h, w, 3) uint8 of ``size`` (w, h) level pixels whose top-left is ``location`` in
        level-0 pixels; parts outside the level are white."""
        ds = self.level_downsamples[level]
        x, y = math.floor(location[0] / ds), math.floor(location[1] / ds)
        lw, lh = self.level_dimensions[level]
        return padded_read(
            lambda *box: self.read(level, *box), lw, lh, x, y, int(size[0]), int(size[1])
        )

    def read(
        self, level: int, x: int, y: int, w: int, h: int, mark_corrupt: bool = False
    ) -> np.ndarray:
        """Read an in-bounds region of ``level``; undecodable data raise ``CorruptTileError``,
        or with ``mark_corrupt`` come back as the checkerboard of ``corrupt_mark``."""
        raise NotImplementedError

    @property
    def corrupt_tiles(self) -> int:
        """How many tiles were drawn as marks so far (by backends that can tell the tile)."""
        return 0

    def _read_or_mark(
        self, level: int, x: int, y: int, w: int, h: int, mark_corrupt: bool
    ) -> np.ndarray:
        """``read`` for backends that cannot tell which tile failed: the whole region fails."""
        try:
            return self._read(level, x, y, w, h)
        except Exception as exc:  # the libraries raise their own kinds for damaged data
            if not mark_corrupt:
                raise CorruptTileError(-1, "its data are damaged") from exc
            self.corrupt_regions += 1
            return corrupt_mark(h, w, x, y)

    def _read(self, level: int, x: int, y: int, w: int, h: int) -> np.ndarray:
        raise NotImplementedError

    def close(self) -> None:
        pass


# --------------------------------------------------------------------------- OpenSlide


class OpenSlideBackend(Backend):
    name = "openslide"

    def __init__(self, path: Path, vendor: str) -> None:
        import openslide

        self._path = path
        self._osr = openslide.OpenSlide(str(path))
        self._reopen_lock = threading.Lock()
        self.vendor = vendor
        self.properties = {str(k): str(v) for k, v in self._osr.properties.items()}
        self.level_dimensions = [tuple(map(int, d)) for d in self._osr.level_dimensions]  # type: ignore[misc]
        self.level_downsamples = [float(d) for d in self._osr.level_downsamples]
        self.tile_sizes = []
        for i in range(len(self.level_dimensions)):
            tw = self.properties.get(f"openslide.level[{i}].tile-width")
            th = self.properties.get(f"openslide.level[{i}].tile-height")
            self.tile_sizes.append((int(tw), int(th)) if tw and th else None)
        try:
            mx = float(self.properties["openslide.mpp-x"])
            my = float(self.properties["openslide.mpp-y"])
            self.mpp = (mx, my) if mx > 0 and my > 0 else None
        except (KeyError, ValueError):
            self.mpp = None
        try:
            self.objective_power = float(self.properties["openslide.objective-power"])
        except (KeyError, ValueError):
            self.objective_power = None

    def read_region(
        self, location: tuple[int, int], level: int, size: tuple[int, int]
    ) -> np.ndarray:
        """OpenSlide's own read, RGB on white; PIL's C conversion is far faster than numpy's
        strided RGBA -> RGB copy."""
        osr = self._osr
        try:
            img = osr.read_region(location, level, size)
        except Exception:
            self._reopen(osr)
            raise
        if img.getextrema()[3] == (255, 255):  # type: ignore[misc]
            return np.asarray(img.convert("RGB"))
        return rgba_to_rgb(np.asarray(img))

    def _reopen(self, failed: Any) -> None:
        """After an error OpenSlide refuses every further read of that handle: open a fresh one,
        so one damaged tile does not blank the rest of the slide. The old handle is left to the
        garbage collector, as another thread may still be inside it."""
        import openslide

        with self._reopen_lock:
            if self._osr is failed:
                self._osr = openslide.OpenSlide(str(self._path))

    def read(
        self, level: int, x: int, y: int, w: int, h: int, mark_corrupt: bool = False
    ) -> np.ndarray:
        return self._read_or_mark(level, x, y, w, h, mark_corrupt)

    def _read(self, level: int, x: int, y: int, w: int, h: int) -> np.ndarray:
        ds = self.level_downsamples[level]
        return self.read_region((round(x * ds), round(y * ds)), level, (w, h))

    def close(self) -> None:
        self._osr.close()


def padded_read(
    read: Callable[[int, int, int, int], np.ndarray],
    width: int,
    height: int,
    x: int,
    y: int,
    w: int,
    h: int,
) -> np.ndarray:
    """``read(x, y, w, h)`` of the part of (x, y, w, h) inside ``width`` x ``height``, padded white."""
    ix0, iy0 = max(x, 0), max(y, 0)
    ix1, iy1 = min(x + w, width), min(y + h, height)
    inside = ix1 > ix0 and iy1 > iy0
    if inside and (ix0, iy0, ix1, iy1) == (x, y, x + w, y + h):
        return read(x, y, w, h)
    out = np.full((max(h, 0), max(w, 0), 3), 255, np.uint8)
    if inside:
        out[iy0 - y : iy1 - y, ix0 - x : ix1 - x] = read(ix0, iy0, ix1 - ix0, iy1 - iy0)
    return out


def rgba_to_rgb(rgba: np.ndarray) -> np.ndarray:
    """OpenSlide's RGBA (transparent where there is no data) on a white background."""
    alpha = rgba[..., 3]
    rgb = rgba[..., :3]
    if alpha.min() == 255:
        return np.ascontiguousarray(rgb)
    a = alpha[..., None].astype(np.uint16)
    return ((rgb.astype(np.uint16) * a + 255 * (255 - a) + 127) // 255).astype(np.uint8)


# --------------------------------------------------------------------------- tifffile


class TiledBackend(Backend):
    """A TIFF whose level pages are read tile by tile through ``PageReader``s."""

    name = "tifffile"
    reads_tiles = True
    _tf: Any

    def _read_pages(self, pages: list[Any]) -> None:
        """Readers of ``pages`` (one per level) sharing the file handle, a lock and a tile cache."""
        lock = threading.Lock()
        cache = TileCache()
        fh = self._tf.filehandle
        self._readers = [PageReader(p, fh, lock, cache, level) for level, p in enumerate(pages)]

    def read(
        self, level: int, x: int, y: int, w: int, h: int, mark_corrupt: bool = False
    ) -> np.ndarray:
        return to_rgb8(self._readers[level].read(x, y, w, h, mark_corrupt))

    @property
    def corrupt_tiles(self) -> int:
        return sum(len(r.corrupt) for r in self._readers)

    def close(self) -> None:
        self._tf.close()


class TiffBackend(TiledBackend):
    def __init__(self, path: Path) -> None:
        import tifffile

        self._tf = tifffile.TiffFile(path)
        tf = self._tf
        pages = _pyramid_pages(tf)
        if not pages:
            raise SlideError("the TIFF holds no image", path)
        self._read_pages(pages)
        self.level_dimensions = [(r.width, r.height) for r in self._readers]
        w0 = self.level_dimensions[0][0]
        self.level_downsamples = [w0 / w for w, _ in self.level_dimensions]
        self.tile_sizes = [r.tile_size for r in self._readers]
        first = pages[0]
        self.properties = {}
        for tag in first.tags.values():
            if tag.code in (270, 305, 306, 282, 283, 296, 315, 271, 272):
                self.properties[f"tiff.{tag.name}"] = str(tag.value)[:2000]
        self.vendor = "ome-tiff" if tf.is_ome else "generic-tiff"
        self.mpp = _ome_mpp(tf.ome_metadata) if tf.is_ome else None
        if self.mpp is None:
            self.mpp = _tiff_resolution_mpp(first)


def _pyramid_pages(tf: Any) -> list[Any]:
    """The pages of the resolution levels, largest first (series levels, SubIFDs or reduced pages)."""
    series = tf.series[0] if tf.series else None
    if series is not None and len(series.levels) > 1:
        return [lvl.keyframe for lvl in series.levels]
    first = tf.pages[0]
    pages = [first]
    if first.subifds:
        return [first, *(p for p in getattr(series, "levels", [])[1:])] if series else pages
    # generic pyramid: further top-level pages, each smaller, with the same samples
    for page in tf.pages[1:]:
        page = page.keyframe if hasattr(page, "keyframe") else page
        prev = pages[-1]
        if (
            page.imagewidth < prev.imagewidth
            and page.imagelength < prev.imagelength
            and page.samplesperpixel == first.samplesperpixel
            and page.is_tiled == first.is_tiled
        ):
            pages.append(page)
    return pages


def _tiff_resolution_mpp(page: Any) -> tuple[float, float] | None:
    tags = page.tags
    try:
        unit = int(tags["ResolutionUnit"].value)
        xr = tags["XResolution"].value
        yr = tags["YResolution"].value
    except KeyError:
        return None
    per_unit = {2: 25400.0, 3: 10000.0}.get(unit)
    if per_unit is None:
        return None
    xres = xr[0] / xr[1] if xr[1] else 0.0
    yres = yr[0] / yr[1] if yr[1] else 0.0
    if xres <= 0 or yres <= 0:
        return None
    mx, my = per_unit / xres, per_unit / yres
    # a resolution of 1 or 72 dpi is a default written by software, not a scan
    if unit == 2 and xres in (1.0, 72.0, 96.0, 300.0):
        return None
    return (mx, my)


def _ome_mpp(xml: str | None) -> tuple[float, float] | None:
    if not xml:
        return None
    try:
        root = ET.fromstring(xml)
    except ET.ParseError:
        return None
    for el in root.iter():
        if el.tag.endswith("Pixels"):
            try:
                px = float(el.attrib["PhysicalSizeX"]) * _UNIT_TO_UM.get(
                    el.attrib.get("PhysicalSizeXUnit", "µm"), 1.0
                )
                py = float(el.attrib.get("PhysicalSizeY", px)) * _UNIT_TO_UM.get(
                    el.attrib.get("PhysicalSizeYUnit", "µm"), 1.0
                )
            except (KeyError, ValueError):
                return None
            return (px, py) if px > 0 and py > 0 else None
    return None


# --------------------------------------------------------------------------- zarr


class ZarrBackend(Backend):
    name = "zarr"
    vendor = "ome-zarr"

    def __init__(self, path: Path) -> None:
        import zarr

        group = zarr.open_group(str(path), mode="r")
        attrs = group.attrs.asdict()
        ms = (attrs.get("multiscales") or attrs.get("ome", {}).get("multiscales") or [None])[0]
        if ms is None:
            raise SlideError(
                "the zarr store has no OME multiscales metadata", path, "write it as OME-Zarr"
            )
        axes = [a["name"] if isinstance(a, dict) else str(a) for a in ms.get("axes", [])]
        self._arrays = [group[d["path"]] for d in ms["datasets"]]
        if not axes:
            axes = ["c", "y", "x"] if self._arrays[0].shape[0] in (1, 3, 4) else ["y", "x", "c"]
        self._axes = axes
        self.level_dimensions = []
        self.tile_sizes = []
        for arr in self._arrays:
            iy, ix = axes.index("y"), axes.index("x")
            self.level_dimensions.append((int(arr.shape[ix]), int(arr.shape[iy])))
            self.tile_sizes.append((int(arr.chunks[ix]), int(arr.chunks[iy])))
        w0 = self.level_dimensions[0][0]
        self.level_downsamples = [w0 / w for w, _ in self.level_dimensions]
        self.properties = {"ome.multiscales": json.dumps(ms)[:2000]}
        self.mpp = _zarr_mpp(ms, axes)

    def read(
        self, level: int, x: int, y: int, w: int, h: int, mark_corrupt: bool = False
    ) -> np.ndarray:
        return self._read_or_mark(level, x, y, w, h, mark_corrupt)

    def _read(self, level: int, x: int, y: int, w: int, h: int) -> np.ndarray:
        arr = self._arrays[level]
        index: list[Any] = []
        for name in self._axes:
            if name == "y":
                index.append(slice(y, y + h))
            elif name == "x":
                index.append(slice(x, x + w))
            elif name == "c":
                index.append(slice(None))
            else:
                index.append(0)
        data = np.asarray(arr[tuple(index)])
        kept = [a for a in self._axes if a in ("y", "x", "c")]
        if "c" not in kept:
            return to_rgb8(data)
        order = [kept.index("y"), kept.index("x"), kept.index("c")]
        return to_rgb8(np.transpose(data, order))


def _zarr_mpp(ms: dict[str, Any], axes: list[str]) -> tuple[float, float] | None:
    try:
        transforms = ms["datasets"][0].get("coordinateTransformations", [])
        scale = next(t["scale"] for t in transforms if t.get("type") == "scale")
        ax = ms.get("axes", [])
        unit = (
            ax[axes.index("x")].get("unit", "micrometer")
            if ax and isinstance(ax[0], dict)
            else "micrometer"
        )
        factor = _UNIT_TO_UM.get(unit)
        if factor is None:
            return None
        mx = float(scale[axes.index("x")]) * factor
        my = float(scale[axes.index("y")]) * factor
        return (mx, my) if mx > 0 and my > 0 else None
    except (KeyError, StopIteration, ValueError, IndexError, TypeError):
        return None
