"""Export writers: OME-TIFF, OME-Zarr, GeoJSON round trip, PNG, nuclei CSV, atomicity, CLI."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import tifffile
import zarr
from skimage.draw import disk

from napari_wsi_ssl.errors import ExportError
from napari_wsi_ssl.export import (
    read_geojson_mask,
    write_geojson,
    write_nuclei_csv,
    write_ome_tiff,
    write_ome_zarr,
    write_png,
)


@pytest.fixture
def mask() -> np.ndarray:
    m = np.zeros((700, 900), np.uint8)
    rr, cc = disk((300, 350), 220, shape=m.shape)
    m[rr, cc] = 1
    rr, cc = disk((300, 350), 60)
    m[rr, cc] = 0  # a hole
    rr, cc = disk((300, 350), 25)
    m[rr, cc] = 1  # an island inside the hole
    m[550:680, 600:880] = 1
    return m


def test_ome_tiff_pyramid_with_physical_size(mask, tmp_path):
    import dask.array as da

    path = write_ome_tiff(
        tmp_path / "m.ome.tif", da.from_array(mask, chunks=256), 0.25, downsample=8
    )
    with tifffile.TiffFile(path) as tif:
        assert tif.is_ome
        series = tif.series[0]
        assert [lv.shape for lv in series.levels] == [(700, 900), (350, 450), (175, 225)]
        assert series.pages[0].is_tiled
        np.testing.assert_array_equal(series.levels[0].asarray(), mask)
        pixels = tif.ome_metadata
        assert 'PhysicalSizeX="2.0"' in pixels and 'PhysicalSizeXUnit="µm"' in pixels
        assert tif.pages[0].resolution == pytest.approx((5000.0, 5000.0))  # px per cm at 2 µm/px
    openslide = pytest.importorskip("openslide")
    with openslide.OpenSlide(str(path)) as slide:
        assert slide.dimensions == (900, 700)
        assert float(slide.properties["openslide.mpp-x"]) == pytest.approx(2.0)


def test_ome_zarr_levels_and_scale(tmp_path):
    labels = np.arange(300 * 400, dtype=np.int32).reshape(300, 400)
    path = write_ome_zarr(
        tmp_path / "l.ome.zarr", labels, (0.5, 0.5), downsample=2, origin_level0=(10, 20), chunk=128
    )
    g = zarr.open(str(path))
    ms = g.attrs["multiscales"][0]
    assert ms["type"] == "nearest" and len(ms["datasets"]) == 3  # 400 -> 200 -> 100 <= one chunk
    np.testing.assert_array_equal(g["1"][:], labels[::2, ::2])  # labels are never averaged
    tf = ms["datasets"][1]["coordinateTransformations"]
    assert tf[0]["scale"] == [2.0, 2.0] and tf[1]["translation"] == [
        (1.5 + 20) * 0.5,
        (1.5 + 10) * 0.5,
    ]


def test_geojson_round_trip_keeps_holes(mask, tmp_path):
    path = write_geojson(tmp_path / "m.geojson", mask, 4.0, offset=(1000.0, 2000.0))
    doc = json.loads(path.read_text())
    assert doc["type"] == "FeatureCollection" and len(doc["features"]) == 3
    props = doc["features"][0]["properties"]
    assert props["objectType"] == "annotation" and props["classification"]["name"] == "Tumor"
    assert max(len(f["geometry"]["coordinates"]) for f in doc["features"]) == 2  # outer + hole
    xs = [x for f in doc["features"] for ring in f["geometry"]["coordinates"] for x, _ in ring]
    assert min(xs) >= 1000.0  # level-0 coordinates, offset by the region
    back = read_geojson_mask(path, mask.shape, 4.0, offset=(1000.0, 2000.0))
    iou = (back & (mask > 0)).sum() / (back | (mask > 0)).sum()
    assert iou >= 0.95


def test_geojson_of_labels_gives_one_detection_per_nucleus(tmp_path):
    labels = np.zeros((120, 120), np.int32)
    for i, (y, x) in enumerate([(20, 20), (20, 60), (80, 40), (90, 95)], start=1):
        rr, cc = disk((y, x), 8)
        labels[rr, cc] = i * 10
    path = write_geojson(tmp_path / "n.geojson", labels)
    doc = json.loads(path.read_text())
    assert len(doc["features"]) == 4
    assert {f["properties"]["objectType"] for f in doc["features"]} == {"detection"}
    back = read_geojson_mask(path, labels.shape, labels=True)
    assert len(np.unique(back)) == 5
    assert ((back > 0) == (labels > 0)).mean() > 0.97


def test_png_preview_and_nuclei_csv(tmp_path):
    prob = np.linspace(0, 1, 2000 * 1000, dtype=np.float32).reshape(2000, 1000)
    png = write_png(tmp_path / "p.png", prob, size=256)
    from PIL import Image

    assert Image.open(png).size == (128, 256)
    rgb = np.full((64, 64, 3), 230, np.uint8)
    labels = np.zeros((64, 64), np.int32)
    labels[10:20, 10:20] = 5
    rgb[10:20, 10:20] = (60, 40, 140)  # a purple nucleus
    labels[40:44, 30:36] = 9
    path = write_nuclei_csv(tmp_path / "n.csv", labels, rgb, 0.5, offset=(100, 0))
    rows = list(csv.DictReader(path.open()))
    assert [r["id"] for r in rows] == ["5", "9"]
    assert float(rows[0]["area_um2"]) == pytest.approx(100 * 0.25)
    assert float(rows[0]["centroid_x_um"]) == pytest.approx((100 + 15) * 0.5)
    assert float(rows[0]["mean_haematoxylin"]) > float(rows[1]["mean_haematoxylin"])


def test_writes_are_atomic(mask, tmp_path, monkeypatch):
    target = tmp_path / "m.ome.tif"
    target.write_bytes(b"old")

    def boom(*a, **k):
        raise RuntimeError("interrupted")

    monkeypatch.setattr(tifffile.TiffWriter, "write", boom)
    with pytest.raises(RuntimeError):
        write_ome_tiff(target, mask, 0.5)
    assert target.read_bytes() == b"old" and list(tmp_path.iterdir()) == [target]
    with pytest.raises(ExportError):
        write_geojson(tmp_path / "x.geojson", np.zeros((2, 2, 2)))
