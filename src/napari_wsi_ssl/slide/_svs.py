"""Aperio SVS pixels decoded straight from the file's tiles, OpenSlide's metadata kept.

An SVS is a tiled TIFF whose resolution levels are its tiled pages. OpenSlide reads its
metadata (properties, levels, mpp, objective power); tifffile with imagecodecs decodes the tiles
of the compressions below with the same libraries OpenSlide uses (libjpeg-turbo, OpenJPEG), so
the pixels are OpenSlide's, without its RGBA compositing: on the CMU SVS a whole-level read takes
a quarter of OpenSlide's time. Anything else stays with OpenSlide: JPEG 2000 in YCbCr (33003),
which OpenSlide converts with its own tables, and files whose tiled pages are not OpenSlide's
levels.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ._backends import Backend, OpenSlideBackend, TiledBackend

# TIFF compression -> photometric interpretations decoded to OpenSlide's pixels
# (1 none, 5 LZW, 8 deflate, 7 JPEG, 33005 Aperio's JPEG 2000 in RGB; 2 RGB, 6 YCbCr)
DIRECT = {1: {2}, 5: {2}, 8: {2}, 7: {2, 6}, 33005: {2}}


def open_aperio(path: Path, vendor: str) -> Backend:
    """The fastest backend that reads ``path`` as OpenSlide does: ``SvsBackend``, else OpenSlide."""
    meta = OpenSlideBackend(path, vendor)
    try:
        import imagecodecs  # noqa: F401  (tifffile's codecs; without them OpenSlide decodes)
        import tifffile

        tf = tifffile.TiffFile(path)
    except Exception:
        return meta
    try:
        pages: list[Any] = [page for page in tf.pages if getattr(page, "is_tiled", False)]
        dims = [(int(p.imagewidth), int(p.imagelength)) for p in pages]
        if dims == list(meta.level_dimensions) and all(_direct(p) for p in pages):
            return SvsBackend(meta, tf, pages)
    except Exception:  # an odd file: OpenSlide reads it as it always did
        pass
    tf.close()
    return meta


def _direct(page: Any) -> bool:
    photometric = DIRECT.get(int(page.compression))
    return (
        photometric is not None
        and int(page.photometric) in photometric
        and int(page.samplesperpixel) == 3
        and int(page.bitspersample) == 8
        and int(page.planarconfig) == 1
    )


class SvsBackend(TiledBackend):
    """OpenSlide's metadata of an Aperio SVS, with its tiles decoded by tifffile."""

    def __init__(self, meta: OpenSlideBackend, tf: Any, pages: list[Any]) -> None:
        self._meta = meta
        self._tf = tf
        self.vendor = meta.vendor
        self.properties = meta.properties
        self.level_dimensions = meta.level_dimensions
        self.level_downsamples = meta.level_downsamples
        self.tile_sizes = meta.tile_sizes
        self.mpp = meta.mpp
        self.objective_power = meta.objective_power
        self._read_pages(pages)

    def close(self) -> None:
        super().close()
        self._meta.close()
