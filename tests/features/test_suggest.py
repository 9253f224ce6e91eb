"""Suggestions: unpainted kinds of tissue (clusters of cached features) and uncertain places come
first; painted places never do."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from features_helpers import stripe_strokes

from napari_wsi_ssl.features import FeatureCache, Refiner, suggest_from_store, suggest_regions
from napari_wsi_ssl.features.suggest import cell_features


def _three_kinds(cell: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """A 12 x 12-cell map whose cells are of three kinds: 96 cells of kind A (left), 36 of B
    (bottom right), 12 of C (a top-right strip); features (12, 12, 3) and kind codes."""
    rng = np.random.default_rng(0)
    kind = np.zeros((12, 12), int)
    kind[:, 8:] = 1
    kind[:3, 8:] = 2
    centres = np.array([[0, 0, 0], [5, 0, 0], [0, 5, 0]], np.float32)
    feats = centres[kind] + rng.normal(0, 0.3, (12, 12, 3)).astype(np.float32)
    return feats, kind


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


def test_cell_features_are_tissue_means_read_tile_by_tile(colour_cache: FeatureCache) -> None:
    full = colour_cache.features[:].astype(np.float32)
    h, w, c = full.shape
    weights = np.zeros((h, w), bool)
    weights[::3, 1::2] = True  # some pixels of each cell count, others do not
    cell = 12  # does not divide the cache's 32-pixel tiles: cells straddle tiles
    got = cell_features(colour_cache, cell, weights)
    assert got.shape == (-(-h // cell), -(-w // cell), c)
    done = colour_cache.done_pixels()  # tissue tiles only: the others are NaN
    checked = 0
    for cy in range(got.shape[0]):
        for cx in range(got.shape[1]):
            box = np.s_[cy * cell : (cy + 1) * cell, cx * cell : (cx + 1) * cell]
            if not done[box].any():
                assert np.isnan(got[cy, cx]).all()
                continue
            wb = weights[box] & done[box]
            np.testing.assert_allclose(got[cy, cx], full[box][wb].mean(0), rtol=1e-3, atol=1e-3)
            checked += 1
    assert checked > 10
    none = np.zeros((h, w), bool)
    assert np.isnan(cell_features(colour_cache, cell, none)).all()


def test_representative_suggestions_cover_unpainted_kinds_of_tissue() -> None:
    feats, kind = _three_kinds()
    u = np.full((48, 48), 0.2, np.float32)  # cells of 4 map pixels
    cold = suggest_regions(u, 1.0, k=3, cell=4, features=feats)
    # no strokes yet: one cell of each kind, the biggest kind first
    kinds = [kind[s.box[0] // 4, s.box[1] // 4] for s in cold]
    assert sorted(kinds) == [0, 1, 2] and kinds[0] == 0
    assert all(a.score >= b.score for a, b in zip(cold, cold[1:], strict=False))
    # a stroke on kind A (3 clusters: 1 painted cell + k): B, then C (smaller), not A again
    labels = np.zeros((48, 48), np.uint8)
    labels[9:11, 9:11] = 1
    out = suggest_regions(u, 1.0, labels=labels, k=2, cell=4, features=feats)
    kinds = [kind[s.box[0] // 4, s.box[1] // 4] for s in out]
    assert kinds == [1, 2], kinds
    for s in out:
        y0, x0, y1, x1 = s.box
        assert not labels[y0:y1, x0:x1].any()


def test_uncertainty_weight_trades_uncertain_cells_against_typical_ones() -> None:
    feats, kind = _three_kinds()
    feats[kind == 1] = feats[kind == 1].mean(0) + np.random.default_rng(1).normal(
        0, 0.3, ((kind == 1).sum(), 3)
    )
    u = np.full((48, 48), 0.2, np.float32)
    # an outlying cell of kind B (far from B's centre) is the most uncertain place
    far = (kind == 1) & (np.abs(feats - feats[kind == 1].mean(0)).sum(-1) > 0)
    ys, xs = np.nonzero(far)
    d = np.linalg.norm(feats[ys, xs] - feats[kind == 1].mean(0), axis=1)
    oy, ox = ys[np.argmax(d)], xs[np.argmax(d)]
    u[oy * 4 : oy * 4 + 4, ox * 4 : ox * 4 + 4] = 0.95
    labels = np.zeros((48, 48), np.uint8)
    labels[9:11, 9:11] = 1

    def cell_of_b(weight: float) -> tuple[int, int]:
        out = suggest_regions(
            u, 1.0, labels=labels, k=2, cell=4, features=feats, uncertainty_weight=weight
        )
        (b,) = [s for s in out if kind[s.box[0] // 4, s.box[1] // 4] == 1]
        return b.box[0] // 4, b.box[1] // 4

    assert cell_of_b(1.0) == (oy, ox)  # uncertainty only: the outlier
    assert cell_of_b(0.0) != (oy, ox)  # representativeness only: a typical cell


def test_suggestions_from_a_store_use_its_feature_cache(
    tmp_path: Path, colour_cache: FeatureCache, synthetic, ground_truth
) -> None:
    tumour, tissue = ground_truth
    strokes = stripe_strokes(tumour, tissue, every=64)
    result = Refiner(colour_cache).refine(strokes, synthetic.gt_downsample, tmp_path)
    ds = synthetic.gt_downsample
    with_features = suggest_from_store(result.store, strokes, ds, k=4, cell=8)
    without = suggest_from_store(result.store, strokes, ds, k=4, cell=8, representative=False)
    for out in (with_features, without):
        assert 1 <= len(out) <= 4
        for s in out:
            y0, x0, y1, x1 = s.box
            assert not strokes[y0 // ds : y1 // ds, x0 // ds : x1 // ds].any()
            assert 0 <= s.uncertainty <= 1
    assert [s.box for s in with_features] != [s.box for s in without]
    # the ranking with features is the one suggest_regions gives with the cache's cell means
    import zarr

    u = zarr.open_group(str(result.store), mode="r")["uncertainty"]["0"][:] / 255.0
    grid = colour_cache.grid
    direct = suggest_regions(
        u, grid.out_downsample, grid.origin, strokes, ds, k=4, cell=8,
        features=cell_features(colour_cache, 8),
    )  # fmt: skip
    assert [s.box for s in with_features] == [s.box for s in direct]


def test_cells_of_the_last_row_and_column_end_with_the_map() -> None:
    """A region suggested at the map's edge ends there: it never reaches beyond the slide."""
    u = np.zeros((40, 40), np.float32)
    u[32:, 32:] = 0.9  # the most uncertain cell is the partial one in the corner
    out = suggest_regions(u, 2.0, (10.0, 20.0), k=1, cell=16)
    y0, x0, y1, x1 = out[0].box
    assert (y0, x0) == (20 + 32 * 2, 10 + 32 * 2)
    assert (y1, x1) == (20 + 40 * 2, 10 + 40 * 2)
