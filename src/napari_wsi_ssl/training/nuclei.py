"""The nuclei task's data: an image-level train/validation split of a nuclei folder, in µm.

Crops of one image never land on both sides of the split; every image is resampled to the
model's µm/px (``NucleiFolder``), and the model records that µm/px.
"""

from __future__ import annotations

from typing import Any

from ..errors import TrainingError
from ..events import Log
from ..patches import NO_AUGMENT, Augment, NucleiFolder
from ..patches.nuclei import crops_per_image
from .config import FinetuneConfig
from .data import FinetuneData

#: Cross-entropy weights of background, foreground and boundary: the thin boundary class is what
#: separates touching nuclei, so its pixels count more.
CLASS_WEIGHTS = (1.0, 1.0, 2.0)


def nuclei_mpp(data: FinetuneData, cfg: FinetuneConfig, inherited: float | None) -> float | None:
    """The model's µm/px: the config's, else the initial checkpoint's, else the images' own.

    Images of unknown µm/px cannot be resampled: an explicit working µm/px then fails, an
    inherited one is dropped (the model works at the images' native scale).
    """
    if cfg.mpp is not None and data.slide_mpp is None:
        raise TrainingError(
            f"cannot train at {cfg.mpp} µm/px: the images' own µm/px is unknown",
            data.folder,
            "give the images' µm/px (--slide-mpp), or leave out --mpp",
        )
    if data.slide_mpp is None:
        return None
    return cfg.mpp if cfg.mpp is not None else (inherited or data.slide_mpp)


def nuclei_sets(
    data: FinetuneData,
    cfg: FinetuneConfig,
    patch_size: int,
    inherited_mpp: float | None,
    augment: Augment,
) -> tuple[NucleiFolder, NucleiFolder, list[str], float | None, list[Log]]:
    """(train set, validation set, class names, the model's µm/px, notes)."""
    assert data.folder is not None
    mpp = nuclei_mpp(data, cfg, inherited_mpp)
    stems = NucleiFolder(data.folder).stems
    kept = [s for s in stems if s not in set(data.exclude)]
    if not kept:
        raise TrainingError("every image is held out", data.folder, "hold out fewer images")
    tr, va = cfg.split(len(kept))
    train_ids, val_ids = [kept[int(k)] for k in tr], [kept[int(k)] for k in va]
    common: dict[str, Any] = {"seed": cfg.seed, "mpp": data.slide_mpp, "target_mpp": mpp}
    train = NucleiFolder(
        data.folder,
        patch_size,
        augment=augment,
        images=train_ids,
        crops=crops_per_image(cfg.num_patches, len(train_ids)),
        **common,
    )
    val: Any = []
    if val_ids:
        n_val = min(cfg.max_val, max(1, round(cfg.num_patches * cfg.val_fraction)))
        val = NucleiFolder(
            data.folder,
            patch_size,
            augment=NO_AUGMENT,
            images=val_ids,
            crops=crops_per_image(n_val, len(val_ids)),
            vary=False,
            **common,
        )
    scale = "native scale" if mpp is None else f"{mpp:g} µm/px"
    notes = [
        Log(
            f"nuclei: {len(train_ids)} training and {len(val_ids)} validation images at {scale}"
            + (f", {len(data.exclude)} held out" if data.exclude else "")
        )
    ]
    return train, val, train.class_names, mpp, notes
