"""Fixtures of the inference tests: an in-memory slide and tiny checkpoints."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


def _texture(h: int, w: int, seed: int = 0) -> np.ndarray:
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    base = ndimage.gaussian_filter(rng.random((h, w, 3)).astype(np.float32), (6, 6, 0))
    base = (base - base.min()) / (base.max() - base.min())
    return (60 + 180 * base).astype(np.uint8)


@pytest.fixture(scope="session")
def texture() -> np.ndarray:
    return _texture(704, 960)


@pytest.fixture(scope="session")
def tiny_segment_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch

    from napari_wsi_ssl.models import build_model, save_checkpoint

    torch.manual_seed(0)
    model = build_model("unet-resnet34", "segment", num_classes=2, width=8)
    model.eval()
    return save_checkpoint(
        tmp_path_factory.mktemp("ckpt") / "seg.pt", model, mpp=0.5, patch_size=64
    )
