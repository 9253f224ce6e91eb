"""Augmentation and patch-coordinate sampling."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_wsi_ssl.errors import AnnotationError
from napari_wsi_ssl.geometry import Rect
from napari_wsi_ssl.patches import (
    Augment,
    LabelArray,
    balanced_coords,
    color_jitter,
    dihedral,
    grid_coords,
    random_coords,
    sample_generator,
)


def test_dihedral_gives_eight_distinct_orientations() -> None:
    x = torch.arange(3 * 4 * 4, dtype=torch.float32).view(3, 4, 4)
    outs = [dihedral(x, k) for k in range(8)]
    assert len({tuple(o.flatten().tolist()) for o in outs}) == 8
    assert torch.equal(outs[0], x)
    with pytest.raises(ValueError):
        dihedral(x, 8)
    # random choice covers all 8 over a few draws, and image and target move together
    aug = Augment(dihedral=True, brightness=0, contrast=0, saturation=0, hue=0)
    seen = set()
    for i in range(64):
        img, tgt = aug(x, x[0].clone(), sample_generator(0, 0, i))
        assert tgt is not None and torch.equal(img[0], tgt)
        seen.add(tuple(img.flatten().tolist()))
    assert len(seen) == 8


def test_color_jitter_changes_colour_and_stays_in_range() -> None:
    x = torch.rand(3, 16, 16)
    y = color_jitter(x.clone(), sample_generator(1, 0, 0), 0.3, 0.3, 0.3, 0.1)
    assert y.shape == x.shape and y.min() >= 0 and y.max() <= 1
    assert not torch.allclose(x, y)
    z = color_jitter(x.clone(), sample_generator(1, 0, 0), 0.3, 0.3, 0.3, 0.1)
    assert torch.equal(y, z)  # same seed, same result
    grey = torch.full((3, 4, 4), 0.5)
    assert torch.allclose(
        color_jitter(grey.clone(), sample_generator(0, 0, 0), 0, 0, 0, 0.5), grey, atol=1e-5
    )


def test_balanced_sampling_is_about_half_half_from_one_percent_tumour() -> None:
    labels = np.full((200, 200), 2, dtype=np.uint8)  # normal everywhere
    labels[:20, :20] = 1  # 1% tumour
    rng = np.random.default_rng(0)
    corners, drawn = balanced_coords(labels, 4.0, 32, 2.0, 2000, rng)
    assert corners.shape == (2000, 2)
    lab = LabelArray(labels, 4.0)
    centre = np.array([lab.patch(int(x), int(y), 32, 2.0)[16, 16] for x, y in corners])
    frac = float(np.mean(centre == 1))
    assert 0.45 < frac < 0.55, frac
    assert np.mean(centre == drawn) > 0.95  # the centre pixel may sit on a class border


def test_balanced_sampling_region_and_errors() -> None:
    labels = np.zeros((100, 100), dtype=np.uint8)
    labels[10:20, 10:20] = 1
    labels[60:70, 60:70] = 2
    rng = np.random.default_rng(0)
    corners, drawn = balanced_coords(labels, 8.0, 16, 1.0, 100, rng, region=Rect(0, 0, 400, 400))
    assert set(drawn.tolist()) == {1}
    with pytest.raises(AnnotationError, match="no labelled pixel"):
        balanced_coords(np.zeros((10, 10), np.uint8), 1.0, 8, 1.0, 4, rng)


def test_grid_and_random_coords_over_tissue() -> None:
    tissue = np.zeros((64, 64), dtype=bool)
    tissue[:, :32] = True  # left half
    grid = grid_coords(tissue, 16.0, 64, 4.0)  # patches of 256 level-0 px over 1024 px
    assert len(grid) == 8 and (grid[:, 0] < 512).all()
    inside = grid_coords(tissue, 16.0, 64, 4.0, region=Rect(0, 0, 512, 256))
    assert len(inside) == 2
    rnd = random_coords(tissue, 16.0, 64, 4.0, 50, np.random.default_rng(1))
    assert ((rnd[:, 0] + 128) < 512 + 16).all()
