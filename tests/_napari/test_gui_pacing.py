"""What keeps the viewer responsive while a dock computes: compute threads below the GUI
thread's CPU priority, the dock's own progress bar instead of napari's animated activity dock,
map layers reused across predictions and added in two turns of the event loop."""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Generator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr

from napari_wsi_ssl._napari.widgets._annotations import slide_geometry
from napari_wsi_ssl._napari.widgets._layers import PROBABILITY, show_store
from napari_wsi_ssl._napari.widgets._worker import (
    COMPUTE_NICENESS,
    RunController,
    yield_cpu_to_gui,
)
from napari_wsi_ssl.events import CancelToken, Progress

pytestmark = pytest.mark.gui


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread niceness is Linux's")
def test_compute_thread_yields_cpu_to_the_gui_thread() -> None:
    gui_before = os.getpriority(os.PRIO_PROCESS, threading.main_thread().native_id)
    seen: dict[str, int] = {}

    def compute() -> None:
        yield_cpu_to_gui()
        seen["self"] = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
        # a thread started by the compute thread (a reader, an OpenMP worker) inherits it
        child = threading.Thread(
            target=lambda: seen.__setitem__(
                "child", os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
            )
        )
        child.start()
        child.join()

    t = threading.Thread(target=compute)
    t.start()
    t.join()
    assert seen["self"] >= COMPUTE_NICENESS
    assert seen["child"] >= COMPUTE_NICENESS
    assert os.getpriority(os.PRIO_PROCESS, threading.main_thread().native_id) == gui_before


def _steps(n: int, token: CancelToken) -> Generator[Any, None, int]:
    for i in range(n):
        yield Progress(step=i + 1, total=n)
    return n


def test_runs_move_the_dock_bar_and_never_napari_activity_dock(qtbot: Any) -> None:
    """napari's activity dock animates an indicator while any of its bars exists, repainting the
    window about 30 times a second; a run reports to its dock's own bar instead."""
    from napari.utils import progress

    from napari_wsi_ssl.events import TilesDone

    seen: list[tuple[int, Any, str]] = []
    instances: list[int] = []

    def steps_then_tiles(token: CancelToken) -> Generator[Any, None, int]:
        for i in range(3):
            yield Progress(step=i + 1, total=3)
        for i in range(4):
            instances.append(len(progress._all_instances))
            yield TilesDone(done=i + 1, total=4)
        return 7

    runner = RunController(on_bar=lambda d, t, w: seen.append((d, t, w)))
    runner.start(steps_then_tiles, "composed")
    qtbot.waitUntil(lambda: not runner.running, timeout=5000)
    assert runner.last_outcome is not None and runner.last_outcome.ok
    assert seen[0][2] == "steps" and (3, 3, "steps") in seen
    assert seen[-1] == (4, 4, "tiles"), "the last count of each phase always shows"
    assert instances and max(instances) == 0


def test_a_cancelled_run_that_returns_is_still_cancelled(qtbot: Any) -> None:
    """Training stops at a cancel by saving and returning: the outcome says cancelled."""
    runner = RunController()

    def until_cancelled(token: CancelToken) -> Generator[Any, None, str]:
        for i in range(10_000):
            if token.cancelled:
                return "saved"
            yield Progress(step=i + 1, total=10_000)
        return "finished"

    runner.start(until_cancelled, "stoppable")
    runner.cancel()
    qtbot.waitUntil(lambda: not runner.running, timeout=5000)
    outcome = runner.last_outcome
    assert outcome is not None and outcome.cancelled and not outcome.ok
    assert outcome.value == "saved"


def _store(path: Path, value: int, shape: tuple[int, int] = (64, 64)) -> Path:
    """A minimal prediction store: a two-level uint8 tumour map of one value."""
    root = zarr.open_group(str(path), mode="w")
    group = root.create_group("tumour")
    for i in range(2):
        s = (shape[0] >> i, shape[1] >> i)
        group.create_dataset(str(i), data=np.full(s, value, np.uint8), chunks=(32, 32))
    group.attrs["multiscales"] = [
        {
            "version": "0.4",
            "axes": [{"name": "y", "type": "space"}, {"name": "x", "type": "space"}],
            "datasets": [
                {
                    "path": str(i),
                    "coordinateTransformations": [{"type": "scale", "scale": [2.0**i, 2.0**i]}],
                }
                for i in range(2)
            ],
        }
    ]
    return path


def test_a_new_prediction_reuses_the_map_layer(make_napari_viewer: Any, tmp_path: Path) -> None:
    viewer = make_napari_viewer()
    data = np.full((64, 64, 3), 200, np.uint8)
    slide = viewer.add_image(
        [data, data[::2, ::2]],
        rgb=True,
        multiscale=True,
        name="slide",
        metadata={"slide_path": str(tmp_path / "slide.tif"), "mpp": 1.0},
    )
    geometry = slide_geometry(slide)
    first = show_store(viewer, _store(tmp_path / "a.ome.zarr", 51), geometry, visible=False)
    layer = first[PROBABILITY]
    assert not layer.visible  # added hidden, to be shown at the next turn of the event loop
    assert layer.metadata["store"] == str(tmp_path / "a.ome.zarr")
    n_layers = len(viewer.layers)

    second = show_store(viewer, _store(tmp_path / "b.ome.zarr", 204, (128, 128)), geometry)
    assert second[PROBABILITY] is layer, "the layer object is kept, only its data changes"
    assert len(viewer.layers) == n_layers
    assert layer.metadata["store"] == str(tmp_path / "b.ome.zarr")
    assert layer.visible
    assert layer.data[0].shape == (128, 128)
    assert float(np.asarray(layer.data[0][:4, :4]).mean()) == pytest.approx(0.8)


def test_a_run_freezes_old_objects_and_switches_threads_often_until_it_ends(qtbot: Any) -> None:
    import gc

    from napari_wsi_ssl._napari.widgets._worker import RUN_SWITCH_INTERVAL_S

    assert gc.get_freeze_count() == 0
    interval = sys.getswitchinterval()
    runner = RunController()
    seen: list[tuple[int, float]] = []

    def steps(token: CancelToken) -> Generator[Any, None, int]:
        for i in range(3):
            seen.append((gc.get_freeze_count(), sys.getswitchinterval()))
            yield Progress(step=i + 1, total=3)
        return 3

    runner.start(steps, "frozen")
    qtbot.waitUntil(lambda: not runner.running, timeout=5000)
    assert seen and min(c for c, _ in seen) > 1000, "the objects existing at the start were frozen"
    assert max(i for _, i in seen) <= RUN_SWITCH_INTERVAL_S
    assert gc.get_freeze_count() == 0, "and returned to the collector at the end"
    assert sys.getswitchinterval() == interval
