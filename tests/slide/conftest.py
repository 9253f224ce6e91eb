"""Fixtures of the slide tests: a large synthetic slide and broken files."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np
import pytest

# 20k x 20k takes about 95 s on a 2-core machine, so the large slide is the largest
# that writes in about half a minute here (10240 px: 5 file levels, 1600 level-0 tiles, ~20 s).
LARGE_SIZE = 10240


@pytest.fixture(scope="session")
def synthetic_large(tmp_path_factory: pytest.TempPathFactory):
    from napari_wsi_ssl.synthetic import write_synthetic_slide

    start = time.perf_counter()
    syn = write_synthetic_slide(tmp_path_factory.mktemp("synthetic_large"), size=LARGE_SIZE, seed=1)
    print(f"\nwrote a {LARGE_SIZE} px synthetic slide in {time.perf_counter() - start:.1f} s")
    return syn


@pytest.fixture(scope="session")
def bad_files(tmp_path_factory: pytest.TempPathFactory, cmu_svs: Path) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("bad")
    empty = folder / "empty.svs"
    empty.write_bytes(b"")
    truncated = folder / "truncated.svs"
    data = cmu_svs.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    png = folder / "image.svs"
    from PIL import Image

    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(png, format="PNG")
    text = folder / "notes.tif"
    text.write_text("this is not a slide\n")
    notzarr = folder / "folder.zarr"
    notzarr.mkdir()
    (notzarr / "readme.txt").write_text("nothing here")
    shutil.copy(cmu_svs, folder / "copy.svs")
    return {"empty": empty, "truncated": truncated, "png": png, "text": text, "notzarr": notzarr}
