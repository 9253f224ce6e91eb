"""Fixtures of the inference tests: an in-memory slide and tiny checkpoints."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


class ArraySlide:
    """A slide-like object over an (h, w, 3) uint8 array (level 0 only), for tests."""

    def __init__(self, image: np.ndarray, mpp: float | None = 0.5) -> None:
        self.image = image
        self.dimensions = (image.shape[1], image.shape[0])
        self.mpp = None if mpp is None else (mpp, mpp)
        self.path = Path("array.tif")

    def read_region(self, location, level, size):  # noqa: ANN001
        x, y = location
        w, h = size
        out = np.full((h, w, 3), 255, np.uint8)
        ys, xs = max(0, y), max(0, x)
        ye, xe = min(y + h, self.image.shape[0]), min(x + w, self.image.shape[1])
        if ye > ys and xe > xs:
            out[ys - y : ye - y, xs - x : xe - x] = self.image[ys:ye, xs:xe]
        return out

    def read_scaled(self, location, size, downsample):  # noqa: ANN001
        f = int(downsample)
        assert f == downsample, "ArraySlide reads integer downsamples only"
        w, h = size
        big = self.read_region(location, 0, (w * f, h * f)).astype(np.float32)
        return big.reshape(h, f, w, f, 3).mean(axis=(1, 3)).round().astype(np.uint8)

    def downsample_for_mpp(self, mpp: float) -> float:
        assert self.mpp is not None
        return mpp / self.mpp[0]

    def close(self) -> None:
        pass


def _texture(h: int, w: int, seed: int = 0) -> np.ndarray:
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    base = ndimage.gaussian_filter(rng.random((h, w, 3)).astype(np.float32), (6, 6, 0))
    base = (base - base.min()) / (base.max() - base.min())
    return (60 + 180 * base).astype(np.uint8)


@pytest.fixture(scope="session")
def texture() -> np.ndarray:
    return _texture(704, 960)


@pytest.fixture(scope="session")
def tiny_segment_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch

    from napari_wsi_ssl.models import build_model, save_checkpoint

    torch.manual_seed(0)
    model = build_model("unet-resnet34", "segment", num_classes=2, width=8)
    model.eval()
    return save_checkpoint(
        tmp_path_factory.mktemp("ckpt") / "seg.pt", model, mpp=0.5, patch_size=64
    )
