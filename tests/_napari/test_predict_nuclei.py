"""Predict nuclei on a slide from the Predict dock, then export them from the Export dock."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tifffile
from gui_helpers import click, open_dock, open_slide_layer, wait_idle

from napari_wsi_ssl.synthetic import read_nuclei_labels

pytestmark = pytest.mark.gui


def test_nuclei_layer_fills_in_and_exports(
    viewer: Any, qtbot: Any, synthetic: Any, tmp_path: Path
) -> None:
    slide = open_slide_layer(viewer, synthetic.slide)
    predict = open_dock(viewer, "Predict")
    predict.set_fields(slide=slide, nuclei="classical", cache=tmp_path / "cache", tile=512)
    click(qtbot, predict.predict_button)
    assert predict.runner.running  # threaded, like a user's click
    outcome = wait_idle(qtbot, predict)
    assert outcome.ok, outcome.error
    nuclei = viewer.layers["Nuclei"]
    # on the slide's world: same pixel size and origin (level 0 of the nuclei is level 0 of the slide)
    np.testing.assert_allclose(nuclei.scale, slide.scale)
    np.testing.assert_allclose(nuclei.translate, slide.translate)
    labels = np.asarray(nuclei.data[0])
    truth = read_nuclei_labels(synthetic)
    assert labels.shape == truth.shape
    fg, gt = labels > 0, truth > 0
    dice = 2 * (fg & gt).sum() / (fg.sum() + gt.sum())
    print(
        f"classical nuclei on the synthetic slide: {len(np.unique(labels)) - 1} instances, foreground Dice {dice:.3f}"
    )
    assert dice > 0.5

    # a second click computes nothing: the store is a cache
    click(qtbot, predict.predict_button)
    assert wait_idle(qtbot, predict).seconds < 2.0

    export = open_dock(viewer, "Export")
    export.layer_combo.value = nuclei
    for fmt, name in (
        ("OME-TIFF", "nuclei.ome.tif"),
        ("GeoJSON", "nuclei.geojson"),
        ("CSV", "nuclei.csv"),
    ):
        export.format_combo.value = fmt
        export.path_edit.value = tmp_path / name
        export.last_written = None
        click(qtbot, export.export_button)
        qtbot.waitUntil(lambda: export.last_written is not None, timeout=60000)
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "nuclei.ome.tif", level=0), labels)
    doc = json.loads((tmp_path / "nuclei.geojson").read_text())
    assert abs(len(doc["features"]) - (len(np.unique(labels)) - 1)) <= 2
    with open(tmp_path / "nuclei.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == len(doc["features"]) or abs(len(rows) - len(doc["features"])) <= 2
