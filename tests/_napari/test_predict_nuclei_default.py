"""The Predict dock offers the better nuclei method by default and says which it is."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from gui_helpers import open_dock, open_slide_layer

from napari_wsi_ssl.inference import nuclei_choice
from napari_wsi_ssl.inference.nuclei_choice import CLASSICAL, write_scores

pytestmark = pytest.mark.gui


def test_best_nuclei_default(
    viewer: Any, synthetic: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ckpt = tmp_path / "models" / "nuclei.pt"
    ckpt.parent.mkdir()
    ckpt.write_bytes(b"weights")
    write_scores(ckpt, {"learned": {"aji": 0.58}, "classical": {"aji": 0.31}})
    monkeypatch.setattr(nuclei_choice, "NUCLEI_MODEL", ckpt)
    slide = open_slide_layer(viewer, synthetic.slide)
    predict = open_dock(viewer, "Predict")
    assert predict._nuclei_best.value == "learned (nuclei.pt): AJI 0.58 vs 0.31"
    assert Path(predict._nuclei_checkpoint.value) == ckpt
    predict.set_fields(slide=slide, nuclei="best", cache=tmp_path / "cache")
    config = predict.request().plan.config
    assert config.nuclei and config.nuclei_checkpoint == str(ckpt)
    # without a learned model that beat the classical one, "best" is the classical watershed
    write_scores(ckpt, {"learned": {"aji": 0.2}, "classical": {"aji": 0.31}})
    config = predict.request().plan.config
    assert config.nuclei and config.nuclei_checkpoint is None
    assert nuclei_choice.best_nuclei().label == CLASSICAL
