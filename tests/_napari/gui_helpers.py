"""Helpers of the GUI tests: open a slide through the plugin, open docks, click buttons."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from qtpy.QtCore import Qt

PLUGIN = "napari-wsi-ssl"


def open_slide_layer(viewer: Any, path: Path) -> Any:
    """Open a slide with the plugin's reader, as a user's drag and drop does."""
    layers = viewer.open(str(path), plugin=PLUGIN)
    assert len(layers) == 1
    layer = layers[0]
    assert layer.metadata["slide_path"] == str(path)
    return layer


def open_dock(viewer: Any, name: str) -> Any:
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, name)
    return widget


def click(qtbot: Any, button: Any) -> None:
    """Click a magicgui PushButton with the mouse (in its middle, where a user clicks)."""
    native = button.native
    qtbot.mouseClick(native, Qt.MouseButton.LeftButton, pos=native.rect().center())


def wait_idle(qtbot: Any, dock: Any, timeout_s: float = 120) -> Any:
    """Wait for the dock's run to end, and its map layers to be added and shown (one per turn of
    the event loop); fail with its error if it failed."""
    display = getattr(dock, "display", None)
    qtbot.waitUntil(
        lambda: not dock.runner.running and not getattr(display, "staging", False),
        timeout=int(timeout_s * 1000),
    )
    outcome = dock.runner.last_outcome
    assert outcome is not None
    return outcome


def paint_classes(layer: Any, tumour: np.ndarray, seed: int = 0, strokes: int = 25) -> None:
    """Paint tumour (1) and normal (2) dabs with the layer's brush, where ``tumour`` says.

    ``tumour`` is a boolean map on the annotation layer's grid (True: tumour, False: normal
    tissue); dabs go where the truth is unambiguous, as a careful annotator would paint.
    """
    rng = np.random.default_rng(seed)
    layer.brush_size = 6
    for label, where in ((1, tumour), (2, ~tumour)):
        ys, xs = np.nonzero(where)
        assert ys.size, f"nothing to paint for label {label}"
        layer.selected_label = label
        for i in rng.choice(ys.size, size=min(strokes, ys.size), replace=False):
            layer.paint((int(ys[i]), int(xs[i])), label)


def truth_on_grid(shape: tuple[int, int], synthetic: Any) -> np.ndarray:
    """The synthetic slide's true tumour mask (bool) resampled onto a grid of ``shape`` over it."""
    from napari_wsi_ssl.synthetic import read_tumour_mask

    gt = read_tumour_mask(synthetic) > 0
    rows = (np.arange(shape[0]) * synthetic.size / shape[0] / synthetic.gt_downsample).astype(int)
    cols = (np.arange(shape[1]) * synthetic.size / shape[1] / synthetic.gt_downsample).astype(int)
    return gt[np.ix_(np.clip(rows, 0, gt.shape[0] - 1), np.clip(cols, 0, gt.shape[1] - 1))]
