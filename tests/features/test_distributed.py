"""The feature cache built over a 2-process dask cluster: the single-process cache, resumable."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import zarr
from features_helpers import SMALL, stripe_strokes

from napari_wsi_ssl.cli import main
from napari_wsi_ssl.errors import CancelledError
from napari_wsi_ssl.events import CancelToken, TilesDone, run_to_end
from napari_wsi_ssl.features import (
    FeatureCache,
    FeatureConfig,
    build_cache_distributed,
    build_cache_for,
    fast_finetune,
)
from napari_wsi_ssl.features.distributed import split_ordered
from napari_wsi_ssl.inference.distributed import predict_many


def test_split_ordered_keeps_the_order_and_gives_each_worker_a_task() -> None:
    tiles = [(y, x) for y in range(2) for x in range(5)][::-1]  # e.g. visible tiles first
    blocks = split_ordered(tiles, 4, 2)
    assert [len(b) for b in blocks] == [3, 3, 4] and [t for b in blocks for t in b] == tiles
    assert [len(b) for b in split_ordered(tiles[:3], 16, 2)] == [1, 2]
    assert split_ordered(tiles[:1], 16, 2) == [(tiles[0],)]


def test_cache_over_two_workers_resumes_a_cancelled_run_and_equals_one_process(
    tmp_path: Path, synthetic, tiny_encoder: Path
) -> None:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as a dask worker runs torch: the same sums, the same bits
    try:
        ref = FeatureCache.open(
            run_to_end(build_cache_for(synthetic.slide, tiny_encoder, tmp_path / "ref", SMALL))
        )
    finally:
        torch.set_num_threads(threads)
    total = len(ref.done_tiles())
    assert total >= 12

    # a run cancelled after its first task: the tiles of finished tasks are kept
    token = CancelToken()
    with pytest.raises(CancelledError, match="they are kept"):
        run_to_end(
            build_cache_distributed(
                synthetic.slide, tiny_encoder, tmp_path / "dask", SMALL,
                workers=2, tiles_per_task=2, cancel=token,
            ),
            lambda e: token.cancel() if isinstance(e, TilesDone) else None,
        )  # fmt: skip
    (path,) = (tmp_path / "dask").glob("*.features.zarr")
    partial = FeatureCache.open(path)
    kept = partial.done_tiles()
    assert 1 <= len(kept) <= total - 4 and not partial.complete
    assert partial.meta["basis_digest"] == ref.meta["basis_digest"]  # fitted once, by the client
    # a tile whose chunk a killed worker wrote but that was never marked done is computed again
    ty, tx = sorted(ref.done_tiles() - kept)[-1]
    partial.features[ty * 32 : (ty + 1) * 32, tx * 32 : (tx + 1) * 32] = 7

    events: list[object] = []
    again = run_to_end(
        build_cache_distributed(
            synthetic.slide, tiny_encoder, tmp_path / "dask", SMALL, workers=2, tiles_per_task=2
        ),
        events.append,
    )
    assert again == path
    ticks = [e for e in events if isinstance(e, TilesDone)]
    assert ticks[-1].done == ticks[-1].total == total - len(kept)  # only the missing tiles ran
    built = FeatureCache.open(path)
    assert built.complete and built.channels == 8 + 18
    # identical to the single-process cache (on one thread), to the last float16 bit
    np.testing.assert_array_equal(built.done[:], ref.done[:])
    np.testing.assert_array_equal(built.load(), ref.load())
    by = built.meta["computed_by"]
    assert len(by) == 2 and all(n > 0 for n in by.values())
    assert sum(by.values()) == total - len(kept)


def test_predict_with_a_head_and_nuclei_on_two_workers_builds_the_cache_over_the_cluster(
    tmp_path: Path, synthetic, ground_truth, capsys: pytest.CaptureFixture[str]
) -> None:
    tumour, tissue = ground_truth
    cfg = FeatureConfig(tile=32, mpp=synthetic.mpp * 2)
    first = run_to_end(
        fast_finetune(
            synthetic.slide, stripe_strokes(tumour, tissue), synthetic.gt_downsample, None,
            tmp_path / "train", cfg,
        )
    )  # fmt: skip
    out = tmp_path / "predict"
    rc = main(
        [
            "predict", str(synthetic.slide), "--model", str(first.head), "-o", str(out),
            "--workers", "2", "--tiles-per-task", "4", "--nuclei", "--json",
        ]
    )  # fmt: skip
    assert rc == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out.strip().splitlines()[-1])
    (slide,) = result["slides"]
    assert slide["error"] is None and Path(slide["store"]).parent == out
    assert "tasks over 2 workers" in captured.err and "predict [" in captured.err
    (cache_path,) = out.glob("*.features.zarr")
    cache = FeatureCache.open(cache_path)
    assert cache.complete and len(cache.meta["computed_by"]) == 2
    np.testing.assert_array_equal(cache.load(), FeatureCache.open(first.cache).load())
    store = zarr.open_group(slide["store"], mode="r")
    assert store["nuclei"]["0"][:].max() > 0  # the nuclei beside the head's maps, in one store
    made = store["tumour"]["0"][:]
    np.testing.assert_array_equal(
        made, zarr.open_group(str(first.store), mode="r")["tumour"]["0"][:]
    )

    # the API: predict_many hands a head to the same path; a broken slide keeps its own error
    gone = tmp_path / "gone.tif"
    results = predict_many([gone, synthetic.slide], first.head, out, workers=1)
    assert "gone.tif" in str(results[0].error) and results[0].store is None
    assert results[1].error is None and results[1].store == slide["store"]


def test_finetune_fast_builds_the_cache_on_two_workers(
    tmp_path: Path, synthetic, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "head.pt"
    rc = main(
        [
            "finetune", "--scratch", "--mode", "fast", "--slide", str(synthetic.slide),
            "--mask", str(synthetic.tumour_mask), "--mpp", str(synthetic.mpp),
            "-o", str(out), "--cache-workers", "2", "--json",
        ]
    )  # fmt: skip
    assert rc == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out.strip().splitlines()[-1])
    assert result["mode"] == "fast" and out.is_file()
    assert result["validation"]["val_balanced_accuracy"] > 0.8
    cache = FeatureCache.open(result["cache"])
    # 4 tiles of 1024 px, in one task per worker (--tiles-per-task: 16 by default)
    assert cache.complete and list(cache.meta["computed_by"].values()) == [2, 2]
    # the fine-tuning found the cache complete: no tile was computed twice
    assert "tasks over 2 workers" in captured.err
    assert "feature cache complete, nothing to compute" in captured.err
