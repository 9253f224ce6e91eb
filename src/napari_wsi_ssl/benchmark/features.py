"""``refine_latency`` and ``feature_cache``: the fast mode's targets.

- ``refine_latency``: one fast-mode round once the cache exists (head trained on strokes from the
  synthetic ground truth, whole-slide maps written), against ``predict_slide`` of the same
  slide with the full UNet. The UNet's time is measured on a central region and extrapolated by
  its tiles/s to the slide's tissue tiles (the whole slide would take tens of minutes on 2 cores).
- ``feature_cache``: building the cache (windows/s of a few tiles rebuilt per round, reading
  and colour features included; the basis fit and the tissue mask are one-off) against the bare
  encoder (stages up to stride 16) on as many windows preloaded as tensors, alternated round by
  round; and the build's peak memory at two slide sizes, each in a fresh process.
"""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..events import Log, TilesDone
from ..features import FeatureCache, FeatureConfig, Refiner, build_cache_for
from ..features.extract import Extractor, encode
from ..inference import PredictConfig, predict_slide
from ..inference.tiling import make_grid, tissue_tiles
from ..models.checkpoint import read_payload
from ..models.device import autocast_for
from ..slide import open_slide, tissue_mask
from ..synthetic import load_synthetic_slide, read_tissue_mask, read_tumour_mask
from .core import BenchConfig, Figure, alternate
from .fixtures import bench_slide, random_checkpoint


def _strokes(slide: Path) -> tuple[np.ndarray, float]:
    """Stripes of the synthetic ground truth: label 1 on tumour, 2 on other tissue."""
    syn = load_synthetic_slide(slide.parent)
    assert syn is not None, f"{slide} is not a synthetic slide with ground truth"
    tumour, tissue = read_tumour_mask(syn) > 0, read_tissue_mask(syn) > 0
    labels = np.where(tumour, 1, np.where(tissue, 2, 0)).astype(np.uint8)
    strokes = np.zeros_like(labels)
    strokes[::16] = labels[::16]
    return strokes, float(syn.gt_downsample)


def _feature_config(config: BenchConfig, device: Any, mpp: float) -> Any:
    return FeatureConfig(mpp=mpp, device=str(device), tile=32 if config.quick else 128)


def build_timed(slide: Path, ckpt: Path, cache_dir: Path, cfg: Any) -> tuple[Any, dict[str, float]]:
    """Build a cache; returns it and (tiles, seconds in all, seconds from the first tile on)."""
    t0 = time.perf_counter()
    start = None
    tiles = 0
    gen = build_cache_for(slide, ckpt, cache_dir, cfg)
    while True:
        try:
            ev = next(gen)
        except StopIteration as stop:
            path = stop.value
            break
        if isinstance(ev, Log) and " tiles of " in ev.message:  # the basis is fitted
            start = time.perf_counter()
        if isinstance(ev, TilesDone) and ev.total:
            tiles = ev.done
    end = time.perf_counter()
    steady = (end - start) if start is not None else 0.0
    return FeatureCache.open(path), {
        "tiles": float(tiles),
        "seconds": end - t0,
        "rate": tiles / steady if steady > 0 and tiles > 0 else 0.0,
    }


def _cache_vs_encoder(
    slide: Path, ckpt: Path, cache_dir: Path, cfg: Any, device: Any, config: BenchConfig
) -> tuple[float, float]:
    """Windows/s of building the cache (A: new tiles of an existing cache, a few per round, I/O
    and colour included) and of the bare encoder to stride 16 on the same number of preloaded
    window tensors (B), alternated round by round so that both see the same machine load."""
    import torch

    cache = FeatureCache.open(next(cache_dir.glob("*.features.zarr")))
    per_round = 1 if config.quick else 2
    todo = sorted(cache.done_tiles())
    ex = Extractor(ckpt, cfg, device)
    s = cfg.tile * cfg.stride + 2 * cfg.margin
    x = torch.rand((per_round, 3, s, s), generator=torch.Generator().manual_seed(0)).to(device)
    x = x.contiguous(memory_format=torch.channels_last)

    def build_round() -> float:
        # forget a few finished tiles and build them again: the same pipeline, the basis kept
        tiles = [todo.pop() for _ in range(per_round)] if len(todo) >= per_round else []
        for ty, tx in tiles:
            cache.done[ty, tx] = False
        cache.root.attrs["napari_wsi_ssl"] = {**cache.meta, "complete": False}
        _, t = build_timed(slide, ckpt, cache_dir, cfg)
        return t["rate"]

    def encoder_round() -> float:
        t = time.perf_counter()
        with torch.inference_mode(), autocast_for(device):
            for i in range(per_round):
                encode(ex.encoder, x[i : i + 1], max(cfg.stages))
        return per_round / (time.perf_counter() - t)

    rounds = max(1, min(config.rounds, 3))
    a, b, _, _ = alternate(build_round, encoder_round, rounds, warmup=0 if config.quick else 1)
    return a, b


