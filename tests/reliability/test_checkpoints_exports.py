"""Checkpoints used where they do not fit, and exports that cannot finish: clear errors, and the
user's old files left exactly as they were.

The checkpoint file's own checks (truncated, unknown preset, newer format, inconsistent class
names, unsafe pickles) are in ``tests/models/test_checkpoint.py``; here the same faults reach
the commands that use checkpoints.
"""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
import zarr
from rel_helpers import assert_one_line_error

from napari_wsi_ssl.errors import CheckpointError, ExportError
from napari_wsi_ssl.events import run_to_end
from napari_wsi_ssl.export import write_geojson, write_ome_tiff, write_ome_zarr, write_png
from napari_wsi_ssl.inference import PredictConfig, predict_slide

# ---------------------------------------------------------------------------- checkpoints


def test_truncated_checkpoint_in_predict_and_finetune(
    cli, small_slide, tiny_ckpt: Path, tmp_path: Path
) -> None:
    cut = tmp_path / "cut.pt"
    data = tiny_ckpt.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    result = cli("predict", small_slide.slide, "--model", cut, "-o", tmp_path / "p")
    assert result.code == 2
    assert_one_line_error(result.err, str(cut), "truncated")
    assert not any((tmp_path / "p").glob("*/tumour/0/*")), "no map from a broken model"
    result = cli(
        "finetune", "--init", cut, "--patches", tmp_path, "-o", tmp_path / "f.pt", "--steps", "1"
    )
    assert result.code == 2
    assert_one_line_error(result.err, str(cut))


def test_checkpoint_of_another_task(small_slide, tiny_ckpt: Path, tmp_path: Path) -> None:
    # a tumour segmentation model given as the nuclei model
    config = PredictConfig(nuclei=True, nuclei_checkpoint=str(tiny_ckpt), tile_size=64)
    with pytest.raises(CheckpointError, match="no nuclei model") as err:
        run_to_end(predict_slide(small_slide.slide, None, tmp_path, config, region=(0, 0, 64, 64)))
    assert str(tiny_ckpt) in str(err.value)


def test_checkpoint_from_a_future_version_in_predict(
    cli, small_slide, tiny_ckpt: Path, tmp_path: Path
) -> None:
    future = tmp_path / "future.pt"
    payload = torch.load(tiny_ckpt, weights_only=True)
    payload.update(format_version=99, version="99.0")
    torch.save(payload, future)
    result = cli("predict", small_slide.slide, "--model", future, "-o", tmp_path / "p")
    assert result.code == 2
    assert_one_line_error(result.err, str(future), "newer")


# ---------------------------------------------------------------------------- exports


@pytest.fixture
def mask() -> np.ndarray:
    m = np.zeros((300, 400), np.uint8)
    m[50:250, 100:300] = 1
    return m


WRITERS: dict[str, Callable[[Path, np.ndarray], Path]] = {
    "m.ome.tif": lambda p, m: write_ome_tiff(p, m, 0.5),
    "m.geojson": lambda p, m: write_geojson(p, m),
    "m.png": lambda p, m: write_png(p, m.astype(np.float32)),
    "m.ome.zarr": lambda p, m: write_ome_zarr(p, m, 0.5),
}


def _old(target: Path) -> bytes | None:
    """Put an old export at ``target`` (a file, or a folder for zarr); return its bytes."""
    if target.suffix == ".zarr":
        target.mkdir()
        (target / "old.txt").write_bytes(b"old store")
        return None
    target.write_bytes(b"old export")
    return target.read_bytes()


def _assert_old_intact(target: Path, old: bytes | None) -> None:
    if old is None:
        assert sorted(p.name for p in target.iterdir()) == ["old.txt"]
    else:
        assert target.read_bytes() == old
    litter = [p.name for p in target.parent.iterdir() if p.name != target.name]
    assert litter == [], f"temporary files left: {litter}"


@pytest.mark.parametrize("name", sorted(WRITERS))
def test_existing_file_is_replaced_whole(mask: np.ndarray, tmp_path: Path, name: str) -> None:
    target = tmp_path / name
    _old(target)
    reader = None if target.is_dir() else open(target, "rb")  # noqa: SIM115
    WRITERS[name](target, mask)
    litter = [p.name for p in tmp_path.iterdir() if p.name != name]
    assert litter == []
    if name.endswith(".ome.tif"):
        np.testing.assert_array_equal(tifffile.imread(target), mask)
    elif name.endswith(".zarr"):
        assert not (target / "old.txt").exists()
        np.testing.assert_array_equal(zarr.open(str(target))["0"][:], mask)
    else:
        assert target.stat().st_size > 0 and target.read_bytes() != b"old export"
    if reader is not None:
        # a program that had the old file open still reads the old file: it was replaced, not
        # overwritten in place
        assert reader.read() == b"old export"
        reader.close()


@pytest.mark.parametrize("name", sorted(WRITERS))
def test_full_disk_keeps_the_old_file(
    mask: np.ndarray, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    target = tmp_path / name
    old = _old(target)

    def full(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    if name.endswith(".ome.tif"):
        monkeypatch.setattr(tifffile.TiffWriter, "write", full)
    elif name.endswith(".zarr"):
        monkeypatch.setattr(zarr.storage.DirectoryStore, "__setitem__", full)
    else:
        monkeypatch.setattr(os, "fsync", full)  # where a full disk shows with delayed allocation
    with pytest.raises(ExportError, match="disk is full") as err:
        WRITERS[name](target, mask)
    assert str(target) in str(err.value)
    _assert_old_intact(target, old)


@pytest.mark.parametrize("name", ["m.ome.tif", "m.ome.zarr"])
def test_read_only_folder_keeps_the_old_file(
    mask: np.ndarray, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    folder = tmp_path / "read-only"
    folder.mkdir()
    target = folder / name
    old = _old(target)
    folder.chmod(0o555)
    try:
        if os.geteuid() == 0:
            # root writes anywhere: refuse the temporary file as the kernel refuses other users
            def denied(*args: object, **kwargs: object) -> None:
                raise PermissionError(errno.EACCES, "Permission denied", str(folder))

            monkeypatch.setattr(os, "access", lambda *a, **k: True)
            monkeypatch.setattr(tempfile, "mkstemp", denied)
            monkeypatch.setattr(tempfile, "mkdtemp", denied)
        with pytest.raises(ExportError) as err:
            WRITERS[name](target, mask)
        assert str(folder) in str(err.value) and "\n" not in str(err.value)
    finally:
        folder.chmod(0o755)
    _assert_old_intact(target, old)


def test_read_only_folder_from_the_command_line(
    cli, small_slide, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "locked"
    folder.mkdir()
    target = folder / "mask.png"
    target.write_bytes(b"old export")
    folder.chmod(0o555)
    try:
        if os.geteuid() == 0:
            monkeypatch.setattr(os, "access", lambda path, mode: Path(path) != folder)
        result = cli("export", small_slide.tumour_mask, "-o", target)
    finally:
        folder.chmod(0o755)
    assert result.code == 2
    assert_one_line_error(result.err, str(folder), "not writable")
    assert target.read_bytes() == b"old export"
