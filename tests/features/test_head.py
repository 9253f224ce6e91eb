"""The light head: learns the synthetic tumour from strokes, warm-starts, saves and predicts."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import zarr
from features_helpers import dice, stripe_strokes

from napari_wsi_ssl.errors import AnnotationError
from napari_wsi_ssl.events import Log, StoreReady, TilesDone, run_to_end
from napari_wsi_ssl.features import (
    FeatureCache,
    HeadConfig,
    Refiner,
    fast_finetune,
    is_head_checkpoint,
    load_head,
    train_head,
)
from napari_wsi_ssl.features.head import TrainedHead, make_head, split_strokes
from napari_wsi_ssl.inference import PredictConfig, predict_slide


def _tumour_map(store: Path) -> np.ndarray:
    return zarr.open_group(str(store), mode="r")["tumour"]["0"][:] > 127


def _truth_on_map(tumour: np.ndarray, gt_ds: int, cache: FeatureCache) -> np.ndarray:
    step = int(cache.grid.out_downsample // gt_ds)
    h, w = cache.grid.shape
    return tumour[::step, ::step][:h, :w]


def test_head_learns_the_tumour_where_an_untrained_head_fails(
    tmp_path: Path, colour_cache: FeatureCache, synthetic, ground_truth
) -> None:
    tumour, tissue = ground_truth
    strokes = stripe_strokes(tumour, tissue)
    result = Refiner(colour_cache).refine(strokes, synthetic.gt_downsample, tmp_path)
    truth = _truth_on_map(tumour, synthetic.gt_downsample, colour_cache)
    trained = dice(_tumour_map(result.store), truth)
    assert result.metrics["val_split"] == "strokes"
    assert result.metrics["val_balanced_accuracy"] > 0.85
    assert trained > 0.7, trained
    # the same maps from a head that never saw a stroke
    torch.manual_seed(1)
    untrained = TrainedHead(
        make_head("linear", colour_cache.channels, 2, 8), "linear", 8, [1, 2], ["a", "b"]
    )
    p = untrained.probabilities(colour_cache.load().reshape(-1, colour_cache.channels))
    chance = dice(p[:, 0].reshape(truth.shape) > 0.5, truth)
    assert chance < 0.5, chance
    assert result.seconds["train_s"] + result.seconds["map_s"] < 10


def test_warm_start_begins_where_the_last_round_ended(
    colour_cache: FeatureCache, synthetic, ground_truth
) -> None:
    tumour, tissue = ground_truth
    strokes = stripe_strokes(tumour, tissue, every=24)
    more = stripe_strokes(tumour, tissue, every=12)
    for cfg in (HeadConfig(steps=40), HeadConfig(kind="linear", steps=40, weight_decay=1e-4)):
        first = train_head(colour_cache, strokes, synthetic.gt_downsample, cfg)
        cold = train_head(colour_cache, more, synthetic.gt_downsample, cfg)
        warm = train_head(colour_cache, more, synthetic.gt_downsample, cfg, init=first)
        assert warm.metrics["warm_start"] == 1.0 and cold.metrics["warm_start"] == 0.0
        assert warm.metrics["first_loss"] < 0.6 * cold.metrics["first_loss"]
        if cfg.kind == "linear":  # convex: the warm start ends no worse (the MLP: about as well)
            assert warm.metrics["train_loss"] <= cold.metrics["train_loss"] * 1.05
        else:
            assert warm.metrics["train_loss"] <= cold.metrics["train_loss"] * 1.25
    # other classes: no warm start
    three = np.where(more == 2, 3, more).astype(np.uint8)
    other = train_head(colour_cache, three, synthetic.gt_downsample, cfg, init=first)
    assert other.metrics["warm_start"] == 0.0 and other.label_values == [1, 3]


def test_one_class_is_a_user_error(colour_cache: FeatureCache, synthetic, ground_truth) -> None:
    tumour, _ = ground_truth
    with pytest.raises(AnnotationError, match="two classes"):
        train_head(colour_cache, tumour.astype(np.uint8), synthetic.gt_downsample)


def test_validation_holds_out_whole_strokes() -> None:
    values = np.array([1, 1, 1, 1, 2, 2, 2, 2])
    strokes = np.array([1, 1, 2, 2, 3, 3, 4, 4])
    held, how = split_strokes(values, strokes, 0.5, seed=0)
    assert how == "strokes"
    for s in np.unique(strokes):  # a stroke is either all held out or all trained on
        assert len(set(held[strokes == s])) == 1
    assert held[values == 1].sum() == 2 and held[values == 2].sum() == 2


def test_fast_finetune_checkpoint_and_predict_slide(
    tmp_path: Path, synthetic, ground_truth
) -> None:
    """The whole path on a file: cache, head checkpoint (weights_only), map; then predict_slide
    with the head checkpoint reuses the cache and gives the same map."""
    from napari_wsi_ssl.features import FeatureConfig

    tumour, tissue = ground_truth
    strokes = stripe_strokes(tumour, tissue)
    cfg = FeatureConfig(tile=32, mpp=synthetic.mpp * 2)
    result = run_to_end(
        fast_finetune(synthetic.slide, strokes, synthetic.gt_downsample, None, tmp_path, cfg)
    )
    payload = torch.load(result.head, weights_only=True)
    assert payload["task"] == "feature-head" and payload["encoder_checkpoint"] is None
    assert payload["class_names"] == ["tumour", "normal"] and payload["label_values"] == [1, 2]
    assert is_head_checkpoint(result.head)
    ck = load_head(result.head)
    assert ck.feature_config == cfg and ck.head.metrics["val_points"] > 0
    first = zarr.open_group(str(result.store), mode="r")["tumour"]["0"][:]
    shutil.rmtree(result.store)
    events: list[object] = []
    store = run_to_end(
        predict_slide(synthetic.slide, result.head, tmp_path, PredictConfig()), events.append
    )
    # the cache was reused: no tile computed, one TilesDone of the whole map once written
    assert any(isinstance(e, Log) and "nothing to compute" in e.message for e in events)
    (done,) = [e for e in events if isinstance(e, TilesDone)]
    assert done.done == done.total == len(FeatureCache.open(result.cache).done_tiles()) > 0
    assert events.index(done) > next(i for i, e in enumerate(events) if isinstance(e, StoreReady))
    assert store == result.store and any(isinstance(e, StoreReady) for e in events)
    np.testing.assert_array_equal(zarr.open_group(str(store), mode="r")["tumour"]["0"][:], first)
    root = zarr.open_group(str(store), mode="r")
    assert set(root.group_keys()) == {"tumour", "uncertainty"}
    assert root["tumour"].attrs["multiscales"][0]["datasets"][0]["coordinateTransformations"]


def test_refiner_rounds_release_the_stores_nothing_reads(
    tmp_path: Path, colour_cache: FeatureCache, synthetic, ground_truth
) -> None:
    tumour, tissue = ground_truth
    refiner = Refiner(colour_cache, HeadConfig(steps=20))
    results = [
        refiner.refine(stripe_strokes(tumour, tissue, every), synthetic.gt_downsample, tmp_path)
        for every in (24, 20, 16)
    ]
    stores = [r.store for r in results]
    assert len(set(stores)) == 3 and all(s.is_dir() for s in stores)
    assert refiner.stores == stores
    # a store something still reads stays; the last round's always does
    assert refiner.prune(read=[stores[1]]) == [stores[0]]
    assert not stores[0].exists() and stores[1].is_dir() and refiner.stores == stores[1:]
    assert refiner.prune() == [stores[1]] and sorted(tmp_path.glob("*.ome.zarr")) == [stores[2]]
    assert refiner.release(keep_last=False) == [stores[2]] and stores[2].is_dir()
    assert [p.name for p in tmp_path.glob("*.pt")] == [results[-1].head.name]
