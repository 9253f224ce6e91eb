"""The two jobs of a prediction, each a set of tiles and the steps that compute them.

- ``tumour_job``: a segmentation or classification checkpoint's probability of class 1.
- ``nuclei_job``: instance labels, from a nuclei checkpoint (split on probabilities stitched
  across tiles) or from the classical haematoxylin watershed.

A :class:`Job` holds its ``name``, ``grid``, ``writer``, ``todo`` tiles and the ``prepare`` /
``compute`` / ``finish`` steps that ``predict.run_job`` runs through ``runner.run_tiles``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import CheckpointError
from ..slide import Slide
from .config import COMPILE_MIN_TILES, PredictConfig
from .nuclei import (
    estimate_mpp,
    global_ids,
    haematoxylin,
    haematoxylin_threshold,
    id_quantum,
    nuclei_classical,
)
from .nuclei_stitch import StitchedProbs, split_stitched
from .runner import TorchPredictor
from .store import ATTR, MapWriter, encode_probability
from .tiling import TileGrid, make_grid, tissue_tiles

Tile = tuple[int, int]


@dataclass
class Job:
    """One map of a prediction: its tiles and the three steps that compute each.

    ``prepare(ty, tx)`` reads a tile's input (in reader threads), ``compute(batch)`` turns a
    batch of inputs into outputs (the model), ``finish(ty, tx, output)`` writes one into the
    store. ``predictor`` is the tumour job's model (its compile state and notes are reported).
    """

    name: str
    grid: TileGrid
    writer: MapWriter
    todo: set[Tile]
    prepare: Callable[[int, int], Any]
    compute: Callable[[list[Any]], list[Any]]
    finish: Callable[[int, int, Any], None]
    predictor: TorchPredictor | None = None


def _identity(batch: list[Any]) -> list[Any]:
    return batch


def _downsample(slide: Slide, mpp: float | None) -> float:
    """Level-0 pixels per working pixel (1 when no working mpp is asked for)."""
    return 1.0 if mpp is None else float(slide.downsample_for_mpp(mpp))


def _todo(grid: TileGrid, writer: MapWriter, mask: tuple[np.ndarray, float] | None) -> set[Tile]:
    tissue = tissue_tiles(grid, None if mask is None else mask[0], 1.0 if mask is None else mask[1])
    return tissue - writer.done_tiles()


def tumour_job(
    slide: Slide,
    ckpt_path: Any,
    root: Any,
    config: PredictConfig,
    region: Any,
    device: Any,
    key: str,
    mask: Any,
) -> Job:
    from ..models import load_checkpoint  # torch: inference stays light to import

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
        tile, margin = config.window(ckpt.patch_size, is_window_free(ckpt))
        grid = make_grid(slide.dimensions, d, tile, margin, region)
    writer = MapWriter.create(root, "tumour", grid, config.dtype, slide.mpp, key)
    meta = dict(root.attrs.get(ATTR, {}))
    if meta.get("class_names") != list(ckpt.class_names):  # the map's layer is named after them
        root.attrs[ATTR] = {**meta, "class_names": list(ckpt.class_names)}
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
            writer.write_tile(ty, tx, encode_probability(prob))
        else:
            writer.write_tile(ty, tx, prob.astype(np.float16))

    def prepare(ty: int, tx: int) -> np.ndarray:
        return grid.read_window(slide, ty, tx)

    return Job("tumour", grid, writer, todo, prepare, compute, finish, predictor=predictor)


def is_window_free(ckpt: Any) -> bool:
    """Whether a checkpoint's map does not depend on the prediction window: a segmentation
    UNet (decoder head) trained on patches of at least ``WINDOW_FREE_PATCH`` px."""
    from ..training.config import WINDOW_FREE_PATCH  # torch: inference stays light to import

    return (
        ckpt.task == "segment"
        and ckpt.arch.get("seg_head") == "decoder"
        and ckpt.patch_size >= WINDOW_FREE_PATCH
    )


def nuclei_job(
    slide: Slide, root: Any, config: PredictConfig, region: Any, device: Any, key: str, mask: Any
) -> Job:
    ckpt = None
    if config.nuclei_checkpoint is not None:
        from ..models import load_checkpoint  # torch: inference stays light to import

        ckpt = load_checkpoint(config.nuclei_checkpoint, device=device)
        if ckpt.task != "nuclei":
            raise CheckpointError(
                f"a {ckpt.task!r} checkpoint is no nuclei model",
                config.nuclei_checkpoint,
                hint="fine-tune one with the 'task' setting nuclei, or leave it out for the classical method",
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

        return Job("nuclei", grid, writer, todo, prepare, _identity, writer.write_tile)

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

    return Job("nuclei", grid, writer, todo, stitched.prepare, stitched.compute, finish)


def _slide_threshold(
    slide: Slide,
    grid: TileGrid,
    tiles: list[tuple[int, int]],
    diameter_px: float,
    diameter_um: float,
) -> tuple[float, float | None]:
    """One haematoxylin threshold for the whole slide, from up to 8 tiles spread over the
    tissue, and the mpp estimated from their blob sizes (used only when the slide has none)."""
    from scipy import ndimage

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


__all__ = ["Job", "is_window_free", "nuclei_job", "tumour_job"]
