"""``predict_slide``: tumour probability and nuclei maps of a whole slide, into a cached OME-Zarr."""

from __future__ import annotations

from collections.abc import Generator
from pathlib import Path
from typing import Any

import numpy as np

from .._digest import file_sha256
from ..errors import CheckpointError, WsiSslError
from ..events import CancelToken, Log, StoreReady, TilesDone
from ..geometry import Rect
from ..slide import Slide, open_slide, tissue_mask
from .config import PredictConfig
from .jobs import Job, nuclei_job, tumour_job
from .runner import run_tiles
from .store import hash_key, open_root, slide_fingerprint
from .tiling import Box, order_tiles

FORMAT = 1
#: Version of the learned nuclei method (2: instances split on probabilities stitched across
#: tiles), part of the nuclei cache key, so stores of an older method are recomputed.
LEARNED_NUCLEI_VERSION = 2
#: Version of the classical nuclei (2: objects over ``DEFAULT_MAX_AREA_UM2`` dropped), likewise.
CLASSICAL_NUCLEI_VERSION = 2
Events = Generator[TilesDone | Log | StoreReady, None, Path]


def predict_slide(
    slide_path: str | Path,
    checkpoint_path: str | Path | None,
    out_dir: str | Path,
    config: PredictConfig = PredictConfig(),
    visible_first: Box | None = None,
    region: Rect | tuple[int, int, int, int] | None = None,
    cancel: CancelToken | None = None,
) -> Events:
    """Predict a slide tile by tile into ``out_dir/<slide>.<key>.ome.zarr``; return that path.

    Parameters
    ----------
    slide_path
        Any slide ``open_slide`` reads.
    checkpoint_path
        A ``segment`` checkpoint (per-pixel map) or a ``classify`` one (one value per patch);
        a fast-mode head (``features.predict_head``: its maps through the slide's feature
        cache, then the nuclei, when asked for, into the same store, so that a cancel during
        the nuclei keeps the finished map); ``None`` computes nuclei only (``config.nuclei``
        must be set).
    out_dir
        Folder of the stores. The store name holds a hash of the slide file, the checkpoint's
        sha256 and the settings, so a repeated call computes nothing, and an interrupted one
        resumes at the first unfinished tile.
    config
        Tiling, precision, device and nuclei settings.
    visible_first
        ``(y0, x0, y1, x1)`` in level-0 pixels: tiles under this view are computed first.
    region
        A ``Rect`` (or ``(x, y, w, h)``) in level-0 pixels: only this part is predicted.
    cancel
        Checked every batch; on cancel the finished tiles stay in the store (resumable) and
        ``CancelledError`` is raised.

    Yields
    ------
    TilesDone, Log
        ``TilesDone.boxes`` are the finished tiles in slide level-0 pixels ``(y0, x0, y1, x1)``.
    """
    store = None
    if checkpoint_path is not None:
        from ..features.head_file import is_head_checkpoint  # torch, and the layer above: lazy

        if is_head_checkpoint(checkpoint_path):  # the fast mode: a head over the feature cache
            from ..features import predict_head  # torch, and the layer above: lazy

            store = yield from predict_head(
                slide_path,
                checkpoint_path,
                out_dir,
                visible_first=visible_first,
                region=region,
                cancel=cancel,
                device=config.device,
                slide_mpp=config.slide_mpp,
            )
            if not config.nuclei:
                return store
            # the nuclei go into the head's store, beside its maps: one store shows both
            checkpoint_path = None
    slide_path = Path(slide_path)
    slide = open_slide(slide_path, mpp=config.slide_mpp)
    try:
        result = yield from predict_opened(
            slide,
            checkpoint_path,
            out_dir,
            config,
            visible_first,
            region,
            cancel,
            fingerprint=slide_fingerprint(slide_path),
            store=store,
        )
    finally:
        slide.close()
    return result


def predict_opened(
    slide: Slide,
    checkpoint_path: str | Path | None,
    out_dir: str | Path,
    config: PredictConfig,
    visible_first: Box | None,
    region: Rect | tuple[int, int, int, int] | None,
    cancel: CancelToken | None,
    fingerprint: dict[str, Any],
    mask: tuple[np.ndarray, float] | None = None,
    store: Path | None = None,
) -> Events:
    """``predict_slide`` on an opened slide (``mask``: a precomputed tissue mask and downsample;
    ``store``: an existing store to add the maps to, see ``open_store``)."""
    path, root, keys = open_store(
        slide, checkpoint_path, out_dir, config, region, fingerprint, store
    )
    yield StoreReady(path)
    if not keys:
        yield Log(f"{path.name}: already computed, nothing to do")
        yield TilesDone(0, 0)
        return path
    from ..models.device import choose_device  # torch: inference stays light to import

    device = choose_device(config.device)
    if mask is None and config.tissue_only:
        mask = tissue_mask(slide)
    jobs = make_jobs(slide, checkpoint_path, root, config, region, device, keys, mask)
    ordered = [(job, order_tiles(job.grid, job.todo, visible_first)) for job in jobs]
    total = sum(len(job.todo) for job in jobs)
    done = 0
    for job, tiles in ordered:
        predictor = job.predictor
        compiled = predictor is not None and predictor.compiled is not None
        yield Log(
            f"{job.name}: {len(tiles)} tiles of {job.grid.tile} px at "
            f"{job.grid.out_downsample:g}x downsample on {device}"
            + (" (model compiled with torch.compile at the first batch)" if compiled else "")
        )
        done = yield from run_job(job, tiles, config, done_before=done, total=total, cancel=cancel)
        if predictor is not None and predictor.note:
            yield Log(f"{job.name}: {predictor.note}", level="warning")
        job.writer.mark_complete(len(tiles))
    return path


