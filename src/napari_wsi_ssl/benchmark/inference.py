"""``infer_vs_model``, ``infer_vs_naive`` and ``cpu_precision``: whole-slide inference speed."""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from ..events import TilesDone
from ..inference import PredictConfig, predict_slide
from ..models import load_checkpoint
from ..models.device import autocast_for, cpu_has_bf16
from .core import BenchConfig, Figure, alternate


class PredictRun(NamedTuple):
    """One fresh ``predict_slide`` run (a new store each time: no cache hit)."""

    rate: float  # tiles/s from the first finished batch on
    tiles: int  # tiles computed
    seconds: float  # the whole run, model loading and tissue mask included
    grid: int  # tiles of the slide's grid, tissue or not
    first_s: float  # from the call to the first finished batch


def _predict_rate(
    slide: Path, ckpt: Path, device: Any, config: BenchConfig, compile: str = "auto"
) -> PredictRun:
    """Time a fresh ``predict_slide`` run of the bench's settings."""
    cfg = PredictConfig(
        tile_size=config.infer_tile,
        margin=32 if config.quick else 64,
        batch_size=config.infer_batch,
        device=str(device),
        compile=compile,
    )
    out = Path(tempfile.mkdtemp(prefix="bench_predict_", dir=config.work_dir))
    try:
        t0 = time.perf_counter()
        gen = predict_slide(slide, ckpt, out, cfg)
        tiles = 0
        start = None
        while True:
            try:
                ev = next(gen)
            except StopIteration:
                break
            # the clock starts at the first finished batch: model loading, the tissue mask and
            # a compilation are one-off costs, not throughput
            if isinstance(ev, TilesDone) and ev.total:
                if start is None:
                    start, first = time.perf_counter(), ev.done
                tiles = ev.done
        end = time.perf_counter()
        elapsed = end - (start or end)
        n = tiles - first if start is not None else 0
        rate = n / elapsed if elapsed > 0 and n > 0 else 0.0
        return PredictRun(rate, tiles, end - t0, _grid_tiles(out), (start or end) - t0)
    finally:
        shutil.rmtree(out, ignore_errors=True)


def _grid_tiles(out: Path) -> int:
    """Tiles of the whole grid of the (only) store in ``out``: its ``done`` array's size."""
    import zarr

    store = next(out.glob("*.ome.zarr"))
    done = zarr.open_group(str(store), mode="r")["tumour"]["done"]
    return int(done.shape[0] * done.shape[1])


def _bare_model(
    ckpt: Path, device: Any, config: BenchConfig, side: int, precision: str = "auto"
) -> Any:
    """Tiles/s of the model alone on preloaded tensors (same batch and device; precision
    ``"auto"`` is the one ``predict_slide`` uses)."""
    import torch

    model: Any = load_checkpoint(ckpt, device=device).model
    model = model.to(memory_format=torch.channels_last)
    x = torch.rand(config.infer_batch, 3, side, side, device=device).contiguous(
        memory_format=torch.channels_last
    )
    ctx = autocast_for(device, precision)

    def one() -> float:
        start = time.perf_counter()
        with torch.inference_mode(), ctx:
            for _ in range(2):
                out = model(x)["seg"]
                torch.softmax(out.float(), dim=1).cpu()
        return 2 * config.infer_batch / (time.perf_counter() - start)

    return one


def _naive_rate(slide_path: Path, ckpt: Path, n_tiles: int, config: BenchConfig) -> float:
    """Per tile: OpenSlide read_region, to tensor, model (fp32, batch 1), write into a numpy array."""
    import openslide
    import torch

    ck = load_checkpoint(ckpt, device="cpu")
    raw = openslide.OpenSlide(str(slide_path))
    mpp = float(raw.properties.get(openslide.PROPERTY_NAME_MPP_X, 0.5))
    ds = (ck.mpp or mpp) / mpp
    level = raw.get_best_level_for_downsample(ds)
    level_ds = raw.level_downsamples[level]
    side = config.infer_tile + 2 * (32 if config.quick else 64)
    read = int(round(side * ds / level_ds))
    w, h = raw.level_dimensions[level]
    out = np.zeros((config.infer_tile * 4, config.infer_tile * 4), np.float32)
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    with torch.inference_mode():
        for i in range(n_tiles):
            x0 = int(rng.integers(0, max(1, w - read)) * level_ds)
            y0 = int(rng.integers(0, max(1, h - read)) * level_ds)
            img = raw.read_region((x0, y0), level, (read, read)).convert("RGB").resize((side, side))
            t = torch.from_numpy(np.array(img)).permute(2, 0, 1)[None].float() / 255
            prob = torch.softmax(ck.model(t)["seg"], 1)[0, 1].numpy()
            m = (side - config.infer_tile) // 2
            core = prob[m : m + config.infer_tile, m : m + config.infer_tile]
            k = i % 16
            ty, tx = divmod(k, 4)
            out[
                ty * config.infer_tile : (ty + 1) * config.infer_tile,
                tx * config.infer_tile : (tx + 1) * config.infer_tile,
            ] = core
    raw.close()
    return n_tiles / (time.perf_counter() - start)


