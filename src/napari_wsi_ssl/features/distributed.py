"""The feature cache of a big slide spread over a dask.distributed cluster.

- The client (this process) opens the cache, works out the tissue tiles still to compute, and
  fits and stores the basis once, so every worker reduces with the same one.
- ``cache_block`` (a task per block of tiles): a worker opens the slide, the encoder and the
  store itself and writes its tiles' chunks of ``features``. A chunk is one tile, so no other
  task touches it (zarr replaces a chunk file atomically).
- ``done`` is one small chunk shared by every tile: only the client writes it. It marks a
  block's tiles done when the block's task has returned, and the cache complete after the last.

A cancelled or killed run keeps every tile marked done; the next run, on a cluster or not,
computes the rest. Each tile runs the same code as in ``build_cache``, so the features are
those of a single-process build.
"""

from __future__ import annotations

import time
from collections.abc import Generator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from .._digest import file_sha256
from ..errors import CancelledError, CheckpointError, WsiSslError
from ..events import CancelToken, Log, StoreReady, TilesDone, run_to_end
from ..geometry import Rect
from ..inference.config import PredictConfig
from ..inference.distributed import SlideResult, open_client
from ..inference.store import ATTR, slide_fingerprint
from ..inference.tileblocks import error_line, worker_address
from ..inference.tiling import Box, order_tiles
from ..slide import open_slide
from .cache import FeatureCache, Tile, compute_tiles, plan_cache
from .config import FeatureConfig
from .extract import Basis
from .head_file import load_head

#: Tiles per task: a tile of the default settings is 1024 working px (plus margins), seconds
#: of encoder time on a CPU core, so a task is a minute or less and a cancel waits no longer.
TILES_PER_TASK = 16


@dataclass(frozen=True)
class CacheBlock:
    """The tiles a task wrote to ``features`` and the worker that computed them."""

    tiles: tuple[Tile, ...]
    worker: str


def cache_block(
    slide_path: str,
    checkpoint: str | None,
    cache_path: str,
    config: FeatureConfig,
    tiles: tuple[Tile, ...],
) -> CacheBlock:
    """Compute ``tiles`` into the ``features`` of the cache at ``cache_path`` (not ``done``)."""
    with open_slide(slide_path, mpp=config.slide_mpp) as slide:
        cache = FeatureCache.open(cache_path)
        run_to_end(compute_tiles(slide, checkpoint, cache, list(tiles), config, mark_done=False))
    return CacheBlock(tuple(tiles), worker_address())


