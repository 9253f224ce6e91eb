"""Predict a folder of slides from the Predict dock: progress per slide, a broken slide fails
alone with its one line, the results (a fast-mode head's map and the nuclei) are listed and open
over their slide."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from gui_helpers import click, open_dock, wait_idle

from napari_wsi_ssl._napari.widgets._layers import PROBABILITY
from napari_wsi_ssl._napari.widgets._predict_folder import SlideStarted
from napari_wsi_ssl.events import run_to_end
from napari_wsi_ssl.features import FeatureConfig, fast_finetune
from napari_wsi_ssl.synthetic import read_tumour_mask, write_synthetic_slide

pytestmark = pytest.mark.gui


def test_predict_folder(viewer: Any, qtbot: Any, synthetic: Any, tmp_path: Path) -> None:
    # a colour-feature head from the synthetic slide's truth, and a folder of two slides + junk
    labels = np.where(read_tumour_mask(synthetic) > 0, 1, 2).astype(np.uint8)
    head = run_to_end(
        fast_finetune(
            synthetic.slide, labels, synthetic.gt_downsample, None, tmp_path / "head",
            FeatureConfig(tile=32, mpp=synthetic.mpp * 2),
        )
    ).head  # fmt: skip
    folder = tmp_path / "slides"
    folder.mkdir()
    for seed in (1, 2):
        made = write_synthetic_slide(tmp_path / f"s{seed}", size=1024, seed=seed)
        made.slide.rename(folder / f"case{seed}.tif")
    (folder / "broken.svs").write_bytes(b"not a slide" * 100)
    (folder / "notes.txt").write_text("not a slide either, and not listed")

    dock = open_dock(viewer, "Predict")
    dock.set_fields(
        checkpoint=str(head),
        nuclei="classical",
        cache=str(tmp_path / "stores"),
        folder=str(folder),
    )
    seen: list[SlideStarted] = []
    original = dock.folder_event

    def spy(event: Any) -> bool:
        if isinstance(event, SlideStarted):
            seen.append(event)
        return original(event)

    dock.folder_event = spy
    click(qtbot, dock.folder_button)
    outcome = wait_idle(qtbot, dock, 120)
    assert outcome.ok, outcome.error
    assert [(s.index, s.total, s.slide.name) for s in seen] == [
        (0, 3, "broken.svs"), (1, 3, "case1.tif"), (2, 3, "case2.tif"),
    ]  # fmt: skip
    status = dock._status.value
    assert "2 of 3 slides predicted; failed: " in status and "broken.svs" in status, status
    assert "\n" not in status
    assert PROBABILITY not in viewer.layers, "a folder run opens nothing by itself"
    assert [Path(r.slide).name for r in dock.folder_results if r.store] == [
        "case1.tif", "case2.tif",
    ]  # fmt: skip
    dock._results.value = dock.folder_results[2]
    click(qtbot, dock._open_button)
    slide = viewer.layers["case2.tif"]
    prob = viewer.layers[PROBABILITY]
    assert (
        prob.metadata["store"] == Path(dock.folder_results[2].store)
        or str(prob.metadata["store"]) == dock.folder_results[2].store
    )
    assert prob.extent.world[1][0] == pytest.approx(slide.extent.world[1][0], rel=0.02)
    # the head's map and the nuclei of each slide: one store, both layers
    nuclei = viewer.layers["Nuclei"]
    assert nuclei.metadata["store"] == prob.metadata["store"]
    assert np.asarray(nuclei.data[0]).max() > 0
