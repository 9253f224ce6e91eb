"""Helpers of the fast-mode tests (imported by name: rootdir-relative, like inference_helpers)."""

from __future__ import annotations

import numpy as np

from napari_wsi_ssl.features import FeatureConfig

#: Small tiles so that a 2048 px slide has a few dozen of them.
SMALL = FeatureConfig(tile=32, fit_windows=2, fit_size=256, channels=8)
#: A 3 x 3 block of SMALL tiles in the middle of the 2048 px slide (x, y, w, h level-0 px).
REGION = (512, 512, 1536, 1536)


def stripe_strokes(tumour: np.ndarray, tissue: np.ndarray, every: int = 16) -> np.ndarray:
    """Strokes as a user might paint them: every ``every``-th row of the ground truth, label 1
    on tumour and 2 on other tissue, 0 elsewhere."""
    labels = np.where(tumour, 1, np.where(tissue, 2, 0)).astype(np.uint8)
    strokes = np.zeros_like(labels)
    strokes[::every] = labels[::every]
    return strokes


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2 * (a & b).sum() / max(1, a.sum() + b.sum()))