def split_ordered(tiles: list[Tile], per_task: int, at_least: int) -> list[tuple[Tile, ...]]:
    """``tiles`` cut, in their order, into near-equal runs of at most ``per_task`` tiles, and
    into at least ``at_least`` runs (one per worker) when there are that many tiles."""
    n = max(-(-len(tiles) // max(1, per_task)), min(len(tiles), at_least), 1)
    return [tuple(tiles[i * len(tiles) // n : (i + 1) * len(tiles) // n]) for i in range(n)]


def build_cache_distributed(
    slide_path: str | Path,
    checkpoint: str | Path | None,
    cache_dir: str | Path,
    config: FeatureConfig = FeatureConfig(),
    *,
    workers: int | None = None,
    scheduler: str | None = None,
    client: Any = None,
    tiles_per_task: int | None = None,
    visible_first: Box | None = None,
    region: Rect | tuple[int, int, int, int] | None = None,
    basis: Basis | None = None,
    cancel: CancelToken | None = None,
) -> Generator[TilesDone | Log, None, Path]:
    """``build_cache_for`` with the tiles spread over a dask.distributed cluster; returns the
    cache's path.

    Parameters
    ----------
    workers, scheduler, client
        A ``LocalCluster`` of ``workers`` single-threaded processes, a running scheduler's
        address (``tcp://host:8786``; ``cache_dir`` must then be shared storage), or an open
        ``Client``.
    tiles_per_task
        Tiles per task (default ``TILES_PER_TASK``); there are at least as many tasks as
        workers when there are that many tiles.
    visible_first, region, basis, cancel
        As ``build_cache``: the tasks of the tiles under ``visible_first`` are submitted first
        and run first; on cancel, the tiles of finished tasks are kept and ``CancelledError``
        is raised.
    """
    slide_path = Path(slide_path)
    ckpt = None if checkpoint is None else str(checkpoint)
    with open_slide(slide_path, mpp=config.slide_mpp) as slide:
        cache, todo, _ = yield from plan_cache(
            slide,
            ckpt,
            cache_dir,
            config,
            slide_fingerprint(slide_path),
            region=region,
            basis=basis,
        )
    if todo:
        tiles = order_tiles(cache.grid, todo, visible_first)
        job = (str(slide_path), ckpt, cache, config, tiles, tiles_per_task, cancel)
        if client is not None:
            yield from _run_blocks(client, *job)
        else:
            with open_client(workers, scheduler) as own:
                yield from _run_blocks(own, *job)
    if todo and region is None:  # (plan_cache marks a cache with nothing to do complete)
        cache.mark_complete()
    return cache.path


def _run_blocks(
    client: Any,
    slide_path: str,
    checkpoint: str | None,
    cache: FeatureCache,
    config: FeatureConfig,
    tiles: list[Tile],
    tiles_per_task: int | None,
    cancel: CancelToken | None,
) -> Generator[TilesDone | Log, None, None]:
    """Submit the blocks, mark each one's tiles done as it returns, yield progress; at the end,
    the tiles each worker computed go to the cache's metadata (``computed_by``)."""
    from distributed import as_completed

    n_workers = len(client.scheduler_info().get("workers", {}))
    per_task = TILES_PER_TASK if tiles_per_task is None else tiles_per_task
    blocks = split_ordered(tiles, per_task, n_workers)
    grid = cache.grid
    if tuple(cache.features.chunks[:2]) != (grid.tile, grid.tile):  # tasks must not share chunks
        raise WsiSslError("features are not chunked by tile", cache.path, "delete the cache")
    yield Log(
        f"{cache.path.name}: {len(tiles)} tiles of {grid.tile * config.stride} px at "
        f"{grid.downsample:g}x downsample in {len(blocks)} tasks over {n_workers} workers"
    )
    task = (slide_path, checkpoint, str(cache.path), config)
    futures = [
        client.submit(cache_block, *task, b, pure=False, priority=len(blocks) - i)
        for i, b in enumerate(blocks)
    ]
    pending = as_completed(futures)
    done = 0
    by: dict[str, int] = {}
    try:
        while not pending.is_empty():
            if cancel is not None and cancel.cancelled:
                raise CancelledError(
                    f"feature cache cancelled after {done} of {len(tiles)} tiles; they are kept"
                )
            ready = pending.next_batch(block=False)
            if not ready:
                time.sleep(0.05)
                continue
            for fut in ready:
                block: CacheBlock = fut.result()  # a task's error is raised here
                flags = cache.done[:]
                flags[tuple(np.array(block.tiles).T)] = True
                cache.done[:] = flags
                done += len(block.tiles)
                by[block.worker] = by.get(block.worker, 0) + len(block.tiles)
                yield TilesDone(done, len(tiles), tuple(grid.level0_box(*t) for t in block.tiles))
    finally:
        client.cancel([f for f in futures if not f.done()])
    cache.root.attrs[ATTR] = {**cache.root.attrs[ATTR], "computed_by": by}


def build_caches_distributed(
    slides: Sequence[tuple[str | Path, float | None]],
    encoder: str | Path | None,
    cache_dir: str | Path,
    config: FeatureConfig = FeatureConfig(),
    *,
    workers: int | None = None,
    scheduler: str | None = None,
    tiles_per_task: int | None = None,
) -> Generator[TilesDone | Log, None, list[Path]]:
    """The feature caches that ``fast_finetune_many`` reads, built over one cluster first:
    ``slides`` are ``(slide, slide_mpp)`` pairs. The first slide's cache fits the basis;
    the others take that basis and its working resolution, as ``fast_finetune_many`` does, so
    it finds them complete."""
    paths: list[Path] = []
    first: FeatureCache | None = None
    with open_client(workers, scheduler) as client:
        for k, (slide, slide_mpp) in enumerate(slides):
            if len(slides) > 1:
                yield Log(f"slide {k + 1}/{len(slides)}: {Path(slide).name}")
            cfg = replace(config, slide_mpp=slide_mpp)
            if first is not None:
                cfg = replace(cfg, mpp=first.meta["mpp"])
            path = yield from build_cache_distributed(
                slide,
                encoder,
                cache_dir,
                cfg,
                client=client,
                tiles_per_task=tiles_per_task,
                basis=None if first is None else first.basis(),
            )
            first = first or FeatureCache.open(path)
            paths.append(path)
    return paths


def predict_heads_distributed(
    slides: Sequence[str | Path],
    head_ckpt: str | Path,
    out_dir: str | Path,
    config: PredictConfig = PredictConfig(),
    *,
    workers: int | None = None,
    scheduler: str | None = None,
    tiles_per_task: int | None = None,
    region: Rect | tuple[int, int, int, int] | None = None,
) -> Generator[TilesDone | Log | StoreReady, None, list[SlideResult]]:
    """``predict_slide`` of a head checkpoint on several slides, each slide's feature cache
    (in ``out_dir``) built over one cluster first (see ``build_cache_distributed``); the maps
    are then written here, from the cache.

    A failure stays with its slide (``SlideResult.error``, one line); a cancel stops the run.
    """
    from ..inference.predict import predict_slide  # the head's map and what else it asks for

    ck = load_head(head_ckpt)
    enc = ck.encoder_checkpoint
    if enc is not None and not Path(enc).is_file():
        raise CheckpointError(f"needs its encoder checkpoint {enc}, which is missing", head_ckpt)
    if enc is not None and file_sha256(enc) != ck.encoder_sha256:
        raise CheckpointError(
            f"was trained on another version of its encoder {enc}",
            head_ckpt,
            "train the head again on this encoder",
        )
    # as predict_head sets them, so that it finds this cache complete
    fcfg = replace(ck.feature_config, device=config.device)
    if config.slide_mpp is not None:
        fcfg = replace(fcfg, slide_mpp=config.slide_mpp)
    results = []
    with open_client(workers, scheduler) as client:
        for k, slide in enumerate(slides):
            if len(slides) > 1:
                yield Log(f"slide {k + 1}/{len(slides)}: {Path(slide).name}")
            try:
                yield from build_cache_distributed(
                    slide,
                    enc,
                    out_dir,
                    fcfg,
                    client=client,
                    tiles_per_task=tiles_per_task,
                    region=region,
                    basis=ck.basis,
                )
                store = yield from predict_slide(slide, head_ckpt, out_dir, config, region=region)
                results.append(SlideResult(str(slide), str(store)))
            except CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - one broken slide must not stop a batch
                results.append(SlideResult(str(slide), None, error_line(slide, exc)))
    return results


__all__ = [
    "TILES_PER_TASK",
    "CacheBlock",
    "build_cache_distributed",
    "build_caches_distributed",
    "cache_block",
    "predict_heads_distributed",
    "split_ordered",
]
