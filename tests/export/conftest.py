"""Fixtures of the export tests: a prediction store of the synthetic slide whose tumour map is
the ground truth, so that what is measured from it can be checked against the truth."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest


@pytest.fixture(scope="session")
def synthetic_store(synthetic: Any, tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Path]:
    """(the synthetic slide, its store): a tiny model's tumour map overwritten with the ground
    truth tumour mask at every level, and classical nuclei."""
    import tifffile
    import torch
    import zarr

    from napari_wsi_ssl.events import run_to_end
    from napari_wsi_ssl.inference import PredictConfig, predict_slide
    from napari_wsi_ssl.inference.store import PredictionStore
    from napari_wsi_ssl.models import build_model, save_checkpoint

    folder = tmp_path_factory.mktemp("store")
    torch.manual_seed(0)
    model = build_model("unet-resnet34", "segment", num_classes=2, width=8).eval()
    ckpt = save_checkpoint(folder / "seg.pt", model, mpp=2.0, patch_size=64)
    config = PredictConfig(tile_size=256, device="cpu", nuclei=True, compile="off")
    store = Path(run_to_end(predict_slide(synthetic.slide, ckpt, folder / "out", config)))
    truth = tifffile.imread(synthetic.tumour_mask) > 0
    stored = PredictionStore(store)["tumour"]
    group = zarr.open_group(str(store / "tumour"), mode="r+")
    for level, ds_entry in enumerate(group.attrs["multiscales"][0]["datasets"]):
        arr = group[ds_entry["path"]]
        k = stored.downsamples[level] / synthetic.gt_downsample
        rows = np.clip(((np.arange(arr.shape[0]) + 0.5) * k).astype(int), 0, truth.shape[0] - 1)
        cols = np.clip(((np.arange(arr.shape[1]) + 0.5) * k).astype(int), 0, truth.shape[1] - 1)
        arr[...] = (truth[rows][:, cols] * 255).astype(arr.dtype)
    return synthetic, store
