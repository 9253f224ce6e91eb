"""Slides as users have them, by clicks: the "slide µm/px" field on a slide without pixel size
(layers, runs and exports follow it), a QuPath GeoJSON dropped on the slide and fine-tuned from,
and the Nuclei table dock (measurements as layer features, a row click moves the camera)."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tifffile
from gui_helpers import click, open_dock, open_slide_layer, truth_on_grid, wait_idle
from qtpy.QtCore import QPoint, Qt
from test_reader import _drop, notifications  # noqa: F401 (a fixture)

from napari_wsi_ssl._napari.widgets._base import camera_of
from napari_wsi_ssl._napari.widgets._layers import NUCLEI, PROBABILITY

pytestmark = pytest.mark.gui


def _physical_size(path: Path) -> float | None:
    with tifffile.TiffFile(path) as f:
        found = re.search(r'PhysicalSizeX="([0-9.eE+-]+)"', f.ome_metadata or "")
    return float(found.group(1)) if found else None


def test_slide_mpp_field_then_map_nuclei_table(
    viewer: Any,
    qtbot: Any,
    svs_without_mpp: Path,
    tmp_path: Path,
    notifications: list,  # noqa: F811
) -> None:
    import torch

    from napari_wsi_ssl.models import build_model, save_checkpoint

    svs = svs_without_mpp
    slide = open_slide_layer(viewer, svs)
    viewer.window.show()
    assert slide.metadata["mpp"] is None and tuple(slide.scale) == (1.0, 1.0)
    predict = open_dock(viewer, "Predict")
    field = predict._slide_mpp
    assert field.widget.value == 0 and field.warning
    expected = "about 0.5 µm/px (20x) from objective power"
    qtbot.waitUntil(lambda: expected in field.widget.tooltip)  # estimated in a thread

    # a model trained at 2 µm/px needs the slide's pixel size: the click stops, one line
    torch.manual_seed(0)
    model = build_model("unet-resnet34", "segment", num_classes=2, width=8).eval()
    ckpt = save_checkpoint(tmp_path / "seg.pt", model, mpp=2.0, patch_size=64)
    region = viewer.add_shapes(
        [np.array([[256, 256], [256, 768], [768, 768], [768, 256]], dtype=float)],
        shape_type="rectangle",
        name="region",
    )
    predict.set_fields(
        slide=slide, checkpoint=ckpt, nuclei="classical", region=region, cache=tmp_path / "c"
    )
    click(qtbot, predict.predict_button)
    assert not predict.runner.running
    [error] = [m for s, m in notifications if s == "error"]
    assert str(svs) in error and "\n" not in error
    assert "no pixel size in the file; it looks like about 0.5 µm/px (20x)" in error
    assert "set 'slide µm/px' to 0.5" in error

    # pretraining at a working resolution (the dock's 1 µm/px) stops the same way
    pretrain = open_dock(viewer, "Pretrain")
    assert pretrain._slide_mpp.warning
    click(qtbot, pretrain.pretrain_button)
    assert not pretrain.runner.running
    assert "set 'slide µm/px' to 0.5" in pretrain._status.value

    # the user types 0.5: the slide and the region over it are in µm now, the other docks agree
    finetune = open_dock(viewer, "Fine-tune")
    assert finetune._slide_mpp.warning
    field.widget.value = 0.5
    assert tuple(slide.scale) == (0.5, 0.5) and [str(u) for u in slide.units] == ["micrometer"] * 2
    assert slide.metadata["mpp"] == [0.5, 0.5] and slide.metadata["slide_mpp"] == 0.5
    assert not field.warning and finetune._slide_mpp.widget.value == 0.5
    assert pretrain._slide_mpp.widget.value == 0.5
    assert not finetune._slide_mpp.warning
    click(qtbot, finetune.annotation_button)
    ann = viewer.layers["annotations"]
    d = ann.metadata["downsample"]
    np.testing.assert_allclose(ann.scale, (0.5 * d, 0.5 * d))
    ann.data[10:40, 10:40] = 1

    # the map and nuclei at the model's 2 µm/px, on the region
    np.testing.assert_allclose(region.scale, slide.scale)  # the region drawn follows
    click(qtbot, predict.predict_button)
    outcome = wait_idle(qtbot, predict)
    assert outcome.ok, outcome.error
    prob, nuclei = viewer.layers[PROBABILITY], viewer.layers[NUCLEI]
    assert prob.metadata["mpp"] == 0.5
    np.testing.assert_allclose(nuclei.scale, slide.scale)

    # exports carry the pixel size given: OME-TIFF PhysicalSize, CSV µm columns
    export = open_dock(viewer, "Export")
    for layer, fmt, name in (
        (ann, "OME-TIFF", "ann.ome.tif"),
        (prob, "OME-TIFF", "map.ome.tif"),
        (nuclei, "CSV", "nuclei.csv"),
    ):
        export.set_fields(layer=layer, format=fmt, path=tmp_path / name)
        assert export._slide_mpp.widget.value == 0.5
        export.last_written = None
        click(qtbot, export.export_button)
        qtbot.waitUntil(lambda: export.last_written is not None, timeout=60_000)
    assert _physical_size(tmp_path / "ann.ome.tif") == pytest.approx(0.5 * d)
    assert _physical_size(tmp_path / "map.ome.tif") == pytest.approx(prob.scale[-1])
    with open(tmp_path / "nuclei.csv") as f:
        header = next(csv.reader(f))
    assert header[:4] == ["id", "centroid_x_um", "centroid_y_um", "area_um2"]

    # the Nuclei table: the nuclei in view, as the layer's features, sortable
    table = open_dock(viewer, "Nuclei table")
    assert wait_idle(qtbot, table).ok
    features = nuclei.features
    ids = np.unique(np.asarray(nuclei.data[0] if nuclei.multiscale else nuclei.data))
    assert len(features) > 20 and set(features["id"]) <= set(ids[ids > 0])
    for column in ("centroid_x_um", "area_um2", "perimeter_um", "eccentricity"):
        assert column in features
    assert {"mean_haematoxylin", "tumour_probability", "tumour"} <= set(features)
    assert table.model.rowCount() == len(features)
    # a click on the area's header sorts by it
    header = table.view.horizontalHeader()
    col = list(table.model.frame.columns).index("area_um2")
    x = header.sectionViewportPosition(col) + header.sectionSize(col) // 2
    qtbot.mouseClick(header.viewport(), Qt.MouseButton.LeftButton, pos=QPoint(x, 5))
    areas = table.model.frame["area_um2"].to_numpy()
    step = 1 if header.sortIndicatorOrder() == Qt.SortOrder.AscendingOrder else -1
    assert header.sortIndicatorSection() == col and (np.diff(areas) * step >= 0).all()
    assert areas[0] != areas[-1]

    # a click on a row centres the camera on that nucleus and selects it
    camera_of(viewer).center = (0.0, 0.0)
    view = table.view
    rect = view.visualRect(table.model.index(2, 0))
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    record = table.model.frame.iloc[2]
    expected = (
        np.array([record["centroid_y_px"], record["centroid_x_px"]]) - 0.5
    ) * 0.5 + np.asarray(slide.translate)
    np.testing.assert_allclose(camera_of(viewer).center[-2:], expected, atol=1e-6)
    assert nuclei.selected_label == int(record["id"])
    # the centroid in µm is the level-0 one times the pixel size given
    assert record["centroid_x_um"] == pytest.approx(record["centroid_x_px"] * 0.5, abs=0.01)


def _qupath_geojson(synthetic: Any, path: Path) -> Path:
    """The synthetic truth as a QuPath GeoJSON (Tumor, Normal), plus a small "Stroma" square."""
    from napari_wsi_ssl.export import Placement, export_arrays

    truth = tifffile.imread(synthetic.tumour_mask) > 0
    tissue = tifffile.imread(synthetic.tissue_mask) > 0
    labels = np.where(truth, 1, np.where(tissue, 2, 0)).astype(np.uint8)
    place = Placement(downsample=float(synthetic.gt_downsample))
    export_arrays(path, labels, "labels", place, class_names={1: "Tumor", 2: "Normal"})
    doc = json.loads(path.read_text())
    square = [[[8, 8], [72, 8], [72, 72], [8, 72], [8, 8]]]
    doc["features"].append(
        {
            "type": "Feature",
            "geometry": {"type": "Polygon", "coordinates": square},
            "properties": {
                "objectType": "annotation",
                "classification": {"name": "Stroma", "color": [150, 200, 50]},
            },
        }
    )
    path.write_text(json.dumps(doc))
    return path


def test_geojson_dropped_then_fast_finetune(
    viewer: Any,
    qtbot: Any,
    synthetic: Any,
    tmp_path: Path,
    notifications: list,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    geojson = _qupath_geojson(synthetic, tmp_path / "qupath annotations.geojson")
    viewer.window.show()
    # no slide open: one line, no layer, napari goes on
    _drop(viewer, geojson)
    qtbot.wait(10)
    assert len(viewer.layers) == 0
    [(severity, message)] = notifications
    assert severity == "info" and "open the slide first" in message and "\n" not in message

    slide = open_slide_layer(viewer, synthetic.slide)
    _drop(viewer, geojson)
    ann = viewer.layers["qupath annotations"]
    names = ann.metadata["class_names"]
    assert names[1] == "Tumor" and names[2] == "Normal" and names[3] == "Stroma"
    np.testing.assert_allclose(ann.colormap.map(3)[:3], np.array([150, 200, 50]) / 255, atol=0.01)
    # placed as "New annotation layer" places one: same downsample, scale and translate
    finetune = open_dock(viewer, "Fine-tune")
    click(qtbot, finetune.annotation_button)
    new = viewer.layers["annotations"]
    assert ann.metadata["downsample"] == new.metadata["downsample"]
    np.testing.assert_allclose(ann.scale, new.scale)
    np.testing.assert_allclose(ann.translate, new.translate)
    labels = np.asarray(ann.data)
    truth = truth_on_grid(labels.shape, synthetic)
    painted = labels > 0
    agree = ((labels == 1) == truth)[painted & (labels != 3)].mean()
    assert agree > 0.97 and (labels == 3).any()

    # the button does the same (the file dialog answered with the file)
    monkeypatch.setattr(
        "napari_wsi_ssl._napari.widgets.finetune.ask_geojson", lambda parent: geojson
    )
    click(qtbot, finetune._import_button)
    imported = finetune._annotations.value
    assert imported is not ann and imported.name.startswith("qupath annotations")
    np.testing.assert_array_equal(np.asarray(imported.data), labels)

    # fast mode learns from the imported classes: the map separates tumour from the rest
    finetune.cache_dir = tmp_path / "cache"
    finetune.set_fields(slide=slide, annotations=imported, out=tmp_path / "head.pt")
    click(qtbot, finetune.finetune_button)
    outcome = wait_idle(qtbot, finetune, 120)
    assert outcome.ok, outcome.error
    values = np.asarray(viewer.layers["Tumor probability"].data[0][:, :])  # named after the class
    inside = truth_on_grid(values.shape, synthetic)
    assert values[inside].mean() > 0.6 and values[~inside].mean() < 0.4
    assert "probability of 'Tumor'" in finetune._status.value
