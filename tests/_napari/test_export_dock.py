"""The Export dock, clicked the way a user does."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tifffile
from qtpy.QtCore import Qt

from napari_wsi_ssl.export import read_geojson_mask

pytestmark = pytest.mark.gui


def _open_export(viewer: Any) -> Any:
    _, widget = viewer.window.add_plugin_dock_widget("napari-wsi-ssl", "Export")
    return widget


def test_export_dock_writes_and_refuses(
    make_napari_viewer: Any, qtbot: Any, tmp_path: Path
) -> None:
    viewer = make_napari_viewer()
    labels = np.zeros((40, 50), np.uint8)
    labels[5:20, 5:30] = 1
    layer = viewer.add_labels(
        labels,
        name="mask",
        scale=(2.0, 2.0),
        translate=(0.75, 0.75),
        metadata={"mpp": 0.5, "downsample": 4},
    )
    widget = _open_export(viewer)
    assert widget.layer_combo.value is layer
    widget.format_combo.value = "OME-TIFF"
    widget.path_edit.value = tmp_path / "mask.ome.tif"
    qtbot.mouseClick(widget.export_button.native, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: widget.last_written is not None, timeout=10000)
    np.testing.assert_array_equal(tifffile.imread(widget.last_written, level=0), labels)

    # switching the format renames the path's suffix
    widget.format_combo.value = "GeoJSON"
    assert str(widget.path_edit.value).endswith("mask.geojson")
    widget.last_written = None
    qtbot.mouseClick(widget.export_button.native, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: widget.last_written is not None, timeout=10000)
    back = read_geojson_mask(widget.last_written, labels.shape, 4.0)
    assert (back == (labels == 1)).mean() > 0.98

    # CSV of a layer with no slide: a clear message, no file, the dock stays usable
    widget.format_combo.value = "CSV"
    widget.last_written = None
    qtbot.mouseClick(widget.export_button.native, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not widget.runner.running, timeout=10000)
    assert widget.last_written is None
    assert "not tied to a slide" in str(widget.runner.last_outcome.error)
    assert not (tmp_path / "mask.csv").exists()


def test_export_dock_set_fields_threshold_and_empty_map(
    make_napari_viewer: Any, qtbot: Any, tmp_path: Path
) -> None:
    import json

    viewer = make_napari_viewer()
    prob = np.zeros((40, 50), np.float32)
    prob[5:20, 5:30] = 0.4
    layer = viewer.add_image(
        prob, name="map", scale=(2.0, 2.0), translate=(0.75, 0.75), metadata={"mpp": 0.5}
    )
    widget = _open_export(viewer)
    widget.set_fields(layer=layer, format="GeoJSON", path=tmp_path / "map.geojson")
    assert widget.settings().threshold == 0.5
    qtbot.mouseClick(widget.export_button.native, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: widget.last_written is not None, timeout=10000)
    # nothing at or above 0.5: the file is a valid, empty collection, and the dock says so
    assert json.loads(widget.last_written.read_text())["features"] == []
    assert "no pixel at or above the threshold 0.5" in widget.last_warnings[0]
    assert "no pixel at or above" in widget._status.value

    # the same threshold setting, lowered, gives the region
    widget.set_fields(threshold=0.3)
    widget.last_written = None
    qtbot.mouseClick(widget.export_button.native, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: widget.last_written is not None, timeout=10000)
    assert widget.last_warnings == ()
    back = read_geojson_mask(widget.last_written, prob.shape, 4.0)
    assert (back == (prob >= 0.3)).mean() > 0.98

    # a probability map as OME-TIFF: uint8 p x 255 by default, the mask when asked
    widget.set_fields(format="OME-TIFF", path=tmp_path / "map.ome.tif")
    widget.last_written = None
    qtbot.mouseClick(widget.export_button.native, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: widget.last_written is not None, timeout=10000)
    np.testing.assert_array_equal(
        tifffile.imread(widget.last_written, level=0), np.rint(prob * 255)
    )
    widget.set_fields(values=False)
    widget.last_written = None
    qtbot.mouseClick(widget.export_button.native, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: widget.last_written is not None, timeout=10000)
    np.testing.assert_array_equal(tifffile.imread(widget.last_written, level=0), prob >= 0.3)
