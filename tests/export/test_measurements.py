"""Per-nucleus measurements on shapes whose answers are known."""

from __future__ import annotations

import math

import numpy as np
import pytest

from napari_wsi_ssl.inference.nuclei import nucleus_measurements


def _shapes() -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[:120, :160]
    labels = np.zeros((120, 160), np.int32)
    labels[(yy - 40) ** 2 + (xx - 40) ** 2 <= 15**2] = 7  # a disc of radius 15
    labels[((yy - 80) / 8.0) ** 2 + ((xx - 110) / 24.0) ** 2 <= 1] = 9  # an ellipse, 3:1
    hema = np.where(labels == 7, 0.3, np.where(labels == 9, 0.1, 0.0)).astype(np.float32)
    return labels, hema


def test_units_centroids_and_shape() -> None:
    labels, hema = _shapes()
    # the labels are at downsample 2 of a slide at 0.25 µm/px, placed at level-0 (1000, 500)
    rows = nucleus_measurements(labels, hema, (0.25, 0.25), downsample=2.0, offset=(1000, 500))
    disc, ellipse = rows
    assert disc["id"] == 7 and ellipse["id"] == 9
    assert disc["centroid_x_px"] == pytest.approx(1000 + 40.5 * 2)
    assert disc["centroid_y_um"] == pytest.approx((500 + 40.5 * 2) * 0.25)
    # radius 15 px at downsample 2 and 0.25 µm/px: 7.5 µm
    assert disc["area_um2"] == pytest.approx(math.pi * 7.5**2, rel=0.03)
    assert disc["perimeter_um"] == pytest.approx(2 * math.pi * 7.5, rel=0.08)
    assert disc["eccentricity"] < 0.1
    assert ellipse["eccentricity"] == pytest.approx(math.sqrt(1 - (8 / 24) ** 2), abs=0.02)
    assert disc["mean_haematoxylin"] == pytest.approx(0.3)
    assert "tumour_probability" not in disc
    assert not any(k.endswith("_px2") for k in disc)


def test_without_a_pixel_size_and_with_a_tumour_map() -> None:
    labels, hema = _shapes()
    # a tumour map at downsample 8 of level 0 from (1000, 500): tumour on its left half
    prob = np.zeros((40, 60), np.float32)
    prob[:, :15] = 0.9
    rows = nucleus_measurements(
        labels, hema, None, downsample=2.0, offset=(1000, 500), tumour=(prob, 8.0, (1000, 500))
    )
    disc, ellipse = rows
    assert set(disc) == {
        "id",
        "centroid_x_px",
        "centroid_y_px",
        "area_px2",
        "perimeter_px",
        "eccentricity",
        "mean_haematoxylin",
        "tumour_probability",
        "tumour",
    }
    assert disc["area_px2"] == pytest.approx(math.pi * 30**2, rel=0.03)
    assert disc["tumour_probability"] == pytest.approx(0.9, abs=0.01) and disc["tumour"]
    assert ellipse["tumour_probability"] == 0 and not ellipse["tumour"]
    assert nucleus_measurements(np.zeros((4, 4), np.int32), np.zeros((4, 4)), None) == []
