"""The slide report of a prediction store, against the synthetic slide's ground truth."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tifffile
from PIL import Image

from napari_wsi_ssl.evaluation.report_slide import write_slide_report


def _truth(syn: Any) -> dict[str, float]:
    """Tissue and tumour areas (mm²) and nuclei counts of the synthetic slide's ground truth."""
    from skimage.measure import regionprops

    tissue = tifffile.imread(syn.tissue_mask) > 0
    tumour = (tifffile.imread(syn.tumour_mask) > 0) & tissue
    nuclei = tifffile.imread(syn.nuclei_labels)
    cell = (syn.gt_downsample * syn.mpp) ** 2 / 1e6
    k = syn.size / nuclei.shape[1]  # level-0 px per pixel of the nuclei labels
    inside = 0
    props = regionprops(nuclei)
    for r in props:
        y, x = ((np.asarray(r.centroid) + 0.5) * k / syn.gt_downsample).astype(int)
        inside += bool(tumour[min(y, tumour.shape[0] - 1), min(x, tumour.shape[1] - 1)])
    return {
        "tissue": float(tissue.sum()) * cell,
        "tumour": float(tumour.sum()) * cell,
        "nuclei": float(len(props)),
        "inside": float(inside),
    }


def test_report_matches_the_ground_truth(synthetic_store: tuple[Any, Path]) -> None:
    syn, store = synthetic_store
    written = write_slide_report(store, settings={"threshold": 0.5, "nuclei": "classical"})
    report = json.loads(written["json"].read_text())
    truth = _truth(syn)
    assert report["mpp"] == [syn.mpp, syn.mpp]
    assert report["tissue_area_mm2"] == pytest.approx(truth["tissue"], rel=0.05)
    assert report["tumour_area_mm2"] == pytest.approx(truth["tumour"], rel=0.1)
    percent = 100 * truth["tumour"] / truth["tissue"]
    assert report["tumour_percent_of_tissue"] == pytest.approx(percent, abs=3)
    assert report["nuclei_count"] == pytest.approx(truth["nuclei"], rel=0.1)
    inside, outside = report["nuclei_inside_tumour"], report["nuclei_outside_tumour"]
    assert inside + outside == report["nuclei_count"]
    assert inside / report["nuclei_count"] == pytest.approx(
        truth["inside"] / truth["nuclei"], abs=0.02
    )
    assert report["nuclei_density_inside_per_mm2"] == pytest.approx(
        inside / report["tumour_area_mm2"], rel=1e-3
    )
    assert report["checkpoint_sha256"] and report["model"].endswith("seg.pt")
    assert report["settings"]["nuclei"] == "classical"
    with Image.open(written["png"]) as im:
        assert im.size[0] > 1000 and im.size[0] > im.size[1]
        assert np.asarray(im.convert("RGB")).std() > 10
