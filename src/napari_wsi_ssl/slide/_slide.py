"""The ``Slide``: one API over every backend, with level maths and lazy pyramids."""

from __future__ import annotations

import math
import threading
import warnings
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import SlideError
from ._backends import Backend, padded_read
from ._open import choose_backend
from ._pyramid import build_pyramid
from ._tiff import CorruptTileError

if TYPE_CHECKING:
    import dask.array

MIN_PYRAMID_SIDE = 512  # synthesised levels continue until the longest side is below this
DEFAULT_CHUNK = 512  # chunk side when the file has no tiles
SYNTH_BLOCK_BYTES = 32 << 20  # file-level pixels read at once for a synthesised level
DAMAGED_HINT = "the file is damaged: copy or export it again"


def open_slide(path: str | Path, mpp: float | None = None) -> Slide:
    """Open a whole-slide image.

    Parameters
    ----------
    path
        A slide file (svs, ndpi, mrxs, scn, vms, bif, tiled TIFF, OME-TIFF) or OME-Zarr folder.
    mpp
        Micrometres per pixel at level 0; overrides (or supplies) the slide's own.

    Raises
    ------
    SlideError
        When the path is not a slide this package can read.
    """
    path = Path(path)
    backend = choose_backend(path)
    return Slide(path, backend, mpp)


