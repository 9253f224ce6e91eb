"""Pretraining and fine-tuning loops as generators of progress events."""

from .config import FinetuneConfig, PretrainConfig, lr_factor
from .data import FinetuneData, resolve_sources
from .finetune import finetune
from .pretrain import pretrain

__all__ = [
    "FinetuneConfig",
    "FinetuneData",
    "PretrainConfig",
    "finetune",
    "lr_factor",
    "pretrain",
    "resolve_sources",
]
