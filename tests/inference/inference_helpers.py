"""Test doubles of the inference tests (a module name no other test folder uses)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


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
