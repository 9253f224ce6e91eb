"""``read``: tiles/s through ``Slide.pyramid()`` against raw OpenSlide ``read_region``.

Besides the bench slide, the figure measures an Aperio SVS with JPEG 2000 tiles written from
it (``write_aperio_svs``): the two compressions of the format users have most.
"""

from __future__ import annotations

import statistics
from pathlib import Path

import numpy as np

from ..slide import open_slide
from .core import BenchConfig, Figure, rate

TILE = 256
BLOCK = 4  # a view of 4 x 4 tiles: what a napari canvas asks for at once


def tile_locations(
    width: int, height: int, n: int, aligned: bool, seed: int
) -> list[tuple[int, int]]:
    """``n`` origins (x, y) at level 0 of blocks of BLOCK x BLOCK tiles: on the 256 px grid, or anywhere."""
    rng = np.random.default_rng(seed)
    side = TILE * BLOCK
    if aligned:
        xs = rng.integers(0, (width - side) // TILE + 1, n) * TILE
        ys = rng.integers(0, (height - side) // TILE + 1, n) * TILE
    else:
        xs = rng.integers(0, max(width - side, 0) + 1, n)
        ys = rng.integers(0, max(height - side, 0) + 1, n)
    return list(zip(xs.tolist(), ys.tolist(), strict=True))


def bench_read(slide_path: Path, config: BenchConfig) -> Figure:
    """Tiles/s reading views of BLOCK x BLOCK tiles, the way napari asks for a view.

    The plugin reads each view as one slice of the dask pyramid (as napari does); the baseline
    reads the same 256 px tiles one ``read_region`` at a time. One ``.compute()`` per single tile
    is also reported (``per_tile``): there dask's fixed cost per call shows. The same is measured
    on an Aperio SVS with JPEG 2000 tiles made from the slide (``jpeg2000_svs``).
    """
    samples = _measure(slide_path, config)
    j2k = write_aperio_svs(
        config.work_dir / "bench_jpeg2000.svs", _crop(slide_path, 1536 if config.quick else 3072)
    )
    j2k_samples = _measure(j2k, config)
    value = float(np.mean([s["value"] for s in samples.values()]))
    base = float(np.mean([s["baseline"] for s in samples.values()]))
    j2k_value = float(np.mean([s["value"] for s in j2k_samples.values()]))
    j2k_base = float(np.mean([s["baseline"] for s in j2k_samples.values()]))
    return Figure(
        "read",
        value,
        base,
        "tiles/s",
        ">= 0.9",
        extra={
            **samples,
            "jpeg2000_svs": {
                "value": j2k_value,
                "baseline": j2k_base,
                "ratio": j2k_value / j2k_base,
                **j2k_samples,
            },
            "tile": TILE,
            "view": f"{BLOCK}x{BLOCK} tiles",
        },
    )


def _crop(slide_path: Path, side: int) -> np.ndarray:
    """Level 0 of the slide, at most ``side`` px a side from its centre."""
    with open_slide(slide_path) as slide:
        w, h = slide.dimensions
        cw, ch = min(w, side), min(h, side)
        return slide.read_region(((w - cw) // 2, (h - ch) // 2), 0, (cw, ch))


def _measure(slide_path: Path, config: BenchConfig) -> dict[str, dict[str, float]]:
    import openslide

    slide = open_slide(slide_path)
    level0 = slide.pyramid()[0]
    raw = openslide.OpenSlide(str(slide_path))
    width, height = slide.dimensions
    n_blocks = max(1, config.read_tiles // (BLOCK * BLOCK))
    side = TILE * BLOCK

    def plugin(locs: list[tuple[int, int]]) -> float:
        def go() -> None:
            for x, y in locs:
                np.asarray(level0[y : y + side, x : x + side])

        return rate(len(locs) * BLOCK * BLOCK, go)

    def plugin_per_tile(locs: list[tuple[int, int]]) -> float:
        def go() -> None:
            for x, y in locs:
                for j in range(BLOCK):
                    for i in range(BLOCK):
                        yy, xx = y + j * TILE, x + i * TILE
                        np.asarray(level0[yy : yy + TILE, xx : xx + TILE])

        return rate(len(locs) * BLOCK * BLOCK, go)

    def openslide_raw(locs: list[tuple[int, int]]) -> float:
        def go() -> None:
            for x, y in locs:
                for j in range(BLOCK):
                    for i in range(BLOCK):
                        tile = raw.read_region((x + i * TILE, y + j * TILE), 0, (TILE, TILE))
                        np.asarray(tile)[..., :3]

        return rate(len(locs) * BLOCK * BLOCK, go)

    samples: dict[str, dict[str, float]] = {}
    for aligned in (True, False):
        warm = tile_locations(width, height, n_blocks, aligned, seed=10**6)
        plugin(warm), plugin_per_tile(warm), openslide_raw(warm)
        a: list[float] = []
        b: list[float] = []
        c: list[float] = []
        for k in range(config.rounds):
            # new views each round, the same for every reader, in alternating order, so that
            # no reader gains from another's warm caches
            locs = tile_locations(width, height, n_blocks, aligned, seed=k)
            if k % 2:
                b.append(openslide_raw(locs))
                a.append(plugin(locs))
            else:
                a.append(plugin(locs))
                b.append(openslide_raw(locs))
            c.append(plugin_per_tile(locs))
        va, vb, vc = (statistics.median(v) for v in (a, b, c))
        samples["aligned" if aligned else "random"] = {
            "value": va,
            "baseline": vb,
            "ratio": va / vb,
            "per_tile_value": vc,
            "per_tile_ratio": vc / vb,
        }
    raw.close()
    slide.close()
    return samples


def write_aperio_svs(
    path: Path,
    rgb: np.ndarray,
    mpp: float | None = 0.5,
    compression: str = "jpeg2000",
    tile: int = 240,
    downsamples: tuple[int, ...] = (1, 4),
    objective_power: int = 20,
) -> Path:
    """Write ``rgb`` as an Aperio-style SVS that OpenSlide opens as ``aperio``.

    One tiled page per downsample (box means), each with an Aperio ImageDescription carrying
    ``AppMag`` and ``MPP`` (none when ``mpp`` is None); ``compression`` is ``"jpeg2000"`` (Aperio's RGB JPEG 2000, TIFF
    compression 33005, lossy at about 40 dB PSNR as scanners write it), ``"jpeg2000-ycbcr"``
    (33003; the image is stored as given, which OpenSlide reads as YCbCr) or ``"jpeg"``.
    """
    import tifffile
    from PIL import Image

    codes = {"jpeg2000": 33005, "jpeg2000-ycbcr": 33003, "jpeg": 7}
    args = {"jpeg": {"level": 90}}.get(compression, {"level": 40})
    h, w = rgb.shape[:2]
    codec = {33005: "J2K/KDU Q=70", 33003: "J2K/YUV16 Q=70", 7: "JPEG/RGB Q=90"}
    with tifffile.TiffWriter(path) as tw:
        for ds in downsamples:
            level = rgb if ds == 1 else np.asarray(Image.fromarray(rgb).reduce(ds))
            lh, lw = level.shape[:2]
            description = (
                f"Aperio Image Library v12.0.15 \r\n{w}x{h} [0,0 {w}x{h}] ({tile}x{tile}) "
                f"{codec[codes[compression]]}|AppMag = {objective_power}"
            ) + ("" if mpp is None else f"|MPP = {mpp:.4f}")
            if ds != 1:
                description = description.replace(f"({tile}x{tile})", f"-> {lw}x{lh}")
            tw.write(
                level,
                tile=(tile, tile),
                photometric="rgb",
                compression=codes[compression],
                compressionargs=args,
                description=description,
                metadata=None,
            )
    return path
