"""Fixtures of the reliability tests: tiny slides, a tiny checkpoint, damaged copies, CLI runners.

Everything here is small on purpose (slides of 512-1024 px, models of width 8): the point of
these tests is what happens when things go wrong, not how well a model learns.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]


@dataclass
class CliResult:
    code: int
    out: str
    err: str


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., CliResult]:
    """Run ``wsi-ssl ARGS`` in this process; a raw exception (a bug) propagates to the test."""
    from napari_wsi_ssl.cli import main

    def run(*args: object) -> CliResult:
        capsys.readouterr()
        code = main([str(a) for a in args])
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


def wsi_ssl_command(*args: object) -> list[str]:
    return [sys.executable, "-m", "napari_wsi_ssl.cli", *map(str, args)]


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "1")
    env["PYTHONUNBUFFERED"] = "1"
    return env


def run_wsi_ssl(args: Sequence[object], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run ``wsi-ssl ARGS`` as a separate process, as a user's shell does."""
    return subprocess.run(
        wsi_ssl_command(*args),
        capture_output=True,
        text=True,
        timeout=timeout,
        env=child_env(),
        cwd=REPO,
    )


def assert_one_line_error(err: str, *names: str) -> str:
    """stderr holds one ``wsi-ssl CMD: error: ...`` line naming ``names``, and no traceback."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err, err
    errors = [line for line in lines if ": error: " in line]
    assert len(errors) == 1, err
    for name in names:
        assert name in errors[0], (name, errors[0])
    return errors[0]


@pytest.fixture(scope="session")
def small_slide(tmp_path_factory: pytest.TempPathFactory):
    """A 1024 px synthetic slide at 0.5 µm/px (tiled JPEG TIFF, 256 px tiles)."""
    from napari_wsi_ssl.synthetic import write_synthetic_slide

    return write_synthetic_slide(tmp_path_factory.mktemp("small"), size=1024, seed=3)


@pytest.fixture(scope="session")
def tiny_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained width-8 UNet segmentation checkpoint at 2 µm/px, 32 px patches."""
    import torch

    from napari_wsi_ssl.models import build_model, save_checkpoint

    torch.manual_seed(0)
    model = build_model("unet-resnet34", "segment", num_classes=2, width=8)
    return save_checkpoint(
        tmp_path_factory.mktemp("ckpt") / "seg.pt",
        model.eval(),
        mpp=2.0,
        patch_size=32,
        class_names=["background", "tumour"],
    )


@pytest.fixture(scope="session")
def tiny_ae_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained width-8 autoencoder (reconstruct) checkpoint."""
    import torch

    from napari_wsi_ssl.models import build_model, save_checkpoint

    torch.manual_seed(0)
    model = build_model("resnet34-ae", "reconstruct", width=8)
    return save_checkpoint(
        tmp_path_factory.mktemp("ae") / "ae.pt", model.eval(), mpp=2.0, patch_size=32
    )


def corrupt_tile(src: Path, dst: Path, index: int, seed: int = 0) -> Path:
    """Copy ``src`` to ``dst`` with the bytes of tile ``index`` of the first page replaced by noise."""
    import tifffile

    shutil.copy(src, dst)
    with tifffile.TiffFile(dst) as tf:
        page = tf.pages[0]
        offset, count = int(page.dataoffsets[index]), int(page.databytecounts[index])
    data = bytearray(dst.read_bytes())
    noise = np.random.default_rng(seed).integers(0, 256, count, dtype=np.uint8)
    data[offset : offset + count] = noise.tobytes()
    dst.write_bytes(bytes(data))
    return dst


def nompp_copy(slide_path: Path, dst: Path) -> Path:
    """The slide's level 0 written again as a tiled TIFF without any pixel size."""
    import tifffile

    from napari_wsi_ssl.slide import open_slide

    with open_slide(slide_path) as slide:
        rgb = slide.read_region((0, 0), 0, slide.dimensions)
    tifffile.imwrite(dst, rgb, tile=(256, 256), photometric="rgb", compression="jpeg")
    return dst
