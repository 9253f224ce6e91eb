"""Nuclei instances: classical accuracy on the synthetic slide, ids across tiles, scale estimate."""

from __future__ import annotations

import numpy as np
import pytest
import zarr
from scipy import ndimage

from napari_wsi_ssl.events import run_to_end
from napari_wsi_ssl.inference import PredictConfig, estimate_mpp, nuclei_classical, predict_slide
from napari_wsi_ssl.inference.nuclei import global_ids
from napari_wsi_ssl.metrics import aji


@pytest.fixture(scope="module")
def nuclei_store(synthetic, tmp_path_factory):
    cfg = PredictConfig(nuclei=True, nuclei_tile_size=256)
    out = tmp_path_factory.mktemp("nuclei")
    # the region's offset puts tile borders across nuclei (the generator's own 256-px tiles
    # place nuclei in cells of a 32-px lattice, so no nucleus crosses a multiple of 32 px)
    return run_to_end(predict_slide(synthetic.slide, None, out, cfg, region=REGION))


REGION = (144, 144, 1776, 1776)


def test_classical_nuclei_reach_aji_on_the_synthetic_slide(synthetic, nuclei_store):
    from napari_wsi_ssl.synthetic import read_nuclei_labels

    group = zarr.open(str(nuclei_store))["nuclei"]
    labels = group["0"][:]
    truth = read_nuclei_labels(synthetic, region=REGION)
    assert labels.dtype == np.int32 and labels.shape == truth.shape
    assert aji(truth, labels) >= 0.6
    scale = group.attrs["multiscales"][0]["datasets"][0]["coordinateTransformations"][0]["scale"]
    assert scale == [synthetic.mpp, synthetic.mpp]
    translation = group.attrs["multiscales"][0]["datasets"][0]["coordinateTransformations"][1]
    assert translation["translation"] == [144 * synthetic.mpp, 144 * synthetic.mpp]


def test_labels_are_unique_across_tiles_and_nuclei_on_borders_keep_one_id(nuclei_store):
    labels = zarr.open(str(nuclei_store))["nuclei/0"][:]
    ids = np.unique(labels)[1:]
    slices = ndimage.find_objects(labels)
    crossing = 0
    for i in ids:
        sl = slices[i - 1]
        _, n = ndimage.label(labels[sl] == i)
        assert n == 1, f"label {i} is split in {n} pieces"
        ys, xs = sl
        # spans a 256-px tile border
        if ys.start // 256 != (ys.stop - 1) // 256 or xs.start // 256 != (xs.stop - 1) // 256:
            crossing += 1
    assert crossing >= 10  # nuclei cut by tile borders were merged into one instance each
    # ids are encoded from the owner tile, never reused by two tiles
    assert len(ids) == len(set(ids.tolist()))


def test_tiled_nuclei_match_a_whole_image_segmentation(synthetic, nuclei_store):
    from napari_wsi_ssl.slide import open_slide

    group = zarr.open(str(nuclei_store))["nuclei"]
    with open_slide(synthetic.slide) as slide:
        rgb = slide.read_region((144, 144), 0, (1024, 1024))
    whole = nuclei_classical(rgb, synthetic.mpp, threshold=group.attrs["threshold"])
    tiled = group["0"][:1024, :1024]
    assert aji(whole[32:-32, 32:-32], tiled[32:-32, 32:-32]) > 0.95


def test_global_ids_do_not_depend_on_the_window():
    blob = np.zeros((64, 64), np.int32)
    blob[20:30, 40:52] = 7
    shifted = np.zeros((64, 64), np.int32)
    shifted[4:14, 8:20] = 3  # the same nucleus seen from a window 16 px lower and 32 px righter
    a = global_ids(blob, (100, 200), 32, (10, 10), 1)
    b = global_ids(shifted, (116, 232), 32, (10, 10), 1)
    assert a.max() == b.max() > 0


def test_estimate_mpp_from_blob_sizes(synthetic):
    from napari_wsi_ssl.slide import open_slide

    with open_slide(synthetic.slide) as slide:
        rgb = slide.read_region((512, 512), 0, (768, 768))
        half = slide.read_scaled((512, 512), (384, 384), 2.0)
    est, est_half = estimate_mpp(rgb), estimate_mpp(half)
    assert est is not None and est_half is not None
    # the estimate follows the magnification: half the pixels, twice the µm per pixel
    assert 1.6 < est_half / est < 2.4
    assert 0.25 < est < 1.0
    assert nuclei_classical(half, None).max() > 10
