"""``predict_slide``: tumour probability and nuclei maps of a whole slide, into a cached OME-Zarr."""

from __future__ import annotations

import math
from collections.abc import Generator
from pathlib import Path
from typing import Any

import numpy as np

from .._digest import file_sha256
from ..errors import CheckpointError, WsiSslError
from ..events import CancelToken, Log, StoreReady, TilesDone
from .config import COMPILE_MIN_TILES, PredictConfig
from .nuclei import (
    global_ids,
    haematoxylin,
    haematoxylin_threshold,
    id_quantum,
    nuclei_classical,
)
from .nuclei_stitch import StitchedProbs, split_stitched
from .runner import TorchPredictor, choose_device, run_tiles
from .store import MapWriter, hash_key, open_root, slide_fingerprint
from .tiling import Box, TileGrid, make_grid, order_tiles, tissue_tiles

FORMAT = 1
#: Version of the learned nuclei method (2: instances split on probabilities stitched across
#: tiles), part of the nuclei cache key, so stores of an older method are recomputed.
LEARNED_NUCLEI_VERSION = 2
Events = Generator[TilesDone | Log | StoreReady, None, Path]


def predict_slide(
    slide_path: str | Path,
    checkpoint_path: str | Path | None,
    out_dir: str | Path,
    config: PredictConfig = PredictConfig(),
    visible_first: Box | None = None,
    region: tuple[int, int, int, int] | None = None,
    cancel: CancelToken | None = None,
) -> Events:
    """Predict a slide tile by tile into ``out_dir/<slide>.<key>.ome.zarr``; return that path.

    Parameters
    ----------
    slide_path
        Any slide ``open_slide`` reads.
    checkpoint_path
        A ``segment`` checkpoint (per-pixel map) or a ``classify`` one (one value per patch);
        ``None`` computes nuclei only (``config.nuclei`` must be set).
    out_dir
        Folder of the stores. The store name holds a hash of the slide file, the checkpoint's
        sha256 and the settings, so a repeated call computes nothing, and an interrupted one
        resumes at the first unfinished tile.
    config
        Tiling, precision, device and nuclei settings.
    visible_first
        ``(y0, x0, y1, x1)`` in level-0 pixels: tiles under this view are computed first.
    region
        ``(x, y, w, h)`` in level-0 pixels: only this part of the slide is predicted.
    cancel
        Checked every batch; on cancel the finished tiles stay in the store (resumable) and
        ``CancelledError`` is raised.

    Yields
    ------
    TilesDone, Log
        ``TilesDone.boxes`` are the finished tiles in slide level-0 pixels ``(y0, x0, y1, x1)``.
    """
    from ..slide import open_slide

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
        )
    finally:
        slide.close()
    return result


def predict_opened(
    slide: Any,
    checkpoint_path: str | Path | None,
    out_dir: str | Path,
    config: PredictConfig,
    visible_first: Box | None,
    region: tuple[int, int, int, int] | None,
    cancel: CancelToken | None,
    fingerprint: dict[str, Any],
    mask: tuple[np.ndarray, float] | None = None,
) -> Events:
    """``predict_slide`` on an opened slide (``mask``: a precomputed tissue mask and downsample)."""
    path, root, keys = open_store(slide, checkpoint_path, out_dir, config, region, fingerprint)
    yield StoreReady(path)
    if not keys:
        yield Log(f"{path.name}: already computed, nothing to do")
        yield TilesDone(0, 0)
        return path
    device = choose_device(config.device)
    if mask is None and config.tissue_only:
        from ..slide import tissue_mask

        mask = tissue_mask(slide)
    jobs = make_jobs(slide, checkpoint_path, root, config, region, device, keys, mask)
    ordered = [(job, order_tiles(job["grid"], job["todo"], visible_first)) for job in jobs]
    total = sum(len(job["todo"]) for job in jobs)
    done = 0
    for job, tiles in ordered:
        predictor = job.get("predictor")
        compiled = predictor is not None and predictor.compiled is not None
        yield Log(
            f"{job['name']}: {len(tiles)} tiles of {job['grid'].tile} px at "
            f"{job['grid'].out_downsample:g}x downsample on {device}"
            + (" (model compiled with torch.compile at the first batch)" if compiled else "")
        )
        done = yield from run_job(job, tiles, config, done_before=done, total=total, cancel=cancel)
        if predictor is not None and predictor.note:
            yield Log(f"{job['name']}: {predictor.note}", level="warning")
        job["writer"].mark_complete(len(tiles))
    return path


