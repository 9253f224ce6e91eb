"""Fixtures of the fast-mode tests: a tiny encoder, caches of the session's synthetic slide, and
strokes drawn from its ground truth."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from napari_wsi_ssl.events import run_to_end
from napari_wsi_ssl.features import FeatureCache, FeatureConfig, build_cache_for


@pytest.fixture(scope="session")
def tiny_encoder(tmp_path_factory: pytest.TempPathFactory, synthetic) -> Path:
    """A width-8 UNet checkpoint with random weights, working at twice the slide's mpp."""
    import torch

    from napari_wsi_ssl.models import build_model, save_checkpoint

    torch.manual_seed(0)
    model = build_model("unet-resnet34", "reconstruct", width=8)
    path = tmp_path_factory.mktemp("encoder") / "encoder.pt"
    return save_checkpoint(path, model, mpp=synthetic.mpp * 2, patch_size=128)


@pytest.fixture(scope="session")
def colour_cache(tmp_path_factory: pytest.TempPathFactory, synthetic) -> FeatureCache:
    """The colour-only cache of the synthetic slide at twice its mpp (stride 8)."""
    out = tmp_path_factory.mktemp("colour_cache")
    cfg = FeatureConfig(tile=32, mpp=synthetic.mpp * 2)
    path = run_to_end(build_cache_for(synthetic.slide, None, out, cfg))
    return FeatureCache.open(path)


@pytest.fixture(scope="session")
def ground_truth(synthetic) -> tuple[np.ndarray, np.ndarray]:
    """(tumour, tissue) ground truth as bool arrays at ``synthetic.gt_downsample``."""
    from napari_wsi_ssl.synthetic import read_tissue_mask, read_tumour_mask

    return read_tumour_mask(synthetic) > 0, read_tissue_mask(synthetic) > 0
