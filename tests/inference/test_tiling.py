"""Tiled prediction: seam-free stitching, cache, resume, order, store layout."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import zarr

from napari_wsi_ssl.errors import CancelledError
from napari_wsi_ssl.events import CancelToken, TilesDone, run_to_end
from napari_wsi_ssl.inference import PredictConfig, predict_opened

FP = {"path": "/data/array.tif", "size": 1, "mtime_ns": 1}


def _predict(slide, ckpt, out, cfg, **kw):
    return run_to_end(
        predict_opened(
            slide, ckpt, out, cfg, kw.get("visible_first"), kw.get("region"), kw.get("cancel"), FP
        )
    )


def _whole_image(ckpt_path, image: np.ndarray) -> np.ndarray:
    from napari_wsi_ssl.models import load_checkpoint

    model = load_checkpoint(ckpt_path).model
    with torch.inference_mode():
        x = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255
        return torch.softmax(model(x)["seg"], 1)[0, 1].numpy()


def test_tiled_equals_whole_image_in_the_interior(texture, tiny_segment_ckpt, tmp_path):
    from inference_helpers import ArraySlide

    slide = ArraySlide(texture)
    ref = _whole_image(tiny_segment_ckpt, texture)
    errors = {}
    for margin in (0, 64):
        cfg = PredictConfig(tile_size=128, margin=margin, tissue_only=False, dtype="float16")
        store = _predict(slide, tiny_segment_ckpt, tmp_path / f"m{margin}", cfg)
        tiled = zarr.open(str(store))["tumour/0"][:].astype(np.float32)
        assert tiled.shape == ref.shape
        errors[margin] = float(np.abs(tiled - ref)[64:-64, 64:-64].max())
    # with a margin the stitched map is the whole-image map (bf16/fp16 rounding aside) ...
    assert errors[64] < 0.02, errors
    # ... and without one the tile borders show: the test can tell seams apart
    assert errors[0] > 2 * errors[64], errors


def test_store_is_ngff_with_physical_scale_and_pyramid(texture, tiny_segment_ckpt, tmp_path):
    from inference_helpers import ArraySlide

    cfg = PredictConfig(tile_size=128, margin=32, tissue_only=False, mpp=1.0)
    store = _predict(ArraySlide(texture, mpp=0.5), tiny_segment_ckpt, tmp_path, cfg)
    group = zarr.open(str(store))["tumour"]
    ms = group.attrs["multiscales"][0]
    assert ms["version"] == "0.4" and [a["name"] for a in ms["axes"]] == ["y", "x"]
    first = ms["datasets"][0]["coordinateTransformations"]
    # working mpp 1.0 on a 0.5 µm/px slide: downsample 2, scale 1 µm, half-pixel shift 0.25 µm
    assert first[0]["scale"] == [1.0, 1.0] and first[1]["translation"] == [0.25, 0.25]
    assert group["0"].shape == (352, 480) and group["0"].chunks == (128, 128)
    assert group["0"].dtype == np.uint8
    for i in range(1, len(ms["datasets"])):
        lo, hi = group[str(i)], group[str(i - 1)]
        assert lo.shape == ((hi.shape[0] + 1) // 2, (hi.shape[1] + 1) // 2)
    # the lower level is the mean of the level above (within uint8 rounding)
    l0 = group["0"][:].astype(np.float32)
    l1 = group["1"][:].astype(np.float32)
    assert np.abs(l0.reshape(176, 2, 240, 2).mean(axis=(1, 3)) - l1).max() <= 1.0


def test_second_call_computes_nothing_and_resume_skips_done_tiles(
    texture, tiny_segment_ckpt, tmp_path, monkeypatch
):
    from inference_helpers import ArraySlide

    slide = ArraySlide(np.ascontiguousarray(texture[:384, :512]))
    cfg = PredictConfig(
        tile_size=128, margin=32, tissue_only=False, batch_size=1, prefetch_batches=1
    )
    token = CancelToken()
    gen = predict_opened(slide, tiny_segment_ckpt, tmp_path, cfg, None, None, token, FP)
    seen = 0
    with pytest.raises(CancelledError):
        for event in gen:
            if isinstance(event, TilesDone):
                seen = event.done
                token.cancel()
    root = zarr.open(str(tmp_path / next(p.name for p in tmp_path.glob("*.ome.zarr"))))
    done_mask = root["tumour/done"][:]
    done = int(done_mask.sum())
    assert 0 < seen <= done < 12
    first = root["tumour/0"][:]

    # resume: only the missing tiles are computed
    events = list(
        _events(predict_opened(slide, tiny_segment_ckpt, tmp_path, cfg, None, None, None, FP))
    )
    tiles = [e for e in events if isinstance(e, TilesDone)]
    assert tiles[-1].total == 12 - done and tiles[-1].done == 12 - done
    full = zarr.open(str(tmp_path / next(p.name for p in tmp_path.glob("*.ome.zarr"))))
    assert full["tumour/done"][:].all()
    finished = np.repeat(np.repeat(done_mask, 128, 0), 128, 1)[:384, :512]
    np.testing.assert_array_equal(full["tumour/0"][:][finished], first[finished])

    # cached: the checkpoint is not even loaded
    import napari_wsi_ssl.models as models

    monkeypatch.setattr(models, "load_checkpoint", lambda *a, **k: pytest.fail("recomputed"))
    path = _predict(slide, tiny_segment_ckpt, tmp_path, cfg)
    assert len(list(tmp_path.glob("*.ome.zarr"))) == 1 and path.exists()
    # another setting is another store
    monkeypatch.undo()
    other = _predict(
        slide,
        tiny_segment_ckpt,
        tmp_path,
        PredictConfig(tile_size=256, margin=32, tissue_only=False),
    )
    assert other != path


def _events(gen):
    while True:
        try:
            yield next(gen)
        except StopIteration:
            return


def test_visible_first_order_and_region(texture, tiny_segment_ckpt, tmp_path):
    from inference_helpers import ArraySlide

    slide = ArraySlide(texture)
    cfg = PredictConfig(tile_size=128, margin=32, tissue_only=False, batch_size=1)
    view = (500, 700, 700, 960)  # (y0, x0, y1, x1) level-0: bottom-right corner
    boxes = []
    for e in _events(predict_opened(slide, tiny_segment_ckpt, tmp_path, cfg, view, None, None, FP)):
        if isinstance(e, TilesDone):
            boxes.extend(e.boxes)
    assert len(boxes) == 48
    inside = [
        b[0] < view[2] and b[2] > view[0] and b[1] < view[3] and b[3] > view[1] for b in boxes
    ]
    n_in = sum(inside)
    assert n_in == 9 and all(inside[:n_in]) and not any(inside[n_in:])

    region = (256, 128, 300, 200)  # x, y, w, h
    store = _predict(slide, tiny_segment_ckpt, tmp_path / "r", cfg, region=region)
    group = zarr.open(str(store))["tumour"]
    assert group["0"].shape == (200, 300)
    tr = group.attrs["multiscales"][0]["datasets"][0]["coordinateTransformations"][1]["translation"]
    assert tr == [128 * 0.5, 256 * 0.5]


def test_tissue_only_leaves_background_zero(texture, tiny_segment_ckpt, tmp_path):
    from inference_helpers import ArraySlide

    mask = np.zeros((704 // 32, 960 // 32), bool)
    mask[:4, :4] = True  # tissue only in the top-left 128 px
    cfg = PredictConfig(tile_size=128, margin=32, tissue_only=True)
    gen = predict_opened(
        ArraySlide(texture),
        tiny_segment_ckpt,
        tmp_path,
        cfg,
        None,
        None,
        None,
        FP,
        mask=(mask, 32.0),
    )
    store = run_to_end(gen)
    group = zarr.open(str(store))["tumour"]
    assert group["done"][:].sum() == 1
    level0 = group["0"][:]
    assert level0[:128, :128].any() and not level0[:, 128:].any() and not level0[128:].any()
