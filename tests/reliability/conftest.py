"""Fixtures of the reliability tests: tiny slides, tiny checkpoints, an in-process CLI runner.

Everything here is small on purpose (slides of 512-1024 px, models of width 8): the point of
these tests is what happens when things go wrong, not how well a model learns.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from rel_helpers import CliResult


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
