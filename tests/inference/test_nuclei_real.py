"""The classical nuclei on real tissue: dark matter that is no nucleus (keratin, dense dermis)
does not come out as "nuclei" hundreds of µm across, and real nuclei are kept."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import zarr
from PIL import Image

from napari_wsi_ssl.events import run_to_end
from napari_wsi_ssl.inference import PredictConfig, nuclei_classical, predict_slide
from napari_wsi_ssl.inference.nuclei import DEFAULT_MAX_AREA_UM2
from napari_wsi_ssl.metrics import aji

#: MoNuSeg is at 40x.
MONUSEG_MPP = 0.25


def _monuseg(shared_data: Path, name: str) -> tuple[np.ndarray, np.ndarray]:
    root = shared_data / "nuclei" / "monuseg_train_partial"
    rgb = np.asarray(Image.open(root / "images" / f"{name}.png").convert("RGB"))
    truth = np.asarray(Image.open(root / "masks_instance_png" / f"{name}_instance.png"))
    return rgb, truth.astype(np.int32)


def _largest_um2(labels: np.ndarray, mpp: float) -> float:
    return float(np.bincount(labels.ravel())[1:].max(initial=0)) * mpp**2


def test_no_giant_nuclei_on_monuseg_and_a_better_aji(shared_data: Path) -> None:
    # an image where dark non-nuclear matter used to become a few giant "nuclei"
    rgb, truth = _monuseg(shared_data, "TCGA-AR-A1AK-01Z-00-DX1")
    before = nuclei_classical(rgb, MONUSEG_MPP, max_area_um2=None)
    after = nuclei_classical(rgb, MONUSEG_MPP)
    assert _largest_um2(before, MONUSEG_MPP) > 2 * DEFAULT_MAX_AREA_UM2
    assert _largest_um2(after, MONUSEG_MPP) <= DEFAULT_MAX_AREA_UM2
    # every annotated nucleus of MoNuSeg is under the limit: none is lost for its size
    assert _largest_um2(truth, MONUSEG_MPP) < DEFAULT_MAX_AREA_UM2
    assert aji(truth, after) > aji(truth, before) + 0.05
    # an image without such matter is left exactly as it was
    rgb, _ = _monuseg(shared_data, "TCGA-A7-A13E-01Z-00-DX1")
    np.testing.assert_array_equal(
        nuclei_classical(rgb, MONUSEG_MPP), nuclei_classical(rgb, MONUSEG_MPP, max_area_um2=None)
    )


def test_no_giant_nuclei_in_the_keratin_of_the_cmu_slide(cmu_svs: Path, tmp_path: Path) -> None:
    """The tiled prediction over the CMU slide's stratum corneum (large polygonal labels in
    pale-looking keratin before) keeps only nucleus-sized instances, and still finds nuclei."""
    region = (1200, 950, 512, 512)  # x, y, w, h level-0 px
    store = run_to_end(
        predict_slide(cmu_svs, None, tmp_path, PredictConfig(nuclei=True), region=region)
    )
    root = zarr.open_group(str(store), mode="r")
    labels = root["nuclei"]["0"][:]
    mpp = root.attrs["napari_wsi_ssl"]["mpp"][0]
    assert _largest_um2(labels, mpp) <= DEFAULT_MAX_AREA_UM2
    assert len(np.unique(labels)) > 30
