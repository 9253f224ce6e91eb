"""Load: many slides on a local dask cluster, one of them corrupt, fail alone; every output is
the one a single run gives."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import zarr
from rel_helpers import corrupt_tile

from napari_wsi_ssl.events import run_to_end
from napari_wsi_ssl.inference import PredictConfig, predict_slide

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def batch(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Path], Path]:
    """Nineteen 512 px slides (two different ones, copied) and one with a damaged tile."""
    from napari_wsi_ssl.synthetic import write_synthetic_slide

    folder = tmp_path_factory.mktemp("batch")
    sources = [
        write_synthetic_slide(folder / f"src{k}", size=512, seed=10 + k).slide for k in range(2)
    ]
    slides = []
    for k in range(19):
        path = folder / f"slide{k:02d}.tif"
        shutil.copy(sources[k % 2], path)
        slides.append(path)
    broken = corrupt_tile(sources[0], folder / "slide19-damaged.tif", index=1)
    slides.insert(7, broken)
    return slides, broken


def test_twenty_slides_two_workers_one_fails_alone(
    cli, batch: tuple[list[Path], Path], tiny_ckpt: Path, tmp_path: Path
) -> None:
    slides, broken = batch
    out = tmp_path / "out"
    result = cli(
        "predict",
        *slides,
        "--model",
        tiny_ckpt,
        "-o",
        out,
        "--workers",
        "2",
        "--tile-size",
        "64",
        "--device",
        "cpu",
        "--json",
    )
    assert result.code == 0, result.err
    summary = json.loads(result.out.strip().splitlines()[-1])
    assert summary["succeeded"] == 19 and summary["failed"] == 1
    failed = [s for s in summary["slides"] if s["error"]]
    assert failed[0]["slide"] == str(broken)
    assert str(broken) in failed[0]["error"] and "cannot be decoded" in failed[0]["error"]
    # each store equals a single in-process run of the same slide
    config = PredictConfig(tile_size=64, device="cpu")
    reference = {}
    for k, src in enumerate(slides[:2]):
        reference[k] = zarr.open_group(
            str(run_to_end(predict_slide(src, tiny_ckpt, tmp_path / "ref", config))), mode="r"
        )
    by_slide = {s["slide"]: s["store"] for s in summary["slides"] if s["store"]}
    good = [s for s in slides if s != broken]
    assert len(by_slide) == 19 and len(set(by_slide.values())) == 19
    for k, path in enumerate(good):
        store = zarr.open_group(by_slide[str(path)], mode="r")
        assert store["tumour"].attrs["complete"]
        ref = reference[0 if k % 2 == 0 else 1]
        np.testing.assert_array_equal(store["tumour/0"][:], ref["tumour/0"][:])
