"""The tiles of one big slide as tasks of a dask.distributed cluster.

- ``plan_slide`` (a task): opens the store, works out the tissue tiles not done yet, and splits
  them into blocks. A slide with few tiles is computed right there, whole.
- ``predict_block`` (a task per block): opens the slide, the checkpoint and the store itself,
  and writes only level-0 chunks. Each tile is one level-0 chunk, so no other block touches them.
- ``reduce_block`` (a task per block, chained): the lower levels and the ``done`` flags have
  chunks shared by neighbouring tiles, so one task at a time per map builds them from the
  block's level-0 chunks and marks its tiles done. The last one marks the map complete.

A run killed midway keeps every tile marked done; the next run computes the rest.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import WsiSslError
from ..events import run_to_end
from ..slide import open_slide, tissue_mask
from .config import PredictConfig
from .predict import make_jobs, open_store, run_job
from .store import MapWriter, slide_fingerprint
from .tiling import TileGrid

Tile = tuple[int, int]


@dataclass(frozen=True)
class MapPlan:
    """One map of a split slide: what ``reduce_block`` needs to finish its blocks."""

    name: str  # "tumour" or "nuclei"
    key: str
    grid: TileGrid
    labels: bool
    todo: int  # tiles computed by this run


@dataclass(frozen=True)
class SlidePlan:
    """A slide's store and its maps' blocks; no maps when it is done (or failed) already."""

    slide: str
    store: str | None
    error: str | None = None
    maps: tuple[tuple[MapPlan, tuple[tuple[Tile, ...], ...]], ...] = ()


@dataclass(frozen=True)
class BlockDone:
    """The tiles a block wrote to level 0, the worker that computed them, or its error."""

    tiles: tuple[Tile, ...]
    worker: str
    error: str | None = None


@dataclass(frozen=True)
class MapProgress:
    """The blocks of a map reduced so far, tiles per worker, and the first error."""

    tiles: int = 0
    computed_by: dict[str, int] = field(default_factory=dict)
    error: str | None = None


def error_line(slide_path: str | Path, exc: BaseException) -> str:
    """The one-line message of a failure: a user error's own, else the slide and the last line."""
    if isinstance(exc, WsiSslError):
        return str(exc)
    last = traceback.format_exception_only(type(exc), exc)[-1].strip()
    return f"{slide_path}: {last}"


def split_tiles(tiles: list[Tile], block_tiles: int) -> list[tuple[Tile, ...]]:
    """``tiles`` in raster order, cut into near-equal runs of at most ``block_tiles``."""
    tiles = sorted(tiles)
    n = max(1, -(-len(tiles) // max(1, block_tiles)))
    return [tuple(tiles[i * len(tiles) // n : (i + 1) * len(tiles) // n]) for i in range(n)]


def plan_slide(
    slide_path: str,
    checkpoint_path: str | None,
    out_dir: str,
    config: PredictConfig,
    region: tuple[int, int, int, int] | None,
    block_tiles: int,
) -> SlidePlan:
    """Open the store of a slide and split its tiles still to do into blocks of at most
    ``block_tiles``; when there are no more than that in all, compute them here instead.

    Errors come back as ``SlidePlan.error``, one line naming the slide.
    """
    from ..models.device import choose_device  # torch: inference stays light to import

    try:
        slide = open_slide(slide_path, mpp=config.slide_mpp)
        try:
            fingerprint = slide_fingerprint(Path(slide_path))
            path, root, keys = open_store(
                slide, checkpoint_path, out_dir, config, region, fingerprint
            )
            if not keys:
                return SlidePlan(slide_path, str(path))
            device = choose_device(config.device)
            mask = tissue_mask(slide) if config.tissue_only else None
            jobs = make_jobs(slide, checkpoint_path, root, config, region, device, keys, mask)
            whole = sum(len(job.todo) for job in jobs) <= block_tiles
            maps = []
            for job in jobs:
                writer: MapWriter = job.writer
                if whole or not job.todo:
                    run_to_end(run_job(job, sorted(job.todo), config))
                    writer.mark_complete(len(job.todo))
                    continue
                blocks = split_tiles(list(job.todo), block_tiles)
                name = job.name
                plan = MapPlan(name, keys[name], job.grid, writer.labels, len(job.todo))
                maps.append((plan, tuple(blocks)))
            return SlidePlan(slide_path, str(path), maps=tuple(maps))
        finally:
            slide.close()
    except Exception as exc:  # noqa: BLE001 - one broken slide must not stop a batch
        return SlidePlan(slide_path, None, error_line(slide_path, exc))


def predict_block(
    slide_path: str,
    checkpoint_path: str | None,
    store: str,
    config: PredictConfig,
    region: tuple[int, int, int, int] | None,
    name: str,
    key: str,
    tiles: tuple[Tile, ...],
) -> BlockDone:
    """Compute ``tiles`` of the map ``name`` into level 0 of ``store`` (nothing else)."""
    import zarr

    from ..models.device import choose_device  # torch: inference stays light to import

    worker = worker_address()
    try:
        slide = open_slide(slide_path, mpp=config.slide_mpp)
        try:
            root = zarr.open_group(zarr.DirectoryStore(store), mode="r+")
            device = choose_device(config.device)
            (job,) = make_jobs(
                slide, checkpoint_path, root, config, region, device, {name: key}, None
            )
            job.writer.level0_only = True
            run_to_end(run_job(job, list(tiles), config))
        finally:
            slide.close()
    except Exception as exc:  # noqa: BLE001 - reported with the slide, the other blocks go on
        return BlockDone((), worker, error_line(slide_path, exc))
    return BlockDone(tiles, worker)


def reduce_block(
    progress: MapProgress, block: BlockDone, store: str, plan: MapPlan, last: bool
) -> MapProgress:
    """Build the lower levels of a finished block from level 0 and mark its tiles done; after
    the ``last`` block of a map without errors, mark the map complete."""
    import zarr

    error = progress.error or block.error
    try:
        group = zarr.open_group(zarr.DirectoryStore(store), mode="r+")[plan.name]
        writer = MapWriter(group, plan.grid, plan.labels)
        for ty, tx in block.tiles:
            writer.reduce_tile(ty, tx)
        by = dict(progress.computed_by)
        if block.tiles:
            by[block.worker] = by.get(block.worker, 0) + len(block.tiles)
        progress = MapProgress(progress.tiles + len(block.tiles), by, error)
        if last and error is None:
            group.attrs["computed_by"] = by
            writer.mark_complete(plan.todo)
    except Exception as exc:  # noqa: BLE001 - the map stays incomplete and resumable
        progress = MapProgress(progress.tiles, progress.computed_by, error or f"{store}: {exc}")
    return progress


def worker_address() -> str:
    """The address of the dask worker running this task (``"local"`` outside one)."""
    try:
        from distributed import get_worker

        return str(get_worker().address)
    except (ImportError, ValueError):
        return "local"


__all__ = [
    "BlockDone",
    "MapPlan",
    "MapProgress",
    "SlidePlan",
    "error_line",
    "plan_slide",
    "predict_block",
    "reduce_block",
    "split_tiles",
    "worker_address",
]
