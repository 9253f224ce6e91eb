"""estimate_mpp on the CMU SVS with its pixel size removed: from the objective power, else nuclei."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

from napari_wsi_ssl.benchmark.reading import write_aperio_svs
from napari_wsi_ssl.slide import estimate_mpp, open_slide
from napari_wsi_ssl.slide._mpp import nucleus_diameter_px

CMU_MPP = 0.499


@pytest.fixture(scope="module")
def cmu_rgb(cmu_svs: Path) -> np.ndarray:
    with open_slide(cmu_svs) as slide:
        return slide.read_region((0, 0), 0, slide.dimensions)


def test_from_the_objective_power(tmp_path: Path, cmu_rgb: np.ndarray) -> None:
    """An SVS whose description has AppMag but no MPP: 20x is about 0.5 µm/px."""
    path = write_aperio_svs(tmp_path / "no mpp.svs", cmu_rgb, mpp=None, compression="jpeg")
    with open_slide(path) as slide:
        assert slide.mpp is None and slide.objective_power == 20
        estimate = estimate_mpp(slide)
    assert estimate is not None and estimate.source == "objective power"
    assert estimate.mpp == pytest.approx(0.5)
    assert str(estimate) == "about 0.5 µm/px (20x) from objective power"


def test_from_the_size_of_nuclei(tmp_path: Path, cmu_rgb: np.ndarray) -> None:
    """The CMU pixels in a TIFF with no pixel size and no objective power."""
    path = tmp_path / "bare.tif"
    tifffile.imwrite(path, cmu_rgb, tile=(256, 256), photometric="rgb", compression="jpeg")
    with open_slide(path) as slide:
        assert slide.mpp is None and slide.objective_power is None
        estimate = estimate_mpp(slide)
    assert estimate is not None and estimate.source == "nucleus size"
    assert CMU_MPP / 1.5 < estimate.mpp < CMU_MPP * 1.5, estimate
    # the estimate follows the scale: the same tissue at half the resolution reads about twice
    half = tmp_path / "half.tif"
    tifffile.imwrite(half, cmu_rgb[::2, ::2].copy(), tile=(256, 256), photometric="rgb")
    with open_slide(half) as slide:
        coarse = estimate_mpp(slide)
    assert coarse is not None and 1.4 < coarse.mpp / estimate.mpp < 2.8


def test_no_estimate_without_nuclei() -> None:
    glass = np.full((512, 512, 3), 240, np.uint8)
    assert nucleus_diameter_px([glass]) is None


def test_info_and_the_no_mpp_error_give_the_estimate(
    tmp_path: Path, cmu_rgb: np.ndarray, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from napari_wsi_ssl.cli import main
    from napari_wsi_ssl.errors import SlideError

    path = tmp_path / "bare.tif"
    tifffile.imwrite(path, cmu_rgb, tile=(256, 256), photometric="rgb", compression="jpeg")
    assert main(["info", str(path), "--no-tissue"]) == 0
    out = capsys.readouterr().out
    assert "mpp:              unknown (about 0.4" in out and "from nucleus size" in out
    assert main(["info", str(path), "--no-tissue", "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["mpp"] is None and result["mpp_estimate_source"] == "nucleus size"
    assert CMU_MPP / 1.5 < result["mpp_estimate"] < CMU_MPP * 1.5
    with open_slide(path) as slide, pytest.raises(SlideError) as err:
        slide.downsample_for_mpp(2.0)
    assert "no mpp" in str(err.value) and "it looks like about 0.4" in str(err.value)
