"""Does the full fine-tune mode's map depend on the prediction window? The figures of
docs/training.md ("The full mode's map does not depend on the prediction window").

A width-8 UNet from random weights is trained on the full ground truth of the 2048 px synthetic
slide (seed 0) at 1 µm/px, for a budget in steps, and predicted in several tiles; its map is
scored against the ground truth (Dice) and against the map of the training patch's window.
``--cache`` also maps the slide through the fast mode's feature cache with the fine-tuned
encoder (the other way of the issue) at two cache tiles.

Usage, from the repository root (each run about 0.5-12 minutes on a 2-core CPU):

    .venv/bin/python docs/scripts/window_study.py OUT 64 0            # 64 px patches, no context
    .venv/bin/python docs/scripts/window_study.py OUT 64 32 --cache --held-out  # + 2 x 32 context
    .venv/bin/python docs/scripts/window_study.py OUT 128 0
    .venv/bin/python docs/scripts/window_study.py OUT 128 64
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from napari_wsi_ssl.evaluation.masks import map_on_mask_grid
from napari_wsi_ssl.events import TilesDone, run_to_end
from napari_wsi_ssl.features import FeatureConfig, fast_finetune
from napari_wsi_ssl.inference import PredictConfig, predict_slide
from napari_wsi_ssl.synthetic import (
    load_synthetic_slide,
    read_tissue_mask,
    read_tumour_mask,
    write_synthetic_slide,
)
from napari_wsi_ssl.training import FinetuneConfig, FinetuneData, finetune

MPP = 1.0


def dice(prob: np.ndarray, truth: np.ndarray) -> float:
    pred = prob >= 0.5
    return float(2 * (pred & truth).sum() / max(1, pred.sum() + truth.sum()))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out", type=Path)
    ap.add_argument("patch", type=int, help="patch size with segmentation loss")
    ap.add_argument("context", type=int, help="context px on each side, no segmentation loss")
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--cache", action="store_true", help="also map through the feature cache")
    ap.add_argument(
        "--held-out", action="store_true", help="also time windows on a 4096 px slide (seed 1)"
    )
    args = ap.parse_args()
    torch.set_num_threads(1)
    syn_dir = args.out / "synthetic"
    syn = load_synthetic_slide(syn_dir) or write_synthetic_slide(syn_dir, size=2048, seed=0)
    truth = read_tumour_mask(syn) > 0
    tissue = read_tissue_mask(syn) > 0
    grid = (truth.shape, syn.gt_downsample, (syn.mpp,) * 2)
    run = args.out / f"p{args.patch}c{args.context}"
    ckpt = run / "tumour.pt"
    if not ckpt.exists():
        cfg = FinetuneConfig(
            task="segment",
            mode="scratch",
            width=8,
            mpp=MPP,
            patch_size=args.patch,
            context=args.context,
            batch_size=8,
            steps=args.steps,
            num_patches=256,
            device="cpu",
            seed=0,
        )
        data = FinetuneData.from_mask_file(syn.slide, syn.tumour_mask)
        t0 = time.perf_counter()
        run_to_end(finetune(data, cfg, ckpt))
        print(f"trained {args.steps} steps in {time.perf_counter() - t0:.0f} s")
    patch = args.patch + 2 * args.context
    margin = 32 * max(1, -(-patch // 4 // 32))
    probs = {}
    # the first window is the training patch's size (tile of half a patch, margins of a quarter)
    windows = [(f"tile {t}", t, margin) for t in dict.fromkeys((patch // 2, 128, 256, 1024))]
    for name, tile, m in windows:
        pc = PredictConfig(tile_size=tile, margin=m, device="cpu", compile="off")
        t0 = time.perf_counter()
        store = run_to_end(predict_slide(syn.slide, ckpt, run / f"pred_{tile}_{m}", pc))
        probs[name] = map_on_mask_grid(store, *grid)
        print(
            f"{name} (margin {m}): Dice {dice(probs[name], truth):.3f} "
            f"in {time.perf_counter() - t0:.1f} s"
        )
    ref = probs[windows[0][0]]
    for name, p in probs.items():
        d = np.abs(p - ref)[tissue]
        print(
            f"{name} vs {windows[0][0]}: mean |dp| {d.mean():.4f}, p99 {np.percentile(d, 99):.3f}"
        )
    if args.held_out:
        held_out(args.out, ckpt, patch, margin)
    if not args.cache:
        return
    # the other way: the fine-tuned encoder's features, a head on every 16th row of the truth
    labels = np.where(truth, 1, np.where(tissue, 2, 0)).astype(np.uint8)
    strokes = np.zeros_like(labels)
    strokes[::16] = labels[::16]
    maps = []
    for tile in (32, 128):  # feature px: 256 and 1024 working px
        fcfg = FeatureConfig(tile=tile, mpp=MPP, colour=False, device="cpu")
        result = run_to_end(
            fast_finetune(syn.slide, strokes, syn.gt_downsample, ckpt, run / f"cache{tile}", fcfg)
        )
        maps.append(map_on_mask_grid(result.store, *grid))
        print(f"cache tile {tile * 8}: Dice {dice(maps[-1], truth):.3f}, {result.seconds}")
    print(f"cache tiles 256 vs 1024: mean |dp| {np.abs(maps[0] - maps[1])[tissue].mean():.4f}")


def held_out(out: Path, ckpt: Path, patch: int, margin: int) -> None:
    """Tiles, seconds and Dice of three windows on the 4096 px slide of seed 1 (two threads)."""
    torch.set_num_threads(2)
    syn_dir = out / "synthetic_seed1"
    syn = load_synthetic_slide(syn_dir) or write_synthetic_slide(syn_dir, size=4096, seed=1)
    truth = read_tumour_mask(syn) > 0
    tissue = read_tissue_mask(syn) > 0
    probs = []
    for tile in (patch // 2, 512, 1024):
        pc = PredictConfig(tile_size=tile, margin=margin, device="cpu", compile="off")
        folder = ckpt.parent / f"held_out_{tile}_{time.time_ns()}"  # never a cached store
        events: list[Any] = []
        t0 = time.perf_counter()
        store = run_to_end(predict_slide(syn.slide, ckpt, folder, pc), events.append)
        seconds = time.perf_counter() - t0
        tiles = max((e.total for e in events if isinstance(e, TilesDone)), default=0)
        probs.append(map_on_mask_grid(store, truth.shape, syn.gt_downsample, (syn.mpp,) * 2))
        d = np.abs(probs[-1] - probs[0])[tissue].mean()
        print(
            f"held out, tile {tile}: {tiles} tiles in {seconds:.1f} s, "
            f"Dice {dice(probs[-1], truth):.3f}, mean |dp| vs tile {patch // 2} {d:.4f}"
        )


if __name__ == "__main__":
    main()
