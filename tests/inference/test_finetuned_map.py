"""The full fine-tune mode's map of the synthetic slide: it draws the tumour (Dice >= 0.8), and
the same map in a window of its training patch's size and in the default window, 4.5 times
larger (the window-independence tolerance of docs/training.md)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import zarr

from napari_wsi_ssl.evaluation.masks import map_on_mask_grid
from napari_wsi_ssl.events import run_to_end
from napari_wsi_ssl.inference import PredictConfig, predict_slide
from napari_wsi_ssl.inference.jobs import is_window_free
from napari_wsi_ssl.models import build_model, load_checkpoint, save_checkpoint
from napari_wsi_ssl.synthetic import read_tissue_mask, read_tumour_mask
from napari_wsi_ssl.training import FinetuneConfig, FinetuneData, finetune

pytestmark = pytest.mark.slow

STEPS = 150
#: The stated tolerance: over tissue, the probabilities of two windows differ by at most this
#: much on average, and their Dice scores by at most DICE_TOLERANCE.
MEAN_TOLERANCE = 0.05
DICE_TOLERANCE = 0.03


def test_full_mode_map_matches_ground_truth_in_any_window(synthetic, tmp_path: Path) -> None:
    truth = read_tumour_mask(synthetic) > 0
    tissue = read_tissue_mask(synthetic) > 0
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny model: one thread is as fast, and steadier on a busy machine
    try:
        torch.manual_seed(0)
        pre = build_model("unet-resnet34", "reconstruct", width=8)
        init = save_checkpoint(tmp_path / "pre.pt", pre, mpp=2.0, patch_size=64)
        cfg = FinetuneConfig(
            task="segment",
            mode="full",
            patch_size=64,  # small patches: 32 px of context are added around each
            batch_size=8,
            steps=STEPS,
            num_patches=256,
            device="cpu",
            seed=0,
        )
        data = FinetuneData.from_mask_file(synthetic.slide, synthetic.tumour_mask)
        ckpt = run_to_end(finetune(data, cfg, tmp_path / "tumour.pt", init=init))
        ck = load_checkpoint(ckpt)
        assert ck.patch_size == 128 and ck.train_config["context"] == 32
        assert is_window_free(ck)
        default = PredictConfig(device="cpu")
        assert default.window(ck.patch_size, is_window_free(ck)) == (512, 32)  # 576 px
        trained = PredictConfig(tile_size=64, margin=32, device="cpu")  # 128 px windows
        probs, tiles = {}, {}
        for name, pc in (("trained", trained), ("default", default)):
            store = run_to_end(predict_slide(synthetic.slide, ckpt, tmp_path / name, pc))
            tiles[name] = zarr.open_group(str(store), mode="r")["tumour/0"].chunks
            grid = (store, truth.shape, synthetic.gt_downsample, (synthetic.mpp,) * 2)
            probs[name] = map_on_mask_grid(*grid)
    finally:
        torch.set_num_threads(threads)
    dice = {k: _dice(p >= 0.5, truth) for k, p in probs.items()}
    diff = np.abs(probs["trained"] - probs["default"])[tissue]
    print(f"after {STEPS} steps: Dice {dice}, |difference| over tissue mean {diff.mean():.4f}")
    assert tiles == {"trained": (64, 64), "default": (512, 512)}
    assert min(dice.values()) >= 0.8
    assert abs(dice["trained"] - dice["default"]) <= DICE_TOLERANCE
    assert diff.mean() <= MEAN_TOLERANCE


def test_small_patch_checkpoints_keep_windows_of_their_patch_size(tiny_segment_ckpt) -> None:
    """A UNet trained on 64 px patches (without context) judges larger windows differently:
    its default window stays that of its training patches."""
    ck = load_checkpoint(tiny_segment_ckpt)
    assert ck.patch_size == 64 and not is_window_free(ck)
    assert PredictConfig().window(ck.patch_size, is_window_free(ck)) == (32, 32)


def _dice(pred: np.ndarray, truth: np.ndarray) -> float:
    return float(2 * (pred & truth).sum() / max(1, pred.sum() + truth.sum()))
