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
