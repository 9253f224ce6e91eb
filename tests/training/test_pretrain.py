"""Pretraining: the loss falls, runs resume exactly, cancel and failures keep a good checkpoint."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from napari_wsi_ssl.errors import TrainingError
from napari_wsi_ssl.events import CancelToken, Log, Preview, Progress, run_to_end
from napari_wsi_ssl.models import load_checkpoint
from napari_wsi_ssl.models.device import autocast_for, choose_device
from napari_wsi_ssl.training import PretrainConfig, lr_factor, pretrain

pretrain_module = sys.modules["napari_wsi_ssl.training.pretrain"]

TINY = {
    "width": 8,
    "patch_size": 32,
    "batch_size": 4,
    "device": "cpu",
    "precision": "fp32",
    "mpp": None,
}


def _events(gen):
    events = []
    while True:
        try:
            events.append(next(gen))
        except StopIteration as stop:
            return events, stop.value


def test_schedule_and_device() -> None:
    assert lr_factor(0.0) == 1.0 and lr_factor(0.549) == 1.0
    assert lr_factor(0.55) == pytest.approx(0.1) and lr_factor(110 / 200) == pytest.approx(0.1)
    assert lr_factor(160 / 200) == pytest.approx(0.01) and lr_factor(1.0) == pytest.approx(0.01)
    assert choose_device("cpu").type == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(TrainingError, match="CUDA"):
            choose_device("cuda")
    with autocast_for("cpu", "bf16"):
        assert torch.get_autocast_dtype("cpu") == torch.bfloat16
        assert torch.is_autocast_enabled("cpu")
    with autocast_for("cpu", "fp32"):
        assert not torch.is_autocast_enabled("cpu")


def test_recon_loss_falls_on_synthetic_slide(synthetic, tmp_path: Path) -> None:
    cfg = PretrainConfig(
        **{**TINY, "mpp": 2.0, "batch_size": 8}, lr=1e-3, steps=40, preview_every=20
    )
    events, out = _events(pretrain([synthetic.slide], cfg, tmp_path / "ae.pt"))
    losses = [e.loss for e in events if isinstance(e, Progress)]
    assert len(losses) == 40 and all(np.isfinite(losses))
    assert np.mean(losses[-5:]) < 0.8 * np.mean(losses[:5])
    previews = [e for e in events if isinstance(e, Preview)]
    assert len(previews) == 2 and previews[0].images["recon"].shape == (32, 32, 3)
    ck = load_checkpoint(out)
    assert ck.task == "reconstruct" and ck.mpp == 2.0 and ck.patch_size == 32
    assert len(ck.history["step_loss"]) == 40


def _state(path: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(path).model.state_dict()


def test_resume_equals_uninterrupted_and_cancel_keeps_checkpoint(
    patch_folder: Path, tmp_path: Path
) -> None:
    cfg = PretrainConfig(**TINY, preset="unet-resnet34", steps=7)  # 16 images: 4 steps an epoch
    run_to_end(pretrain([patch_folder], cfg, tmp_path / "a.pt"))
    token = CancelToken()
    gen = pretrain([patch_folder], cfg, tmp_path / "b.pt", cancel=token)
    for event in gen:
        if isinstance(event, Progress) and event.step == 5:
            token.cancel()
    cancelled = load_checkpoint(tmp_path / "b.pt")  # loadable after cancel
    assert cancelled.resume is not None and cancelled.resume["step"] == 5
    resumed = PretrainConfig(**TINY, preset="unet-resnet34", steps=7, resume=True)
    events, _ = _events(pretrain([patch_folder], resumed, tmp_path / "b.pt"))
    steps = [e.step for e in events if isinstance(e, Progress)]
    assert steps == [6, 7]
    a, b = _state(tmp_path / "a.pt"), _state(tmp_path / "b.pt")
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_nan_loss_stops_and_keeps_last_checkpoint(
    patch_folder: Path, tmp_path: Path, monkeypatch
) -> None:
    real = pretrain_module.build_model
    calls = {"n": 0}

    def poisoned(*args, **kwargs):
        model = real(*args, **kwargs)

        def hook(module, inputs, output):
            calls["n"] += 1
            if calls["n"] > 5:
                output["recon"] = output["recon"] * float("nan")
            return output

        model.register_forward_hook(hook)
        return model

    monkeypatch.setattr(pretrain_module, "build_model", poisoned)
    out = tmp_path / "nan.pt"
    cfg = PretrainConfig(**TINY, steps=10)
    with pytest.raises(TrainingError, match="NaN") as err:
        run_to_end(pretrain([patch_folder], cfg, out))
    assert str(out) in str(err.value) and "step 6" in str(err.value)
    ck = load_checkpoint(out)  # saved at the end of epoch 1 (step 4), finite
    assert ck.resume is not None and ck.resume["step"] == 4
    assert all(torch.isfinite(v.float()).all() for v in ck.model.state_dict().values())


def test_out_of_memory_halves_the_batch(patch_folder: Path, tmp_path: Path, monkeypatch) -> None:
    real = pretrain_module.build_model

    def small_memory(*args, **kwargs):
        model = real(*args, **kwargs)

        def hook(module, inputs):
            if inputs[0] is not None and inputs[0].shape[0] > 2:
                raise torch.OutOfMemoryError("fake: CUDA out of memory")

        model.register_forward_pre_hook(hook)
        return model

    monkeypatch.setattr(pretrain_module, "build_model", small_memory)
    cfg = PretrainConfig(**{**TINY, "batch_size": 8}, steps=3)
    events, out = _events(pretrain([patch_folder], cfg, tmp_path / "oom.pt"))
    logs = [e.message for e in events if isinstance(e, Log)]
    assert any("halved to 4" in m for m in logs) and any("halved to 2" in m for m in logs)
    assert [e.step for e in events if isinstance(e, Progress)] == [1, 2, 3]
    assert load_checkpoint(out).resume["micro"] == 2
