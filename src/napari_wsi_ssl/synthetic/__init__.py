"""A procedural H&E-like whole-slide image with its ground truth.

``write_synthetic_slide`` writes, tile by tile and deterministically for a seed:

- ``slide.tif``: a pyramidal tiled JPEG TIFF (all levels as top-level pages, mpp in the
  resolution tags) that OpenSlide opens as a generic tiled TIFF;
- ``tumour_mask.tif`` and ``tissue_mask.tif``: uint8 0/1 at ``gt_downsample``;
- ``nuclei_labels.tif``: int32 nucleus instance labels at level 0, tiled and zlib-compressed;
- ``synthetic.json``: the parameters, written last (its presence means the set is complete).

Memory stays small at any size: only one row of tiles per pyramid level is held, lower
levels are spooled compressed to a temporary file until their turn to be written.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .._atomic import atomic_path
from ..errors import SlideError
from ..slide._tiff import PageReader
from ._render import Fields, render_mask, render_tile

__all__ = [
    "SyntheticSlide",
    "load_synthetic_slide",
    "read_nuclei_labels",
    "read_tissue_mask",
    "read_tumour_mask",
    "write_synthetic_slide",
]

JPEG_QUALITY = 90
MIN_LEVEL_SIZE = 1024


@dataclass(frozen=True)
class SyntheticSlide:
    """Paths and facts of a written synthetic slide."""

    slide: Path
    tumour_mask: Path
    nuclei_labels: Path
    tissue_mask: Path
    gt_downsample: int
    mpp: float
    size: int
    seed: int = 0


def _level_shapes(size: int) -> list[int]:
    sizes = [size]
    while sizes[-1] >= MIN_LEVEL_SIZE:
        sizes.append((sizes[-1] + 1) // 2)
    return sizes


def _downsample2(strip: np.ndarray) -> np.ndarray:
    """2x2 mean of an RGB strip, edges replicated when a side is odd."""
    h, w = strip.shape[:2]
    if h % 2 or w % 2:
        strip = np.pad(strip, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
    s = strip.astype(np.uint16)
    out = s[0::2, 0::2] + s[1::2, 0::2] + s[0::2, 1::2] + s[1::2, 1::2] + 2
    return (out >> 2).astype(np.uint8)


class _Spool:
    """Tiles of one array, compressed into a temporary file, to be read back in order."""

    def __init__(self, folder: Path, name: str) -> None:
        self.path = folder / name
        self._fh = open(self.path, "wb")  # noqa: SIM115 - closed in tiles()
        self._index: list[tuple[int, int, tuple[int, ...], str]] = []

    def add(self, tile: np.ndarray) -> None:
        import imagecodecs

        data = imagecodecs.lz4_encode(np.ascontiguousarray(tile).tobytes())
        self._index.append((self._fh.tell(), len(data), tile.shape, tile.dtype.str))
        self._fh.write(data)

    def tiles(self) -> Iterator[np.ndarray]:
        import imagecodecs

        self._fh.close()
        with open(self.path, "rb") as fh:
            for offset, length, shape, dtype in self._index:
                fh.seek(offset)
                raw = imagecodecs.lz4_decode(fh.read(length))
                yield np.frombuffer(raw, dtype=dtype).reshape(shape)


class _Cascade:
    """Receives level-0 rows of tiles and feeds the lower levels' spools, one strip at a time."""

    def __init__(self, folder: Path, sizes: list[int], tile: int) -> None:
        self.tile = tile
        self.spools = [_Spool(folder, f"level{k}.bin") for k in range(1, len(sizes))]
        self.pending: list[np.ndarray | None] = [None] * len(sizes)
        self.sizes = sizes

    def push(self, level: int, strip: np.ndarray, last: bool) -> None:
        """Add a strip (full width) of ``level`` - 1 and cut finished tile rows of ``level``."""
        if level >= len(self.sizes):
            return
        small = _downsample2(strip)
        prev = self.pending[level]
        buf = small if prev is None else np.concatenate([prev, small], axis=0)
        t = self.tile
        while buf.shape[0] >= t or (last and buf.shape[0] > 0):
            row, buf = buf[:t], buf[t:]
            for x in range(0, row.shape[1], t):
                self.spools[level - 1].add(row[:, x : x + t])
            self.push(level + 1, row, last and buf.shape[0] == 0)
        self.pending[level] = buf


