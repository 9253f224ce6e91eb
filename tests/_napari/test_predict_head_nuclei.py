"""A fast-mode head and classical nuclei from one click of the Predict dock: the head's map and
the Nuclei layer over the slide, from one store; a Cancel during the nuclei keeps the map."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr
from gui_helpers import click, open_dock, open_slide_layer, wait_idle

from napari_wsi_ssl.synthetic import read_nuclei_labels

pytestmark = pytest.mark.gui


def _map_layer(viewer: Any) -> Any:
    return next((la for la in viewer.layers if la.metadata.get("map") == "tumour"), None)


def _predict(viewer: Any, qtbot: Any, synthetic: Any, head: Path, cache: Path) -> Any:
    """Open the slide and the Predict dock, choose the head and classical nuclei, click Predict."""
    slide = open_slide_layer(viewer, synthetic.slide)
    predict = open_dock(viewer, "Predict")
    predict.set_fields(slide=slide, checkpoint=head, nuclei="classical", cache=cache)
    click(qtbot, predict.predict_button)
    assert predict.runner.running  # threaded, like a user's click
    return predict


def test_head_and_classical_nuclei_from_one_click(
    viewer: Any, qtbot: Any, synthetic: Any, fast_head: Path, tmp_path: Path
) -> None:
    predict = _predict(viewer, qtbot, synthetic, fast_head, tmp_path / "c")
    slide = viewer.layers[synthetic.slide.name]
    outcome = wait_idle(qtbot, predict)
    assert outcome.ok, outcome.error
    prob, nuclei = _map_layer(viewer), viewer.layers["Nuclei"]
    assert prob is not None and prob.name == "tumour probability" and prob.visible
    # one store holds both maps
    assert prob.metadata["store"] == nuclei.metadata["store"]
    root = zarr.open_group(prob.metadata["store"], mode="r")
    assert root["tumour"].attrs["complete"] and root["nuclei"].attrs["complete"]
    assert float(np.asarray(prob.data[-1]).max()) > 0.5
    labels = np.asarray(nuclei.data[0])
    truth = read_nuclei_labels(synthetic)
    assert labels.shape == truth.shape
    fg, gt = labels > 0, truth > 0
    assert 2 * (fg & gt).sum() / (fg.sum() + gt.sum()) > 0.5
    np.testing.assert_allclose(nuclei.scale, slide.scale)
    assert "done" in predict._status.value


def test_cancel_during_the_nuclei_keeps_the_map(
    viewer: Any, qtbot: Any, synthetic: Any, fast_head: Path, tmp_path: Path
) -> None:
    predict = _predict(viewer, qtbot, synthetic, fast_head, tmp_path / "c")
    # the map is whole (and shown) before the nuclei's tiles come in
    qtbot.waitUntil(lambda: _map_layer(viewer) is not None, timeout=120_000)
    click(qtbot, predict._cancel_button)
    outcome = wait_idle(qtbot, predict)
    assert outcome.cancelled
    prob = _map_layer(viewer)
    assert prob is not None and prob in viewer.layers
    root = zarr.open_group(prob.metadata["store"], mode="r")
    assert root["tumour"].attrs["complete"] and not root["nuclei"].attrs.get("complete")
    # a Nuclei layer only when some nuclei tile was computed before the Cancel (never empty)
    assert ("Nuclei" in viewer.layers) == bool(np.any(root["nuclei"]["done"][:]))