def open_store(
    slide: Any,
    checkpoint_path: str | Path | None,
    out_dir: str | Path,
    config: PredictConfig,
    region: tuple[int, int, int, int] | None,
    fingerprint: dict[str, Any],
) -> tuple[Path, Any, dict[str, str]]:
    """Open (or create) the store of a prediction.

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
    region = None if region is None else tuple(int(v) for v in region)  # type: ignore[assignment]
    ck_sha = file_sha256(checkpoint_path) if checkpoint_path else None
    nk_sha = file_sha256(config.nuclei_checkpoint) if config.nuclei_checkpoint else None
    base = {"format": FORMAT, "slide": fingerprint, "region": region}
    tkey = hash_key({**base, "checkpoint": ck_sha, "config": config.tumour_key()})
    nuclei_method = {"learned": LEARNED_NUCLEI_VERSION} if nk_sha else {}
    nkey = hash_key({**base, "checkpoint": nk_sha, "config": config.nuclei_key(), **nuclei_method})
    name = Path(fingerprint["path"]).name.split(".")[0]
    path = Path(out_dir) / f"{name}.{(tkey if ck_sha else nkey)[:16]}.ome.zarr"
    path.parent.mkdir(parents=True, exist_ok=True)
    root = open_root(
        path,
        {
            "slide": fingerprint["path"],
            "checkpoint": str(checkpoint_path) if checkpoint_path else None,
            "checkpoint_sha256": ck_sha,
            "region": region,
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
    slide: Any,
    checkpoint_path: str | Path | None,
    root: Any,
    config: PredictConfig,
    region: tuple[int, int, int, int] | None,
    device: Any,
    keys: dict[str, str],
    mask: tuple[np.ndarray, float] | None,
) -> list[dict[str, Any]]:
    """The jobs of the maps in ``keys`` (see ``open_store``): each a dict of its ``name``,
    ``grid``, ``writer``, ``todo`` tiles (tissue under ``mask``, not done yet) and the
    ``prepare``/``compute``/``finish`` steps that ``run_job`` runs."""
    jobs = []
    if "tumour" in keys:
        jobs.append(
            _tumour_job(slide, checkpoint_path, root, config, region, device, keys["tumour"], mask)
        )
    if "nuclei" in keys:
        jobs.append(_nuclei_job(slide, root, config, region, device, keys["nuclei"], mask))
    return jobs


def run_job(
    job: dict[str, Any],
    tiles: list[tuple[int, int]],
    config: PredictConfig,
    *,
    done_before: int = 0,
    total: int | None = None,
    cancel: CancelToken | None = None,
) -> Generator[TilesDone, None, int]:
    """Compute ``tiles`` of a job into its store (``run_tiles`` with the config's pipeline)."""
    grid: TileGrid = job["grid"]
    return (
        yield from run_tiles(
            tiles,
            job["prepare"],
            job["compute"],
            job["finish"],
            batch_size=job.get("batch_size", config.batch_size),
            read_workers=config.read_workers,
            prefetch_batches=config.prefetch_batches,
            box_of=grid.level0_box,
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


def _downsample(slide: Any, mpp: float | None) -> float:
    """Level-0 pixels per working pixel (1 when no working mpp is asked for)."""
    return 1.0 if mpp is None else float(slide.downsample_for_mpp(mpp))


def _todo(
    grid: TileGrid, writer: MapWriter, mask: tuple[np.ndarray, float] | None
) -> set[tuple[int, int]]:
    tissue = tissue_tiles(grid, None if mask is None else mask[0], 1.0 if mask is None else mask[1])
    return tissue - writer.done_tiles()


def _tumour_job(
    slide: Any,
    ckpt_path: Any,
    root: Any,
    config: PredictConfig,
    region: Any,
    device: Any,
    key: str,
    mask: Any,
) -> dict[str, Any]:
    from ..models import load_checkpoint

    ckpt = load_checkpoint(ckpt_path, device=device)
    if ckpt.task not in ("segment", "classify"):
        raise CheckpointError(
            f"a {ckpt.task!r} checkpoint gives no tumour probability",
            ckpt_path,
            hint="fine-tune it for segmentation or classification first",
        )
    mpp = config.mpp if config.mpp is not None else ckpt.mpp
    d = _downsample(slide, mpp)
    classify = ckpt.task == "classify"
    if classify:
        grid = make_grid(
            slide.dimensions, d, config.classify_tiles, 0, region, cell=ckpt.patch_size
        )
    else:
        tile, margin = config.window(ckpt.patch_size)
        grid = make_grid(slide.dimensions, d, tile, margin, region)
    writer = MapWriter.create(root, "tumour", grid, config.dtype, slide.mpp, key)
    todo = _todo(grid, writer, mask)
    compile_now = config.compile == "on" or (
        config.compile == "auto" and device.type == "cpu" and len(todo) >= COMPILE_MIN_TILES
    )
    predictor = TorchPredictor(
        ckpt.model,
        device,
        "logits" if classify else "seg",
        compile_batch=(config.batch_size * 8 if classify else config.batch_size)
        if compile_now
        else None,
    )
    m, t, p = grid.margin, grid.tile, ckpt.patch_size

    def compute(windows: list[np.ndarray]) -> list[np.ndarray]:
        batch = np.stack(windows)
        if not classify:
            return list(predictor(batch)[:, 1, m : m + t, m : m + t])
        k = grid.tile
        patches = batch.reshape(len(windows), k, p, k, p, 3).transpose(0, 1, 3, 2, 4, 5)
        patches = patches.reshape(-1, p, p, 3)
        step = max(1, config.batch_size * 8)
        probs = np.concatenate(
            [predictor(patches[i : i + step])[:, 1] for i in range(0, len(patches), step)]
        )
        return list(probs.reshape(len(windows), k, k))

    def finish(ty: int, tx: int, prob: np.ndarray) -> None:
        if config.dtype == "uint8":
            writer.write_tile(ty, tx, np.clip(np.rint(prob * 255), 0, 255).astype(np.uint8))
        else:
            writer.write_tile(ty, tx, prob.astype(np.float16))

    return {
        "name": "tumour",
        "grid": grid,
        "writer": writer,
        "todo": todo,
        "prepare": lambda ty, tx: grid.read_window(slide, ty, tx),
        "compute": compute,
        "finish": finish,
        "predictor": predictor,
    }


def _nuclei_job(
    slide: Any, root: Any, config: PredictConfig, region: Any, device: Any, key: str, mask: Any
) -> dict[str, Any]:
    ckpt = None
    if config.nuclei_checkpoint is not None:
        from ..models import load_checkpoint

        ckpt = load_checkpoint(config.nuclei_checkpoint, device=device)
        if ckpt.task != "nuclei":
            raise CheckpointError(
                f"a {ckpt.task!r} checkpoint is no nuclei model",
                config.nuclei_checkpoint,
                hint="fine-tune one with --task nuclei, or leave it out for the classical method",
            )
    mpp = config.nuclei_mpp if config.nuclei_mpp is not None else (ckpt.mpp if ckpt else None)
    d = _downsample(slide, mpp)
    px_mpp = d * slide.mpp[0] if slide.mpp is not None else None
    diameter_px = config.nuclei_diameter_um / (px_mpp or 0.5)
    # the instance split sees this much around a core: a nucleus on the border lies inside
    split_margin = max(32, 32 * math.ceil(2.5 * diameter_px / 32))
    margin = split_margin if ckpt is None else config.window(ckpt.patch_size)[1]
    t = config.nuclei_tile_size
    grid = make_grid(slide.dimensions, d, t, margin, region)
    writer = MapWriter.create(root, "nuclei", grid, "int32", slide.mpp, key)
    todo = _todo(grid, writer, mask)
    q = id_quantum(grid.grid[0] * grid.grid[1], t)

    def to_core(ty: int, tx: int, labels: np.ndarray) -> np.ndarray:
        m = split_margin
        ids = global_ids(labels, (ty * t - m, tx * t - m), t, grid.grid, q)
        return ids[m : m + t, m : m + t]

    if ckpt is None:
        # one threshold (and, without mpp, one scale) per slide, kept for resumed runs
        threshold = writer.group.attrs.get("threshold")
        if threshold is None:
            threshold, est = _slide_threshold(
                slide, grid, sorted(todo), diameter_px, config.nuclei_diameter_um
            )
            writer.group.attrs.update({"threshold": threshold, "estimated_mpp": est})
        if px_mpp is None:
            px_mpp = writer.group.attrs.get("estimated_mpp")

        def prepare(ty: int, tx: int) -> np.ndarray:
            window = grid.read_window(slide, ty, tx)
            labels = nuclei_classical(
                window,
                px_mpp,
                config.nuclei_diameter_um,
                config.nuclei_min_area_um2,
                config.nuclei_marker_distance_um,
                threshold=threshold,
            )
            return to_core(ty, tx, labels)

        return {
            "name": "nuclei",
            "grid": grid,
            "writer": writer,
            "todo": todo,
            "prepare": prepare,
            "compute": lambda xs: xs,
            "finish": writer.write_tile,
        }

    # every tile splits the same stitched map, so nuclei on tile borders keep one id
    stitched = StitchedProbs(
        grid,
        lambda ty, tx: grid.read_window(slide, ty, tx),
        TorchPredictor(ckpt.model, device, "seg"),
        split_margin,
        config.batch_size,
    )

    def finish(ty: int, tx: int, probs: np.ndarray) -> None:
        labels = split_stitched(probs, px_mpp, config.nuclei_min_area_um2)
        writer.write_tile(ty, tx, to_core(ty, tx, labels))

    return {
        "name": "nuclei",
        "grid": grid,
        "writer": writer,
        "todo": todo,
        "prepare": stitched.prepare,
        "compute": stitched.compute,
        "finish": finish,
    }


def _slide_threshold(
    slide: Any, grid: TileGrid, tiles: list[tuple[int, int]], diameter_px: float, diameter_um: float
) -> tuple[float, float | None]:
    """One haematoxylin threshold for the whole slide, from up to 8 tiles spread over the
    tissue, and the mpp estimated from their blob sizes (used only when the slide has none)."""
    from scipy import ndimage

    from .nuclei import estimate_mpp

    if not tiles:
        return float("inf"), None
    picks = [tiles[i] for i in np.linspace(0, len(tiles) - 1, min(8, len(tiles))).astype(int)]
    values, windows = [], []
    for ty, tx in picks:
        window = grid.read_window(slide, ty, tx)
        windows.append(window)
        hema = ndimage.gaussian_filter(haematoxylin(window), max(0.5, 0.08 * diameter_px))
        values.append(hema[::2, ::2].ravel())
    est = (
        None
        if slide.mpp is not None
        else estimate_mpp(np.concatenate(windows, axis=1), diameter_um)
    )
    return haematoxylin_threshold(np.concatenate(values)), est


__all__ = ["file_sha256", "make_jobs", "open_store", "predict_opened", "predict_slide", "run_job"]
