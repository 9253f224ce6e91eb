"""What the stall probe says about a stall (how long, the GUI thread's CPU time, the callback
that owned it), and the cheap paths of the map layers: a store of the same grid swapped under
the layer's views, a store's new layers added one per turn of the event loop."""

from __future__ import annotations

import time
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr
from test_gui_pacing import _store

from napari_wsi_ssl._napari.stall_trace import Probe
from napari_wsi_ssl._napari.widgets._annotations import slide_geometry
from napari_wsi_ssl._napari.widgets._layers import PROBABILITY, UNCERTAINTY, show_store
from napari_wsi_ssl._napari.widgets._worker import RunController
from napari_wsi_ssl._napari.widgets.predict import PredictionDisplay
from napari_wsi_ssl.inference.store import ProbabilityView

pytestmark = pytest.mark.gui


def _busy_callback(cpu_s: float) -> None:
    """A GUI-thread callback that computes for ``cpu_s`` of its own CPU time."""
    end = time.thread_time() + cpu_s
    x = 0
    while time.thread_time() < end:
        x += 1


def _sleeping_callback(wall_s: float) -> None:
    """A GUI-thread callback that blocks without computing (as on a lock)."""
    time.sleep(wall_s)


def test_the_probe_names_the_callback_of_each_stall(qtbot: Any) -> None:
    from qtpy.QtCore import QTimer

    probe = Probe(trace=True)
    probe.start()
    QTimer.singleShot(100, partial(_busy_callback, 0.15))
    QTimer.singleShot(500, partial(_sleeping_callback, 0.15))
    qtbot.wait(900)
    probe.stop()
    stalls = probe.stalls(over_ms=100)
    assert len(stalls) == 2, stalls
    by_owner = {s["owner"].split(":")[0]: s for s in stalls}
    busy = by_owner[f"{__name__}._busy_callback"]
    sleeping = by_owner[f"{__name__}._sleeping_callback"]
    assert busy["ms"] >= 150 and busy["cpu_ms"] >= 140, busy
    assert busy["at_s"] < sleeping["at_s"]
    assert sleeping["ms"] >= 150 and sleeping["cpu_ms"] < 0.5 * sleeping["ms"], sleeping
    assert sleeping["where"].startswith(f"{__name__}._sleeping_callback")
    assert probe.cpu_ms()["longest_cpu_ms"] >= 140


def _two_maps(path: Path, value: int) -> Path:
    """A fast-mode-like store: the tumour map and an uncertainty map of the same grid."""
    _store(path, value)
    root = zarr.open_group(str(path), mode="a")
    group = root.create_group("uncertainty")
    for i in range(2):
        group.create_dataset(str(i), data=np.full((64 >> i, 64 >> i), 10, np.uint8))
    group.attrs["multiscales"] = root["tumour"].attrs["multiscales"]
    return path


def _slide(viewer: Any, tmp_path: Path) -> Any:
    data = np.full((64, 64, 3), 200, np.uint8)
    return viewer.add_image(
        [data, data[::2, ::2]],
        rgb=True,
        multiscale=True,
        name="slide",
        metadata={"slide_path": str(tmp_path / "slide.tif"), "mpp": 1.0},
    )


def test_a_store_of_the_same_grid_is_swapped_under_the_layer(
    make_napari_viewer: Any, tmp_path: Path
) -> None:
    viewer = make_napari_viewer()
    geometry = slide_geometry(_slide(viewer, tmp_path))
    layer = show_store(viewer, _store(tmp_path / "a.ome.zarr", 51), geometry)[PROBABILITY]
    views = list(layer.data)
    layer.contrast_limits = (0.0, 0.2)  # a weak map's stretch
    data_events: list[Any] = []
    layer.events.data.connect(data_events.append)

    again = show_store(viewer, _store(tmp_path / "b.ome.zarr", 204), geometry)[PROBABILITY]
    assert again is layer and data_events == [], "no napari data swap"
    assert all(a is b for a, b in zip(layer.data, views, strict=True)), "the same level views"
    assert all(isinstance(v, ProbabilityView) for v in layer.data)
    assert layer.metadata["store"] == str(tmp_path / "b.ome.zarr")
    assert float(np.asarray(layer.data[0][:4, :4]).mean()) == pytest.approx(0.8)
    assert tuple(layer.contrast_limits) == (0.0, 1.0), "the stretch does not carry over"


def test_a_stores_layers_are_added_one_per_turn_then_shown(
    make_napari_viewer: Any, qtbot: Any, tmp_path: Path
) -> None:
    viewer = make_napari_viewer()
    slide = _slide(viewer, tmp_path)
    annotations = viewer.add_labels(np.zeros((16, 16), np.uint8), name="annotations")
    runner = RunController()
    runner.sync = False
    display = PredictionDisplay(viewer, runner)
    request = type("Request", (), {"slide": slide_geometry(slide)})()
    display.begin(request)  # type: ignore[arg-type]
    display.store = _two_maps(tmp_path / "a.ome.zarr", 204)

    display._attach_staged()
    assert PROBABILITY in viewer.layers and UNCERTAINTY not in viewer.layers
    assert not viewer.layers[PROBABILITY].visible and display.staging
    assert viewer.layers.selection.active is annotations, "the painted layer stays selected"
    qtbot.waitUntil(lambda: UNCERTAINTY in viewer.layers, timeout=2000)
    assert not viewer.layers[PROBABILITY].visible, "shown in the turn after the last add"
    qtbot.waitUntil(lambda: not display.staging, timeout=2000)
    assert viewer.layers[PROBABILITY].visible and not viewer.layers[UNCERTAINTY].visible
    assert set(display.layers) == {PROBABILITY, UNCERTAINTY}
    assert viewer.layers.selection.active is annotations, "still"
