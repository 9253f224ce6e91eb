"""The synthetic slide's ground truth, determinism and the tissue mask against it."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from napari_wsi_ssl.slide import open_slide, tissue_mask
from napari_wsi_ssl.synthetic import (
    load_synthetic_slide,
    read_nuclei_labels,
    read_tissue_mask,
    read_tumour_mask,
    write_synthetic_slide,
)


def _iou(mask: np.ndarray, gt: np.ndarray) -> float:
    from skimage.transform import resize

    g = resize(
        gt.astype(bool), mask.shape, order=0, preserve_range=True, anti_aliasing=False
    ).astype(bool)
    return float((mask & g).sum() / max((mask | g).sum(), 1))


def test_ground_truth_shapes_and_content(synthetic) -> None:
    assert synthetic.size == 2048 and synthetic.gt_downsample == 8 and synthetic.mpp == 0.5
    tumour = read_tumour_mask(synthetic)
    tissue = read_tissue_mask(synthetic)
    assert tumour.shape == tissue.shape == (256, 256)
    assert set(np.unique(tumour)) <= {0, 1} and 0.02 < tumour.mean() < 0.5
    assert not (tumour.astype(bool) & ~tissue.astype(bool)).any()  # tumour lies inside tissue
    assert 0.2 < tissue.mean() < 0.8
    labels = read_nuclei_labels(synthetic, (768, 768, 512, 512))
    assert labels.dtype == np.int32 and labels.shape == (512, 512)
    ids, areas = np.unique(labels[labels > 0], return_counts=True)
    assert len(ids) > 50
    diam_um = 2 * np.sqrt(areas / np.pi) * synthetic.mpp
    assert 3 < np.median(diam_um) < 12
    np.testing.assert_array_equal(labels, read_nuclei_labels(synthetic)[768:1280, 768:1280])


def test_nuclei_are_dark_and_tumour_nuclei_denser(synthetic) -> None:
    labels = read_nuclei_labels(synthetic)
    tumour = np.kron(read_tumour_mask(synthetic), np.ones((8, 8), np.uint8)).astype(bool)
    with open_slide(synthetic.slide) as slide:
        rgb = slide.read_region((0, 0), 0, slide.dimensions)
    grey = rgb.mean(-1)
    assert grey[labels > 0].mean() < grey[(labels == 0) & tumour].mean() - 60
    density_tumour = (labels[tumour] > 0).mean()
    density_normal = (labels[~tumour & (grey < 235)] > 0).mean()
    assert density_tumour > 2 * density_normal


def test_deterministic_and_cached(tmp_path: Path) -> None:
    a = write_synthetic_slide(tmp_path / "a", size=512, seed=3)
    b = write_synthetic_slide(tmp_path / "b", size=512, seed=3)
    c = write_synthetic_slide(tmp_path / "c", size=512, seed=4)
    assert a.slide.read_bytes() == b.slide.read_bytes()
    assert a.slide.read_bytes() != c.slide.read_bytes()
    assert load_synthetic_slide(tmp_path / "a") == a
    assert load_synthetic_slide(tmp_path / "missing") is None


def test_write_speed(tmp_path: Path) -> None:
    start = time.perf_counter()
    write_synthetic_slide(tmp_path, size=2048, seed=5)
    seconds = time.perf_counter() - start
    print(f"2048 px synthetic slide written in {seconds:.2f} s")
    assert seconds < 10  # the target is < 5 s; leave room for a busy machine


def test_tissue_mask_matches_ground_truth(synthetic) -> None:
    with open_slide(synthetic.slide) as slide:
        mask, ds = tissue_mask(slide)
    assert mask.dtype == bool
    # 8 µm/px would be a 128 px mask; the mask keeps at least 256 px on its longest side
    assert ds == pytest.approx(8.0) and mask.shape == (256, 256)
    assert _iou(mask, read_tissue_mask(synthetic)) >= 0.9


def test_tissue_mask_large_and_real(synthetic_large, cmu_svs: Path) -> None:
    with open_slide(synthetic_large.slide) as slide:
        mask, ds = tissue_mask(slide)
    iou = _iou(mask, read_tissue_mask(synthetic_large))
    print(f"tissue IoU on the {synthetic_large.size} px slide: {iou:.3f}")
    assert iou >= 0.9
    with open_slide(cmu_svs) as slide:
        mask, ds = tissue_mask(slide)
    assert 0.1 < mask.mean() < 0.7  # the CMU region is part tissue, part glass
