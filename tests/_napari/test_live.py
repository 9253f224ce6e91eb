"""The fast interactive loop by clicks: fast mode (feature cache and light head), live refinement
after paint strokes, the uncertainty layer, and Suggest moving the camera; on the synthetic slide."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr
from gui_helpers import (
    click,
    open_dock,
    open_slide_layer,
    paint_classes,
    truth_on_grid,
    wait_idle,
)
from test_flow import StallProbe

from napari_wsi_ssl._napari.widgets._base import camera_of, optional_path
from napari_wsi_ssl._napari.widgets._layers import PROBABILITY, UNCERTAINTY
from napari_wsi_ssl._napari.widgets._live import SUGGESTIONS

pytestmark = pytest.mark.gui


def _map_separates(layer: Any, synthetic: Any) -> tuple[float, float]:
    """Mean probability of the map over the true tumour and over the rest of the slide."""
    values = np.asarray(layer.data[0][:, :])
    truth = truth_on_grid(values.shape, synthetic)
    return float(values[truth].mean()), float(values[~truth].mean())


def test_fast_live_suggest(viewer: Any, qtbot: Any, synthetic: Any, tmp_path: Path) -> None:
    slide = open_slide_layer(viewer, synthetic.slide)
    viewer.window.show()
    dock = open_dock(viewer, "Fine-tune")
    assert dock.fast_mode, "fast is the default mode"
    dock.cache_dir = tmp_path / "cache"
    click(qtbot, dock.annotation_button)
    ann = viewer.layers["annotations"]
    truth = truth_on_grid(ann.data.shape, synthetic)
    paint_classes(ann, truth, seed=0, strokes=8)
    dock.set_fields(slide=slide, annotations=ann, out=tmp_path / "head.pt")
    assert optional_path(dock._checkpoint) is None, "no pretrained checkpoint: colour features"

    # fast mode: the cache is built, the head trained, the map shown
    t0 = time.perf_counter()
    click(qtbot, dock.finetune_button)
    outcome = wait_idle(qtbot, dock, 60)
    print(f"fast fine-tuning (colour features, cache included): {time.perf_counter() - t0:.1f} s")
    assert outcome.ok, outcome.error
    assert (tmp_path / "head.pt").is_file() and dock.last_checkpoint == tmp_path / "head.pt"
    prob = viewer.layers[PROBABILITY]
    inside, outside = _map_separates(prob, synthetic)
    assert inside > 0.7 and outside < 0.3, (inside, outside)
    assert "probability of 'tumour'" in dock._status.value, dock._status.value
    first_store = prob.metadata["store"]
    unc = viewer.layers[UNCERTAINTY]
    assert not unc.visible and unc.metadata["store"] == first_store
    assert 0 < float(np.asarray(unc.data[0][:, :]).max()) <= 1.0

    # live: painting more (real paint events on the layer) refreshes the map to a new store
    views = {"tumour": list(prob.data), "uncertainty": list(unc.data)}
    dock.set_fields(live=True)
    paint_classes(ann, truth, seed=1, strokes=6)
    assert dock.live.timer.isActive(), "the strokes started the debounce timer"
    probe = StallProbe()  # from the strokes' end: the round and the layers' retargeting
    probe.start()
    qtbot.waitUntil(lambda: prob.metadata["store"] != first_store, timeout=30_000)
    outcome = wait_idle(qtbot, dock, 30)
    probe.stop()
    print(f"live round: longest event-loop stall {probe.longest * 1000:.0f} ms")
    assert outcome.ok, outcome.error
    assert viewer.layers[PROBABILITY] is prob, "the map layer was retargeted, not replaced"
    assert Path(prob.metadata["store"]).is_dir() and not unc.visible
    assert unc.metadata["store"] == prob.metadata["store"]
    # in place: the layers' own level views now read the new store (no data swap, no new layer)
    new_store = zarr.open_group(str(prob.metadata["store"]), mode="r")
    assert dock.display.store == Path(prob.metadata["store"])
    for layer, name in ((prob, "tumour"), (unc, "uncertainty")):
        assert len(layer.data) == len(views[name])
        for level, (view, before) in enumerate(zip(layer.data, views[name], strict=True)):
            assert view is before or view.__wrapped__ is before.__wrapped__
            np.testing.assert_allclose(
                np.asarray(view[:, :]), new_store[name][str(level)][:] / 255, atol=1e-6
            )
    inside, outside = _map_separates(prob, synthetic)
    assert inside > 0.7 and outside < 0.3, (inside, outside)
    assert dock.refiner is not None and dock.refiner._refiner.last is not None
    assert probe.longest < 1.0  # generous: the test machine's cores are shared

    # Suggest: rectangles where to paint next; each click moves the camera to the next one
    click(qtbot, dock.suggest_button)
    shapes = viewer.layers[SUGGESTIONS]
    assert len(shapes.data) >= 2 and set(shapes.shape_type) == {"rectangle"}
    centres = [np.asarray(r)[:, -2:].mean(axis=0) for r in shapes.data]
    np.testing.assert_allclose(camera_of(viewer).center[-2:], centres[0], atol=1e-3)
    click(qtbot, dock.suggest_button)
    np.testing.assert_allclose(camera_of(viewer).center[-2:], centres[1], atol=1e-3)
    assert not np.allclose(centres[0], centres[1])
    # the suggested regions stay off the strokes
    painted = np.asarray(ann.data) > 0
    d = ann.metadata["downsample"]
    for y0, x0, y1, x1 in dock.tour.boxes:
        assert not painted[y0 // d : y1 // d, x0 // d : x1 // d].any()

    # the head checkpoint in the Predict dock maps the slide through the cache
    predict = open_dock(viewer, "Predict")
    predict.set_fields(slide=slide, checkpoint=tmp_path / "head.pt", cache=tmp_path / "cache")
    click(qtbot, predict.predict_button)
    assert wait_idle(qtbot, predict, 30).ok
    inside, outside = _map_separates(viewer.layers[PROBABILITY], synthetic)
    assert inside > 0.7 and outside < 0.3, (inside, outside)


def test_live_loop_debounces_and_queues(qtbot: Any) -> None:
    """Strokes in a burst start one round after a pause; a stroke during a round queues one more."""
    from napari.layers import Labels

    from napari_wsi_ssl._napari.widgets._live import DEBOUNCE_MS, LiveLoop

    rounds: list[float] = []
    busy = [False]
    loop = LiveLoop(lambda: rounds.append(time.perf_counter()) is None, lambda: busy[0])
    layer = Labels(np.zeros((64, 64), np.uint8))
    loop.watch(layer)
    layer.brush_size = 3
    loop.enabled = False
    layer.paint((5, 5), 1)
    qtbot.wait(DEBOUNCE_MS + 200)
    assert rounds == [], "live off: no round"
    loop.enabled = True
    t0 = time.perf_counter()
    for i in range(3):  # a burst of strokes: one round, after the last one
        layer.paint((10 + i, 10), 1)
        qtbot.wait(DEBOUNCE_MS // 3)
    qtbot.waitUntil(lambda: len(rounds) == 1, timeout=2000)
    assert rounds[0] - t0 >= DEBOUNCE_MS / 1000 * 1.5
    busy[0] = True  # a round is going: a stroke queues one more, run when it ends
    layer.paint((20, 20), 2)
    qtbot.waitUntil(lambda: loop.pending, timeout=2000)
    assert len(rounds) == 1
    busy[0] = False
    loop.round_ended()
    qtbot.waitUntil(lambda: len(rounds) == 2, timeout=2000)
    assert not loop.pending
    loop.watch(None)  # another layer, or live off: its strokes no longer count
    layer.paint((30, 30), 2)
    qtbot.wait(DEBOUNCE_MS + 200)
    assert len(rounds) == 2
