"""Annotations that cannot train are refused up front with an AnnotationError naming the slide.

Fine-tuning from painted labels checks: something painted, two classes, an extent that is the
slide's, a region on the slide with two classes inside it, and no class painted only on glass.
The GUI's own checks (empty layer, one class) are in ``tests/_napari/test_flow.py``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from napari_wsi_ssl.errors import AnnotationError
from napari_wsi_ssl.events import run_to_end
from napari_wsi_ssl.slide import open_slide, tissue_mask
from napari_wsi_ssl.training import FinetuneConfig, finetune
from napari_wsi_ssl.training.data import FinetuneData

DS = 16  # annotation pixels of 16 level-0 px: a 1024 px slide is a 64 x 64 annotation
FAST = {"steps": 2, "batch_size": 2, "patch_size": 32, "mpp": 2.0, "width": 8, "num_patches": 16}


@pytest.fixture(scope="module")
def tissue(small_slide) -> np.ndarray:
    """Tissue (True) on the 64 x 64 annotation grid."""
    with open_slide(small_slide.slide) as slide:
        mask, mds = tissue_mask(slide)
    rows = np.clip(((np.arange(64) + 0.5) * DS / mds).astype(int), 0, mask.shape[0] - 1)
    cols = np.clip(((np.arange(64) + 0.5) * DS / mds).astype(int), 0, mask.shape[1] - 1)
    grid = mask[rows[:, None], cols[None, :]]
    assert grid.any() and (~grid).any(), "the test slide has tissue and glass"
    return grid


def _two_classes(tissue: np.ndarray) -> np.ndarray:
    labels = np.zeros((64, 64), np.uint8)
    ys, xs = np.nonzero(tissue)
    labels[ys[::7], xs[::7]] = 1
    labels[ys[3::7], xs[3::7]] = 2
    return labels


def _finetune(slide: Path, labels: np.ndarray, out: Path, region=None, ds: float = DS) -> Path:
    data = FinetuneData.from_arrays(slide, labels, ds, region=region)
    return run_to_end(finetune(data, FinetuneConfig(**FAST, mode="scratch"), out))


def _refused(slide: Path, labels: np.ndarray, out: Path, match: str, **kw) -> str:
    with pytest.raises(AnnotationError, match=match) as err:
        _finetune(slide, labels, out, **kw)
    message = str(err.value)
    assert str(slide) in message and "\n" not in message
    assert not out.exists(), "nothing is written for refused annotations"
    return message


def test_all_zero(small_slide, tmp_path: Path) -> None:
    labels = np.zeros((64, 64), np.uint8)
    _refused(small_slide.slide, labels, tmp_path / "x.pt", "two painted classes, found none")


def test_single_class(small_slide, tissue: np.ndarray, tmp_path: Path) -> None:
    labels = np.where(tissue, 1, 0).astype(np.uint8)
    _refused(small_slide.slide, labels, tmp_path / "x.pt", r"found \[1\]")


def test_shape_not_the_slides(small_slide, tissue: np.ndarray, tmp_path: Path) -> None:
    labels = _two_classes(tissue)
    wide = np.concatenate([labels, labels], axis=1)  # 128 x 64 at DS: twice the slide's width
    message = _refused(small_slide.slide, wide, tmp_path / "x.pt", "not the slide's 1024 x 1024")
    assert "2048 x 1024" in message
    # a mask painted at another downsample than the one given
    _refused(small_slide.slide, labels, tmp_path / "x.pt", "covers 512 x 512", ds=8)


def test_painted_outside_the_tissue(small_slide, tissue: np.ndarray, tmp_path: Path) -> None:
    labels = _two_classes(tissue)
    labels[labels == 1] = 0
    ys, xs = np.nonzero(~tissue)
    labels[ys[::5], xs[::5]] = 1  # every tumour stroke on the glass
    _refused(
        small_slide.slide, labels, tmp_path / "x.pt", r"label 1 \(tumour\).*outside the tissue"
    )


def test_painted_outside_the_region(small_slide, tissue: np.ndarray, tmp_path: Path) -> None:
    labels = _two_classes(tissue)
    ys, xs = np.nonzero(labels)
    # a region around one painted pixel only holds that pixel's class
    y, x = int(ys[0]) * DS, int(xs[0]) * DS
    region = (x, y, DS, DS)
    _refused(small_slide.slide, labels, tmp_path / "x.pt", "inside the region", region=region)
    # a region off the slide
    _refused(
        small_slide.slide, labels, tmp_path / "x.pt", "outside the slide", region=(5000, 0, 64, 64)
    )


def test_good_annotation_trains(small_slide, tissue: np.ndarray, tmp_path: Path) -> None:
    """The same path accepts a proper annotation: the checks refuse only what they should."""
    out = _finetune(small_slide.slide, _two_classes(tissue), tmp_path / "ok.pt")
    assert out.is_file()
