"""npe2 writers: suffix dispatch, placement on the slide, files read back."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tifffile
import zarr

from napari_wsi_ssl._napari.writers import format_of, placement_of, write_image, write_labels
from napari_wsi_ssl.errors import ExportError
from napari_wsi_ssl.export import read_geojson_mask


def _annotation_meta(d: float = 4.0, mpp: float = 0.5) -> dict[str, Any]:
    return {
        "name": "annotations",
        "scale": (d * mpp, d * mpp),
        "translate": ((d - 1) / 2 * mpp, (d - 1) / 2 * mpp),
        "units": ("micrometer", "micrometer"),
        "metadata": {"downsample": d, "class_names": {0: "unlabelled", 1: "tumour", 2: "normal"}},
    }


def _labels() -> np.ndarray:
    labels = np.zeros((64, 96), np.uint8)
    labels[8:24, 10:40] = 1
    labels[40:60, 50:90] = 2
    return labels


def test_format_dispatch() -> None:
    assert format_of("a/b.ome.tif") == "OME-TIFF"
    assert format_of("x.OME.ZARR") == "OME-Zarr"
    assert format_of("m.geojson") == "GeoJSON"
    with pytest.raises(ExportError, match="unknown output format"):
        format_of("m.docx")


def test_placement_from_scale_and_metadata() -> None:
    place = placement_of(_annotation_meta())
    assert place.downsample == 4.0 and place.mpp == pytest.approx((0.5, 0.5))
    assert place.offset_level0 == (0.0, 0.0)
    # a region overlay starting at level-0 (x=800, y=400)
    meta = {
        "scale": (2.0, 2.0),
        "translate": ((1.5 + 400) * 0.5, (1.5 + 800) * 0.5),
        "metadata": {"mpp": 0.5},
    }
    assert placement_of(meta).offset_level0 == pytest.approx((800.0, 400.0))


def test_write_labels_formats_read_back(tmp_path: Path) -> None:
    labels = _labels()
    meta = _annotation_meta()
    (tif,) = write_labels(str(tmp_path / "ann.ome.tif"), labels, meta)
    with tifffile.TiffFile(tif) as tf:
        np.testing.assert_array_equal(tf.series[0].levels[0].asarray(), labels)
        assert 'PhysicalSizeX="2.0"' in tf.ome_metadata

    (gj,) = write_labels(str(tmp_path / "ann.geojson"), labels, meta)
    doc = json.loads(Path(gj).read_text())
    classes = {f["properties"]["classification"]["name"] for f in doc["features"]}
    assert classes == {"Tumor", "Normal"}
    tumour = read_geojson_mask(gj, labels.shape, 4.0, classification="Tumor")
    assert (tumour == (labels == 1)).mean() > 0.98

    (zr,) = write_labels(str(tmp_path / "ann.ome.zarr"), labels, meta)
    root = zarr.open_group(zr, mode="r")
    np.testing.assert_array_equal(root["0"][:], labels)
    scale = root.attrs["multiscales"][0]["datasets"][0]["coordinateTransformations"][0]["scale"]
    assert scale == pytest.approx([2.0, 2.0])

    (png,) = write_labels(str(tmp_path / "ann.png"), labels, meta)
    assert Path(png).stat().st_size > 0

    with pytest.raises(ExportError, match="not tied to a slide"):
        write_labels(str(tmp_path / "nuc.csv"), labels, meta)


def test_write_image_probability(tmp_path: Path) -> None:
    prob = np.zeros((32, 32), np.float32)
    prob[4:20, 4:20] = 0.9
    meta = {
        "name": "tumour probability",
        "scale": (4.0, 4.0),
        "translate": (1.5, 1.5),
        "metadata": {"mpp": 0.5},
    }
    (tif,) = write_image(str(tmp_path / "p.ome.tif"), [prob, prob[::2, ::2]], meta)
    # uint8 p x 255 by default, which OpenSlide decodes
    np.testing.assert_array_equal(tifffile.imread(tif, level=0), np.rint(prob * 255))
    (gj,) = write_image(str(tmp_path / "p.geojson"), prob, meta)
    mask = read_geojson_mask(gj, prob.shape, 8.0)
    assert (mask == (prob > 0.5)).mean() > 0.95


@pytest.mark.gui
def test_save_layers_through_napari(make_napari_viewer: Any, tmp_path: Path) -> None:
    import napari

    viewer = make_napari_viewer()
    meta = _annotation_meta()
    layer = viewer.add_labels(
        _labels(), scale=meta["scale"], translate=meta["translate"], metadata=meta["metadata"]
    )
    out = tmp_path / "saved.ome.tif"
    written = napari.save_layers(str(out), [layer], plugin="napari-wsi-ssl")
    assert [Path(p) for p in written] == [out]
    np.testing.assert_array_equal(tifffile.imread(out, level=0), _labels())
