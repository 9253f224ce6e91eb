"""Frozen configs of pretraining and fine-tuning; the defaults follow the papers."""

from __future__ import annotations

import dataclasses
from dataclasses import InitVar, dataclass
from typing import Any

import numpy as np

from ..errors import TrainingError
from ..patches.augment import AUGMENTS, augment_name
from ..vocab import DEFAULT_OBJECTIVE, Budget, Mode, Objective, Preset, Task


@dataclass(frozen=True)
class PretrainConfig:
    """Self-supervised reconstruction pretraining (paper 1: autoencoder; paper 2: UNet).

    The budget defaults to the paper's 200 epochs. An epoch is one pass over the patches: every
    grid patch over tissue of every slide (at most ``patches_per_slide``), or every image of a
    patch folder. ``epochs``/``steps``/``minutes`` are shorthands that build ``budget``.
    ``objective`` is what the model learns from (``vocab.Objective``: ``"l1"``, the papers' pixel
    L1, ``"mim"`` (the default, ``vocab.DEFAULT_OBJECTIVE``), ``"stain"`` or ``"cross-stain"``); ``augment`` is the colour augmentation
    (``"hed"`` stain jitter, ``"rgb"`` paper 2's colour jitter or ``"none"``; ``True`` is
    ``"hed"``), always with the 8 dihedral transforms unless ``"none"``.
    """

    preset: str = Preset.RESNET34_AE.value
    objective: str = DEFAULT_OBJECTIVE
    width: int = 64
    mpp: float | None = 1.0
    slide_mpp: float | None = None  # the slides' own µm/px, where their files lack it
    patch_size: int = 256
    batch_size: int = 16
    lr: float = 1e-4
    milestones: tuple[float, float] = (0.55, 0.8)
    gamma: float = 0.1
    budget: Budget = Budget(200)
    patches_per_slide: int = 2000
    min_tissue: float = 0.5
    augment: bool | str = True
    device: str = "auto"
    precision: str = "auto"
    num_workers: int = 0
    seed: int = 0
    preview_every: int = 50
    resume: bool = False
    epochs: InitVar[int | None] = None
    steps: InitVar[int | None] = None
    minutes: InitVar[float | None] = None

    def __post_init__(self, epochs: int | None, steps: int | None, minutes: float | None) -> None:
        _settle(self, epochs, steps, minutes)
        object.__setattr__(self, "objective", Objective.check(self.objective, "objective"))

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "pretrain", **dataclasses.asdict(self)}