class Slide:
    """A whole-slide image open for reading. Coordinates named ``location`` are level-0 pixels."""

    def __init__(self, path: Path, backend: Backend, mpp: float | None = None) -> None:
        self.path = path
        self._backend = backend
        self.level_dimensions: tuple[tuple[int, int], ...] = tuple(backend.level_dimensions)
        self.level_downsamples: tuple[float, ...] = tuple(backend.level_downsamples)
        self.level_count = len(self.level_dimensions)
        self.dimensions = self.level_dimensions[0]
        self.properties: dict[str, str] = dict(backend.properties)
        self.vendor: str = backend.vendor
        self.backend_name: str = backend.name
        self.objective_power: float | None = backend.objective_power
        if mpp is not None:
            if not mpp > 0:
                raise SlideError(f"mpp must be positive, got {mpp}", path)
            self.mpp: tuple[float, float] | None = (float(mpp), float(mpp))
        else:
            self.mpp = backend.mpp
        self.tile_size: tuple[int, int] | None = backend.tile_sizes[0]
        self._pyramid: list[dask.array.Array] | None = None
        self._warned_corrupt = False
        self._warn_lock = threading.Lock()
        self._pyramid_dims, self._pyramid_downsamples = self._plan_pyramid()

    # ------------------------------------------------------------------ reading

    def __repr__(self) -> str:
        return f"Slide({str(self.path)!r}, {self.vendor}, {self.dimensions[0]}x{self.dimensions[1]}, levels={self.level_count}, mpp={self.mpp})"

    def read_region(
        self, location: tuple[int, int], level: int, size: tuple[int, int]
    ) -> np.ndarray:
        """Read ``size`` (w, h) pixels of ``level`` whose top-left is ``location`` in level-0 pixels.

        Returns (h, w, 3) uint8; parts outside the slide are white.
        """
        if not 0 <= level < self.level_count:
            raise SlideError(
                f"level {level} does not exist (the slide has {self.level_count})", self.path
            )
        w, h = int(size[0]), int(size[1])
        if w <= 0 or h <= 0:
            return np.full((max(h, 0), max(w, 0), 3), 255, np.uint8)
        x0, y0 = int(location[0]), int(location[1])
        try:
            return self._backend.read_region((x0, y0), level, (w, h))
        except SlideError:
            raise
        except CorruptTileError as exc:
            where = f"tile {exc.index}" if exc.index >= 0 else f"the region at ({x0}, {y0})"
            raise SlideError(
                f"{where} of level {level} cannot be decoded ({exc.detail})",
                self.path,
                DAMAGED_HINT,
            ) from exc
        except Exception as exc:
            raise SlideError(
                f"the region at ({x0}, {y0}) of level {level} cannot be read",
                self.path,
                DAMAGED_HINT,
            ) from exc

    def read_level(
        self, level: int, x: int, y: int, w: int, h: int, mark_corrupt: bool = False
    ) -> np.ndarray:
        """Read (x, y, w, h) in the pixels of pyramid ``level`` (file or synthesised), padded white.

        With ``mark_corrupt`` (the lazy pyramid that napari displays), tiles that cannot be decoded
        are drawn as a grey checkerboard and one warning names the file, instead of an error on
        every redraw; otherwise they raise ``CorruptTileError``.
        """
        lw, lh = self._pyramid_dims[level]
        return padded_read(
            lambda bx, by, bw, bh: self._read_inside(level, bx, by, bw, bh, mark_corrupt),
            lw,
            lh,
            x,
            y,
            w,
            h,
        )

    @property
    def corrupt_tiles(self) -> int:
        """How many tiles (or unreadable regions) were drawn as marks so far."""
        return self._backend.corrupt_tiles + self._backend.corrupt_regions

    def _read_inside(
        self, level: int, x: int, y: int, w: int, h: int, mark_corrupt: bool = False
    ) -> np.ndarray:
        if level < self.level_count:
            if not mark_corrupt:
                return self._backend.read(level, x, y, w, h)
            before = self.corrupt_tiles
            out = self._backend.read(level, x, y, w, h, mark_corrupt=True)
            if self.corrupt_tiles > before:
                self._warn_corrupt()
            return out
        # a synthesised level: repeated 2x2 means of the last file level, read in bands of rows so
        # that a deep level of a huge one-level file never holds its whole footprint in memory
        last = self.level_count - 1
        halvings = level - last
        k = 2**halvings
        rows = max(1, SYNTH_BLOCK_BYTES // (k * k * w * 3))
        out = np.empty((h, w, 3), np.uint8)
        for r0 in range(0, h, rows):
            rh = min(rows, h - r0)
            block = self.read_level(last, k * x, k * (y + r0), k * w, k * rh, mark_corrupt)
            out[r0 : r0 + rh] = _box_reduce(block, k)
        return out

    def _warn_corrupt(self) -> None:
        with self._warn_lock:
            if self._warned_corrupt:
                return
            self._warned_corrupt = True
        message = str(
            SlideError(
                "some tiles cannot be decoded and are shown as a grey checkerboard",
                self.path,
                DAMAGED_HINT,
            )
        )
        warnings.warn(message, UserWarning, stacklevel=3)

    def read_scaled(
        self, location: tuple[int, int], size: tuple[int, int], downsample: float
    ) -> np.ndarray:
        """Read the region at ``location`` (level-0 px) covering ``size * downsample`` level-0 px,
        resized to ``size`` (w, h). Reads the best file level, then resizes (antialiased)."""
        w, h = int(size[0]), int(size[1])
        level = self.best_level_for_downsample(downsample)
        ds = self.level_downsamples[level]
        if abs(ds - downsample) < 1e-6:
            return self.read_region(location, level, (w, h))
        rw = max(1, math.ceil(w * downsample / ds))
        rh = max(1, math.ceil(h * downsample / ds))
        region = self.read_region(location, level, (rw, rh))
        from PIL import Image

        return np.asarray(Image.fromarray(region).resize((w, h), Image.Resampling.BILINEAR))

    def best_level_for_downsample(self, downsample: float) -> int:
        """The file level with the largest downsample not above ``downsample``."""
        best = 0
        for i, ds in enumerate(self.level_downsamples):
            if ds <= downsample * (1 + 1e-6):
                best = i
        return best

    def downsample_for_mpp(self, mpp: float) -> float:
        """The downsample from level 0 that gives ``mpp`` µm/px."""
        if self.mpp is None:
            raise SlideError(
                f"the slide has no mpp (pixel size), so {mpp:g} um/px cannot be found on it"
                f"{self._guessed_mpp()}",
                self.path,
                "give the slide's pixel size (the 'slide_mpp' setting) "
                "or work at its native resolution (no working 'mpp')",
            )
        return float(mpp) / self.mpp[0]

    def _guessed_mpp(self) -> str:
        """ "; it looks like about ... µm/px ..." for a message, or "" when there is no estimate."""
        from ._mpp import estimate_mpp  # the estimate imports the tissue mask, which needs Slide

        try:
            estimate = estimate_mpp(self)
        except SlideError:  # a damaged slide: the message goes without a guess
            return ""
        return f"; it looks like {estimate}" if estimate is not None else ""

    # ------------------------------------------------------------------ pyramid

    def _plan_pyramid(self) -> tuple[list[tuple[int, int]], list[float]]:
        dims = list(self.level_dimensions)
        dss = list(self.level_downsamples)
        while max(dims[-1]) >= MIN_PYRAMID_SIDE:
            w, h = dims[-1]
            dims.append(((w + 1) // 2, (h + 1) // 2))
            dss.append(dss[-1] * 2)
        return dims, dss

    @property
    def pyramid_downsamples(self) -> tuple[float, ...]:
        """Downsamples of the levels of ``pyramid()``, synthesised levels included."""
        return tuple(self._pyramid_downsamples)

    def chunk_size(self, level: int) -> tuple[int, int]:
        """Chunk (w, h) of a pyramid level: whole file tiles (about 512 px), or 512 when it has none.

        Small file tiles of a backend that decodes only the tiles a read touches are grouped
        (240 -> 480, 256 -> 512): a chunk is then one backend read
        of a few tiles instead of one read per tile, which is what keeps reading through the
        pyramid as fast as the backend's own reads.
        """
        if level < self.level_count:
            tile = self._backend.tile_sizes[level]
            if tile is not None and tile[0] >= 64 and tile[1] >= 64:
                k = max(1, round(DEFAULT_CHUNK / max(tile))) if self._backend.reads_tiles else 1
                return (tile[0] * k, tile[1] * k)
            return (DEFAULT_CHUNK, DEFAULT_CHUNK)
        return (256, 256)

    def pyramid(self) -> list[dask.array.Array]:
        """Lazy (y, x, 3) uint8 dask arrays, largest first; lower levels are synthesised as needed."""
        if self._pyramid is None:
            self._pyramid = build_pyramid(self)
        return self._pyramid

    # ------------------------------------------------------------------ lifetime

    def close(self) -> None:
        self._backend.close()

    def __enter__(self) -> Slide:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def info(self) -> dict[str, Any]:
        """The slide's facts as plain data."""
        return {
            "path": str(self.path),
            "vendor": self.vendor,
            "backend": self.backend_name,
            "dimensions": list(self.dimensions),
            "level_count": self.level_count,
            "level_dimensions": [list(d) for d in self.level_dimensions],
            "level_downsamples": list(self.level_downsamples),
            "mpp": None if self.mpp is None else list(self.mpp),
            "objective_power": self.objective_power,
            "tile_size": None if self.tile_size is None else list(self.tile_size),
        }


def _box_reduce(image: np.ndarray, k: int) -> np.ndarray:
    """The k x k box mean, rounded, of a (k*h, k*w, 3) uint8 image, in one C pass (PIL's reduce:
    four times numpy's speed for the 2 x 2 of every synthesised level)."""
    from PIL import Image

    return np.asarray(Image.fromarray(image).reduce(k))
