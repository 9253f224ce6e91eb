"""``--slide-mpp`` (the slide's pixel size) and ``--mpp`` (the working resolution) on slides whose
file states no pixel size: the commands stop with the estimate, and run with the value given."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tifffile

from napari_wsi_ssl.cli import main
from napari_wsi_ssl.slide import open_slide

TINY = ["--width", "8", "--patch-size", "32", "--batch-size", "2", "--steps", "2"]
TINY += ["--device", "cpu"]


def _run(capsys: pytest.CaptureFixture[str], *args: Any) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def _one_line(err: str, *needles: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def _physical_size(path: Path) -> float:
    """The OME-TIFF's PhysicalSizeX (µm), which must be there."""
    import re

    with tifffile.TiffFile(path) as f:
        found = re.search(r'PhysicalSizeX="([0-9.eE+-]+)"', f.ome_metadata or "")
    assert found, "no PhysicalSizeX"
    return float(found.group(1))


def _downsample(store: str) -> float:
    from napari_wsi_ssl.inference.store import PredictionStore

    return PredictionStore(store)["tumour"].downsample


@pytest.fixture(scope="module")
def svs(svs_without_mpp: Path) -> Path:
    return svs_without_mpp


def test_the_whole_path_on_an_svs_without_pixel_size(
    svs: Path, synthetic: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from napari_wsi_ssl.export import Placement, export_arrays

    code, out, _ = _run(capsys, "info", svs, "--no-tissue")
    assert code == 0 and "unknown (about 0.5 µm/px (20x) from objective power" in out
    code, out, _ = _run(capsys, "info", svs, "--no-tissue", "--slide-mpp", "0.5", "--json")
    assert code == 0 and json.loads(out.splitlines()[-1])["mpp"] == [0.5, 0.5]

    # pretraining at a working resolution needs the pixel size, and says what it looks like
    pre = tmp_path / "pre.pt"
    args = ["pretrain", svs, "-o", pre, "--preset", "unet-resnet34", "--mpp", "2", *TINY]
    code, _, err = _run(capsys, *args)
    assert code == 2 and not pre.exists()
    expected = "no pixel size in the file; it looks like about 0.5 µm/px (20x) from objective "
    _one_line(err, str(svs), expected + "power; pass --slide-mpp 0.5")
    # at the native resolution it needs none; with --slide-mpp it runs at 2 µm/px
    assert _run(capsys, *args, "--slide-mpp", "0.5")[0] == 0
    from napari_wsi_ssl.models import load_checkpoint

    assert load_checkpoint(pre).mpp == 2.0

    # fine-tuning from a QuPath GeoJSON of the truth: the init's 2 µm/px needs the pixel size
    truth = tifffile.imread(synthetic.tumour_mask) > 0
    tissue = tifffile.imread(synthetic.tissue_mask) > 0
    labels = np.where(truth, 1, np.where(tissue, 2, 0)).astype(np.uint8)
    geojson = tmp_path / "annotations.geojson"
    place = Placement(downsample=float(synthetic.gt_downsample))
    export_arrays(geojson, labels, "labels", place, class_names={1: "tumour", 2: "normal"})
    ft = tmp_path / "ft.pt"
    args = ["finetune", "--init", pre, "--slide", svs, "--mask", geojson, "-o", ft, *TINY]
    code, _, err = _run(capsys, *args)
    assert code == 2 and not ft.exists()
    _one_line(err, str(svs), "no pixel size in the file", "pass --slide-mpp 0.5")
    code, out, err = _run(capsys, *args, "--slide-mpp", "0.5", "--json")
    assert code == 0, err
    assert json.loads(out.splitlines()[-1])["classes"][1:] == ["Tumor", "Normal"]

    # evaluation against the truth mask predicts too: the same rule
    args = ["evaluate", "--model", ft, "--slide", svs, "--mask", synthetic.tumour_mask]
    args += ["-o", tmp_path / "eval", "--bootstrap", "10", "--device", "cpu"]
    code, _, err = _run(capsys, *args)
    assert code == 2
    _one_line(err, str(svs), "no pixel size in the file", "pass --slide-mpp 0.5")
    code, out, err = _run(capsys, *args, "--slide-mpp", "0.5", "--json")
    assert code == 0, err
    assert 0 <= json.loads(out.splitlines()[-1])["miou"] <= 1

    # prediction, with nuclei and the report
    preds = tmp_path / "preds"
    args = ["predict", svs, "--model", ft, "-o", preds, "--region", "256,256,1024,1024"]
    args += ["--tile-size", "128", "--nuclei", "--report", "--device", "cpu"]
    code, _, err = _run(capsys, *args)
    assert code == 2
    _one_line(err, str(svs), "no pixel size in the file", "pass --slide-mpp 0.5")
    code, out, err = _run(capsys, *args, "--slide-mpp", "0.5", "--json")
    assert code == 0, err
    result = json.loads(out.splitlines()[-1])["slides"][0]
    report = json.loads(Path(result["report"]).read_text())
    assert report["mpp"] == [0.5, 0.5] and report["tissue_area_mm2"] > 0.1
    assert report["nuclei_count"] > 50 and "nuclei_density_inside_per_mm2" in report

    # the exports carry the pixel size that was given
    store = result["store"]
    tif = tmp_path / "tumour.ome.tif"
    assert _run(capsys, "export", store, "-o", tif)[0] == 0
    assert _physical_size(tif) == pytest.approx(0.5 * _downsample(store))
    csv = tmp_path / "nuclei.csv"
    assert _run(capsys, "export", store, "-o", csv, "--layer", "nuclei")[0] == 0
    header = csv.read_text().splitlines()[0].split(",")
    assert header[:4] == ["id", "centroid_x_um", "centroid_y_um", "area_um2"]
    assert "tumour_probability" in header


def test_cmu_svs_with_its_pixel_size_removed(
    cmu_svs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """No pixel size and no objective power: the estimate comes from the size of nuclei."""
    import torch

    from napari_wsi_ssl.models import build_model, save_checkpoint

    with open_slide(cmu_svs) as slide:
        true_mpp = slide.mpp[0] if slide.mpp else 0.499
        rgb = slide.read_region((0, 0), 0, slide.dimensions)
    bare = tmp_path / "cmu without mpp.tif"
    tifffile.imwrite(bare, rgb, tile=(256, 256), photometric="rgb", compression="jpeg")
    torch.manual_seed(0)
    model = build_model("unet-resnet34", "segment", num_classes=2, width=8).eval()
    ckpt = save_checkpoint(tmp_path / "seg.pt", model, mpp=2.0, patch_size=64)
    args = ["predict", bare, "--model", ckpt, "-o", tmp_path / "out", "--region", "0,0,1024,1024"]
    args += ["--tile-size", "64", "--device", "cpu"]
    code, _, err = _run(capsys, *args)
    assert code == 2
    line = _one_line(err, str(bare), "no pixel size in the file; it looks like about 0.")
    assert "from nucleus size; pass --slide-mpp 0." in line
    guess = float(line.split("--slide-mpp ")[1].rstrip("."))
    assert true_mpp / 1.5 < guess < true_mpp * 1.5
    code, out, err = _run(capsys, *args, "--slide-mpp", f"{true_mpp}", "--json")
    assert code == 0, err
    store = json.loads(out.splitlines()[-1])["slides"][0]["store"]
    tif = tmp_path / "tumour.ome.tif"
    assert _run(capsys, "export", store, "-o", tif)[0] == 0
    assert _physical_size(tif) == pytest.approx(true_mpp * _downsample(store), rel=1e-4)