def write_synthetic_slide(
    out_dir: str | Path,
    size: int = 4096,
    seed: int = 0,
    mpp: float = 0.5,
    tile_size: int = 256,
    gt_downsample: int = 8,
) -> SyntheticSlide:
    """Write the procedural slide and its ground truth into ``out_dir``.

    Parameters
    ----------
    out_dir
        Folder to write into (created when missing).
    size
        Width and height of level 0 in pixels.
    seed
        Seed of the procedural tissue; the same seed gives the same files.
    mpp
        Micrometres per pixel written into the resolution tags.
    tile_size
        TIFF tile size in pixels (a multiple of 16).
    gt_downsample
        Downsample of the tumour and tissue masks relative to level 0.

    Returns
    -------
    SyntheticSlide
        The paths of the files written.
    """
    import tifffile

    if size < 64 or tile_size % 16:
        raise SlideError(
            f"cannot write a synthetic slide of size {size} with tile {tile_size}", out_dir
        )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    fields = Fields(size=size, seed=seed)
    sizes = _level_shapes(size)
    t = tile_size
    ntiles = (size + t - 1) // t
    bigtiff = size * size * 3 > 2**31
    res = (1e4 / mpp, 1e4 / mpp)
    syn = SyntheticSlide(
        slide=out / "slide.tif",
        tumour_mask=out / "tumour_mask.tif",
        nuclei_labels=out / "nuclei_labels.tif",
        tissue_mask=out / "tissue_mask.tif",
        gt_downsample=gt_downsample,
        mpp=mpp,
        size=size,
        seed=seed,
    )
    (out / "synthetic.json").unlink(missing_ok=True)

    with tempfile.TemporaryDirectory(dir=out, prefix=".spool") as tmp:
        cascade = _Cascade(Path(tmp), sizes, t)
        labels = _Spool(Path(tmp), "labels.bin")

        def level0_tiles() -> Iterator[np.ndarray]:
            with ThreadPoolExecutor(2) as pool:
                for ty in range(ntiles):
                    y0 = ty * t
                    h = min(t, size - y0)
                    rendered = list(
                        pool.map(
                            lambda tx, y0=y0, h=h: render_tile(
                                fields, tx * t, y0, min(t, size - tx * t), h
                            ),
                            range(ntiles),
                        )
                    )
                    row = np.concatenate([rgb for rgb, _ in rendered], axis=1)
                    # before yielding: the writer stops pulling after the last tile
                    cascade.push(1, row, last=ty == ntiles - 1)
                    for rgb, lab in rendered:
                        labels.add(lab)
                        yield rgb

        common: dict[str, Any] = dict(
            dtype=np.uint8,
            tile=(t, t),
            photometric="rgb",
            compression="jpeg",
            compressionargs={"level": JPEG_QUALITY},
            resolution=res,
            resolutionunit="CENTIMETER",
            metadata=None,
            maxworkers=2,
        )
        with atomic_path(syn.slide) as path, tifffile.TiffWriter(path, bigtiff=bigtiff) as tw:
            tw.write(
                level0_tiles(),
                shape=(size, size, 3),
                subfiletype=0,
                description="napari-wsi-ssl synthetic slide",
                **common,
            )
            for k, spool in enumerate(cascade.spools, start=1):
                s = sizes[k]
                tw.write(spool.tiles(), shape=(s, s, 3), subfiletype=1, **common)

        with (
            atomic_path(syn.nuclei_labels) as path,
            tifffile.TiffWriter(path, bigtiff=bigtiff) as tw,
        ):
            tw.write(
                labels.tiles(),
                shape=(size, size),
                dtype=np.int32,
                tile=(t, t),
                compression="zlib",
                compressionargs={"level": 1},
                resolution=res,
                resolutionunit="CENTIMETER",
                metadata=None,
                maxworkers=2,
            )

    gt_size = (size + gt_downsample - 1) // gt_downsample
    gt_res = (1e4 / (mpp * gt_downsample), 1e4 / (mpp * gt_downsample))
    for which, target in (("tumour", syn.tumour_mask), ("tissue", syn.tissue_mask)):

        def mask_tiles(which: str = which) -> Iterator[np.ndarray]:
            for y in range(0, gt_size, t):
                for x in range(0, gt_size, t):
                    w, h = min(t, gt_size - x), min(t, gt_size - y)
                    yield render_mask(
                        fields, x * gt_downsample, y * gt_downsample, w, h, gt_downsample, which
                    )

        with atomic_path(target) as path:
            tifffile.imwrite(
                path,
                mask_tiles(),
                shape=(gt_size, gt_size),
                dtype=np.uint8,
                tile=(t, t),
                compression="zlib",
                resolution=gt_res,
                resolutionunit="CENTIMETER",
                metadata=None,
            )

    manifest = {k: str(v) if isinstance(v, Path) else v for k, v in asdict(syn).items()}
    manifest["version"] = 1
    with atomic_path(out / "synthetic.json") as path:
        path.write_text(json.dumps(manifest, indent=1))
    return syn


