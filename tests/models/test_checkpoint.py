"""The checkpoint file: self-describing, safe to load, and clear about what is wrong."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from napari_wsi_ssl import __version__
from napari_wsi_ssl.errors import CheckpointError
from napari_wsi_ssl.models import build_model, load_checkpoint, save_checkpoint


def _save(tmp_path: Path, **kw) -> tuple[Path, torch.nn.Module]:
    model = build_model("unet-resnet34", "segment", num_classes=2, width=8)
    path = tmp_path / "m.pt"
    save_checkpoint(
        path,
        model,
        mpp=2.0,
        patch_size=64,
        class_names=["background", "tumour"],
        train_config={"lr": 1e-4, "sources": [Path("a.svs")], "shape": (1, 2)},
        history={"loss": [1.0, 0.5]},
        **kw,
    )
    return path, model


def test_round_trip(tmp_path: Path) -> None:
    path, model = _save(tmp_path)
    ck = load_checkpoint(path)
    assert ck.preset == "unet-resnet34" and ck.task == "segment"
    assert ck.mpp == 2.0 and ck.patch_size == 64 and ck.class_names == ["background", "tumour"]
    assert ck.history["loss"] == [1.0, 0.5] and ck.train_config["sources"] == ["a.svs"]
    assert ck.version == __version__ and len(ck.sha256) == 64
    assert not ck.model.training
    assert ck.normalisation["mean"] == pytest.approx([0.485, 0.456, 0.406])
    x = torch.rand(1, 3, 32, 32)
    model.eval()
    with torch.no_grad():
        assert torch.equal(ck.model(x)["seg"], model(x)["seg"])
    # plain types only: the strict loader accepts the file
    torch.load(path, weights_only=True)


def test_truncated(tmp_path: Path) -> None:
    path, _ = _save(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated"):
        load_checkpoint(path)


def _rewrite(path: Path, **changes) -> None:
    payload = torch.load(path, weights_only=True)
    payload.update(changes)
    torch.save(payload, path)


def test_wrong_preset_future_and_bad_names(tmp_path: Path) -> None:
    path, _ = _save(tmp_path)
    _rewrite(path, preset="vit-huge")
    with pytest.raises(CheckpointError, match="unknown preset"):
        load_checkpoint(path)
    path, _ = _save(tmp_path)
    _rewrite(path, format_version=99, version="9.0")
    with pytest.raises(CheckpointError, match="newer"):
        load_checkpoint(path)
    path, _ = _save(tmp_path)
    _rewrite(path, class_names=["only one"])
    with pytest.raises(CheckpointError, match="class names"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match="no such"):
        load_checkpoint(tmp_path / "absent.pt")


def test_pickled_objects_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.pt"
    torch.save({"format": "napari-wsi-ssl", "obj": Path("x")}, path)
    with pytest.raises(CheckpointError, match="unsafe"):
        load_checkpoint(path)
