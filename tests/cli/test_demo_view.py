"""``wsi-ssl demo`` end to end on a small synthetic slide, and ``wsi-ssl view`` taking its screenshot."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr

from napari_wsi_ssl.cli import main


@pytest.fixture(scope="module")
def demo_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo")
    rc = main(
        [
            "demo",
            "-o",
            str(out),
            "--size",
            "1024",
            "--width",
            "8",
            "--patch-size",
            "64",
            "--pretrain-steps",
            "2",
            "--finetune-steps",
            "3",
            "--no-screenshot",
            "--json",
        ]
    )
    assert rc == 0
    return out


def test_demo_writes_every_output(demo_out: Path, capsys: pytest.CaptureFixture[str]) -> None:
    result = json.loads((demo_out / "result.json").read_text())
    for key in ("slide", "pretrained", "checkpoint", "prediction"):
        assert Path(result[key]).exists(), key
    # fast mode: a head on the slide's feature cache made the tumour map, from a few strokes
    assert 0 < result["strokes"]["labelled_fraction"] < 0.1
    tumour_store, nuclei_store = (Path(p) for p in result["stores"])
    assert Path(result["prediction"]) == nuclei_store
    root = zarr.open_group(str(tumour_store), mode="r")
    assert "tumour" in root and "uncertainty" in root
    nuclei_root = zarr.open_group(str(nuclei_store), mode="r")
    labels = np.asarray(nuclei_root["nuclei"]["0"])
    assert labels.max() > 10, "the classical nuclei found nuclei"
    # the metrics are computed against the generator's ground truth and lie in [0, 1]
    assert set(result["metrics"]) == {"tumour_dice", "tumour_miou", "nuclei_aji"}
    assert all(0.0 <= v <= 1.0 for v in result["metrics"].values())
    assert result["metrics"]["nuclei_aji"] > 0.6
    exports = result["exports"]
    assert {Path(p).name for p in exports.values()} >= {
        "tumour_mask.ome.tif",
        "tumour.geojson",
        "nuclei.csv",
        "nuclei.geojson",
    }
    with tifffile.TiffFile(exports["tumour_mask.ome.tif"]) as tif:
        assert tif.is_ome and tif.series[0].shape[-2:] == root["tumour"]["0"].shape
    geo = json.loads(Path(exports["nuclei.geojson"]).read_text())
    assert geo["type"] == "FeatureCollection" and len(geo["features"]) > 10


def test_view_screenshot_shows_the_overlays(demo_out: Path, tmp_path: Path) -> None:
    """The same child process ``demo`` runs for demo.png: a real napari window under Xvfb."""
    shot = tmp_path / "demo.png"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "napari_wsi_ssl.cli",
            "view",
            str(demo_out),
            "--screenshot",
            str(shot),
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    info = json.loads(proc.stdout.strip().splitlines()[-1])
    # the fast-mode store brings the head's uncertainty too (a hidden layer)
    assert info["layers"] == ["tumour probability", "Uncertainty", "Nuclei"]
    # the Predict dock is shown with the checkpoint that made the map
    result = json.loads((demo_out / "result.json").read_text())
    assert info["checkpoint"] == result["checkpoint"]
    # and with the nuclei method that made the Nuclei layer
    shown = info["predict_dock"]
    assert Path(shown["checkpoint"]) == Path(result["checkpoint"]), shown
    assert result["nuclei"] == "classical" and shown["nuclei"] == "classical", shown
    from PIL import Image

    rgb = np.asarray(Image.open(shot).convert("RGB"))
    assert rgb.shape[0] > 500 and rgb.shape[1] > 800
    assert rgb.std() > 20, "the screenshot is not blank"
    # the canvas in the middle shows the slide (bright glass and tissue under the overlays),
    # not napari's dark empty canvas (about 35 grey)
    h, w = rgb.shape[:2]
    centre = rgb[h // 4 : 3 * h // 4, w // 3 : 2 * w // 3]
    bright = (centre.max(axis=-1) > 100).mean()
    assert bright > 0.25, f"only {bright:.0%} of the canvas centre shows the slide"


def test_demo_strokes_are_few_and_true() -> None:
    from napari_wsi_ssl.cli.demo import demo_strokes

    mask = np.full((400, 400), 2, np.uint8)
    mask[100:250, 120:300] = 1
    strokes = demo_strokes(mask, 5, seed=1)
    painted = strokes > 0
    assert set(np.unique(strokes)) == {0, 1, 2}
    assert (strokes[painted] == mask[painted]).all(), "a stroke crossed into another class"
    assert painted.mean() < 0.05


def test_demo_bad_slide_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["demo", "-o", str(tmp_path / "o"), "--slide", str(tmp_path / "missing.svs")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "missing.svs" in err[0]
