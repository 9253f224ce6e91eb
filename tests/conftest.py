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
