"""No file states a unit it does not know: every export format, from the command line and from
napari's writers, of a real prediction on a slide written without a pixel size; and the same
exports in micrometres once a pixel size is given."""

from __future__ import annotations

import csv
import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tifffile
import zarr

from napari_wsi_ssl.cli import main
from napari_wsi_ssl.inference import PredictConfig, predict_slide
from napari_wsi_ssl.inference.store import PredictionStore

FORMATS = ("ome.tif", "ome.zarr", "geojson", "png")


@pytest.fixture(scope="module")
def nompp(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A synthetic slide written again without any pixel size, and its prediction store
    (tumour map of a tiny model at native resolution, classical nuclei)."""
    import torch

    from napari_wsi_ssl.events import run_to_end
    from napari_wsi_ssl.models import build_model, save_checkpoint
    from napari_wsi_ssl.slide import open_slide
    from napari_wsi_ssl.synthetic import write_synthetic_slide

    folder = tmp_path_factory.mktemp("nompp")
    syn = write_synthetic_slide(folder / "syn", size=1024, seed=3)
    with open_slide(syn.slide) as slide:
        rgb = slide.read_region((0, 0), 0, slide.dimensions)
    path = folder / "no pixel size.tif"
    tifffile.imwrite(path, rgb, tile=(256, 256), photometric="rgb", compression="jpeg")
    torch.manual_seed(0)
    model = build_model("unet-resnet34", "segment", num_classes=2, width=8).eval()
    ckpt = save_checkpoint(folder / "seg.pt", model, mpp=None, patch_size=64)
    config = PredictConfig(tile_size=256, device="cpu", nuclei=True, compile="off")
    store = run_to_end(predict_slide(path, ckpt, folder / "out", config))
    return path, Path(store)


def _ome_physical(path: Path) -> str:
    with tifffile.TiffFile(path) as tif:
        return tif.ome_metadata or ""


def _zarr_units(path: Path) -> list[Any]:
    axes = zarr.open_group(str(path), mode="r").attrs["multiscales"][0]["axes"]
    return [a.get("unit") for a in axes]


def _csv_header(path: Path) -> list[str]:
    with path.open(newline="") as fh:
        return next(csv.reader(fh))


def _check_unknown_unit(out: Path, fmt: str, slide_size: int = 1024) -> None:
    assert out.exists(), out
    if fmt == "ome.tif":
        assert "PhysicalSize" not in _ome_physical(out)
    elif fmt == "ome.zarr":
        assert _zarr_units(out) == [None, None]
    elif fmt == "geojson":
        doc = json.loads(out.read_text())
        assert doc["type"] == "FeatureCollection"
        for feat in doc["features"]:
            xy = np.asarray(feat["geometry"]["coordinates"][0])
            assert xy.min() >= 0 and xy.max() <= slide_size  # level-0 pixels
    elif fmt == "csv":
        header = _csv_header(out)
        assert header[:4] == ["id", "centroid_x_px", "centroid_y_px", "area_px2"]
        assert not any(h.endswith(("_um", "_um2")) for h in header)


def test_cli_exports_of_a_slide_without_pixel_size(nompp, tmp_path: Path, capsys) -> None:
    _, store = nompp
    reader = PredictionStore(store)
    assert reader.mpp is None and not reader["tumour"].unit_known
    for fmt in FORMATS:
        out = tmp_path / f"t.{fmt}"
        assert main(["export", str(store), "-o", str(out)]) == 0
        _check_unknown_unit(out, fmt)
        out = tmp_path / f"n.{fmt}"
        assert main(["export", str(store), "-o", str(out), "--layer", "nuclei"]) == 0
        _check_unknown_unit(out, fmt)
    out = tmp_path / "n.csv"
    assert main(["export", str(store), "-o", str(out), "--layer", "nuclei", "--json"]) == 0
    _check_unknown_unit(out, "csv")
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["nuclei"] > 5
    # a pixel size given: micrometres everywhere
    given = ["--slide-mpp", "0.5"]
    assert main(["export", str(store), "-o", str(tmp_path / "m.ome.tif"), *given]) == 0
    assert 'PhysicalSizeX="0.5"' in _ome_physical(tmp_path / "m.ome.tif")
    assert main(["export", str(store), "-o", str(tmp_path / "m.ome.zarr"), *given]) == 0
    assert _zarr_units(tmp_path / "m.ome.zarr") == ["micrometer", "micrometer"]
    nuclei = ["--layer", "nuclei", *given]
    assert main(["export", str(store), "-o", str(tmp_path / "m.csv"), *nuclei]) == 0
    header = _csv_header(tmp_path / "m.csv")
    assert header[:4] == ["id", "centroid_x_um", "centroid_y_um", "area_um2"]


def _layers(viewer: Any, slide: Path, store: Path, mpp: float | None) -> list[Any]:
    """The slide opened by the plugin's reader, the store's layers and a painted annotation."""
    from napari_wsi_ssl._napari.reader import read_slide
    from napari_wsi_ssl._napari.widgets._annotations import new_annotation_layer, slide_geometry
    from napari_wsi_ssl._napari.widgets._layers import show_store

    with pytest.warns(UserWarning) if mpp is None else _nothing():
        ((data, kwargs, _),) = read_slide(str(slide), mpp=mpp)
    slide_layer = viewer.add_image(data, **kwargs)
    shown = show_store(viewer, store, slide_geometry(slide_layer))
    ann = new_annotation_layer(viewer, slide_layer)
    painted = np.zeros(ann.data.shape, np.uint8)
    painted[10:60, 20:90] = 1
    painted[150:200, 100:180] = 2
    ann.data[:] = painted
    return [*shown.values(), ann]


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: Any) -> None:
        return None


@pytest.mark.gui
@pytest.mark.parametrize("mpp", [None, 0.5])
def test_napari_writers_state_units_only_when_known(
    make_napari_viewer: Any, nompp, tmp_path: Path, mpp: float | None
) -> None:
    from napari_wsi_ssl._napari.writers import write_image, write_labels

    slide, store = nompp
    viewer = make_napari_viewer()
    layers = _layers(viewer, slide, store, mpp)
    assert [layer.name for layer in layers] == ["tumour probability", "Nuclei", "annotations"]
    for layer in layers:
        data, meta, kind = layer.as_layer_data_tuple()
        write = write_image if kind == "image" else write_labels
        stem = layer.name.split()[0].lower()
        fmts = [*FORMATS, "csv"] if layer.name == "Nuclei" else FORMATS
        for fmt in fmts:
            out = tmp_path / f"{stem}.{fmt}"
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                (written,) = write(str(out), data, meta)
            if fmt == "geojson":
                # an export that would be empty says so, and is still a valid file
                empty = not json.loads(out.read_text())["features"]
                said = any("holds no feature" in str(w.message) for w in caught)
                assert empty == said
            assert Path(written) == out
            if mpp is None:
                _check_unknown_unit(out, fmt)
            elif fmt == "ome.tif":
                d = meta["metadata"]["downsample"]
                assert f'PhysicalSizeX="{0.5 * d:g}"' in _ome_physical(out).replace('.0"', '"')
            elif fmt == "ome.zarr":
                assert _zarr_units(out) == ["micrometer", "micrometer"]
            elif fmt == "csv":
                assert _csv_header(out)[1] == "centroid_x_um"


def test_slide_report_without_pixel_size_speaks_in_pixels(nompp: tuple[Path, Path]) -> None:
    from napari_wsi_ssl.evaluation.report_slide import write_slide_report

    _, store = nompp
    report = write_slide_report(store)["report"]
    assert report["mpp"] is None
    assert report["tissue_area_px2"] > 0 and "tumour_area_px2" in report
    assert "nuclei_density_inside_per_px2" in report
    assert not any(key.endswith(("_mm2", "per_mm2")) for key in report)