def _unet_seconds(slide: Path, ckpt: Path, device: Any, config: BenchConfig) -> dict[str, float]:
    """``predict_slide`` of a central region with the full UNet, extrapolated to the slide."""
    cfg = PredictConfig(
        tile_size=config.infer_tile,
        margin=32 if config.quick else 64,
        batch_size=config.infer_batch,
        device=str(device),
        compile="off",
    )
    mpp = read_payload(ckpt)[0]["mpp"]
    with open_slide(slide) as s:
        w, h = s.dimensions
        d = s.downsample_for_mpp(mpp)
        grid = make_grid(s.dimensions, d, config.infer_tile, cfg.margin or 0)
        total = len(tissue_tiles(grid, *tissue_mask(s)))
    side = int(min(w, h) // (2 if config.quick else 4))
    region = ((w - side) // 2, (h - side) // 2, side, side)
    out = Path(tempfile.mkdtemp(prefix="bench_unet_", dir=config.work_dir))
    try:
        start = None
        done = 0
        for ev in predict_slide(slide, ckpt, out, cfg, region=region):
            if isinstance(ev, Log) and " tiles of " in ev.message:  # the model is loaded
                start = time.perf_counter()
            if isinstance(ev, TilesDone) and ev.total:
                done = ev.done
        end = time.perf_counter()
    finally:
        shutil.rmtree(out, ignore_errors=True)
    rate = done / (end - start) if start is not None and done and end > start else float("nan")
    return {"tiles_per_s": rate, "slide_tiles": float(total), "seconds": total / rate}


_CHILD = r"""
import json, sys, tempfile
from napari_wsi_ssl.events import run_to_end
from napari_wsi_ssl.features import FeatureConfig, build_cache_for
slide, ckpt, work = sys.argv[1:4]
with tempfile.TemporaryDirectory(dir=work) as out:
    run_to_end(build_cache_for(slide, ckpt, out, FeatureConfig(mpp=4.0)))
hwm = next(l for l in open("/proc/self/status") if l.startswith("VmHWM:"))
print(json.dumps({"peak_rss": int(hwm.split()[1]) * 1024}))
"""


def _peak_rss(slide: Path, ckpt: Path, work: Path) -> int:
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, str(slide), str(ckpt), str(work)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"feature cache memory child failed: {proc.stderr.strip()[-300:]}")
    return int(json.loads(proc.stdout.strip().splitlines()[-1])["peak_rss"])


def bench_features(slide: Path, ckpt: Path, device: Any, config: BenchConfig) -> list[Figure]:
    """Both figures: the cache is built once, then refined on and compared."""
    mpp = float(read_payload(ckpt)[0]["mpp"])
    cfg = _feature_config(config, device, mpp)
    cache_dir = Path(tempfile.mkdtemp(prefix="bench_features_", dir=config.work_dir))
    try:
        cache, build = build_timed(slide, ckpt, cache_dir, cfg)
        strokes, ds = _strokes(slide)
        refiner = Refiner(cache)
        rounds = []
        for _ in range(max(1, min(config.rounds, 3))):
            t = time.perf_counter()
            result = refiner.refine(strokes, ds, cache_dir)
            rounds.append(time.perf_counter() - t)
        refine_s = statistics.median(rounds)
        unet = _unet_seconds(slide, ckpt, device, config)
        build_rate, encoder = _cache_vs_encoder(slide, ckpt, cache_dir, cfg, device, config)
    finally:
        shutil.rmtree(cache_dir, ignore_errors=True)
    refine = Figure(
        "refine_latency",
        refine_s,
        unet["seconds"],
        "s",
        "< 5 s, ratio <= 0.05 (>= 20x faster than the full UNet)",
        higher_is_better=False,
        extra={
            "speedup": unet["seconds"] / refine_s,
            "rounds_s": rounds,
            "train_s": result.seconds["train_s"],
            "map_s": result.seconds["map_s"],
            "feature_px": list(cache.grid.shape),
            "channels": cache.channels,
            "val_balanced_accuracy": result.metrics.get("val_balanced_accuracy"),
            "unet": {**unet, "extrapolated_from": "a central quarter-side region"},
            "cache_build_s": build["seconds"],
        },
    )
    small, large = config.memory_sizes
    mem_ckpt = random_checkpoint(config.work_dir / "bench_memory_model.pt", width=8, mpp=4.0)
    peaks = [
        _peak_rss(bench_slide(config.work_dir, n), mem_ckpt, config.work_dir)
        for n in (small, large)
    ]
    cache_fig = Figure(
        "feature_cache",
        build_rate,
        encoder,
        "windows/s",
        ">= 0.8; peak memory ratio (large / small slide) <= 1.3",
        extra={
            "window_px": cfg.tile * cfg.stride + 2 * cfg.margin,
            "tiles": build["tiles"],
            "build_s": build["seconds"],
            "first_build_windows_per_s": build["rate"],
            "memory_sizes": [small, large],
            "peak_rss_bytes": peaks,
            "memory_ratio": peaks[1] / peaks[0],
            "memory_model": "width 8 at 4 um/px",
        },
    )
    return [refine, cache_fig]
