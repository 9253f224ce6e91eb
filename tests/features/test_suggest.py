"""Suggestions: uncertain tissue far from the strokes comes first; painted places never do."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from features_helpers import stripe_strokes

from napari_wsi_ssl.features import FeatureCache, Refiner, suggest_from_store, suggest_regions


def test_suggestions_prefer_uncertain_tissue_away_from_strokes() -> None:
    u = np.zeros((128, 128), np.float32)
    u[0:32, 0:32] = 0.9  # uncertain, but painted
    u[0:32, 96:128] = 0.8  # uncertain, no tissue
    u[96:128, 0:32] = 0.6  # uncertain tissue, unpainted: the answer
    u[96:128, 96:128] = 0.3
    tissue = np.ones((16, 16), bool)  # at 8x the map's downsample
    tissue[0:4, 12:16] = False
    labels = np.zeros((64, 64), np.uint8)  # at 2x the map's downsample (map ds 1 here)
    labels[2:5, 2:5] = 1
    out = suggest_regions(u, 1.0, (0, 0), labels, 2.0, (tissue, 8.0), k=3, cell=32)
    assert out[0].box == (96, 0, 128, 32)
    boxes = [s.box for s in out]
    assert (0, 0, 32, 32) not in boxes and (0, 96, 32, 128) not in boxes
    assert all(a.score >= b.score for a, b in zip(out, out[1:], strict=False))


def test_suggestions_from_a_head_store(
    tmp_path: Path, colour_cache: FeatureCache, synthetic, ground_truth
) -> None:
    tumour, tissue = ground_truth
    strokes = stripe_strokes(tumour, tissue, every=64)
    result = Refiner(colour_cache).refine(strokes, synthetic.gt_downsample, tmp_path)
    out = suggest_from_store(result.store, strokes, synthetic.gt_downsample, k=4, cell=16)
    assert 1 <= len(out) <= 4
    ds = synthetic.gt_downsample
    for s in out:
        y0, x0, y1, x1 = s.box
        assert not strokes[y0 // ds : y1 // ds, x0 // ds : x1 // ds].any()
        assert 0 < s.uncertainty <= 1
