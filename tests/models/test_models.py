"""Presets build, run forward and backward, and load torchvision-layout weights."""

from __future__ import annotations

import pytest
import torch

from napari_wsi_ssl.models import (
    PRESETS,
    build_model,
    load_encoder_state_dict,
    torchvision_resnet_keys,
)
from napari_wsi_ssl.models.resnet import ResNetEncoder

CASES = [
    ("resnet34-ae", "reconstruct", {"recon"}),
    ("resnet34-ae", "segment", {"seg"}),
    ("resnet34-ae", "classify", {"logits"}),
    ("resnet34-ae", "nuclei", {"seg"}),
    ("unet-resnet34", "reconstruct", {"recon"}),
    ("unet-resnet34", "segment", {"seg", "recon"}),
    ("unet-resnet34", "classify", {"logits"}),
]


@pytest.mark.parametrize(("preset", "task", "keys"), CASES)
def test_forward_backward_shapes(preset: str, task: str, keys: set[str]) -> None:
    torch.manual_seed(0)
    model = build_model(preset, task, num_classes=3, width=8)
    x = torch.rand(2, 3, 64, 64)
    out = model(x)
    assert set(out) == keys
    c = 3 if task != "nuclei" else 3
    if "recon" in out:
        assert out["recon"].shape == (2, 3, 64, 64)
        assert out["recon"].min() >= 0 and out["recon"].max() <= 1
    if "seg" in out:
        assert out["seg"].shape == (2, c, 64, 64)
    if "logits" in out:
        assert out["logits"].shape == (2, c)
    loss = sum(v.float().mean() for v in out.values())
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
    assert all(torch.isfinite(v).all() for v in out.values())


def test_light_head_and_odd_size() -> None:
    model = build_model("unet-resnet34", "segment", num_classes=2, width=8, seg_head="light")
    assert model.decoder is None and model.recon_head is None
    out = model(torch.rand(1, 3, 48, 40))
    assert out["seg"].shape == (1, 2, 48, 40)


def test_encoder_strides_and_classifier_widths() -> None:
    model = build_model("resnet34-ae", "classify", num_classes=2, width=64)
    feats = model.forward_features(torch.rand(1, 3, 64, 64))
    assert [f.shape[-1] for f in feats] == [32, 16, 8, 4, 2]
    assert [f.shape[1] for f in feats] == [64, 64, 128, 256, 512]
    lin1, _, lin2 = model.classifier  # type: ignore[misc]
    assert (lin1.in_features, lin1.out_features, lin2.out_features) == (512, 128, 2)


def test_unet_has_no_shallowest_skip() -> None:
    unet = build_model("unet-resnet34", "reconstruct", width=8)
    assert unet.decoder is not None and 2 not in unet.decoder.skips
    assert set(unet.decoder.skips) == {16, 8, 4}
    assert "2" not in unet.decoder.fuse
    # the stride-2 encoder feature must not influence the output: perturb it and compare
    unet.eval()
    x = torch.rand(1, 3, 64, 64)
    feats = unet.forward_features(x)
    base = unet.forward_head(feats, (64, 64))["recon"]
    feats[0] = torch.randn_like(feats[0]) * 10
    assert torch.equal(unet.forward_head(feats, (64, 64))["recon"], base)
    feats[2] = torch.randn_like(feats[2]) * 10  # the stride-8 skip does matter
    assert not torch.equal(unet.forward_head(feats, (64, 64))["recon"], base)
    ae = build_model("resnet34-ae", "reconstruct", width=8)
    assert ae.decoder is not None and ae.decoder.skips == ()


def test_torchvision_layout_round_trip() -> None:
    expected = torchvision_resnet_keys()
    enc = ResNetEncoder(width=8)
    assert list(enc.state_dict()) == expected
    torch.manual_seed(1)
    source = {k: torch.randn_like(v.float()).to(v.dtype) for k, v in enc.state_dict().items()}
    source["fc.weight"] = torch.zeros(1000, 64)  # torchvision's classifier is ignored
    source["fc.bias"] = torch.zeros(1000)
    model = build_model("unet-resnet34", "segment", width=8)
    missing = load_encoder_state_dict(model, source)
    assert missing == []
    for k, v in model.encoder.state_dict().items():
        assert torch.equal(v, source[k]), k
    with pytest.raises(ValueError, match="shapes"):
        load_encoder_state_dict(build_model("resnet34-ae", width=16), source)


def test_bad_presets_raise() -> None:
    with pytest.raises(ValueError, match="unknown preset"):
        build_model("vgg16")
    with pytest.raises(ValueError, match="unknown task"):
        build_model("resnet34-ae", "detect")
    with pytest.raises(ValueError, match="at least 2 classes"):
        build_model("resnet34-ae", "classify", num_classes=1)
    assert set(PRESETS) == {"resnet34-ae", "unet-resnet34"}
