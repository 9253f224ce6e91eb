"""``wsi-ssl export`` on a prediction store: every format from one store."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile
import zarr

from napari_wsi_ssl.cli import main
from napari_wsi_ssl.errors import ExportError
from napari_wsi_ssl.export import read_geojson_mask
from napari_wsi_ssl.inference.ngff import multiscales_attrs


@pytest.fixture
def store(tmp_path):
    """A hand-made store with the layout ``predict_slide`` writes (region origin 64, 32)."""
    root = zarr.open_group(str(tmp_path / "s.ome.zarr"), mode="w")
    root.attrs["napari_wsi_ssl"] = {"slide": None, "mpp": [0.5, 0.5]}
    prob = np.zeros((256, 320), np.uint8)
    prob[40:200, 50:250] = 230
    labels = np.zeros((512, 640), np.int32)
    labels[100:110, 100:112] = 77
    labels[300:309, 400:410] = 1234
    for name, arr, d in (("tumour", prob, 4.0), ("nuclei", labels, 2.0)):
        g = root.create_group(name)
        g.create_dataset("0", data=arr, chunks=(128, 128))
        g.attrs.update(multiscales_attrs(name, [d], (0.5, 0.5), (64, 32), labels=name == "nuclei"))
    return tmp_path / "s.ome.zarr", prob >= 128


def test_export_formats_from_a_store(store, tmp_path, capsys):
    path, truth = store
    assert main(["export", str(path), "-o", str(tmp_path / "t.ome.tif"), "--json"]) == 0
    with tifffile.TiffFile(tmp_path / "t.ome.tif") as tif:
        np.testing.assert_array_equal(tif.series[0].asarray(), truth.astype(np.uint8))
        assert 'PhysicalSizeX="2.0"' in tif.ome_metadata
    assert main(["export", str(path), "-o", str(tmp_path / "t.geojson")]) == 0
    back = read_geojson_mask(tmp_path / "t.geojson", truth.shape, 4.0, offset=(64, 32))
    assert (back & truth).sum() / (back | truth).sum() >= 0.95
    assert main(["export", str(path), "-o", str(tmp_path / "n.geojson"), "--layer", "nuclei"]) == 0
    doc = json.loads((tmp_path / "n.geojson").read_text())
    assert sorted(f["properties"]["measurements"]["label"] for f in doc["features"]) == [77, 1234]
    assert main(["export", str(path), "-o", str(tmp_path / "p.png"), "--probability"]) == 0
    assert (
        main(["export", str(path), "-o", str(tmp_path / "t.ome.zarr"), "--threshold", "0.95"]) == 0
    )
    assert not zarr.open(str(tmp_path / "t.ome.zarr"))["0"][:].any()  # 230/255 < 0.95
    capsys.readouterr()
    assert main(["export", str(path), "-o", str(tmp_path / "x.docx")]) == 2
    assert "unknown output format" in capsys.readouterr().err
    with pytest.raises(ExportError, match="CSV lists nuclei"):
        main(["export", str(path), "-o", str(tmp_path / "t.csv"), "--debug"])
