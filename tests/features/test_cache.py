"""The slide feature cache: contents, resume after a cancel, independence from the tiling."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import zarr
from features_helpers import REGION, SMALL

from napari_wsi_ssl.errors import CancelledError
from napari_wsi_ssl.events import CancelToken, TilesDone, run_to_end
from napari_wsi_ssl.features import FeatureCache, FeatureConfig, build_cache_for
from napari_wsi_ssl.features.extract import colour_names


def test_colour_cache_holds_standardised_features_of_tissue(colour_cache: FeatureCache) -> None:
    f = colour_cache.load().astype(np.float32)
    assert f.shape[-1] == len(colour_names()) == 18
    assert colour_cache.complete and colour_cache.meta["checkpoint"] is None
    done = colour_cache.done_pixels()
    tissue = f[done]
    # standardised on a sample of tissue windows: about zero mean and unit spread on tissue
    assert np.all(np.abs(tissue.mean(axis=0)) < 1.0)
    assert np.all((tissue.std(axis=0) > 0.3) & (tissue.std(axis=0) < 3.0))
    assert np.isfinite(f).all()


def test_cancel_keeps_tiles_and_resume_gives_the_same_features(
    tmp_path: Path, synthetic, tiny_encoder: Path
) -> None:
    token = CancelToken()
    seen: list[TilesDone] = []

    def on_event(e: object) -> None:
        if isinstance(e, TilesDone):
            seen.append(e)
            if e.done >= 2:
                token.cancel()

    def build(out: Path, **kw: object) -> Path:
        gen = build_cache_for(synthetic.slide, tiny_encoder, out, SMALL, region=REGION, **kw)
        return run_to_end(gen, on_event if "cancel" in kw else None)

    with pytest.raises(CancelledError):
        build(tmp_path / "a", cancel=token)
    path = next((tmp_path / "a").glob("*.features.zarr"))
    partial = FeatureCache.open(path)
    kept = len(partial.done_tiles())
    assert seen[0].total == 9 and 2 <= kept < 9 and not partial.complete
    resumed: list[TilesDone] = []
    again = run_to_end(
        build_cache_for(synthetic.slide, tiny_encoder, tmp_path / "a", SMALL, region=REGION),
        lambda e: resumed.append(e) if isinstance(e, TilesDone) else None,
    )
    assert again == path
    assert resumed[-1].total == 9 - kept  # only the missing tiles ran
    fresh = build(tmp_path / "b")
    a, b = FeatureCache.open(path), FeatureCache.open(fresh)
    assert len(a.done_tiles()) == 9 and a.channels == 8 + 18
    np.testing.assert_array_equal(a.load(), b.load())
    # the region is done: nothing is computed again
    resumed.clear()
    run_to_end(
        build_cache_for(synthetic.slide, tiny_encoder, tmp_path / "a", SMALL, region=REGION),
        lambda e: resumed.append(e) if isinstance(e, TilesDone) else None,
    )
    assert not resumed


def test_features_do_not_depend_on_the_tiling(
    tmp_path: Path, synthetic, tiny_encoder: Path
) -> None:
    """Two tilings (256 and 512 px tiles) of the same part of a slide: the same features within
    0.1 of the features' unit spread at the 99.9th percentile, 0.01 on average (measured with
    128 px margins: 0.06 and under 0.01; 160 px margins give 0.04; float16 alone about 1e-3)."""
    region = (1024, 1024, 1024, 1024)  # one tile of 512 working px, four of 256

    def build(cfg: FeatureConfig) -> Path:
        gen = build_cache_for(synthetic.slide, tiny_encoder, tmp_path, cfg, region=region)
        return run_to_end(gen)

    one = build(SMALL)
    two = build(replace(SMALL, tile=64))
    assert one != two
    a, b = FeatureCache.open(one), FeatureCache.open(two)
    both = a.done_pixels() & b.done_pixels()
    fa, fb = a.load()[both].astype(np.float32), b.load()[both].astype(np.float32)
    err = np.abs(fa - fb)
    assert float(np.percentile(err, 99.9)) < 0.1 and float(err.mean()) < 0.01, float(err.max())
    # a window without margins would differ at the tile borders: the test can fail
    no_margin = build(replace(SMALL, margin=0))
    fc = FeatureCache.open(no_margin).load()[both].astype(np.float32)
    assert float(np.percentile(np.abs(fc - fb), 99.9)) > 0.1


def test_cache_store_layout(colour_cache: FeatureCache) -> None:
    root = zarr.open_group(str(colour_cache.path), mode="r")
    assert root["features"].dtype == np.float16
    assert root["features"].chunks[:2] == (32, 32)
    meta = root.attrs["napari_wsi_ssl"]
    assert meta["key"] in colour_cache.path.name or meta["key"][:16] in colour_cache.path.name
    assert set(root["basis"].array_keys()) == {"out_mean", "out_std"}