def bench_inference(slide: Path, ckpt: Path, device: Any, config: BenchConfig) -> list[Figure]:
    side = config.infer_tile + 2 * (32 if config.quick else 64)
    bare = _bare_model(ckpt, device, config, side)
    runs: list[PredictRun] = []

    def product() -> float:
        runs.append(_predict_rate(slide, ckpt, device, config))
        return runs[-1].rate

    p, m, sp, sm = alternate(product, bare, config.rounds)
    vs_model = Figure(
        "infer_vs_model",
        p,
        m,
        "tiles/s",
        ">= 0.9",
        extra={
            "tile": config.infer_tile,
            "input": side,
            "batch": config.infer_batch,
            "tiles": runs[-1].tiles,
        },
    )
    n_naive = 4 if config.quick else 24
    naive = [_naive_rate(slide, ckpt, n_naive, config) for _ in range(max(1, config.rounds // 2))]
    naive_rate = float(np.median(naive))
    # the whole slide: the naive loop runs the model on every tile of the grid, the product on
    # the tissue tiles only (its wall time includes loading the model and the tissue mask)
    slide_s = float(np.median([r.seconds for r in runs]))
    grid = runs[-1].grid
    naive_slide_s = grid / naive_rate if naive_rate > 0 else float("nan")
    vs_naive = Figure(
        "infer_vs_naive",
        p,
        naive_rate,
        "tiles/s",
        ">= 3",
        extra={
            "naive": "read_region + fp32 model, batch 1, per tile",
            "grid_tiles": grid,
            "tissue_tiles": runs[-1].tiles,
            "slide_seconds": slide_s,
            "naive_slide_seconds": naive_slide_s,
            "slide_ratio": naive_slide_s / slide_s if slide_s > 0 else float("nan"),
        },
    )
    return [vs_model, vs_naive]


def bench_compile(slide: Path, ckpt: Path, device: Any, config: BenchConfig) -> Figure:
    """``predict_slide`` with the model compiled (``compile="on"``) vs plain, tiles/s after the
    first batch; the compilation itself, a one-off, is reported beside (``compile_seconds``),
    with the number of tiles from which it pays for itself."""
    plain = _predict_rate(slide, ckpt, device, config, compile="off")
    compiled = _predict_rate(slide, ckpt, device, config, compile="on")
    extra_s = max(0.0, compiled.first_s - plain.first_s)
    gain_per_tile = 1 / plain.rate - 1 / compiled.rate if plain.rate and compiled.rate else 0.0
    return Figure(
        "infer_compiled",
        compiled.rate,
        plain.rate,
        "tiles/s",
        "pays on big slides",
        extra={
            "compile_seconds": extra_s,
            "break_even_tiles": extra_s / gain_per_tile if gain_per_tile > 0 else None,
            "tiles": compiled.tiles,
        },
    )


def bench_precision(ckpt: Path, config: BenchConfig) -> Figure:
    """bf16 autocast against fp32 on the CPU: tiles/s, and how much the probabilities move."""
    import torch

    device = torch.device("cpu")
    side = config.infer_tile + 2 * (32 if config.quick else 64)
    bf16 = _bare_model(ckpt, device, config, side, precision="bf16")
    fp32 = _bare_model(ckpt, device, config, side, precision="fp32")
    a, b, _, _ = alternate(bf16, fp32, max(2, config.rounds // 2))
    model = load_checkpoint(ckpt, device=device).model
    torch.manual_seed(1)
    x = torch.rand(config.infer_batch, 3, side, side)
    with torch.inference_mode():
        ref = torch.softmax(model(x)["seg"].float(), 1)
        with autocast_for(device, "bf16"):
            low = torch.softmax(model(x)["seg"].float(), 1)
    diff = (ref - low).abs()
    agree = (ref.argmax(1) == low.argmax(1)).float().mean().item()
    return Figure(
        "cpu_precision",
        a,
        b,
        "tiles/s",
        "auto_precision is the faster one; argmax agreement >= 0.99",
        extra={
            "auto_precision": "bf16" if cpu_has_bf16() else "fp32",
            "max_abs_prob_diff": diff.max().item(),
            "mean_abs_prob_diff": diff.mean().item(),
            "argmax_agreement": agree,
        },
    )