@dataclass(frozen=True)
class FinetuneConfig:
    """Fine-tuning for segmentation, classification or nuclei (Adam, fixed lr 1e-4, 80 epochs).

    The budget defaults to the paper's 80 epochs (``epochs``/``steps``/``minutes`` are
    shorthands that build ``budget``). ``mode``: ``"full"`` trains every weight;
    ``"frozen-encoder"`` freezes the encoder (features are cached when the head allows it: the
    fast interactive mode); ``"scratch"`` starts from random weights, the baseline of every study. ``seg_head="auto"`` is the light head for
    ``frozen-encoder`` and the inverted-ResNet decoder otherwise. ``mpp`` and ``patch_size``
    default to the initial checkpoint's.

    ``context``: working pixels of image added on each side of a segmentation patch (with the
    decoder, on a slide) that carry no segmentation loss, so that the decoder learns its map
    from patches of at least ``WINDOW_FREE_PATCH`` pixels and predicts the same map in any
    window that large (``None``: just enough for that, e.g. 32 around 64 px patches; 0 for
    patches of 128 px or more). The checkpoint's ``patch_size`` is the patch trained on,
    context included.
    """

    task: str = Task.SEGMENT.value
    mode: str = Mode.FULL.value
    preset: str = Preset.UNET_RESNET34.value
    width: int = 64
    mpp: float | None = None
    patch_size: int | None = None
    batch_size: int = 16
    lr: float = 1e-4
    budget: Budget = Budget(80)
    num_patches: int = 512
    val_fraction: float = 0.2
    max_val: int = 512
    patience: int = 10
    label_fraction: float = 1.0
    recon_weight: float = 1.0
    context: int | None = None
    seg_head: str = "auto"
    init_decoder: bool | None = None
    cache_features: bool = True
    augment: bool | str = True
    device: str = "auto"
    precision: str = "auto"
    num_workers: int = 0
    seed: int = 0
    preview_every: int = 50
    resume: bool = False
    epochs: InitVar[int | None] = None
    steps: InitVar[int | None] = None
    minutes: InitVar[float | None] = None

    def __post_init__(self, epochs: int | None, steps: int | None, minutes: float | None) -> None:
        _settle(self, epochs, steps, minutes)
        object.__setattr__(self, "task", Task.check(self.task, "task"))
        object.__setattr__(self, "mode", Mode.check(self.mode, "fine-tuning mode"))

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "finetune", **dataclasses.asdict(self)}

    def split(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Sorted (train, validation) indices of ``n`` labelled items: ``val_fraction`` held out
        (none of 4 or fewer; at most ``max_val``), ``label_fraction`` of the rest trained on."""
        order = np.random.default_rng(self.seed + 7919).permutation(n)
        n_val = int(round(n * self.val_fraction)) if n > 4 else 0
        train = order[n_val:]
        train = train[: max(1, int(round(len(train) * self.label_fraction)))]
        return np.sort(train), np.sort(order[:n_val][: self.max_val])


#: The smallest segmentation patch (working px) from which the UNet's map does not depend on the
#: prediction window: on the synthetic slide, a width-8 UNet trained on 64 px patches scored
#: Dice 0.55 in its 96 px windows and 0.13-0.20 in 192-1088 px ones; trained on 128 px patches (64 px
#: of loss, 32 of context, or 128 px of loss) 0.88-0.89 in every window (docs/training.md).
WINDOW_FREE_PATCH = 128


def context_for(patch_size: int, context: int | None) -> int:
    """Pixels of context around a segmentation patch: ``context``, or (``None``) enough to make
    the patch ``WINDOW_FREE_PATCH`` pixels."""
    if context is not None:
        return context
    return max(0, -(-(WINDOW_FREE_PATCH - patch_size) // 2))


def lr_factor(
    progress: float, milestones: tuple[float, ...] = (0.55, 0.8), gamma: float = 0.1
) -> float:
    """Step schedule: the lr factor at a fraction ``progress`` (0..1) of the run.

    ``lr_factor(p)`` is 1 before 55%, 0.1 until 80% and 0.01 after (epochs 110 and 160 of 200).
    """
    return float(gamma ** sum(progress >= m for m in milestones))


def _settle(config: Any, epochs: int | None, steps: int | None, minutes: float | None) -> None:
    """Build ``budget`` from the shorthands, keep names as plain strings, refuse bad numbers."""
    budget = Budget.of(epochs, steps, minutes)
    if budget is not None:
        object.__setattr__(config, "budget", budget)
    object.__setattr__(config, "preset", Preset.check(config.preset, "preset"))
    try:
        object.__setattr__(config, "augment", augment_name(config.augment))
    except ValueError as exc:
        raise TrainingError(
            str(exc).split(";")[0], hint=f"choose one of {', '.join(AUGMENTS)}"
        ) from None
    _check_numbers(config)


def _check_numbers(config: Any) -> None:
    """Refuse sizes that cannot train (a zero batch would divide by zero later)."""
    if getattr(config, "context", None) is not None and config.context < 0:
        raise TrainingError(f"context must not be negative, got {config.context}")
    for name in ("batch_size", "width", "patch_size"):
        value = getattr(config, name, None)
        if value is not None and value < 1:
            raise TrainingError(f"{name} must be at least 1, got {value}")
    if not config.lr > 0:
        raise TrainingError(f"the learning rate must be positive, got {config.lr}")
    for name in ("epochs", "steps", "minutes"):
        value = getattr(config, name)
        if value is not None and value < 0:
            raise TrainingError(f"--{name} must not be negative, got {value}")
