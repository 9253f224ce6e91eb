"""Lazy torch Datasets over slides and folders of images.

Samples are dicts: ``"image"`` float (3, P, P) in [0, 1], ``"index"``, and, when labelled,
``"mask"`` int64 (P, P) (0 = unlabelled) or ``"label"`` int64. Each sample's randomness comes from
``sample_generator(seed, epoch, index)``, so that any number of workers gives the same batches.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from ..errors import AnnotationError
from ..slide import open_slide
from .augment import NO_AUGMENT, Augment, sample_generator

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
SLIDE_SUFFIXES = (
    ".svs",
    ".ndpi",
    ".mrxs",
    ".scn",
    ".tif",
    ".tiff",
    ".vms",
    ".vmu",
    ".bif",
    ".svslide",
    ".zarr",
)


def to_tensor(rgb: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 -> (3, H, W) float32 in [0, 1].

    Slide reads may be read-only views of the decoded-tile cache: the uint8 tensor is a copy.
    """
    return torch.tensor(rgb[..., :3]).permute(2, 0, 1).float().div_(255.0)


def to_uint8(image: torch.Tensor) -> np.ndarray:
    """(3, H, W) float in [0, 1] -> (H, W, 3) uint8, for previews."""
    return (image.detach().float().clamp(0, 1) * 255).round().byte().permute(1, 2, 0).cpu().numpy()


@dataclass(frozen=True)
class LabelArray:
    """A label array over one slide: ``array[r, c]`` covers level-0 pixels ``[c*d, (c+1)*d)`` x ``[r*d, (r+1)*d)``."""

    array: np.ndarray
    downsample: float

    def patch(self, x: int, y: int, size: int, downsample: float) -> np.ndarray:
        """The labels under a patch at level-0 corner (x, y), nearest-sampled to (size, size); outside is 0."""
        centres = (np.arange(size) + 0.5) * downsample
        cols = np.floor((x + centres) / self.downsample).astype(np.int64)
        rows = np.floor((y + centres) / self.downsample).astype(np.int64)
        h, w = self.array.shape[:2]
        ok_r, ok_c = (rows >= 0) & (rows < h), (cols >= 0) & (cols < w)
        out = self.array[np.clip(rows, 0, h - 1)[:, None], np.clip(cols, 0, w - 1)[None, :]].astype(
            np.int64
        )
        out[~ok_r, :] = 0
        out[:, ~ok_c] = 0
        return out


class SlidePatches(Dataset):
    """Patches read lazily from slides at a working downsample.

    The dataset holds paths and coordinates only; each process (DataLoader worker) opens the
    slides itself on first use and reads its own regions with ``Slide.read_scaled``.

    Parameters
    ----------
    slides
        Slide paths.
    downsamples
        Working downsample of each slide (level-0 pixels per patch pixel).
    coords
        (N, 3) int array of (slide index, x, y), top-left corners in level-0 pixels.
    patch_size
        Side of a patch in working pixels.
    labels
        Per slide, a ``LabelArray`` or ``None``; when given, samples carry ``"mask"``.
    mpps
        Per slide, an mpp to impose (slides without one), or ``None``.
    """

    def __init__(
        self,
        slides: Sequence[str | Path],
        downsamples: Sequence[float],
        coords: np.ndarray,
        patch_size: int,
        *,
        labels: Sequence[LabelArray | None] | None = None,
        mpps: Sequence[float | None] | None = None,
        augment: Augment = NO_AUGMENT,
        seed: int = 0,
    ) -> None:
        self.slides = [Path(p) for p in slides]
        self.downsamples = [float(d) for d in downsamples]
        self.coords = np.asarray(coords, dtype=np.int64).reshape(-1, 3)
        self.patch_size = int(patch_size)
        self.labels = list(labels) if labels is not None else [None] * len(self.slides)
        self.mpps = list(mpps) if mpps is not None else [None] * len(self.slides)
        self.augment = augment
        self.seed = seed
        self.epoch = 0
        self._open: dict[int, Any] = {}

    def __len__(self) -> int:
        return len(self.coords)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_open"] = {}  # never ship open slide handles to workers
        return state

    def _slide(self, i: int) -> Any:
        if i not in self._open:
            self._open[i] = open_slide(self.slides[i], mpp=self.mpps[i])
        return self._open[i]

    def __getitem__(self, index: int) -> dict[str, Any]:
        s, x, y = (int(v) for v in self.coords[index])
        p, d = self.patch_size, self.downsamples[s]
        rgb = self._slide(s).read_scaled((x, y), (p, p), d)
        image = to_tensor(rgb)
        lab = self.labels[s]
        mask = torch.from_numpy(lab.patch(x, y, p, d)) if lab is not None else None
        g = sample_generator(self.seed, self.epoch, index)
        image, mask = self.augment(image, mask, g)
        out: dict[str, Any] = {"image": image, "index": index}
        if mask is not None:
            out["mask"] = mask
        return out

    def close(self) -> None:
        for slide in self._open.values():
            slide.close()
        self._open.clear()


