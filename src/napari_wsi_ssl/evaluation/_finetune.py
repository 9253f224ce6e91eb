"""The study's calls into training: pretraining on a patch folder and fine-tuning a classifier."""

from __future__ import annotations

from collections.abc import Generator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..events import CancelToken
from ..vocab import Task

if TYPE_CHECKING:
    from .study import StudyConfig


def pretrain_patches(
    folder: Path,
    out: Path,
    config: StudyConfig,
    cancel: CancelToken | None = None,
    objective: str | None = None,
) -> Generator[Any, None, Path]:
    """Pretraining on every image of ``folder`` (labels are not read) with ``objective``
    (the config's by default)."""
    from ..training import PretrainConfig, pretrain  # torch: evaluation stays light to import

    cfg = PretrainConfig(
        preset=config.preset,
        objective=objective or config.objective,
        width=config.width,
        mpp=None,
        patch_size=config.patch_size or _image_size(folder),
        batch_size=config.batch_size,
        budget=config.pretrain_budget or PretrainConfig.budget,
        device=config.device,
        seed=config.seed,
        preview_every=10**9,
    )
    return (yield from pretrain([folder], cfg, out, cancel=cancel))


def finetune_patches(
    train_dir: Path,
    init: Path | None,
    mode: str,
    out: Path,
    config: StudyConfig,
    seed: int,
    cancel: CancelToken | None = None,
    val_fraction: float = 0.2,
) -> Generator[Any, None, Path]:
    """Fine-tune a patch classifier on ``train_dir`` (an ImageFolder) for a fixed budget.

    Fine-tuning holds out ``val_fraction`` of the labelled patches itself and keeps the weights of the
    epoch with the lowest validation loss, as a user with that many labels would.
    """
    from ..training import FinetuneConfig, FinetuneData, finetune  # torch: stays light to import

    cfg = FinetuneConfig(
        task=Task.CLASSIFY.value,
        mode=mode,
        preset=config.preset,
        width=config.width,
        patch_size=config.patch_size or _image_size(train_dir),
        batch_size=config.batch_size,
        budget=config.finetune_budget or FinetuneConfig.budget,
        val_fraction=val_fraction,
        # the feature cache of training cannot take an empty validation set (tiny label sets)
        cache_features=False,
        device=config.device,
        seed=seed,
        preview_every=10**9,
    )
    return (
        yield from finetune(
            FinetuneData.from_patches(train_dir), cfg, out, init=init, cancel=cancel
        )
    )


def _image_size(folder: Path) -> int:
    from PIL import Image

    first = next(p for p in sorted(folder.rglob("*")) if p.is_file())
    with Image.open(first) as im:
        return min(im.size)
