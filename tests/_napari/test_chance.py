"""The Fine-tune dock says plainly when its model ended no better than guessing, in the fast mode
(the default, whose validation is a balanced accuracy) as in the deep ones, and not otherwise."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from gui_helpers import click, open_dock, open_slide_layer, paint_classes, truth_on_grid, wait_idle

pytestmark = pytest.mark.gui


def _paint_without_meaning(layer: Any, where: np.ndarray, seed: int, dabs: int = 30) -> None:
    """Dabs of labels 1 and 2 drawn at random over the same kind of tissue: nothing to learn."""
    rng = np.random.default_rng(seed)
    layer.brush_size = 6
    ys, xs = np.nonzero(where)
    for i, j in enumerate(rng.choice(ys.size, size=2 * dabs, replace=False)):
        layer.paint((int(ys[j]), int(xs[j])), 1 + i % 2)


def test_a_fast_mode_model_at_chance_says_so(
    viewer: Any, qtbot: Any, synthetic: Any, tmp_path: Path, monkeypatch: Any
) -> None:
    monkeypatch.setenv("NAPARI_WSI_SSL_CACHE", str(tmp_path / "cache"))
    slide = open_slide_layer(viewer, synthetic.slide)
    dock = open_dock(viewer, "Fine-tune")
    dock.cache_dir = tmp_path / "maps"
    click(qtbot, dock.annotation_button)
    ann = viewer.layers["annotations"]
    truth = truth_on_grid(ann.data.shape, synthetic)
    dock.set_fields(slide=slide, annotations=ann, out=tmp_path / "head.pt")

    # strokes that mean something: tumour where it is, normal tissue elsewhere
    paint_classes(ann, truth, seed=0, strokes=15)
    click(qtbot, dock.finetune_button)
    outcome = wait_idle(qtbot, dock, 90)
    assert outcome.ok, outcome.error
    assert dock._val_acc is not None and dock._val_acc > 0.8, dock._val_acc
    assert "at chance" not in dock._status.value, dock._status.value
    # the head is remembered for the next session (recent.json, written off the GUI thread)
    recent = Path(os.environ["NAPARI_WSI_SSL_RECENT"])
    qtbot.waitUntil(lambda: recent.is_file() and "finetune" in json.loads(recent.read_text()))
    assert json.loads(recent.read_text())["finetune"]["source"] == "gui"

    # the same labels painted at random over normal tissue: the dock says it learnt nothing
    ann.data = np.zeros_like(ann.data)
    _paint_without_meaning(ann, ~truth, seed=1)
    click(qtbot, dock.finetune_button)
    outcome = wait_idle(qtbot, dock, 90)
    assert outcome.ok, outcome.error
    status = dock._status.value
    assert dock._val_acc is not None and dock._val_acc < 0.6, dock._val_acc
    assert "is at chance" in status and "paint more of both classes" in status, status