def _load_rgb(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def _crop_or_resize(
    rgb: np.ndarray, size: int | None, g: torch.Generator, *extra: np.ndarray
) -> list[np.ndarray]:
    """A random ``size`` crop when the image is larger, a resize when smaller; ``extra`` arrays follow the crop."""
    if size is None:
        return [rgb, *extra]
    h, w = rgb.shape[:2]
    if h >= size and w >= size:
        y = int(torch.randint(h - size + 1, (), generator=g))
        x = int(torch.randint(w - size + 1, (), generator=g))
        return [a[y : y + size, x : x + size] for a in (rgb, *extra)]
    from PIL import Image

    out = [np.asarray(Image.fromarray(rgb).resize((size, size), Image.Resampling.BILINEAR))]
    out += [
        np.asarray(
            Image.fromarray(a.astype(np.int32)).resize((size, size), Image.Resampling.NEAREST)
        )
        for a in extra
    ]
    return out


def find_images(root: str | Path) -> list[Path]:
    """Image files under ``root``, recursively, sorted."""
    root = Path(root)
    if root.is_file():
        return [root]
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


class ImageFiles(Dataset):
    """Unlabelled images (e.g. patches for pretraining), cropped or resized to ``patch_size``."""

    def __init__(
        self,
        files: Sequence[str | Path],
        patch_size: int | None = None,
        *,
        augment: Augment = NO_AUGMENT,
        seed: int = 0,
    ) -> None:
        self.files = [Path(f) for f in files]
        self.patch_size = patch_size
        self.augment = augment
        self.seed = seed
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> dict[str, Any]:
        g = sample_generator(self.seed, self.epoch, index)
        (rgb,) = _crop_or_resize(_load_rgb(self.files[index]), self.patch_size, g)
        image, _ = self.augment(to_tensor(rgb), None, g)
        return {"image": image, "index": index}


def _class_names(folders: list[str]) -> list[str]:
    if all(f.isdigit() for f in folders):
        common = {0: "non-tumour", 1: "tumour"}
        return [common.get(int(f), f"class {f}") for f in folders]
    return folders


class ImageFolderPatches(ImageFiles):
    """Labelled patches in ImageFolder layout: ``root/<class>/*.png|jpg`` (``0/``, ``1/`` ... sort numerically).

    ``class_names`` maps folders ``0``/``1`` to ``non-tumour``/``tumour`` (the PCam convention).
    """

    def __init__(
        self,
        root: str | Path,
        patch_size: int | None = None,
        *,
        augment: Augment = NO_AUGMENT,
        seed: int = 0,
    ) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise AnnotationError("no such patch folder", self.root)
        folders = [p.name for p in self.root.iterdir() if p.is_dir() and find_images(p)]
        folders.sort(key=lambda f: (0, int(f), f) if f.isdigit() else (1, 0, f))
        if len(folders) < 2:
            raise AnnotationError(
                f"needs at least two class folders with images, found {folders}",
                self.root,
                "use root/0/*.png, root/1/*.png",
            )
        self.folders = folders
        self.class_names = _class_names(folders)
        self.files: list[Path] = []
        targets: list[int] = []
        for k, f in enumerate(folders):
            imgs = find_images(self.root / f)
            self.files += imgs
            targets += [k] * len(imgs)
        self.targets = np.asarray(targets, dtype=np.int64)
        super().__init__(self.files, patch_size, augment=augment, seed=seed)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {**super().__getitem__(index), "label": torch.tensor(self.targets[index])}
