"""Choosing a backend from what a path holds, not what it is called."""

from __future__ import annotations

import logging
import re
import threading
from pathlib import Path
from typing import Any

from ..errors import SlideError
from ._backends import TIFF_MAGIC, Backend, OpenSlideBackend, TiffBackend, ZarrBackend
from ._svs import open_aperio

_HINT = (
    "open a whole-slide image (svs, ndpi, mrxs, scn, vms, bif, tiled TIFF, OME-TIFF or OME-Zarr)"
)


#: File names that promise a slide; a file so named that no backend reads gets the plugin's error
#: (the napari reader claims it) rather than being passed on to other readers.
SLIDE_SUFFIXES = (
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
    ".zarr",
)


def detect_format(path: str | Path) -> str | None:
    """The slide format of ``path`` judged from its content, without reading any pixels.

    OpenSlide's vendor name (``"aperio"``, ``"hamamatsu"`` ...), ``"generic-tiff"`` for any other
    TIFF, ``"ome-zarr"`` for a zarr folder, or None when no backend would try it. Never raises; a
    file of a known format may still fail to open (truncated, damaged), which ``open_slide`` says.
    """
    try:
        path = Path(path)
        if path.is_dir():
            return "ome-zarr" if _is_zarr_store(path) else None
        if not path.is_file():
            return None
        with open(path, "rb") as fh:
            head = fh.read(4)
    except OSError:
        return None
    vendor = _openslide_vendor(path)
    if vendor is not None:
        return vendor
    return "generic-tiff" if head in TIFF_MAGIC else None


def looks_like_slide(path: str | Path) -> bool:
    """True when ``path`` is a slide by its content, or is named like one (a slide suffix)."""
    path = Path(path)
    named = path.suffix.lower() in SLIDE_SUFFIXES and path.exists()
    return named or detect_format(path) is not None


def _is_zarr_store(path: Path) -> bool:
    return any((path / name).exists() for name in (".zgroup", ".zattrs", "zarr.json"))


def choose_backend(path: Path) -> Backend:
    """Open ``path`` with the backend that suits its content; SlideError when none does."""
    if not path.exists():
        raise SlideError("no such file or folder", path)
    if path.is_dir():
        if not _is_zarr_store(path):
            raise SlideError("the folder is not a zarr store", path, _HINT)
        if (path / "zarr.json").exists() and not (path / ".zgroup").exists():
            raise SlideError(
                "zarr format 3 stores are not supported", path, "write it as OME-Zarr 0.4 (zarr v2)"
            )
        try:
            return ZarrBackend(path)
        except SlideError:
            raise
        except Exception as exc:  # zarr raises many kinds for a broken store
            raise SlideError(
                "cannot read the zarr store: it is damaged or incomplete", path
            ) from exc
    try:
        with open(path, "rb") as fh:
            head = fh.read(16)
    except OSError as exc:
        raise SlideError(f"cannot read the file ({exc.strerror})", path) from exc
    if not head:
        raise SlideError("the file is empty", path, _HINT)
    is_tiff = head[:4] in TIFF_MAGIC
    if is_tiff:
        _check_tiff_complete(path)
    vendor = detect_format(path)
    try:
        if vendor == "aperio":
            return open_aperio(path, vendor)
        if vendor is not None and vendor != "generic-tiff":
            return OpenSlideBackend(path, vendor)
        if is_tiff:
            # tifffile reads generic tiled TIFF faster than OpenSlide, and does OME and SubIFDs
            return TiffBackend(path)
    except SlideError:
        raise
    except Exception as exc:
        raise SlideError(
            "the slide cannot be opened: the file is truncated or damaged, or a file that comes "
            "with it (such as the data folder of an MRXS) is missing",
            path,
        ) from exc
    raise SlideError("not a whole-slide image format this plugin reads", path, _HINT)


def _openslide_vendor(path: Path) -> str | None:
    try:
        import openslide
    except ImportError:  # pragma: no cover - openslide-bin is a dependency
        return None
    try:
        return openslide.OpenSlide.detect_format(str(path))
    except Exception:
        return None


TRUNCATED = "the file is truncated or damaged"
_INVALID_OFFSET = re.compile(r"invalid (\w+ )?offset")
_AGAIN = "copy or download it again"


def _check_tiff_complete(path: Path) -> None:
    """Raise SlideError when the TIFF structure is broken or points past the end of the file.

    tifffile logs what it skips (a first page, a tag value past the end) and goes on; those
    records are read here, so that a truncated file is named as such.
    """
    import tifffile

    size = path.stat().st_size
    try:
        with _TiffLog() as log, tifffile.TiffFile(path) as tf:
            pages: list[Any] = list(tf.pages)
            if not pages:
                raise SlideError(f"{TRUNCATED} (no readable page)", path, _AGAIN)
            if _next_ifd_offset(tf, pages[-1].offset) >= size:
                # the chain of pages points past the end: the tail (often the label, macro and
                # the vendor's metadata pages) is missing, and OpenSlide would not read it
                raise SlideError(
                    f"{TRUNCATED} (its list of pages points past its end)", path, _AGAIN
                )
            for page in pages:
                page.tags  # noqa: B018  (loads every tag now, while the log is read)
                offsets = getattr(page, "dataoffsets", ())
                counts = getattr(page, "databytecounts", ())
                if (
                    len(offsets)
                    and max(int(o) + int(c) for o, c in zip(offsets, counts, strict=False)) > size
                ):
                    raise SlideError(f"{TRUNCATED} (image data end past its end)", path, _AGAIN)
        if log.invalid_offsets:
            raise SlideError(f"{TRUNCATED} (its metadata point past its end)", path, _AGAIN)
    except SlideError:
        raise
    except Exception as exc:  # tifffile raises many kinds for a broken structure
        raise SlideError(f"{TRUNCATED} (its TIFF structure is broken)", path, _AGAIN) from exc


class _TiffLog(logging.Handler):
    """Whether tifffile reported an invalid offset (a page or tag value beyond the end of the
    file, which it skips) while this thread read a file's structure."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.thread = threading.get_ident()
        self.invalid_offsets = 0

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread == self.thread and _INVALID_OFFSET.search(record.getMessage()):
            self.invalid_offsets += 1

    def __enter__(self) -> _TiffLog:
        logging.getLogger("tifffile").addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        logging.getLogger("tifffile").removeHandler(self)


def _next_ifd_offset(tf: object, ifd_offset: int) -> int:
    """The 'next page' offset stored at the end of the TIFF directory at ``ifd_offset``."""
    import struct

    tiff = tf.tiff  # type: ignore[attr-defined]
    fh = tf.filehandle  # type: ignore[attr-defined]
    fh.seek(ifd_offset)
    count_bytes = fh.read(tiff.tagnosize)
    if len(count_bytes) < tiff.tagnosize:
        return 1 << 62
    (count,) = struct.unpack(tiff.tagnoformat, count_bytes)
    fh.seek(ifd_offset + tiff.tagnosize + count * tiff.tagsize)
    raw = fh.read(tiff.offsetsize)
    if len(raw) < tiff.offsetsize:
        return 1 << 62
    (offset,) = struct.unpack(tiff.offsetformat, raw)
    return int(offset)
