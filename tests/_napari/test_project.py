"""Saved projects by clicks: save the slide, its annotations, overlay and dock settings, close
the viewer, open the project (moved, with its slide elsewhere) and find the same layers."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from gui_helpers import click, open_dock, open_slide_layer, paint_classes, truth_on_grid

from napari_wsi_ssl._napari.project import PROJECT_FILE, read_project
from napari_wsi_ssl._napari.widgets._annotations import slide_geometry
from napari_wsi_ssl._napari.widgets._layers import PROBABILITY, show_store
from napari_wsi_ssl.cli import main
from napari_wsi_ssl.events import run_to_end
from napari_wsi_ssl.features import FeatureConfig, fast_finetune

pytestmark = pytest.mark.gui


def _snapshot(viewer: Any) -> dict[str, Any]:
    out = {}
    for layer in viewer.layers:
        data = layer.data[-1] if getattr(layer, "multiscale", False) else layer.data
        colours = getattr(layer.colormap, "color_dict", None)
        out[layer.name] = {
            "type": type(layer).__name__,
            "data": np.asarray(data),
            "scale": tuple(layer.scale),
            "translate": tuple(layer.translate),
            "colours": {k: tuple(np.round(v, 4)) for k, v in (colours or {}).items() if k},
            "classes": layer.metadata.get("class_names"),
        }
    return out


def test_save_close_open_project(
    make_napari_viewer: Any, qtbot: Any, synthetic: Any, tmp_path: Path
) -> None:
    home = tmp_path / "study"
    (home / "slides").mkdir(parents=True)
    slide_path = home / "slides" / "case1.tif"
    shutil.copy(synthetic.slide, slide_path)
    viewer = make_napari_viewer()
    slide = open_slide_layer(viewer, slide_path)
    ft = open_dock(viewer, "Fine-tune")
    click(qtbot, ft.annotation_button)
    ann = viewer.layers["annotations"]
    truth = truth_on_grid(ann.data.shape, synthetic)
    paint_classes(ann, truth, seed=0, strokes=6)
    ann.metadata["class_names"] = {0: "unlabelled", 1: "metastasis", 2: "normal"}
    ft.set_fields(mode="full", num_patches=96, annotations=ann)
    # an overlay: a fast-mode map of the slide
    result = run_to_end(
        fast_finetune(
            slide_path, np.asarray(ann.data), ann.metadata["downsample"], None, home / "maps",
            FeatureConfig(tile=32, mpp=synthetic.mpp * 2),
        )
    )  # fmt: skip
    show_store(viewer, result.store, slide_geometry(slide))
    before = _snapshot(viewer)
    assert PROBABILITY in before

    dock = open_dock(viewer, "Project")
    dock.set_folder(home / "project")
    click(qtbot, dock.save_button)
    assert (home / "project" / PROJECT_FILE).is_file(), dock.status
    saved = read_project(home / "project")
    assert saved.slides[0].path["relative"] == "../slides/case1.tif"
    assert saved.docks["Fine-tune"]["mode"] == "full"
    viewer.close()

    # the study folder moves; then the slide moves out of it: one prompt re-points it
    moved = tmp_path / "moved"
    shutil.move(home, moved)
    elsewhere = tmp_path / "archive"
    elsewhere.mkdir()
    shutil.move(moved / "slides" / "case1.tif", elsewhere / "case1.tif")
    assert main(["view", str(moved / "project")]) == 2  # the CLI: one line, no window

    viewer = make_napari_viewer()
    dock = open_dock(viewer, "Project")
    asked: list[Path] = []
    dock.locate = lambda recorded: asked.append(recorded) or elsewhere / recorded.name
    dock.set_folder(moved / "project")
    click(qtbot, dock.open_button)
    assert len(asked) == 1 and asked[0].name == "case1.tif", dock.status
    after = _snapshot(viewer)
    assert list(after) == list(before), dock.status
    for name, was in before.items():
        now = after[name]
        assert now["type"] == was["type"] and now["scale"] == was["scale"], name
        assert now["translate"] == was["translate"] and now["colours"] == was["colours"], name
        assert np.array_equal(now["data"], was["data"]), name
    assert after["annotations"]["classes"] == {0: "unlabelled", 1: "metastasis", 2: "normal"}
    ft = open_dock(viewer, "Fine-tune")
    assert ft._mode.value == "full" and ft._patches.value == 96
    assert ft._annotations.value is viewer.layers["annotations"]
    viewer.close()

    # dropping the folder on napari opens it as well
    viewer = make_napari_viewer()
    shutil.move(elsewhere / "case1.tif", moved / "slides" / "case1.tif")
    viewer.open(str(moved / "project"), plugin="napari-wsi-ssl")
    assert [layer.name for layer in viewer.layers] == list(before)
