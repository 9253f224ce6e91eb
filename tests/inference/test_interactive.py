"""``finetune_then_predict``: fine-tuning and the map of its checkpoint as one generator."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from napari_wsi_ssl.events import CancelToken, Progress, TilesDone, run_to_end
from napari_wsi_ssl.inference import PredictConfig
from napari_wsi_ssl.inference.interactive import (
    CheckpointSaved,
    FinetunedMap,
    MapPlan,
    finetune_then_predict,
)
from napari_wsi_ssl.training import FinetuneConfig, FinetuneData

CFG = FinetuneConfig(
    task="segment",
    mode="scratch",
    width=8,
    mpp=2.0,
    patch_size=32,
    batch_size=4,
    steps=4,
    num_patches=16,
    device="cpu",
)


def _plan(synthetic: Any, out: Path) -> MapPlan:
    # the view: the slide's top-left quarter, computed first
    h = synthetic.size // 2
    return MapPlan(synthetic.slide, out, PredictConfig(tile_size=64), visible_first=(0, 0, h, h))


def test_training_then_the_map_in_one_run(synthetic: Any, tmp_path: Path) -> None:
    data = FinetuneData.from_mask_file(synthetic.slide, synthetic.tumour_mask)
    events: list[Any] = []
    result = run_to_end(
        finetune_then_predict(data, CFG, tmp_path / "ft.pt", plan=_plan(synthetic, tmp_path)),
        events.append,
    )
    assert isinstance(result, FinetunedMap) and result.checkpoint.is_file()
    assert result.store is not None and result.store.is_dir()
    kinds = [type(e) for e in events]
    saved = kinds.index(CheckpointSaved)
    assert Progress in kinds[:saved] and TilesDone not in kinds[:saved]
    assert events[saved].path == result.checkpoint
    tiles = [b for e in events[saved:] if isinstance(e, TilesDone) for b in e.boxes]
    h = synthetic.size // 2
    under = [b[0] < h and b[1] < h for b in tiles]
    k = sum(under)
    assert 0 < k < len(tiles) and all(under[:k]), "the view's tiles come first"


def test_a_cancel_during_training_maps_nothing(synthetic: Any, tmp_path: Path) -> None:
    data = FinetuneData.from_mask_file(synthetic.slide, synthetic.tumour_mask)
    token = CancelToken()
    events: list[Any] = []

    def on_event(event: Any) -> None:
        events.append(event)
        if isinstance(event, Progress):
            token.cancel()

    cfg = FinetuneConfig(**{**CFG.__dict__, "steps": 1000})
    result = run_to_end(
        finetune_then_predict(
            data, cfg, tmp_path / "ft.pt", plan=_plan(synthetic, tmp_path), cancel=token
        ),
        on_event,
    )
    assert result.checkpoint.is_file() and result.store is None
    assert not [e for e in events if isinstance(e, TilesDone)]
    assert not list(tmp_path.glob("*.ome.zarr"))
