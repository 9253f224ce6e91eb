"""Several slides and saved projects by clicks: a fast-mode head from the strokes of two slides,
then save the slides, their annotations, the map and the dock settings, close the viewer, open
the project (moved, with its slides elsewhere) and find the same layers."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from gui_helpers import click, open_dock, open_slide_layer, paint_classes, truth_on_grid, wait_idle

from napari_wsi_ssl._napari.project import PROJECT_FILE, read_project
from napari_wsi_ssl._napari.widgets._session import session_of
from napari_wsi_ssl.cli import main
from napari_wsi_ssl.features import load_head
from napari_wsi_ssl.synthetic import write_synthetic_slide

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
    paths = [home / "slides" / "case1.tif", home / "slides" / "case2.tif"]
    shutil.copy(synthetic.slide, paths[0])
    write_synthetic_slide(tmp_path / "s2", size=1024, seed=1).slide.rename(paths[1])
    viewer = make_napari_viewer()
    slides = [open_slide_layer(viewer, p) for p in paths]
    slides[1].translate = (0.0, 1100.0)  # placed beside the first, in µm
    ft = open_dock(viewer, "Fine-tune")
    ft.cache_dir = home / "maps"
    layers = []
    for slide in slides:  # an annotation layer painted on each slide
        ft.set_fields(slide=slide)
        click(qtbot, ft.annotation_button)
        ann = viewer.layers[-1]
        paint_classes(ann, truth_on_grid(ann.data.shape, synthetic), seed=0, strokes=6)
        layers.append(ann)
    layers[0].metadata["class_names"] = {0: "unlabelled", 1: "metastasis", 2: "normal"}
    layers[1].metadata["class_names"] = {0: "unlabelled", 1: "metastasis", 2: "normal"}
    # one fast-mode head from both slides' strokes; the map of the chosen slide is shown
    ft.set_fields(slide=slides[0], annotations=layers[0], several=True, out=home / "head.pt")
    click(qtbot, ft.finetune_button)
    outcome = wait_idle(qtbot, ft, 120)
    assert outcome.ok, outcome.error
    assert len(outcome.value.maps) == 2 and "trained on 2 slides" in ft._status.value
    assert load_head(home / "head.pt").head.class_names == ["metastasis", "normal"]
    # a class called otherwise on the second slide: refused, in one line
    layers[1].metadata["class_names"] = {1: "stroma", 2: "normal"}
    click(qtbot, ft.finetune_button)
    assert "label 1 is 'stroma' here but 'metastasis' on case1.tif" in ft._status.value
    layers[1].metadata["class_names"] = {0: "unlabelled", 1: "metastasis", 2: "normal"}
    ft.set_fields(mode="full", num_patches=96, several=False)
    before = _snapshot(viewer)
    assert "metastasis probability" in before  # named after the painted class

    dock = open_dock(viewer, "Project")
    dock.set_folder(home / "project")
    click(qtbot, dock.save_button)
    assert (home / "project" / PROJECT_FILE).is_file(), dock.status
    saved = read_project(home / "project")
    assert [e.path["relative"] for e in saved.slides] == [f"../slides/{p.name}" for p in paths]
    assert saved.docks["Fine-tune"]["mode"] == "full"
    viewer.close()

    # the study folder moves; then the slide moves out of it: one prompt re-points it
    moved = tmp_path / "moved"
    shutil.move(home, moved)
    elsewhere = tmp_path / "archive"
    elsewhere.mkdir()
    shutil.move(moved / "slides", elsewhere)
    assert main(["view", str(moved / "project")]) == 2  # the CLI: one line, no window

    viewer = make_napari_viewer()
    dock = open_dock(viewer, "Project")
    asked: list[Path] = []
    dock.locate = lambda recorded: asked.append(recorded) or elsewhere / "slides" / recorded.name
    dock.set_folder(moved / "project")
    click(qtbot, dock.open_button)
    assert len(asked) == 1 and asked[0].name == "case1.tif", dock.status  # case2 found beside
    after = _snapshot(viewer)
    assert list(after) == list(before), dock.status
    for name, was in before.items():
        now = after[name]
        assert now["type"] == was["type"] and now["scale"] == was["scale"], name
        assert now["translate"] == was["translate"] and now["colours"] == was["colours"], name
        assert np.array_equal(now["data"], was["data"]), name
    assert after["annotations"]["classes"] == {0: "unlabelled", 1: "metastasis", 2: "normal"}
    assert viewer.layers["annotations"].metadata["slide_path"] == str(
        elsewhere / "slides" / "case1.tif"
    )
    # exports of the opened project's slides default to the project's folder
    assert session_of(viewer).export_dir(paths[0]) == moved / "project" / "exports" / "case1"
    ft = open_dock(viewer, "Fine-tune")
    assert ft._mode.value == "full" and ft._patches.value == 96
    assert ft._annotations.value is viewer.layers["annotations"]
    viewer.close()

    # dropping the folder on napari opens it as well
    viewer = make_napari_viewer()
    shutil.move(elsewhere / "slides", moved / "slides")
    viewer.open(str(moved / "project"), plugin="napari-wsi-ssl")
    assert [layer.name for layer in viewer.layers] == list(before)
