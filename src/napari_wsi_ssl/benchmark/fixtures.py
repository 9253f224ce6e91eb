"""Inputs of the bench: a synthetic slide and a model with random weights."""

from __future__ import annotations

from pathlib import Path

from ..models import build_model, save_checkpoint
from ..synthetic import load_synthetic_slide, write_synthetic_slide


def bench_slide(work_dir: Path, size: int) -> Path:
    """A synthetic slide of ``size`` px a side, written once and reused."""
    folder = work_dir / f"synthetic_{size}"
    syn = load_synthetic_slide(folder)
    if syn is None or syn.size != size:
        syn = write_synthetic_slide(folder, size=size, seed=0)
    return syn.slide


def random_checkpoint(path: Path, width: int, mpp: float) -> Path:
    """A segmentation UNet (paper 2's preset) with random weights: speed does not depend on them."""
    import torch

    torch.manual_seed(0)
    model = build_model("unet-resnet34", "segment", num_classes=2, width=width)
    return save_checkpoint(
        path, model, mpp=mpp, patch_size=256, class_names=["background", "tumour"]
    )
