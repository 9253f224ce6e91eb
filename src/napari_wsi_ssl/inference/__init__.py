"""Whole-slide inference: tiled, seam-free prediction into cached OME-Zarr pyramids, and nuclei.

torch is imported only when a model runs, so the nuclei and store helpers stay light.
"""

from .config import PredictConfig
from .nuclei import estimate_mpp, nuclei_classical, nuclei_from_probs
from .predict import predict_opened, predict_slide

__all__ = [
    "PredictConfig",
    "estimate_mpp",
    "nuclei_classical",
    "nuclei_from_probs",
    "predict_opened",
    "predict_slide",
]
