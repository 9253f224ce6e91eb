"""The npe2 reader in a real napari window: CMU SVS, a large synthetic slide, no-mpp and bad files."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from napari_wsi_ssl._napari.reader import get_reader


def test_get_reader_returns_none_for_other_files(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    assert get_reader(str(text)) is None
    assert get_reader(str(tmp_path / "missing.svs")) is None
    assert get_reader(str(tmp_path)) is None  # a folder that is not a zarr store
    assert get_reader([str(text), str(text)]) is None


def test_reader_layer_data(cmu_svs: Path) -> None:
    reader = get_reader(str(cmu_svs))
    assert reader is not None
    [(data, kwargs, kind)] = reader(str(cmu_svs))
    assert kind == "image" and kwargs["multiscale"] and kwargs["rgb"]
    assert kwargs["scale"] == pytest.approx((0.499, 0.499))
    assert kwargs["contrast_limits"] == [0, 255]
    meta = kwargs["metadata"]
    assert meta["napari_wsi_ssl"] is True and meta["slide_path"] == str(cmu_svs)
    assert meta["mpp"] == pytest.approx([0.499, 0.499])
    assert meta["level_downsamples"] == [1.0, 2.0, 4.0, 8.0]
    assert meta["properties"]["openslide.vendor"] == "aperio"
    assert [d.shape[:2] for d in data] == [(2967, 2220), (1484, 1110), (742, 555), (371, 278)]


def test_open_cmu_in_napari(make_napari_viewer, cmu_svs: Path) -> None:
    import openslide

    viewer = make_napari_viewer(show=True)
    layers = viewer.open(str(cmu_svs), plugin="napari-wsi-ssl")
    assert len(layers) == 1
    layer = layers[0]
    assert layer.multiscale and layer.rgb
    assert tuple(layer.scale) == pytest.approx((0.499, 0.499))
    assert len(layer.data) == 4
    expected = np.asarray(openslide.OpenSlide(str(cmu_svs)).read_region((300, 400), 0, (128, 96)))[
        ..., :3
    ]
    np.testing.assert_array_equal(np.asarray(layer.data[0][400:496, 300:428]), expected)
    # the world extent is the slide's size in µm
    extent = layer.extent.world[1] - layer.extent.world[0]
    assert extent == pytest.approx((2967 * 0.499, 2220 * 0.499), rel=1e-3)


def test_large_synthetic_opens_fast(make_napari_viewer, qtbot, tmp_path_factory) -> None:
    from napari_wsi_ssl.synthetic import write_synthetic_slide

    # written here rather than shared with tests/slide: this folder must run on its own
    syn = write_synthetic_slide(tmp_path_factory.mktemp("large"), size=8192, seed=2)
    viewer = make_napari_viewer(show=True)
    start = time.perf_counter()
    layers = viewer.open(str(syn.slide), plugin="napari-wsi-ssl")
    qtbot.wait(1)
    seconds = time.perf_counter() - start
    print(f"\nopened a {syn.size} px slide in napari in {seconds:.3f} s")
    assert seconds < 5
    assert tuple(layers[0].scale) == pytest.approx((0.5, 0.5))
    assert layers[0].data[0].shape == (8192, 8192, 3)


def test_slide_without_mpp_warns_and_opens_at_scale_1(
    make_napari_viewer, tmp_path: Path, synthetic
) -> None:
    import tifffile

    from napari_wsi_ssl.slide import open_slide

    with open_slide(synthetic.slide) as slide:
        rgb = slide.read_region((0, 0), 1, (1024, 1024))
    path = tmp_path / "nompp.tif"
    tifffile.imwrite(path, rgb, tile=(256, 256), photometric="rgb")
    viewer = make_napari_viewer()
    with pytest.warns(UserWarning, match="nompp.tif"):
        layers = viewer.open(str(path), plugin="napari-wsi-ssl")
    assert tuple(layers[0].scale) == (1.0, 1.0)


def test_corrupt_slide_gives_one_clear_error(
    make_napari_viewer, tmp_path: Path, cmu_svs: Path
) -> None:
    truncated = tmp_path / "cut.svs"
    data = cmu_svs.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    viewer = make_napari_viewer()
    with pytest.raises(Exception) as info:
        viewer.open(str(truncated), plugin="napari-wsi-ssl")
    # napari wraps the reader's error; the cause is our one-line SlideError naming the file
    from napari_wsi_ssl.errors import SlideError

    cause: BaseException | None = info.value
    while cause is not None and not isinstance(cause, SlideError):
        cause = cause.__cause__ or cause.__context__
    assert isinstance(cause, SlideError) and "cut.svs" in str(cause)
    assert len(viewer.layers) == 0
