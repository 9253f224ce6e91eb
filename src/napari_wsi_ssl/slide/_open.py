"""Choosing a backend from what a path holds, not what it is called."""

from __future__ import annotations

from pathlib import Path

from ..errors import SlideError
from ._backends import TIFF_MAGIC, Backend, OpenSlideBackend, TiffBackend, ZarrBackend

_HINT = (
    "open a whole-slide image (svs, ndpi, mrxs, scn, vms, bif, tiled TIFF, OME-TIFF or OME-Zarr)"
)


def choose_backend(path: Path) -> Backend:
    """Open ``path`` with the backend that suits its content; SlideError when none does."""
    if not path.exists():
        raise SlideError("no such file or folder", path)
    if path.is_dir():
        if not any((path / name).exists() for name in (".zgroup", ".zattrs", "zarr.json")):
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
                f"cannot read the zarr store ({type(exc).__name__}: {exc})", path
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
    vendor = _openslide_vendor(path)
    try:
        if vendor is not None and vendor != "generic-tiff":
            return OpenSlideBackend(path, vendor)
        if is_tiff:
            # tifffile reads generic tiled TIFF faster than OpenSlide, and does OME and SubIFDs
            return TiffBackend(path)
    except SlideError:
        raise
    except Exception as exc:
        raise SlideError(
            f"cannot open the slide ({type(exc).__name__}: {exc})", path, _HINT
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


def _check_tiff_complete(path: Path) -> None:
    """Raise SlideError when the TIFF structure is broken or its image data end past the file."""
    import tifffile

    size = path.stat().st_size
    try:
        with tifffile.TiffFile(path) as tf:
            pages = list(tf.pages)
            if pages and _next_ifd_offset(tf, pages[-1].offset) >= size:
                # the chain of pages points past the end: the tail (often the label, macro and
                # the vendor's metadata pages) is missing, and OpenSlide would not read it
                raise SlideError(
                    "the file is truncated (its list of pages points past its end)",
                    path,
                    "copy or download it again",
                )
            for page in pages:
                offsets = getattr(page, "dataoffsets", ())
                counts = getattr(page, "databytecounts", ())
                if (
                    len(offsets)
                    and max(int(o) + int(c) for o, c in zip(offsets, counts, strict=False)) > size
                ):
                    raise SlideError(
                        "the file is truncated (image data end past its end)",
                        path,
                        "copy or download it again",
                    )
    except SlideError:
        raise
    except Exception as exc:
        raise SlideError(
            f"the TIFF structure is broken ({type(exc).__name__}: {exc})",
            path,
            "copy or download it again",
        ) from exc


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
