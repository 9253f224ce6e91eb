"""Pretraining objectives and HED stain augmentation on real PCam patches with a tiny model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from napari_wsi_ssl.cli import main
from napari_wsi_ssl.errors import TrainingError
from napari_wsi_ssl.events import CancelToken, Preview, Progress, run_to_end
from napari_wsi_ssl.models import load_checkpoint
from napari_wsi_ssl.patches import NO_AUGMENT, Augment, ImageFiles
from napari_wsi_ssl.patches.augment import (
    HED_AUGMENT,
    augment_for,
    hed_to_rgb,
    rgb_to_hed,
    sample_generator,
)
from napari_wsi_ssl.training import FinetuneConfig, PretrainConfig, pretrain
from napari_wsi_ssl.training.objectives import MASK_RATIO, corrupt
from napari_wsi_ssl.vocab import Objective

TINY = {"width": 8, "patch_size": 32, "device": "cpu", "precision": "fp32", "mpp": None}


@pytest.fixture(scope="module")
def pcam_few(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """24 tumour and 24 normal PCam training patches (links to the real files)."""
    root = tmp_path_factory.mktemp("pcam_few")
    for label in ("0", "1"):
        for f in sorted((shared_data / "pcam" / "train" / label).glob("*.jpg"))[:24]:
            (root / f"{label}_{f.name}").symlink_to(f)
    return root


def _images(folder: Path, n: int = 4, size: int = 64) -> torch.Tensor:
    ds = ImageFiles(sorted(folder.iterdir())[:n], size, augment=NO_AUGMENT)
    return torch.stack([ds[k]["image"] for k in range(n)])


@pytest.mark.parametrize("objective", Objective.values())
def test_objective_loss_falls_and_checkpoint_records_it(
    objective: str, pcam_few: Path, tmp_path: Path
) -> None:
    cfg = PretrainConfig(
        **TINY, objective=objective, batch_size=8, lr=1e-3, steps=20, preview_every=20
    )
    events = []
    out = run_to_end(pretrain([pcam_few], cfg, tmp_path / "m.pt"), events.append)
    losses = [e.loss for e in events if isinstance(e, Progress)]
    assert len(losses) == 20 and all(np.isfinite(losses))
    assert np.mean(losses[-4:]) < 0.8 * np.mean(losses[:4]), losses
    ck = load_checkpoint(out)
    assert ck.train_config["objective"] == objective and ck.train_config["augment"] == "hed"
    (preview,) = [e for e in events if isinstance(e, Preview)]
    assert preview.images["input"].shape == preview.images["recon"].shape == (32, 32, 3)


def test_mask_covers_the_stated_fraction(pcam_few: Path) -> None:
    x = _images(pcam_few)  # 64 px: an 8 x 8 grid of 8 px squares
    fill = torch.tensor([0.5, 0.4, 0.3]).view(1, 3, 1, 1)
    seen = corrupt("mim", x, torch.arange(4), seed=0, epoch=0, fill=fill)
    assert seen.weight is not None and torch.equal(seen.target, x)
    fractions = seen.weight.mean(dim=(1, 2, 3))
    assert torch.allclose(fractions, torch.full((4,), round(MASK_RATIO * 64) / 64))
    masked = seen.weight.bool().expand_as(x)
    assert torch.equal(seen.inputs[masked], fill.expand_as(x)[masked])
    assert torch.equal(seen.inputs[~masked], x[~masked])
    assert not torch.equal(seen.weight[0], seen.weight[1])  # each sample its own squares
    again = corrupt("mim", x, torch.arange(4), seed=0, epoch=0, fill=fill)
    later = corrupt("mim", x, torch.arange(4), seed=0, epoch=1, fill=fill)
    assert torch.equal(again.weight, seen.weight) and not torch.equal(later.weight, seen.weight)
    # the loss counts the masked pixels only: a perfect guess there costs nothing
    from napari_wsi_ssl.training.objectives import loss

    assert float(loss(torch.where(masked, x, 1 - x), seen)) == 0.0
    assert float(loss(1 - x, seen)) > 0.1


def test_stain_corruptions_keep_range_and_hide_a_stain(pcam_few: Path) -> None:
    x = _images(pcam_few)
    fill = torch.zeros(1, 3, 1, 1)
    stain = corrupt("stain", x, torch.arange(4), seed=0, epoch=0, fill=fill)
    assert stain.weight is None and torch.equal(stain.target, x)
    assert float(stain.inputs.min()) >= 0.0 and float(stain.inputs.max()) <= 1.0
    assert float((stain.inputs - x).abs().mean()) > 0.02
    cross = corrupt("cross-stain", x, torch.arange(4), seed=0, epoch=0, fill=fill)
    hed = rgb_to_hed(cross.inputs)
    # each sample keeps one stain, haematoxylin or eosin; the other two layers are gone
    kept = hed.abs().amax(dim=(2, 3)) > 1e-4
    assert kept.sum(1).tolist() == [1, 1, 1, 1] and not kept[:, 2].any()
    assert {int(k) for k in kept.float().argmax(1)} <= {0, 1}


def test_hed_matches_skimage_and_augmentation_keeps_range(pcam_few: Path) -> None:
    from skimage.color import rgb2hed

    x = _images(pcam_few, n=2, size=96)
    hed = rgb_to_hed(x)
    ref = rgb2hed(x[0].permute(1, 2, 0).numpy())
    assert np.abs(hed[0].clamp_min(0).permute(1, 2, 0).numpy() - ref).max() < 1e-5
    assert float((hed_to_rgb(hed) - x).abs().max()) < 1e-4
    jitter = Augment(False, 0, 0, 0, 0, hed_scale=0.1, hed_shift=0.005)
    shifts = []
    for k in range(6):
        y, _ = jitter(x[0], None, sample_generator(0, 0, k))
        assert y.shape == x[0].shape and float(y.min()) >= 0.0 and float(y.max()) <= 1.0
        assert float((y - x[0]).abs().mean()) < 0.15  # plausible staining, not a new image
        shifts.append((rgb_to_hed(y) - hed[0]).mean(dim=(1, 2)))
    moved = torch.stack(shifts).abs()
    assert (moved[:, 0] > 1e-3).any() and (moved[:, 1] > 1e-3).any()  # H and E both change


def test_augment_and_objective_settings() -> None:
    assert augment_for(True) is HED_AUGMENT and augment_for("hed") is HED_AUGMENT
    assert augment_for("rgb") == Augment() and augment_for(False) is NO_AUGMENT
    assert PretrainConfig().augment == "hed" and PretrainConfig().objective == "mim"
    assert FinetuneConfig(augment=False).augment == "none"
    assert PretrainConfig(augment="rgb").to_dict()["augment"] == "rgb"
    with pytest.raises(TrainingError, match="objective"):
        PretrainConfig(objective="contrastive")
    with pytest.raises(TrainingError, match="augmentation"):
        FinetuneConfig(augment="lab")
    from napari_wsi_ssl.evaluation.study import StudyConfig

    assert StudyConfig(objective="mim").to_dict()["objective"] == "mim"
    with pytest.raises(TrainingError, match="objective"):
        StudyConfig(objective="byol")


def test_mim_resume_equals_uninterrupted(pcam_few: Path, tmp_path: Path) -> None:
    cfg = PretrainConfig(**TINY, objective="mim", preset="unet-resnet34", batch_size=8, steps=8)
    run_to_end(pretrain([pcam_few], cfg, tmp_path / "a.pt"))  # 48 images: 6 steps an epoch
    token = CancelToken()

    def cancel_at_7(event: object) -> None:
        if isinstance(event, Progress) and event.step == 7:
            token.cancel()

    run_to_end(pretrain([pcam_few], cfg, tmp_path / "b.pt", cancel=token), cancel_at_7)
    resumed = PretrainConfig(
        **TINY, objective="mim", preset="unet-resnet34", batch_size=8, steps=8, resume=True
    )
    events: list[object] = []
    run_to_end(pretrain([pcam_few], resumed, tmp_path / "b.pt"), events.append)
    assert [e.step for e in events if isinstance(e, Progress)] == [8]
    a, b = load_checkpoint(tmp_path / "a.pt"), load_checkpoint(tmp_path / "b.pt")
    assert b.train_config["objective"] == "mim"
    for k, v in a.model.state_dict().items():
        assert torch.equal(v, b.model.state_dict()[k]), k


def test_cli_pretrain_objective(pcam_few: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "cli.pt"
    args = ["pretrain", str(pcam_few), "-o", str(out), "--objective", "cross-stain"]
    args += ["--augment", "rgb", "--steps", "2", "--width", "8", "--patch-size", "32"]
    rc = main([*args, "--device", "cpu", "--precision", "fp32", "--batch-size", "4", "--json"])
    assert rc == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["steps"] == 2
    config = load_checkpoint(out).train_config
    assert config["objective"] == "cross-stain" and config["augment"] == "rgb"
    with pytest.raises(SystemExit):  # argparse names the choices
        main(["pretrain", str(pcam_few), "-o", str(out), "--objective", "byol"])
    assert "invalid choice: 'byol'" in capsys.readouterr().err
