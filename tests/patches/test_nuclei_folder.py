"""Nuclei training data in micrometres, on the real MoNuSeg images (0.25 µm/px)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from napari_wsi_ssl.errors import AnnotationError
from napari_wsi_ssl.evaluation.data import find_nuclei_pairs, holdout_images, read_labels
from napari_wsi_ssl.patches import NucleiFolder, resample_pair


@pytest.fixture(scope="module")
def monuseg(shared_data: Path) -> Path:
    return shared_data / "nuclei" / "monuseg_train_partial"


def test_resampled_to_the_model_mpp(monuseg: Path) -> None:
    first = find_nuclei_pairs(monuseg)[0][0].stem
    native = NucleiFolder(monuseg, images=[first])
    half = NucleiFolder(monuseg, images=[first], mpp=0.25, target_mpp=0.5)
    a, b = native[0], half[0]
    assert a["image"].shape == (3, 1000, 1000) and b["image"].shape == (3, 500, 500)
    # the same tissue: the half-scale image is the area mean of the native one
    pooled = torch.nn.functional.avg_pool2d(a["image"][None], 2)[0]
    assert float((pooled - b["image"]).abs().mean()) < 0.01
    # boundaries are one pixel of the model's grid: the same nuclei, a smaller share of boundary
    share = [float((s["mask"] == 2).sum() / (s["mask"] > 0).sum()) for s in (a, b)]
    assert share[1] > 1.5 * share[0]
    truth = read_labels(monuseg / "masks_instance_png" / f"{first}_instance.png")
    assert abs(float((b["mask"] > 0).float().mean()) - float((truth > 0).mean())) < 0.02


def test_crops_subset_and_fixed_validation(monuseg: Path) -> None:
    stems = [p[0].stem for p in find_nuclei_pairs(monuseg)][:2]
    ds = NucleiFolder(monuseg, 64, images=stems, crops=3, mpp=0.25, target_mpp=0.5, vary=False)
    assert len(ds) == 6 and ds.stems == stems
    first = ds[4]["image"]
    ds.epoch = 5  # validation draws the same crops every epoch
    assert torch.equal(ds[4]["image"], first)
    varying = NucleiFolder(monuseg, 64, images=stems, crops=3)
    e0 = varying[1]["image"]
    varying.epoch = 1
    assert not torch.equal(varying[1]["image"], e0)


def test_resample_pair_keeps_instances() -> None:
    rgb = np.zeros((40, 40, 3), np.uint8)
    inst = np.zeros((40, 40), np.int64)
    inst[4:20, 4:20], inst[22:38, 22:38] = 3, 7
    small, lab = resample_pair(rgb, inst, 0.5)
    assert small.shape == (20, 20, 3) and lab is not None
    assert set(np.unique(lab)) == {0, 3, 7}
    same, same_lab = resample_pair(rgb, inst, 1.0)
    assert same is rgb and same_lab is inst


def test_holdout_split_is_fixed_and_disjoint(monuseg: Path) -> None:
    stems = [p[0].stem for p in find_nuclei_pairs(monuseg)]
    held = holdout_images(stems, 4)
    assert len(held) == 4 and set(held) <= set(stems)
    assert holdout_images(list(reversed(stems)), 4) == held  # order of listing does not matter
    with pytest.raises(AnnotationError, match="cannot hold out 13 of 13"):
        holdout_images(stems, 13)
