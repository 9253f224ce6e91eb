"""The synthetic sample: slide, tumour mask and nuclei labels in µm, written to the cache once."""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.gui


def test_sample_data_layers(
    make_napari_viewer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NAPARI_WSI_SSL_CACHE", str(tmp_path))
    from napari_wsi_ssl._napari.sample_data import synthetic_slide

    layers = synthetic_slide(size=1024, seed=0)
    [(image, ikw, ikind), (tumour, tkw, tkind), (nuclei, nkw, nkind)] = layers
    assert (ikind, tkind, nkind) == ("image", "labels", "labels")
    assert ikw["multiscale"] and ikw["scale"] == pytest.approx((0.5, 0.5))
    assert tkw["scale"] == pytest.approx((4.0, 4.0)) and tkw["translate"] == pytest.approx(
        (1.75, 1.75)
    )
    assert tumour.shape == (128, 128) and nuclei.shape == (1024, 1024)
    slide_file = Path(ikw["metadata"]["slide_path"])
    mtime = slide_file.stat().st_mtime_ns
    synthetic_slide(size=1024, seed=0)
    assert slide_file.stat().st_mtime_ns == mtime  # cached, not rewritten

    viewer = make_napari_viewer()
    for data, kwargs, kind in layers:
        getattr(viewer, f"add_{kind}")(data, **kwargs)
    assert [layer.name for layer in viewer.layers] == [
        "synthetic slide",
        "tumour (ground truth)",
        "nuclei (ground truth)",
    ]
    # the mask lies on the slide: both span the same µm
    img, tum = viewer.layers[0], viewer.layers[1]
    assert img.extent.world[1][0] == pytest.approx(tum.extent.world[1][0], abs=4.0)
