"""Fine-tuning from painted arrays over a slide, patch folders and nuclei folders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from napari_wsi_ssl.errors import AnnotationError, TrainingError
from napari_wsi_ssl.events import Progress, run_to_end
from napari_wsi_ssl.models import load_checkpoint
from napari_wsi_ssl.training import FinetuneConfig, FinetuneData, PretrainConfig, finetune, pretrain

FAST = {"device": "cpu", "precision": "fp32", "batch_size": 4, "patch_size": 32}


@pytest.fixture(scope="module")
def pretrained(patch_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("pre") / "unet.pt"
    cfg = PretrainConfig(
        width=8,
        patch_size=32,
        batch_size=4,
        steps=2,
        device="cpu",
        precision="fp32",
        mpp=2.0,
        preset="unet-resnet34",
    )
    return run_to_end(pretrain([patch_folder], cfg, out))


def _painted(synthetic) -> FinetuneData:
    from napari_wsi_ssl.synthetic import read_tumour_mask

    gt = read_tumour_mask(synthetic)
    labels = np.zeros_like(gt, dtype=np.uint8)  # sparse strokes: a few rows of each class
    labels[::7][gt[::7] > 0] = 1
    labels[::7][gt[::7] == 0] = 2
    return FinetuneData.from_arrays(synthetic.slide, labels, synthetic.gt_downsample)


def test_frozen_encoder_segmentation_from_painted_array(
    synthetic, pretrained: Path, tmp_path: Path
) -> None:
    cfg = FinetuneConfig(**FAST, task="segment", mode="frozen-encoder", num_patches=24, epochs=2)
    events = []
    gen = finetune(_painted(synthetic), cfg, tmp_path / "seg.pt", init=pretrained)
    while True:
        try:
            events.append(next(gen))
        except StopIteration as stop:
            out = stop.value
            break
    vals = [e for e in events if isinstance(e, Progress) and e.metrics]
    assert len(vals) == 2 and {"val_loss", "val_acc", "val_miou"} <= set(vals[0].metrics)
    assert all(0.0 <= v.metrics[k] <= 1.0 for v in vals for k in ("val_acc", "val_miou"))
    ck = load_checkpoint(out)
    assert ck.task == "segment" and ck.class_names == ["background", "tumour", "normal"]
    assert ck.arch["seg_head"] == "light" and ck.mpp == 2.0 and ck.patch_size == 32
    pre = load_checkpoint(pretrained).model.encoder.state_dict()
    for k, v in ck.model.encoder.state_dict().items():  # the encoder stayed frozen
        assert torch.equal(v, pre[k]), k
    seg = ck.model(torch.rand(1, 3, 32, 32))["seg"]
    assert seg.shape == (1, 3, 32, 32)


def test_full_unet_segmentation_trains_recon_too(
    synthetic, pretrained: Path, tmp_path: Path
) -> None:
    cfg = FinetuneConfig(**FAST, task="segment", mode="full", num_patches=12, steps=3)
    out = run_to_end(finetune(_painted(synthetic), cfg, tmp_path / "u.pt", init=pretrained))
    ck = load_checkpoint(out)
    assert set(ck.model(torch.rand(1, 3, 32, 32))) == {"seg", "recon"}
    assert ck.train_config["mode"] == "full" and ck.history["epoch"]
    # 32 px patches are trained with 48 px of context around them: 128 px, window-free
    assert ck.patch_size == 128 and ck.train_config["context"] == 48


def test_context_is_left_out_of_the_segmentation_loss() -> None:
    from napari_wsi_ssl.training.config import context_for
    from napari_wsi_ssl.training.finetune import _centre_only

    assert [context_for(p, None) for p in (32, 64, 96, 128, 256)] == [48, 32, 16, 0, 0]
    assert context_for(64, 0) == 0 and context_for(256, 64) == 64
    mask = torch.ones(2, 8, 8, dtype=torch.long)
    out = _centre_only(mask, 2, 0)
    assert int(out.sum()) == 2 * 16 and bool((out[:, 2:6, 2:6] == 1).all())
    assert _centre_only(mask, 0, 0) is mask
    with pytest.raises(TrainingError, match="context"):
        FinetuneConfig(context=-1)


def test_classify_patch_folder_and_nuclei(
    patch_folder: Path, shared_data: Path, tmp_path: Path
) -> None:
    cfg = FinetuneConfig(
        **FAST, task="classify", mode="scratch", width=8, preset="resnet34-ae", steps=4
    )
    ck = load_checkpoint(
        run_to_end(finetune(FinetuneData.from_patches(patch_folder), cfg, tmp_path / "c.pt"))
    )
    assert ck.class_names == ["non-tumour", "tumour"] and ck.task == "classify"
    cfg = FinetuneConfig(**FAST, task="nuclei", mode="scratch", width=8, steps=2, max_val=4)
    data = FinetuneData.from_nuclei(shared_data / "nuclei" / "dsb2018_stained")
    ck = load_checkpoint(run_to_end(finetune(data, cfg, tmp_path / "n.pt")))
    assert ck.class_names == ["background", "foreground", "boundary"]


def test_bad_inputs(synthetic, patch_folder: Path, tmp_path: Path) -> None:
    one_class = np.ones((16, 16), np.uint8)
    with pytest.raises(AnnotationError, match="two painted classes"):
        run_to_end(
            finetune(
                FinetuneData.from_arrays(synthetic.slide, one_class, 128),
                FinetuneConfig(**FAST, width=8, mode="scratch"),
                tmp_path / "x.pt",
            )
        )
    with pytest.raises(TrainingError, match="does not fit"):
        run_to_end(
            finetune(
                FinetuneData.from_patches(patch_folder),
                FinetuneConfig(**FAST, task="segment"),
                tmp_path / "x.pt",
            )
        )
    with pytest.raises(TrainingError, match="needs a pretrained"):
        run_to_end(
            finetune(
                FinetuneData.from_patches(patch_folder),
                FinetuneConfig(**FAST, task="classify", mode="frozen-encoder"),
                tmp_path / "x.pt",
            )
        )


def test_without_validation_set_the_latest_weights_are_saved(
    synthetic, pretrained: Path, tmp_path: Path
) -> None:
    """No held-out patches: cached frozen features still work, and the file holds the last epoch."""
    cfg = FinetuneConfig(
        **FAST, task="segment", mode="frozen-encoder", num_patches=16, epochs=2, val_fraction=0.0
    )
    out = run_to_end(finetune(_painted(synthetic), cfg, tmp_path / "noval.pt", init=pretrained))
    ck = load_checkpoint(out)
    first = run_to_end(
        finetune(
            _painted(synthetic),
            FinetuneConfig(**{**cfg.__dict__, "epochs": 1}),
            tmp_path / "one.pt",
            init=pretrained,
        )
    )
    # two epochs moved the head past where one epoch left it
    one = load_checkpoint(first).model.state_dict()
    moved = [k for k, v in ck.model.state_dict().items() if not torch.equal(v, one[k])]
    assert moved, "the saved weights are those of the first epoch"
