"""The napari side: a bad input in a dock becomes a notification and the dock stays usable; many
slides and prediction layers opened and closed in a row do not grow memory without bound."""

from __future__ import annotations

import gc
import os
from pathlib import Path
from typing import Any

import pytest
from qtpy.QtCore import Qt

from napari_wsi_ssl.errors import CheckpointError

pytestmark = pytest.mark.gui

PLUGIN = "napari-wsi-ssl"


def _open(viewer: Any, path: Path) -> Any:
    (layer,) = viewer.open(str(path), plugin=PLUGIN)
    return layer


def _errors_since(start: int) -> list[str]:
    from napari.utils.notifications import NotificationSeverity, notification_manager

    return [
        str(n.message)
        for n in notification_manager.records[start:]
        if n.severity == NotificationSeverity.ERROR
    ]


def test_bad_checkpoint_in_the_predict_dock(
    make_napari_viewer: Any, qtbot: Any, small_slide, tiny_ckpt: Path, tmp_path: Path
) -> None:
    from napari.utils.notifications import notification_manager

    viewer = make_napari_viewer()
    slide = _open(viewer, small_slide.slide)
    _, dock = viewer.window.add_plugin_dock_widget(PLUGIN, "Predict")
    junk = tmp_path / "model.pt"
    junk.write_bytes(b"\x80\x02 not a checkpoint")
    dock.set_fields(slide=slide, checkpoint=junk, cache=tmp_path / "cache", tile=128)
    start = len(notification_manager.records)
    qtbot.mouseClick(dock.predict_button.native, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not dock.runner.running, timeout=60_000)
    outcome = dock.runner.last_outcome
    assert isinstance(outcome.error, CheckpointError)
    errors = _errors_since(start)
    assert len(errors) == 1 and str(junk) in errors[0] and "\n" not in errors[0]
    assert not dock._cancel_button.enabled, "the dock is idle again"
    # the same dock, the right file: it works
    dock.set_fields(checkpoint=tiny_ckpt)
    qtbot.mouseClick(dock.predict_button.native, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not dock.runner.running, timeout=120_000)
    assert dock.runner.last_outcome.ok, dock.runner.last_outcome.error
    assert any(layer is not slide for layer in viewer.layers)


def _rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


RSS_GROWTH_BOUND_MB = 150  # ten rounds after a warm-up round


@pytest.mark.slow
def test_open_and_close_ten_slides_and_prediction_layers(
    make_napari_viewer: Any, qtbot: Any, small_slide, tiny_ckpt: Path, tmp_path: Path
) -> None:
    from napari_wsi_ssl._napari.widgets._annotations import slide_geometry
    from napari_wsi_ssl._napari.widgets._layers import show_store
    from napari_wsi_ssl.events import run_to_end
    from napari_wsi_ssl.inference import PredictConfig, predict_slide

    store = run_to_end(
        predict_slide(small_slide.slide, tiny_ckpt, tmp_path, PredictConfig(tile_size=64))
    )
    viewer = make_napari_viewer()

    def one_round() -> None:
        layer = _open(viewer, small_slide.slide)
        shown = show_store(viewer, store, slide_geometry(layer))
        assert shown, "a prediction layer was added"
        qtbot.wait(30)  # let the canvas draw what is visible
        for name in list(shown):
            viewer.layers.remove(name)
        viewer.layers.remove(layer)
        qtbot.wait(10)
        assert len(viewer.layers) == 0

    one_round()
    gc.collect()
    before, fds = _rss_mb(), len(os.listdir("/proc/self/fd"))
    for _ in range(10):
        one_round()
    gc.collect()
    growth = _rss_mb() - before
    fd_growth = len(os.listdir("/proc/self/fd")) - fds
    print(f"\nRSS growth over 10 rounds: {growth:.1f} MB, open files {fd_growth:+d}")
    assert growth < RSS_GROWTH_BOUND_MB
    assert fd_growth <= 2, "closed slides do not keep their files open"


def _infos_since(start: int) -> list[str]:
    from napari.utils.notifications import NotificationSeverity, notification_manager

    return [
        str(n.message)
        for n in notification_manager.records[start:]
        if n.severity == NotificationSeverity.INFO
    ]


def test_cancelled_pretraining_says_cancelled(
    make_napari_viewer: Any, qtbot: Any, small_slide, tmp_path: Path
) -> None:
    from napari.utils.notifications import notification_manager

    viewer = make_napari_viewer()
    _open(viewer, small_slide.slide)
    _, dock = viewer.window.add_plugin_dock_widget(PLUGIN, "Pretrain")
    out = tmp_path / "pre.pt"
    dock.set_fields(
        mpp=2.0, patch_size=32, width=8, batch_size=4, budget=100_000, unit="steps", out=out
    )
    start = len(notification_manager.records)
    qtbot.mouseClick(dock.pretrain_button.native, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dock._status.value.startswith("step"), timeout=60_000)
    qtbot.mouseClick(dock._cancel_button.native, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not dock.runner.running, timeout=60_000)
    outcome = dock.runner.last_outcome
    assert outcome.cancelled and not outcome.ok
    assert "cancelled" in dock._status.value and "running" not in dock._status.value
    assert not any("Pretraining finished" in m for m in _infos_since(start)), _infos_since(start)
    # what was learnt so far is kept, and offered to the Fine-tune dock
    assert out.is_file() and dock.session.last("pretrain") == out
    _, ft = viewer.window.add_plugin_dock_widget(PLUGIN, "Fine-tune")
    assert Path(str(ft._checkpoint.value)) == out


