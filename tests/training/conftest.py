"""Tiny inputs for training tests: a folder of small generated patches."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

# tiny models: one thread is faster than two fighting other processes for two cores
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def patch_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """16 images of 40x40 with smooth colour blobs, in two class folders."""
    from PIL import Image

    root = tmp_path_factory.mktemp("patches")
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:40, 0:40]
    for k in range(16):
        cls = k % 2
        (root / str(cls)).mkdir(exist_ok=True)
        cy, cx = rng.integers(8, 32, 2)
        blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (60.0 if cls else 20.0))
        rgb = np.stack([230 - 120 * blob, 200 - 150 * blob, 220 - 60 * blob], -1)
        rgb += rng.normal(0, 4, rgb.shape)
        Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8)).save(root / str(cls) / f"p{k}.png")
    return root
