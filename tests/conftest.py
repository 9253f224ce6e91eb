"""Fixtures shared by every test package.

Each area of the code has its own folder of tests (``tests/slide``, ``tests/models`` ...),
which may add a ``conftest.py`` of its own for fixtures nobody else needs.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

# Two cores: keep torch from oversubscribing them when several processes run.
os.environ.setdefault("OMP_NUM_THREADS", "2")


@pytest.fixture(autouse=True)
def _own_recent_checkpoints(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test its own record of the last checkpoints (``recent.json``): none leaks into the
    user's cache folder or into the docks of another test."""
    monkeypatch.setenv("NAPARI_WSI_SSL_RECENT", str(tmp_path / "recent.json"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real slides and patches in ../shared/data; skipped with a reason when absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data folder {SHARED_DATA} is absent")
    return SHARED_DATA


@pytest.fixture(scope="session")
def cmu_svs(shared_data: Path) -> Path:
    path = shared_data / "slides" / "cmu_small_region.svs"
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    return path


@pytest.fixture(scope="session")
def synthetic(tmp_path_factory: pytest.TempPathFactory):
    """A small synthetic slide (2048 px a side) with its ground truth, written once per session."""
    from napari_wsi_ssl.synthetic import write_synthetic_slide

    return write_synthetic_slide(tmp_path_factory.mktemp("synthetic"), size=2048, seed=0)


@pytest.fixture(scope="session")
def svs_without_mpp(synthetic, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The synthetic slide (0.5 µm/px) as an Aperio SVS that states 20x but no pixel size."""
    from napari_wsi_ssl.benchmark.reading import write_aperio_svs
    from napari_wsi_ssl.slide import open_slide

    with open_slide(synthetic.slide) as slide:
        rgb = slide.read_region((0, 0), 0, slide.dimensions)
    path = tmp_path_factory.mktemp("nompp") / "no pixel size.svs"
    write_aperio_svs(path, rgb, mpp=None, compression="jpeg")
    with open_slide(path) as slide:
        assert slide.mpp is None and slide.objective_power == 20
    return path


@pytest.fixture(scope="session")
def fast_head(tmp_path_factory: pytest.TempPathFactory, synthetic) -> Path:
    """A fast-mode head checkpoint (colour features at twice the synthetic slide's mpp) trained
    on every 16th row of the slide's truth: label 1 tumour, 2 other tissue."""
    import numpy as np

    from napari_wsi_ssl.events import run_to_end
    from napari_wsi_ssl.features import FeatureConfig, HeadConfig, fast_finetune
    from napari_wsi_ssl.synthetic import read_tissue_mask, read_tumour_mask

    tumour, tissue = read_tumour_mask(synthetic) > 0, read_tissue_mask(synthetic) > 0
    strokes = np.zeros(tumour.shape, np.uint8)
    strokes[::16] = np.where(tumour, 1, np.where(tissue, 2, 0))[::16]
    result = run_to_end(
        fast_finetune(
            synthetic.slide,
            strokes,
            synthetic.gt_downsample,
            None,
            tmp_path_factory.mktemp("fast_head"),
            FeatureConfig(tile=32, mpp=synthetic.mpp * 2),
            head_config=HeadConfig(steps=60),
        )
    )
    return Path(result.head)
