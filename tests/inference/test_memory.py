"""Bounded memory: whole-slide prediction never holds a level of the output."""

from __future__ import annotations

import tracemalloc

import pytest
import zarr

from napari_wsi_ssl.events import run_to_end
from napari_wsi_ssl.inference import PredictConfig, predict_slide


@pytest.mark.slow
def test_peak_traced_allocation_stays_far_below_a_level(synthetic, tmp_path, monkeypatch):
    import torch

    from napari_wsi_ssl.slide import _tiff

    # the slide's decoded-tile cache has its own fixed bound (32 MB, tested in tests/slide), as
    # large as this small slide's whole level: without it, what is left is the prediction's own
    monkeypatch.setattr(_tiff.TileCache.__init__, "__defaults__", (0,))

    from napari_wsi_ssl.models import build_model, save_checkpoint

    torch.manual_seed(0)
    model = build_model("unet-resnet34", "segment", num_classes=2, width=4, seg_head="light").eval()
    ckpt = save_checkpoint(tmp_path / "tiny.pt", model, mpp=synthetic.mpp, patch_size=64)
    cfg = PredictConfig(tile_size=256, margin=32, batch_size=2)
    # warm up: imports, model load and the first chunks are one-off costs, not per-slide ones
    run_to_end(
        predict_slide(synthetic.slide, ckpt, tmp_path / "warm", cfg, region=(0, 0, 512, 512))
    )
    tracemalloc.start()
    try:
        store = run_to_end(predict_slide(synthetic.slide, ckpt, tmp_path / "full", cfg))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    level = zarr.open(str(store))["tumour/0"]
    assert level.shape == (synthetic.size, synthetic.size)
    assert level[:].any()
    float_level = level.size * 4  # what stitching a whole level in memory would hold
    assert peak < float_level / 2, f"peak {peak / 1e6:.1f} MB vs level {float_level / 1e6:.1f} MB"