def open_store(
    slide: Slide,
    checkpoint_path: str | Path | None,
    out_dir: str | Path,
    config: PredictConfig,
    region: Rect | tuple[int, int, int, int] | None,
    fingerprint: dict[str, Any],
    store: Path | None = None,
) -> tuple[Path, Any, dict[str, str]]:
    """Open (or create) the store of a prediction.

    ``store`` is an existing store (a fast-mode head's maps) that the maps asked for go into,
    instead of one named after the checkpoint or the nuclei settings.

    Returns
    -------
    path, root, keys
        The store, its zarr root group, and the cache key of each map (``"tumour"``,
        ``"nuclei"``) that is asked for and not complete yet (empty: nothing to do).
    """
    if checkpoint_path is None and not config.nuclei:
        raise WsiSslError("nothing to predict: give a checkpoint, or ask for nuclei")
    for p in (checkpoint_path, config.nuclei_checkpoint):
        if p is not None and not Path(p).is_file():
            raise CheckpointError("no such checkpoint file", p)
    rect = Rect.coerce(region)
    xywh = (
        None if rect is None else rect.xywh
    )  # the store's metadata and cache key keep (x, y, w, h)
    ck_sha = file_sha256(checkpoint_path) if checkpoint_path else None
    nk_sha = file_sha256(config.nuclei_checkpoint) if config.nuclei_checkpoint else None
    base = {"format": FORMAT, "slide": fingerprint, "region": xywh}
    tkey = hash_key({**base, "checkpoint": ck_sha, "config": config.tumour_key()})
    nuclei_method = (
        {"learned": LEARNED_NUCLEI_VERSION} if nk_sha else {"classical": CLASSICAL_NUCLEI_VERSION}
    )
    nkey = hash_key({**base, "checkpoint": nk_sha, "config": config.nuclei_key(), **nuclei_method})
    name = Path(fingerprint["path"]).name.split(".")[0]
    path = store or Path(out_dir) / f"{name}.{(tkey if ck_sha else nkey)[:16]}.ome.zarr"
    path.parent.mkdir(parents=True, exist_ok=True)
    root = open_root(
        path,
        {
            "slide": fingerprint["path"],
            "checkpoint": str(checkpoint_path) if checkpoint_path else None,
            "checkpoint_sha256": ck_sha,
            "region": xywh,
            "mpp": slide.mpp,
            "format": FORMAT,
        },
    )
    keys = {}
    if ck_sha is not None and not _complete(root, "tumour", tkey):
        keys["tumour"] = tkey
    if config.nuclei and not _complete(root, "nuclei", nkey):
        keys["nuclei"] = nkey
    return path, root, keys


def make_jobs(
    slide: Slide,
    checkpoint_path: str | Path | None,
    root: Any,
    config: PredictConfig,
    region: Rect | tuple[int, int, int, int] | None,
    device: Any,
    keys: dict[str, str],
    mask: tuple[np.ndarray, float] | None,
) -> list[Job]:
    """The jobs of the maps in ``keys`` (see ``open_store``): each a :class:`Job` of its tiles
    (tissue under ``mask``, not done yet) and the steps that ``run_job`` runs."""
    jobs = []
    if "tumour" in keys:
        jobs.append(
            tumour_job(slide, checkpoint_path, root, config, region, device, keys["tumour"], mask)
        )
    if "nuclei" in keys:
        jobs.append(nuclei_job(slide, root, config, region, device, keys["nuclei"], mask))
    return jobs


def run_job(
    job: Job,
    tiles: list[tuple[int, int]],
    config: PredictConfig,
    *,
    done_before: int = 0,
    total: int | None = None,
    cancel: CancelToken | None = None,
) -> Generator[TilesDone, None, int]:
    """Compute ``tiles`` of a job into its store (``run_tiles`` with the config's pipeline)."""
    return (
        yield from run_tiles(
            tiles,
            job.prepare,
            job.compute,
            job.finish,
            batch_size=config.batch_size,
            read_workers=config.read_workers,
            prefetch_batches=config.prefetch_batches,
            box_of=job.grid.level0_box,
            done_before=done_before,
            total=len(tiles) if total is None else total,
            cancel=cancel,
        )
    )


def _complete(root: Any, name: str, key: str) -> bool:
    return (
        name in root
        and root[name].attrs.get("key") == key
        and bool(root[name].attrs.get("complete"))
    )


__all__ = ["file_sha256", "make_jobs", "open_store", "predict_opened", "predict_slide", "run_job"]
