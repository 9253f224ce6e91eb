"""Many slides, and the tiles of big slides, over a dask.distributed cluster.

A slide with few tiles is one task. A bigger one is split into blocks of tiles, one task each
(see ``tileblocks``). A failure stays with its slide.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..events import run_to_end
from .config import PredictConfig
from .predict import predict_slide
from .tileblocks import MapProgress, SlidePlan, error_line, plan_slide, predict_block, reduce_block

TILES_PER_TASK = 256


@dataclass(frozen=True)
class SlideResult:
    """The outcome of one slide: its store, or the one-line error that stopped it."""

    slide: str
    store: str | None
    error: str | None = None


def predict_one(
    slide_path: str,
    checkpoint_path: str | None,
    out_dir: str,
    config: PredictConfig,
    region: tuple[int, int, int, int] | None = None,
) -> SlideResult:
    """Run ``predict_slide`` to its end; user errors become a result instead of an exception."""
    try:
        store = run_to_end(
            predict_slide(slide_path, checkpoint_path, out_dir, config, region=region)
        )
        return SlideResult(str(slide_path), str(store))
    except Exception as exc:  # noqa: BLE001 - one broken slide must not stop a batch
        return SlideResult(str(slide_path), None, error_line(slide_path, exc))


def predict_many(
    slides: Sequence[str | Path],
    checkpoint_path: str | Path | None,
    out_dir: str | Path,
    config: PredictConfig = PredictConfig(),
    *,
    region: tuple[int, int, int, int] | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
    tiles_per_task: int | None = None,
) -> list[SlideResult]:
    """Predict several slides, in this process or on a dask.distributed cluster.

    Parameters
    ----------
    workers
        Start a ``LocalCluster`` of this many single-threaded worker processes.
    scheduler
        Address of a running scheduler (``tcp://host:8786``) to submit to instead.
    tiles_per_task
        On a cluster, a slide with more tiles to compute than this is split into blocks of at
        most this many tiles, each a task of its own; a smaller slide is one task.
        ``None``: ``TILES_PER_TASK`` (256).

    With neither ``workers`` nor ``scheduler``, slides run one after another here. The stores
    are the same either way: every tile runs the same deterministic code, and the lower levels
    are reduced from level 0 exactly as in a single-process run. ``out_dir`` must be shared
    storage for a remote cluster.
    """
    ckpt = str(checkpoint_path) if checkpoint_path else None
    names = [str(s) for s in slides]
    if workers is None and scheduler is None:
        return [predict_one(s, ckpt, str(out_dir), config, region) for s in names]
    if ckpt is not None:
        from ..features import is_head_checkpoint, predict_heads_distributed  # the layer above

        if is_head_checkpoint(ckpt):  # the fast mode: the feature cache's tiles over the cluster
            return run_to_end(  # type: ignore[no-any-return]
                predict_heads_distributed(
                    names,
                    ckpt,
                    out_dir,
                    config,
                    workers=workers,
                    scheduler=scheduler,
                    tiles_per_task=tiles_per_task,
                    region=region,
                )
            )
    from distributed import as_completed

    if config.compile == "auto":
        # a block's worker would decide alone, on its own share; one decision for all keeps the
        # stores identical to a single-process run, and blocks are too small to pay for it
        config = replace(config, compile="off")
    block_tiles = TILES_PER_TASK if tiles_per_task is None else max(1, int(tiles_per_task))
    with open_client(workers, scheduler) as client:
        plans = client.map(
            plan_slide,
            names,
            *[[a] * len(names) for a in (ckpt, str(out_dir), config, region, block_tiles)],
            pure=False,
        )
        index = {fut.key: i for i, fut in enumerate(plans)}
        outcome: dict[int, Any] = {}
        for fut, plan in as_completed(plans, with_results=True):
            outcome[index[fut.key]] = (plan, _submit_blocks(client, plan, ckpt, config, region))
        results = []
        for i in range(len(names)):
            plan, ends = outcome[i]
            results.append(_slide_result(plan, client.gather(ends)))
        return results


@contextmanager
def open_client(workers: int | None, scheduler: str | None) -> Iterator[Any]:
    """A dask.distributed ``Client`` of a scheduler at ``scheduler``, else of a ``LocalCluster``
    of ``workers`` single-threaded processes (closed on exit)."""
    from distributed import Client, LocalCluster

    cluster = None
    if scheduler is None:
        # one thread per worker process: torch and the read threads already use the cores
        cluster = LocalCluster(
            n_workers=max(1, int(workers or 1)),
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
        )
    try:
        with Client(cluster if cluster is not None else scheduler) as client:
            yield client
    finally:
        if cluster is not None:
            cluster.close()


def _submit_blocks(
    client: Any,
    plan: SlidePlan,
    ckpt: str | None,
    config: PredictConfig,
    region: tuple[int, int, int, int] | None,
) -> list[Any]:
    """Submit the blocks of a split slide and, per map, the chain of their reductions; return
    the futures of each chain's end (a ``MapProgress``)."""
    ends = []
    for map_plan, blocks in plan.maps:
        progress: Any = MapProgress()
        for i, tiles in enumerate(blocks):
            block = client.submit(
                predict_block,
                plan.slide,
                ckpt,
                plan.store,
                config,
                region,
                map_plan.name,
                map_plan.key,
                tiles,
                pure=False,
            )
            # reductions first when they are ready: they are short, and they free the results
            progress = client.submit(
                reduce_block,
                progress,
                block,
                plan.store,
                map_plan,
                i == len(blocks) - 1,
                pure=False,
                priority=1,
            )
        ends.append(progress)
    return ends


def _slide_result(plan: SlidePlan, maps: list[MapProgress]) -> SlideResult:
    errors = [m.error for m in maps if m.error]
    if plan.error or errors:
        return SlideResult(plan.slide, None, plan.error or errors[0])
    return SlideResult(plan.slide, plan.store)


__all__ = ["SlideResult", "open_client", "predict_many", "predict_one"]
