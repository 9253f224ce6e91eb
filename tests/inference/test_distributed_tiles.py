"""The tiles of one slide spread over a 2-worker dask cluster give the single-process store."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import zarr

from napari_wsi_ssl.errors import CancelledError
from napari_wsi_ssl.events import CancelToken, TilesDone, run_to_end
from napari_wsi_ssl.inference import PredictConfig, predict_slide
from napari_wsi_ssl.inference.distributed import predict_many
from napari_wsi_ssl.inference.tileblocks import (
    MapProgress,
    plan_slide,
    predict_block,
    reduce_block,
    split_tiles,
)


def _levels(group: zarr.Group) -> list[str]:
    return [d["path"] for d in group.attrs["multiscales"][0]["datasets"]]


def test_split_tiles_cuts_raster_runs_of_at_most_the_block_size():
    tiles = [(y, x) for y in range(5) for x in range(7)][::-1]
    blocks = split_tiles(tiles, 8)
    assert len(blocks) == 5 and max(len(b) for b in blocks) <= 8
    assert [t for b in blocks for t in b] == sorted(tiles)


def test_tile_blocks_over_two_workers_resume_a_killed_run_and_equal_one_process(
    synthetic, tiny_segment_ckpt, tmp_path
):
    torch.set_num_threads(1)
    config = PredictConfig(tile_size=128, device="cpu", nuclei=True, nuclei_tile_size=256)
    ref_path = run_to_end(
        predict_slide(synthetic.slide, tiny_segment_ckpt, tmp_path / "ref", config)
    )
    ref = zarr.open_group(str(ref_path), mode="r")

    # a run killed midway: some tiles done, one more written to level 0 but never marked done
    out = tmp_path / "dask"
    token = CancelToken()
    with pytest.raises(CancelledError):
        for event in predict_slide(synthetic.slide, tiny_segment_ckpt, out, config, cancel=token):
            if isinstance(event, TilesDone) and event.done >= 40:
                token.cancel()
    (path,) = out.iterdir()
    partial = zarr.open_group(str(path), mode="r+")
    done_before = int(partial["tumour/done"][:].sum())
    tissue = ref["tumour"].attrs["tiles_computed"]
    assert 40 <= done_before < tissue // 2
    ty, tx = np.argwhere(ref["tumour/done"][:] & ~partial["tumour/done"][:])[-1]
    partial["tumour/0"][ty * 128 : (ty + 1) * 128, tx * 128 : (tx + 1) * 128] = 77

    (result,) = predict_many(
        [synthetic.slide], tiny_segment_ckpt, out, config, workers=2, tiles_per_task=24
    )
    assert result.error is None and result.store == str(path)
    store = zarr.open_group(result.store, mode="r")
    for name in ("tumour", "nuclei"):
        assert store[name].attrs["complete"]
        assert len(_levels(store[name])) >= 3
        for level in [*_levels(store[name]), "done"]:
            np.testing.assert_array_equal(store[f"{name}/{level}"][:], ref[f"{name}/{level}"][:])
    assert ref["tumour/0"][:].any() and ref["nuclei/0"][:].max() > 0
    # the tumour tiles left by the killed run came in blocks, from both workers
    by = store["tumour"].attrs["computed_by"]
    assert store["tumour"].attrs["tiles_computed"] == tissue - done_before
    assert sum(by.values()) == tissue - done_before
    assert len(by) == 2 and all(n > 0 for n in by.values())
    nuclei_tiles = ref["nuclei"].attrs["tiles_computed"]
    assert nuclei_tiles > 24 and sum(store["nuclei"].attrs["computed_by"].values()) == nuclei_tiles


def test_a_failed_block_names_its_slide_and_leaves_the_map_incomplete_but_resumable(
    synthetic, tiny_segment_ckpt, tmp_path
):
    torch.set_num_threads(1)
    config = PredictConfig(tile_size=128, device="cpu")
    slide = str(synthetic.slide)
    plan = plan_slide(slide, str(tiny_segment_ckpt), str(tmp_path), config, None, 40)
    assert plan.error is None and plan.store is not None
    ((map_plan, blocks),) = plan.maps
    assert map_plan.name == "tumour" and len(blocks) >= 3
    good = predict_block(
        slide, str(tiny_segment_ckpt), plan.store, config, None, "tumour", map_plan.key, blocks[0]
    )
    gone = str(tmp_path / "gone.tif")
    bad = predict_block(
        gone, str(tiny_segment_ckpt), plan.store, config, None, "tumour", map_plan.key, blocks[1]
    )
    assert good.error is None and good.tiles == blocks[0]
    assert bad.tiles == () and "gone.tif" in bad.error and "\n" not in bad.error
    progress = reduce_block(MapProgress(), good, plan.store, map_plan, last=False)
    progress = reduce_block(progress, bad, plan.store, map_plan, last=True)
    assert progress.error == bad.error and progress.tiles == len(blocks[0])
    store = zarr.open_group(plan.store, mode="r")
    assert not store["tumour"].attrs.get("complete")
    done = {tuple(t) for t in np.argwhere(store["tumour/done"][:]).tolist()}
    assert done == set(blocks[0])
    assert store["tumour/1"][:].any()  # the good block reached the lower levels
