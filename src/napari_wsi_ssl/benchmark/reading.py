"""``read``: tiles/s through ``Slide.pyramid()`` against raw OpenSlide ``read_region``."""

from __future__ import annotations

import statistics
from pathlib import Path

import numpy as np

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
        xs = rng.integers(0, width - side, n)
        ys = rng.integers(0, height - side, n)
    return list(zip(xs.tolist(), ys.tolist(), strict=True))


def bench_read(slide_path: Path, config: BenchConfig) -> Figure:
    """Tiles/s reading views of BLOCK x BLOCK tiles, the way napari asks for a view.

    The plugin reads each view as one slice of the dask pyramid (as napari does); the baseline
    reads the same 256 px tiles one ``read_region`` at a time. One ``.compute()`` per single tile
    is also reported (``per_tile``): there dask's fixed cost per call shows.
    """
    import openslide

    from ..slide import open_slide

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
    value = float(np.mean([s["value"] for s in samples.values()]))
    base = float(np.mean([s["baseline"] for s in samples.values()]))
    return Figure(
        "read",
        value,
        base,
        "tiles/s",
        ">= 0.9",
        extra={**samples, "tile": TILE, "view": f"{BLOCK}x{BLOCK} tiles"},
    )
