"""A model fine-tuned from the synthetic slide's ground truth draws its tumour (Dice >= 0.8)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from napari_wsi_ssl.evaluation.masks import map_on_mask_grid
from napari_wsi_ssl.events import run_to_end
from napari_wsi_ssl.inference import PredictConfig, predict_slide
from napari_wsi_ssl.synthetic import read_tumour_mask
from napari_wsi_ssl.training import FinetuneConfig, FinetuneData, finetune

pytestmark = pytest.mark.slow


def test_finetuned_tumour_map_matches_ground_truth(synthetic, tmp_path: Path) -> None:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny model: one thread is as fast, and steadier on a busy machine
    try:
        cfg = FinetuneConfig(
            task="segment",
            mode="scratch",
            width=8,
            mpp=2.0,
            patch_size=128,
            batch_size=8,
            steps=STEPS,
            num_patches=256,
            device="cpu",
            seed=0,
        )
        data = FinetuneData.from_mask_file(synthetic.slide, synthetic.tumour_mask)
        ckpt = run_to_end(finetune(data, cfg, tmp_path / "tumour.pt"))
        store = run_to_end(predict_slide(synthetic.slide, ckpt, tmp_path / "pred", PredictConfig()))
    finally:
        torch.set_num_threads(threads)
    truth = read_tumour_mask(synthetic) > 0
    prob = map_on_mask_grid(store, truth.shape, synthetic.gt_downsample, (synthetic.mpp,) * 2)
    pred = prob >= 0.5
    dice = 2 * (pred & truth).sum() / (pred.sum() + truth.sum())
    print(f"tumour Dice {dice:.3f} after {STEPS} steps")
    assert dice >= 0.8


STEPS = 150