def load_synthetic_slide(out_dir: str | Path) -> SyntheticSlide | None:
    """The synthetic slide written earlier in ``out_dir``, or None when absent or incomplete."""
    manifest = Path(out_dir) / "synthetic.json"
    try:
        data = json.loads(manifest.read_text())
        data.pop("version", None)
        for key in ("slide", "tumour_mask", "nuclei_labels", "tissue_mask"):
            data[key] = Path(data[key])
            if not data[key].is_file():
                return None
        return SyntheticSlide(**data)
    except (OSError, ValueError, TypeError, KeyError):
        return None


def _read_tiff(path: Path, region: tuple[int, int, int, int] | None = None) -> np.ndarray:
    import threading

    import tifffile

    try:
        with tifffile.TiffFile(path) as tf:
            page = tf.pages[0]
            if region is None:
                return page.asarray()
            x, y, w, h = region
            reader = PageReader(page, tf.filehandle, threading.Lock())
            x0, y0 = max(x, 0), max(y, 0)
            x1, y1 = min(x + w, reader.width), min(y + h, reader.height)
            out = np.zeros((h, w), page.dtype)
            if x1 > x0 and y1 > y0:
                out[y0 - y : y1 - y, x0 - x : x1 - x] = reader.read(x0, y0, x1 - x0, y1 - y0)[
                    ..., 0
                ]
            return out
    except (OSError, ValueError, tifffile.TiffFileError) as exc:
        raise SlideError(f"cannot read ground truth ({exc})", path) from exc


def read_tumour_mask(syn: SyntheticSlide) -> np.ndarray:
    """The tumour ground truth, uint8 0/1 at ``syn.gt_downsample``."""
    return _read_tiff(syn.tumour_mask)


def read_tissue_mask(syn: SyntheticSlide) -> np.ndarray:
    """The tissue ground truth, uint8 0/1 at ``syn.gt_downsample``."""
    return _read_tiff(syn.tissue_mask)


def read_nuclei_labels(
    syn: SyntheticSlide, region: tuple[int, int, int, int] | None = None
) -> np.ndarray:
    """Nuclei instance labels (int32) at level 0, whole or a region ``(x, y, width, height)``."""
    return _read_tiff(syn.nuclei_labels, region)
