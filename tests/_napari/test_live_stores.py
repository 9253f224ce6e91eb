"""Live refinement leaves one map store, not one per round: each round's store replaces the
last under the layers, and the stores no layer reads any more are deleted (off the GUI thread)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from gui_helpers import click, open_dock, open_slide_layer, paint_classes, truth_on_grid, wait_idle

from napari_wsi_ssl._napari.widgets._layers import PROBABILITY

pytestmark = pytest.mark.gui


def _stores(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.ome.zarr"))


def test_live_rounds_leave_one_store(
    viewer: Any, qtbot: Any, synthetic: Any, tmp_path: Path
) -> None:
    slide = open_slide_layer(viewer, synthetic.slide)
    dock = open_dock(viewer, "Fine-tune")
    cache = tmp_path / "cache"
    dock.cache_dir = cache
    click(qtbot, dock.annotation_button)
    ann = viewer.layers["annotations"]
    truth = truth_on_grid(ann.data.shape, synthetic)
    paint_classes(ann, truth, seed=0, strokes=8)
    dock.set_fields(slide=slide, annotations=ann, out=tmp_path / "head.pt")
    click(qtbot, dock.finetune_button)
    assert wait_idle(qtbot, dock, 60).ok
    prob = viewer.layers[PROBABILITY]
    assert [str(p) for p in _stores(cache)] == [prob.metadata["store"]]

    dock.set_fields(live=True)
    seen = {prob.metadata["store"]}
    for seed in (1, 2, 3):
        before = prob.metadata["store"]
        paint_classes(ann, truth, seed=seed, strokes=4)
        qtbot.waitUntil(lambda b=before: prob.metadata["store"] != b, timeout=30_000)
        assert wait_idle(qtbot, dock, 30).ok
        seen.add(prob.metadata["store"])
        # the store the layers read stays; the earlier rounds' go once nothing reads them
        shown = prob.metadata["store"]
        qtbot.waitUntil(lambda s=shown: [str(p) for p in _stores(cache)] == [s], timeout=10_000)
        assert Path(shown).is_dir()
        assert float(prob.data[-1][:, :].max()) > 0.5  # the layer still reads a whole map
    assert len(seen) == 4, "each round wrote a store of its own"
    # one head, the last round's (the file the rounds rewrite)
    assert sorted(p.name for p in tmp_path.glob("*.pt")) == ["head.pt"]
    assert not list(cache.glob("*.head.pt"))
