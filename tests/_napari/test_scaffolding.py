"""The shared pieces of the docks: worker glue, annotation geometry, plots."""

from __future__ import annotations

import time
from collections.abc import Generator
from typing import Any

import numpy as np
import pytest

from napari_wsi_ssl._napari.widgets._annotations import (
    new_annotation_layer,
    read_painted,
    region_box,
    slide_geometry,
)
from napari_wsi_ssl._napari.widgets._plot import CurveCanvas, ImageStrip, ReportCanvas
from napari_wsi_ssl._napari.widgets._worker import RunController
from napari_wsi_ssl.errors import AnnotationError, CancelledError, TrainingError
from napari_wsi_ssl.events import CancelToken, Log, Preview, Progress

pytestmark = pytest.mark.gui


def _fake_slide(viewer: Any, shape: tuple[int, int] = (1000, 1200), mpp: float = 0.5) -> Any:
    data = np.full((*shape, 3), 230, np.uint8)
    return viewer.add_image(
        [data, data[::2, ::2]],
        rgb=True,
        multiscale=True,
        scale=(mpp, mpp),
        name="slide",
        metadata={"slide_path": "/nonexistent/slide.tif", "mpp": mpp},
    )


def _counting(n: int, token: CancelToken, delay: float = 0.0) -> Generator[Any, None, int]:
    for i in range(n):
        if token.cancelled:
            raise CancelledError("stopped", hint="kept 0 steps")
        time.sleep(delay)
        yield Progress(step=i + 1, total=n, loss=1.0 / (i + 1))
    yield Preview(step=n, images={"input": np.zeros((8, 8, 3), np.uint8)})
    yield Log("done counting")
    return n * 10


def test_runner_sync_and_threaded_same_result(qtbot: Any) -> None:
    seen: list[Any] = []
    runner = RunController(on_event=seen.append)
    runner.sync = True
    done: list[Any] = []
    assert runner.start(lambda tok: _counting(5, tok), "count", on_done=done.append)
    assert not runner.running
    assert done[0].value == 50 and done[0].ok
    n_sync = len(seen)

    seen.clear()
    runner.sync = False
    assert runner.start(lambda tok: _counting(5, tok, 0.01), "count", on_done=done.append)
    assert runner.running
    # a second run while one goes is refused
    assert not runner.start(lambda tok: _counting(5, tok), "count")
    qtbot.waitUntil(lambda: not runner.running, timeout=5000)
    assert done[1].value == 50
    assert len(seen) == n_sync


def test_runner_error_and_cancel(qtbot: Any) -> None:
    def failing(token: CancelToken) -> Generator[Any, None, None]:
        yield Progress(step=1, total=2)
        raise TrainingError("the loss became NaN", hint="lower the learning rate")

    runner = RunController()
    runner.start(failing, "train")
    qtbot.waitUntil(lambda: not runner.running, timeout=5000)
    outcome = runner.last_outcome
    assert outcome is not None and isinstance(outcome.error, TrainingError)

    runner.start(lambda tok: _counting(10_000, tok, 0.005), "long")
    qtbot.wait(50)
    runner.cancel()
    qtbot.waitUntil(lambda: not runner.running, timeout=5000)
    assert runner.last_outcome is not None and runner.last_outcome.cancelled


def test_annotation_layer_aligned_lazy_and_named(make_napari_viewer: Any) -> None:
    viewer = make_napari_viewer()
    slide = _fake_slide(viewer)
    layer = new_annotation_layer(viewer, slide, downsample=4)
    assert layer.name == "annotations"
    assert layer.data.shape == (250, 300)
    assert type(layer.data).__module__.startswith("zarr")
    np.testing.assert_allclose(layer.scale, (2.0, 2.0))
    np.testing.assert_allclose(layer.translate, (0.75, 0.75))
    assert layer.mode == "paint" and layer.selected_label == 1
    # annotation pixel (10, 20) covers slide pixels 40..43 x 80..83: the centres agree
    world = layer.data_to_world((10, 20))
    np.testing.assert_allclose(slide.world_to_data(world), (41.5, 81.5))
    colours = layer.colormap.color_dict
    assert colours[1][0] > 0.8 and colours[2][1] > 0.7
    assert list(layer.features["class"][:3]) == ["unlabelled", "tumour", "normal"]

    geometry = slide_geometry(slide)
    with pytest.raises(AnnotationError, match="no painted"):
        read_painted(layer, geometry)
    layer.paint((20, 20), 1)
    with pytest.raises(AnnotationError, match="only one class"):
        read_painted(layer, geometry)
    layer.selected_label = 2
    layer.paint((100, 100), 2)
    painted = read_painted(layer, geometry)
    assert painted.downsample == 4
    assert set(np.unique(painted.labels)) == {0, 1, 2}
    # only the painted chunks exist in the store
    assert len([k for k in layer.data.store if not k.startswith(".")]) <= 2

    shapes = viewer.add_shapes(
        [np.array([[10.0, 20.0], [10, 120], [60, 120], [60, 20]])], name="region"
    )
    assert region_box(shapes, geometry) == (40, 20, 240, 120)


def test_plots(qtbot: Any) -> None:
    canvas = CurveCanvas(("loss", "validation"))
    qtbot.addWidget(canvas)
    for i in range(20):
        canvas.add_point("loss", "train", i, 1.0 / (i + 1))
    canvas.add_point("validation", "f1", 5, 0.5)
    canvas.flush()
    assert len(canvas.series[("loss", "train")][0]) == 20
    strip = ImageStrip()
    qtbot.addWidget(strip)
    strip.show_images({"a": np.zeros((16, 16, 3), np.uint8), "b": np.ones((3, 16, 16), np.float32)})
    assert strip.pixmap() is not None and not strip.pixmap().isNull()
    report = ReportCanvas()
    qtbot.addWidget(report)
    report.show_report(
        np.array([[5, 1], [2, 7]]),
        ["normal", "tumour"],
        (np.array([0, 0.2, 1]), np.array([0, 0.8, 1]), 0.85),
    )
