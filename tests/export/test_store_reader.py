"""The prediction store's one reader, and what the export makes of a store: the probability
OME-TIFF that OpenSlide decodes, float32 on request, and exports that say they are empty."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import openslide
import pytest
import tifffile
import zarr

from napari_wsi_ssl.cli import main
from napari_wsi_ssl.export import ExportSettings, export_store
from napari_wsi_ssl.inference.ngff import multiscales_attrs
from napari_wsi_ssl.inference.store import PredictionStore


def _store(tmp_path: Path, mpp: tuple[float, float] | None, prob_value: int = 230) -> Path:
    """A store with the layout ``predict_slide`` writes: a region at level-0 (x=64, y=32), a
    tumour map at downsample 4 with two levels, nuclei at downsample 2."""
    path = tmp_path / ("s.ome.zarr" if mpp else "nompp.ome.zarr")
    root = zarr.open_group(str(path), mode="w")
    root.attrs["napari_wsi_ssl"] = {"slide": None, "mpp": mpp, "checkpoint": "m.pt"}
    prob = np.zeros((256, 320), np.uint8)
    prob[40:200, 50:250] = prob_value
    labels = np.zeros((512, 640), np.int32)
    labels[100:110, 100:112] = 77
    for name, levels, d in (
        ("tumour", [prob, prob[::2, ::2]], 4.0),
        ("nuclei", [labels], 2.0),
    ):
        g = root.create_group(name)
        for i, arr in enumerate(levels):
            g.create_dataset(str(i), data=arr, chunks=(128, 128))
        downs = [d * 2**i for i in range(len(levels))]
        g.attrs.update(multiscales_attrs(name, downs, mpp, (64, 32), labels=name == "nuclei"))
    return path


@pytest.mark.parametrize("mpp", [(0.5, 0.5), None])
def test_reader_gives_levels_placement_and_probabilities(tmp_path: Path, mpp) -> None:
    store = PredictionStore(_store(tmp_path, mpp))
    assert store.maps == ["tumour", "nuclei"]
    assert store.checkpoint == "m.pt" and store.mpp == mpp
    tumour = store["tumour"]
    assert not tumour.labels and tumour.unit_known is (mpp is not None)
    assert tumour.downsamples == [4.0, 8.0]
    assert tumour.origin == (64.0, 32.0)
    unit = mpp[0] if mpp else 1.0
    scale, translate = tumour.transform(1)
    assert scale == pytest.approx((8 * unit, 8 * unit))
    assert translate == pytest.approx(((3.5 + 32) * unit, (3.5 + 64) * unit))
    p = tumour.probability(0)
    assert p.dtype == np.float32 and p.shape == (256, 320)
    assert p[100, 100] == pytest.approx(230 / 255) and p[0, 0] == 0.0
    np.testing.assert_allclose(np.asarray(p), tumour.levels[0][:] / np.float32(255))
    nuclei = store["nuclei"]
    assert nuclei.labels and nuclei.downsample == 2.0 and nuclei.origin == (64.0, 32.0)
    with pytest.raises(ValueError, match="labels"):
        nuclei.probability()


def test_reader_refuses_what_is_no_store(tmp_path: Path) -> None:
    from napari_wsi_ssl.errors import ExportError

    (tmp_path / "empty.ome.zarr").mkdir()
    with pytest.raises(ExportError, match="not a prediction store"):
        PredictionStore(tmp_path / "empty.ome.zarr")
    root = zarr.open_group(str(tmp_path / "t.ome.zarr"), mode="w")
    root.attrs["napari_wsi_ssl"] = {"mpp": None}
    with pytest.raises(ExportError, match="no nuclei map"):
        PredictionStore(tmp_path / "t.ome.zarr")["nuclei"]


@pytest.mark.parametrize(
    "module",
    [
        "napari_wsi_ssl.inference.store",
        "napari_wsi_ssl.evaluation.masks",
        "napari_wsi_ssl.cli.export",
    ],
)
def test_store_readers_load_no_torch(module: str) -> None:
    code = f"import sys, {module}; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_probability_ome_tiff_is_uint8_that_openslide_reads(tmp_path: Path) -> None:
    path = _store(tmp_path, (0.5, 0.5))
    out = tmp_path / "p.ome.tif"
    assert main(["export", str(path), "-o", str(out), "--probability", "--json"]) == 0
    stored = zarr.open_group(str(path), mode="r")["tumour"]["0"][:]
    with openslide.OpenSlide(str(out)) as slide:
        assert float(slide.properties[openslide.PROPERTY_NAME_MPP_X]) == pytest.approx(2.0)
        assert slide.dimensions == (320, 256)
        rgba = np.asarray(slide.read_region((0, 0), 0, slide.dimensions))
    np.testing.assert_array_equal(rgba[..., 0], stored)
    assert rgba[100, 100, 0] == 230
    # float32 stays available, for readers that take it
    out32 = tmp_path / "p32.ome.tif"
    assert main(["export", str(path), "-o", str(out32), "--probability", "--float32"]) == 0
    back = tifffile.imread(out32, level=0)
    assert back.dtype == np.float32
    np.testing.assert_allclose(back, stored / np.float32(255), atol=1e-6)


def test_empty_exports_say_so_and_stay_valid(tmp_path: Path, capsys) -> None:
    path = _store(tmp_path, (0.5, 0.5), prob_value=60)  # 60/255 < 0.5: nothing is tumour
    out = tmp_path / "t.geojson"
    assert main(["export", str(path), "-o", str(out), "--json"]) == 0
    captured = capsys.readouterr()
    assert "no pixel at or above the threshold 0.5" in captured.err
    assert json.loads(captured.out.splitlines()[-1])["features"] == 0
    assert json.loads(out.read_text()) == {"type": "FeatureCollection", "features": []}
    result = export_store(path, tmp_path / "t.ome.tif", settings=ExportSettings(threshold=0.2))
    assert result.warnings == ()  # 60/255 >= 0.2: a mask with tumour
    result = export_store(path, tmp_path / "e.ome.tif")
    assert "the mask is empty" in result.warnings[0]
    assert not tifffile.imread(result.path, level=0).any()
