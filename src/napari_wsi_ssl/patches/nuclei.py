"""Nuclei training data in micrometres: image/instance-mask folders resampled to the model's µm/px.

A folder holds ``images/<id>.png`` and ``masks_instance_png/<id>_instance.png``. Each image is
resampled once (area-averaged RGB, nearest-neighbour instances) from its own µm/px to the
model's, and its instances become background / foreground / boundary classes at that scale,
so that a boundary is one pixel of the model's grid whatever the source magnification.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from ..errors import AnnotationError
from .augment import NO_AUGMENT, Augment, sample_generator
from .datasets import _crop_or_resize, _load_rgb, find_images, to_tensor


def instances_to_classes(instances: np.ndarray) -> np.ndarray:
    """Instance labels -> 0 background, 1 nucleus interior, 2 nucleus boundary."""
    from skimage.segmentation import find_boundaries

    out = (instances > 0).astype(np.int64)
    out[find_boundaries(instances, mode="inner") & (instances > 0)] = 2
    return out


def resample_pair(
    rgb: np.ndarray, instances: np.ndarray | None, scale: float
) -> tuple[np.ndarray, np.ndarray | None]:
    """An image (area/bilinear) and its instance map (nearest) resized by ``scale``."""
    if abs(scale - 1.0) < 1e-3:
        return rgb, instances
    from PIL import Image

    h, w = rgb.shape[:2]
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    resample = Image.Resampling.BOX if scale < 1 else Image.Resampling.BILINEAR
    out = np.asarray(Image.fromarray(np.ascontiguousarray(rgb[..., :3])).resize(size, resample))
    if instances is None:
        return out, None
    lab = Image.fromarray(instances.astype(np.int32)).resize(size, Image.Resampling.NEAREST)
    return out, np.asarray(lab).astype(np.int64)


class NucleiFolder(Dataset):
    """Images with instance masks: ``root/images/<id>.png`` and ``root/masks_instance_png/<id>_instance.png``.

    Samples carry ``"mask"`` with classes background / foreground / boundary.

    Parameters
    ----------
    root
        The folder.
    patch_size
        Random crops of this size (``None``: whole images).
    mpp, target_mpp
        The images' µm/px and the model's; when both are known the images are resampled.
    images
        Ids (file stems) to use; ``None`` takes every pair.
    crops
        Samples per image: index ``i`` is a crop of image ``i // crops``.
    vary
        ``False`` draws the same crops every epoch (validation).
    """

    def __init__(
        self,
        root: str | Path,
        patch_size: int | None = None,
        *,
        augment: Augment = NO_AUGMENT,
        seed: int = 0,
        mpp: float | None = None,
        target_mpp: float | None = None,
        images: Sequence[str] | None = None,
        crops: int = 1,
        vary: bool = True,
    ) -> None:
        self.root = Path(root)
        masks_dir = self.root / "masks_instance_png"
        pairs = [
            (p, masks_dir / f"{p.stem}_instance.png") for p in find_images(self.root / "images")
        ]
        pairs = [(i, m) for i, m in pairs if m.is_file()]
        if images is not None:
            wanted = set(images)
            pairs = [(i, m) for i, m in pairs if i.stem in wanted]
        self.pairs = pairs
        if not self.pairs:
            raise AnnotationError(
                "no image/mask pairs found",
                self.root,
                "expected images/<id>.png and masks_instance_png/<id>_instance.png",
            )
        self.patch_size = patch_size
        self.augment = augment
        self.seed = seed
        self.epoch = 0
        self.scale = 1.0 if mpp is None or target_mpp is None else mpp / target_mpp
        self.crops = max(1, int(crops))
        self.vary = vary
        self.class_names = ["background", "foreground", "boundary"]
        self._cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    @property
    def stems(self) -> list[str]:
        return [p.stem for p, _ in self.pairs]

    def __len__(self) -> int:
        return len(self.pairs) * self.crops

    def _load(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        if k not in self._cache:
            from PIL import Image

            img_path, mask_path = self.pairs[k]
            with Image.open(mask_path) as im:
                instances = np.asarray(im).astype(np.int64)
            rgb, inst = resample_pair(_load_rgb(img_path), instances, self.scale)
            assert inst is not None
            self._cache[k] = (rgb, instances_to_classes(inst))
        return self._cache[k]

    def __getitem__(self, index: int) -> dict[str, Any]:
        rgb, classes = self._load(index // self.crops)
        g = sample_generator(self.seed, self.epoch if self.vary else 0, index)
        rgb, classes = _crop_or_resize(rgb, self.patch_size, g, classes)
        image, mask = self.augment(
            to_tensor(rgb), torch.from_numpy(np.ascontiguousarray(classes)).long(), g
        )
        return {"image": image, "mask": mask, "index": index}


def crops_per_image(num_patches: int, n_images: int) -> int:
    """Crops per image so that an epoch draws about ``num_patches`` samples."""
    return max(1, math.ceil(num_patches / max(1, n_images)))
