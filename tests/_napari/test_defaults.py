"""Defaults a user meets, by clicks: the map layer is named after the painted class, exports go
to a writable folder of their own, and the command line's last checkpoints prefill the docks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from gui_helpers import click, open_dock, open_slide_layer, paint_classes, truth_on_grid, wait_idle

from napari_wsi_ssl._napari.widgets._base import optional_path
from napari_wsi_ssl._napari.widgets._layers import map_layer

pytestmark = pytest.mark.gui

TINY = ["--width", "8", "--patch-size", "32", "--batch-size", "2", "--steps", "2"]
TINY += ["--device", "cpu"]


def test_map_named_after_the_painted_class_and_exports_in_their_own_folder(
    viewer: Any, qtbot: Any, synthetic: Any, tmp_path: Path, monkeypatch: Any
) -> None:
    monkeypatch.setenv("NAPARI_WSI_SSL_CACHE", str(tmp_path / "cache"))
    slide = open_slide_layer(viewer, synthetic.slide)
    dock = open_dock(viewer, "Fine-tune")
    dock.cache_dir = tmp_path / "maps"
    click(qtbot, dock.annotation_button)
    ann = viewer.layers["annotations"]
    ann.metadata["class_names"] = {0: "background", 1: "carcinoma", 2: "stroma", 3: "fat"}
    truth = truth_on_grid(ann.data.shape, synthetic)
    paint_classes(ann, truth, seed=0, strokes=8)
    ys, xs = np.nonzero(~truth)
    for i in np.random.default_rng(1).choice(ys.size, size=6, replace=False):
        ann.paint((int(ys[i]), int(xs[i])), 3)
    dock.set_fields(slide=slide, annotations=ann, out=tmp_path / "head.pt")
    click(qtbot, dock.finetune_button)
    outcome = wait_idle(qtbot, dock, 90)
    assert outcome.ok, outcome.error

    # the map is the probability of label 1, named as it was painted; three classes: a layer
    # of the most probable class of each pixel, hidden until asked for
    prob = map_layer(viewer.layers, "tumour")
    assert prob is not None and prob.name == "carcinoma probability"
    assert "Metastasis probability" not in viewer.layers
    classes = viewer.layers["Classes"]
    assert not classes.visible and classes.metadata["store"] == prob.metadata["store"]
    assert classes.metadata["class_names"] == {1: "carcinoma", 2: "stroma", 3: "fat"}
    assert len(set(np.unique(np.asarray(classes.data[-1]))) - {0}) >= 2

    # Export: a folder of the slide's own in the cache, shown in the dock, never the slide's
    export = open_dock(viewer, "Export")
    export.set_fields(layer=prob)
    folder = tmp_path / "cache" / "exports" / Path(synthetic.slide).name.split(".")[0]
    assert Path(str(export.folder_edit.value)) == folder
    assert Path(str(export.path_edit.value)) == folder / "carcinoma_probability.ome.tif"
    click(qtbot, export.export_button)
    assert wait_idle(qtbot, export, 60).ok
    assert export.last_written == folder / "carcinoma_probability.ome.tif"
    assert export.last_written.is_file()

    # a folder the user chooses: the path moves into it and stays for the next layer
    mine = tmp_path / "mine"
    mine.mkdir()
    export.folder_edit.value = mine
    assert Path(str(export.path_edit.value)) == mine / "carcinoma_probability.ome.tif"
    export.set_fields(layer=classes)
    assert Path(str(export.folder_edit.value)) == mine
    assert Path(str(export.path_edit.value)) == mine / "classes.ome.tif"
    click(qtbot, export.export_button)
    assert wait_idle(qtbot, export, 60).ok and (mine / "classes.ome.tif").is_file()
    slide_folder = Path(synthetic.slide).parent
    assert not [p for p in slide_folder.iterdir() if "probability" in p.name or "classes" in p.name]


def test_the_command_lines_last_checkpoints_prefill_the_docks(
    make_napari_viewer: Any, synthetic: Any, tmp_path: Path, capsys: Any
) -> None:
    from napari_wsi_ssl.cli import main
    from napari_wsi_ssl.export import Placement, export_arrays
    from napari_wsi_ssl.recent import recent_file

    def docks() -> tuple[Path | None, Path | None]:
        viewer = make_napari_viewer()
        finetune, predict = open_dock(viewer, "Fine-tune"), open_dock(viewer, "Predict")
        return optional_path(finetune._checkpoint), optional_path(predict._checkpoint)

    pre, ft = tmp_path / "pre.pt", tmp_path / "ft.pt"
    assert main(["pretrain", str(synthetic.slide), "-o", str(pre), *TINY]) == 0
    assert json.loads(recent_file().read_text())["pretrain"]["source"] == "cli"
    # a pretrained encoder is for fine-tuning only: the Predict dock is not offered it
    assert docks() == (pre.resolve(), None)

    import tifffile

    truth = tifffile.imread(synthetic.tumour_mask) > 0
    tissue = tifffile.imread(synthetic.tissue_mask) > 0
    labels = np.where(truth, 1, np.where(tissue, 2, 0)).astype(np.uint8)
    geojson = tmp_path / "strokes.geojson"
    place = Placement(downsample=float(synthetic.gt_downsample))
    export_arrays(geojson, labels, "labels", place, class_names={1: "tumour", 2: "normal"})
    args = ["finetune", "--init", pre, "--slide", synthetic.slide, "--mask", geojson, "-o", ft]
    assert main([str(a) for a in [*args, *TINY]]) == 0
    capsys.readouterr()
    assert docks() == (pre.resolve(), ft.resolve())

    # a checkpoint deleted, or overwritten since (perhaps by another kind), is not offered
    pre.unlink()
    ft.write_bytes(b"not the model any more")
    assert docks() == (None, None)
