"""Folder datasets on the real PCam and DSB2018 data."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from napari_wsi_ssl.errors import AnnotationError
from napari_wsi_ssl.patches import (
    Augment,
    ImageFiles,
    ImageFolderPatches,
    NucleiFolder,
    find_images,
    instances_to_classes,
)


def test_pcam_image_folder(shared_data: Path) -> None:
    ds = ImageFolderPatches(shared_data / "pcam" / "valid", patch_size=64, augment=Augment())
    assert ds.folders == ["0", "1"] and ds.class_names == ["non-tumour", "tumour"]
    assert len(ds) == 3000 and set(np.unique(ds.targets)) == {0, 1}
    s = ds[len(ds) - 1]
    assert s["image"].shape == (3, 64, 64) and s["image"].dtype == torch.float32
    assert int(s["label"]) == 1
    # picklable, and workers give the same samples as the main process
    ds2 = pickle.loads(pickle.dumps(ds))
    assert torch.equal(ds2[5]["image"], ds[5]["image"])
    sub = torch.utils.data.Subset(ds, list(range(8)))
    batch = next(iter(DataLoader(sub, batch_size=8, num_workers=2)))
    assert torch.equal(batch["image"][5], ds[5]["image"])


def test_unlabelled_recursive_files(shared_data: Path) -> None:
    files = find_images(shared_data / "pcam" / "valid")
    assert len(files) == 3000  # both class folders, labels ignored
    ds = ImageFiles(files, patch_size=32)
    assert ds[0]["image"].shape == (3, 32, 32)
    big = ImageFiles(files[:1], patch_size=128)  # smaller images are resized up
    assert big[0]["image"].shape == (3, 128, 128)


def test_nuclei_folder(shared_data: Path) -> None:
    ds = NucleiFolder(shared_data / "nuclei" / "dsb2018_stained", patch_size=64)
    assert len(ds) == 107
    s = ds[0]
    assert s["image"].shape == (3, 64, 64) and s["mask"].shape == (64, 64)
    assert set(torch.unique(s["mask"]).tolist()) <= {0, 1, 2}


def test_instances_to_classes_marks_boundaries() -> None:
    inst = np.zeros((10, 10), np.int32)
    inst[2:7, 2:7] = 1
    inst[2:7, 7:9] = 2  # touching neighbour
    cls = instances_to_classes(inst)
    assert (
        cls[0, 0] == 0 and cls[4, 4] == 1 and cls[2, 2] == 2 and cls[4, 6] == 2 and cls[4, 7] == 2
    )


def test_bad_folders(tmp_path: Path) -> None:
    with pytest.raises(AnnotationError, match="two class folders"):
        ImageFolderPatches(tmp_path)
    with pytest.raises(AnnotationError, match="image/mask pairs"):
        NucleiFolder(tmp_path)