def test_a_failed_run_clears_running(
    make_napari_viewer: Any, qtbot: Any, small_slide, tmp_path: Path
) -> None:
    viewer = make_napari_viewer()
    slide = _open(viewer, small_slide.slide)
    text = tmp_path / "notes.pt"
    text.write_text("not a checkpoint\n")
    _, ft = viewer.window.add_plugin_dock_widget(PLUGIN, "Fine-tune")
    qtbot.mouseClick(ft.annotation_button.native, Qt.MouseButton.LeftButton)
    ann = viewer.layers["annotations"]
    ann.paint((10, 10), 1)
    ann.paint((40, 40), 2)
    ft.set_fields(slide=slide, annotations=ann, checkpoint=text, out=tmp_path / "ft.pt")
    _, predict = viewer.window.add_plugin_dock_widget(PLUGIN, "Predict")
    predict.set_fields(slide=slide, checkpoint=text, cache=tmp_path / "cache")
    for dock, button in ((ft, ft.finetune_button), (predict, predict.predict_button)):
        qtbot.mouseClick(button.native, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda d=dock: not d.runner.running, timeout=60_000)
        assert isinstance(dock.runner.last_outcome.error, CheckpointError)
        status = dock._status.value
        assert status.startswith("failed:") and str(text) in status, status
    assert [layer.name for layer in viewer.layers] == [slide.name, "annotations"]


def test_cancelling_before_anything_is_done_adds_no_layer(
    make_napari_viewer: Any, qtbot: Any, small_slide, tmp_path: Path
) -> None:
    viewer = make_napari_viewer()
    slide = _open(viewer, small_slide.slide)
    _, dock = viewer.window.add_plugin_dock_widget(PLUGIN, "Predict")
    dock.set_fields(slide=slide, nuclei="classical", cache=tmp_path / "cache")
    assert not dock.runner.sync, "the run goes in a worker, so Cancel comes first"
    qtbot.mouseClick(dock.predict_button.native, Qt.MouseButton.LeftButton)
    qtbot.mouseClick(dock._cancel_button.native, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not dock.runner.running, timeout=60_000)
    outcome = dock.runner.last_outcome
    assert outcome.cancelled and "after 0 of" in str(outcome.error), outcome.error
    assert "cancelled" in dock._status.value
    assert [layer.name for layer in viewer.layers] == [slide.name], "no empty Nuclei layer"


def test_a_map_with_no_pixel_above_the_threshold_says_so(
    make_napari_viewer: Any, qtbot: Any, small_slide, tmp_path: Path, monkeypatch: Any
) -> None:
    import torch

    from napari_wsi_ssl.inference import PredictConfig, jobs, predict_slide
    from napari_wsi_ssl.models import build_model, save_checkpoint

    # compile="auto" would compile these 4 tiles: the dock's map must not (no silent minutes)
    compiled: list[Any] = []
    monkeypatch.setattr(jobs, "COMPILE_MIN_TILES", 1)
    monkeypatch.setattr(torch, "compile", lambda model, **_: compiled.append(model) or model)

    torch.manual_seed(0)
    model = build_model("unet-resnet34", "segment", num_classes=2, width=8)
    with torch.no_grad():  # a model sure that nothing is tumour: p(tumour) about 0.05
        model.seg_head.weight.zero_()
        model.seg_head.bias.copy_(torch.tensor([1.5, -1.5]))
    ckpt = save_checkpoint(
        tmp_path / "timid.pt",
        model.eval(),
        mpp=2.0,
        patch_size=32,
        class_names=["background", "melanoma"],
    )
    viewer = make_napari_viewer()
    slide = _open(viewer, small_slide.slide)
    _, dock = viewer.window.add_plugin_dock_widget(PLUGIN, "Predict")
    dock.set_fields(slide=slide, checkpoint=ckpt, cache=tmp_path / "cache", tile=128)
    qtbot.mouseClick(dock.predict_button.native, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not dock.runner.running, timeout=120_000)
    assert dock.runner.last_outcome.ok, dock.runner.last_outcome.error
    status = dock._status.value
    assert "no pixel of the map reaches 0.5" in status and "Train longer" in status, status
    prob = dock.display.layers["melanoma probability"]  # named after the checkpoint's class
    low, high = prob.contrast_limits
    assert low == 0.0 and 0.03 < high < 0.08, "the display is stretched to the map's range"
    assert compiled == [], "the GUI's map does not torch.compile"
    from napari_wsi_ssl.events import run_to_end

    run_to_end(
        predict_slide(small_slide.slide, ckpt, tmp_path / "cli", PredictConfig(tile_size=128))
    )
    assert len(compiled) == 1, "the command line's default compiles at this threshold"
