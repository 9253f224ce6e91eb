"""The fast mode: a slide feature cache, a light head trained on it, its maps and suggestions.

Layer: after ``inference`` (it may import slide, patches, models, training and inference);
only evaluation, cli, benchmark and _napari import it, and ``inference.predict_slide`` hands it
head checkpoints.

>>> from napari_wsi_ssl.events import run_to_end
>>> from napari_wsi_ssl.features import fast_finetune
>>> result = run_to_end(fast_finetune("slide.tif", labels, 16, "encoder.pt", "out"))  # doctest: +SKIP
"""

from .cache import FeatureCache, build_cache, build_cache_for, open_cache
from .config import FeatureConfig, HeadConfig
from .distributed import (
    build_cache_distributed,
    build_caches_distributed,
    predict_heads_distributed,
)
from .fast import FastResult, Refiner, SlideStrokes, fast_finetune, fast_finetune_many, predict_head
from .head import TrainedHead, train_head, train_head_many
from .head_file import is_head_checkpoint, load_head, save_head
from .maps import write_head_maps
from .suggest import Suggestion, suggest_from_store, suggest_regions

__all__ = [
    "FastResult",
    "FeatureCache",
    "FeatureConfig",
    "HeadConfig",
    "Refiner",
    "SlideStrokes",
    "Suggestion",
    "TrainedHead",
    "build_cache",
    "build_cache_distributed",
    "build_caches_distributed",
    "build_cache_for",
    "fast_finetune",
    "fast_finetune_many",
    "is_head_checkpoint",
    "load_head",
    "open_cache",
    "predict_head",
    "predict_heads_distributed",
    "save_head",
    "suggest_from_store",
    "suggest_regions",
    "train_head",
    "train_head_many",
    "write_head_maps",
]
