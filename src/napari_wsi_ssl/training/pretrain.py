"""Self-supervised pretraining: reconstruct the patch from a corrupted copy, Adam with a step schedule.

The objective (``training.objectives``) decides the corruption: none for the papers' pixel L1.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import SlideError, TrainingError
from ..events import CancelToken
from ..models import build_model
from ..patches import Augment, ImageFiles, SlidePatches, grid_coords, random_coords, to_uint8
from ..patches.augment import augment_for
from ..slide import open_slide, tissue_mask
from . import objectives
from .config import PretrainConfig
from .data import Indexed, resolve_sources
from .engine import Job, run


def slide_patches(
    slides: Sequence[Path],
    mpp: float | None,
    patch_size: int,
    per_slide: int,
    min_tissue: float,
    seed: int,
    augment: Augment,
    slide_mpp: float | None = None,
) -> SlidePatches:
    """Grid patches over the tissue of each slide, at most ``per_slide`` of them (a seeded subset)."""
    rng = np.random.default_rng(seed)
    coords, downsamples = [], []
    for k, path in enumerate(slides):
        with open_slide(path, mpp=slide_mpp) as slide:
            d = 1.0 if mpp is None else slide.downsample_for_mpp(mpp)
            if slide.dimensions[0] < patch_size * d or slide.dimensions[1] < patch_size * d:
                raise SlideError(
                    f"is smaller than one {patch_size} px patch at {mpp} um/px",
                    path,
                    "lower the 'patch_size' or 'mpp' setting",
                )
            mask, mask_ds = tissue_mask(slide)
        xy = grid_coords(mask, mask_ds, patch_size, d, min_fraction=min_tissue)
        if len(xy) == 0 and mask.any():
            xy = random_coords(mask, mask_ds, patch_size, d, min(per_slide, 256), rng)
        if len(xy) == 0:
            xy = grid_coords(np.ones_like(mask), mask_ds, patch_size, d, min_fraction=0.0)
        if len(xy) > per_slide:
            xy = xy[np.sort(rng.choice(len(xy), per_slide, replace=False))]
        coords.append(np.column_stack([np.full(len(xy), k), xy]))
        downsamples.append(d)
    return SlidePatches(
        slides,
        downsamples,
        np.concatenate(coords),
        patch_size,
        augment=augment,
        seed=seed,
        mpps=[slide_mpp] * len(slides),
    )


def _preview(out: dict[str, torch.Tensor], batch: dict[str, Any]) -> dict[str, np.ndarray]:
    return {"input": to_uint8(out["input"][0]), "recon": to_uint8(out["recon"][0])}


def pretrain(
    sources: Sequence[str | Path],
    config: PretrainConfig,
    out: str | Path,
    cancel: CancelToken | None = None,
) -> Generator[Any, None, Path]:
    """Pretrain a preset by reconstruction (``config.objective``) on slides and/or patch folders.

    Yields ``Progress`` every step, ``Preview`` (input and reconstruction) every
    ``config.preview_every`` steps and ``Log`` lines; returns the checkpoint path. The checkpoint
    is written every epoch, at the end, on cancellation (the generator then returns normally)
    and on KeyboardInterrupt (re-raised).
    """
    slides, images = resolve_sources(sources)
    augment = augment_for(config.augment)
    parts: list[Any] = []
    if slides:
        parts.append(
            slide_patches(
                slides,
                config.mpp,
                config.patch_size,
                config.patches_per_slide,
                config.min_tissue,
                config.seed,
                augment,
                config.slide_mpp,
            )
        )
    if images:
        parts.append(ImageFiles(images, config.patch_size, augment=augment, seed=config.seed))
    train_set = Indexed(parts)
    if len(train_set) == 0:
        raise TrainingError("no patch could be drawn from the sources", sources[0])
    torch.manual_seed(config.seed)
    model = build_model(config.preset, "reconstruct", width=config.width)

    def forward(net: torch.nn.Module, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        seen = objectives.corrupt(
            config.objective,
            batch["image"],
            batch["index"],
            config.seed,
            train_set.epoch,
            model.mean,
        )
        out = dict(net(seen.inputs), input=seen.inputs, target=seen.target)
        if seen.weight is not None:
            out["weight"] = seen.weight
        return out

    def loss_fn(outputs: dict[str, torch.Tensor], batch: dict[str, Any]) -> torch.Tensor:
        seen = objectives.Corrupted(outputs["input"], outputs["target"], outputs.get("weight"))
        return objectives.loss(outputs["recon"], seen)

    job = Job(
        config=config,
        model=model,
        params=list(model.parameters()),
        train_set=train_set,
        loss_fn=loss_fn,
        forward=forward,
        meta={
            "mpp": config.mpp,
            "patch_size": config.patch_size,
            "class_names": [],
            "train_config": {**config.to_dict(), "sources": [str(s) for s in sources]},
        },
        preview=_preview,
    )
    return (yield from run(job, Path(out), cancel))
