"""``train_vs_model``: fine-tune steps/s through the real data path against the bare model."""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

from ..events import Progress
from ..models import build_model
from ..models.device import autocast_for
from ..synthetic import load_synthetic_slide
from ..training import FinetuneConfig, FinetuneData, finetune
from ..vocab import Budget, BudgetUnit, Mode, Preset, Task
from .core import BenchConfig, Figure


def _finetune_step_times(slide: Path, device: Any, config: BenchConfig, steps: int) -> list[float]:
    """Seconds between consecutive training steps of a real ``finetune`` run."""
    import tempfile

    syn = load_synthetic_slide(slide.parent)
    if syn is None:
        raise RuntimeError(f"{slide}: the training bench needs a synthetic slide with its mask")
    data = FinetuneData.from_mask_file(syn.slide, syn.tumour_mask)
    cfg = FinetuneConfig(
        task=Task.SEGMENT.value,
        mode=Mode.SCRATCH.value,
        preset=Preset.UNET_RESNET34.value,
        width=config.train_width,
        mpp=1.0,
        patch_size=config.train_patch,
        context=0,  # time patches of the size named, without the context added around small ones
        batch_size=config.train_batch,
        budget=Budget(steps, BudgetUnit.STEPS.value),
        num_patches=max(64, steps * config.train_batch),
        max_val=config.train_batch,
        device=str(device),
        preview_every=10**9,
    )
    stamps: list[tuple[int, float]] = []
    with tempfile.TemporaryDirectory(dir=config.work_dir) as tmp:
        gen = finetune(data, cfg, Path(tmp) / "bench.pt")
        while True:
            try:
                ev = next(gen)
            except StopIteration:
                break
            if isinstance(ev, Progress) and ev.loss is not None and not ev.metrics:
                stamps.append((ev.step, time.perf_counter()))
    # consecutive steps only: an epoch's validation between two steps is not a training step
    return [
        t1 - t0 for (s0, t0), (s1, t1) in zip(stamps, stamps[1:], strict=False) if s1 == s0 + 1
    ][2:]


def _bare_step_times(device: Any, config: BenchConfig, steps: int) -> list[float]:
    """The same model, optimiser, loss and precision on preloaded tensors."""
    import torch
    import torch.nn.functional as F

    torch.manual_seed(0)
    model = build_model(
        Preset.UNET_RESNET34, Task.SEGMENT, num_classes=3, width=config.train_width
    ).to(device)
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    p, b = config.train_patch, config.train_batch
    x = torch.rand(b, 3, p, p, device=device)
    y = torch.randint(0, 3, (b, p, p), device=device)
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        with autocast_for(device):
            out = model(x)
            loss = F.cross_entropy(out["seg"].float(), y) + F.l1_loss(out["recon"].float(), x)
        loss.backward()
        opt.step()
        float(loss.detach())
        times.append(time.perf_counter() - start)
    return times[2:]


def bench_training(slide: Path, ckpt: Path, device: Any, config: BenchConfig) -> Figure:
    steps = 8 if config.quick else 14
    a: list[float] = []
    b: list[float] = []
    # A, B, A, B ... : three pairs at least, single pairs of 14 steps varied by +-15 %
    for _ in range(max(1 if config.quick else 3, config.rounds // 2)):
        a.append(1 / statistics.median(_finetune_step_times(slide, device, config, steps)))
        b.append(1 / statistics.median(_bare_step_times(device, config, steps)))
    return Figure(
        "train_vs_model",
        statistics.median(a),
        statistics.median(b),
        "steps/s",
        ">= 0.9",
        extra={
            "patch": config.train_patch,
            "batch": config.train_batch,
            "width": config.train_width,
        },
    )
