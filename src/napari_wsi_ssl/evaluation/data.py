"""Labelled data for evaluation: patch folders and nuclei image/mask folders (no torch).

Patch folders are read in one of two layouts:

* ``labels.csv`` with columns ``path,label`` (and optionally ``split``), paths relative to
  the folder, as PatchCamelyon is shipped in ``../shared/data/pcam``;
* an ImageFolder: one sub-folder per class, named by its index (``0/``, ``1/``) or by its
  class name (``tumour/``, ``normal/``), matched to the model's class names.

Nuclei folders hold ``images/`` and a mask folder (``masks_instance_png/``, ``masks/`` or
``labels/``) of instance label images whose names are the image names plus an optional
``_instance``, ``_mask``, ``_masks`` or ``_labels`` suffix.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import AnnotationError
from ..vocab import class_value

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
MASK_FOLDERS = ("masks_instance_png", "masks", "labels", "masks_instance")
MASK_SUFFIXES = ("_instance", "_mask", "_masks", "_labels", "_label", "")
#: Seed of the image-level hold-out split, fixed so that training and scoring agree.
HOLDOUT_SEED = 0


@dataclass(frozen=True)
class PatchSet:
    """Paths of labelled patches and their integer labels."""

    paths: tuple[Path, ...]
    labels: np.ndarray
    class_names: tuple[str, ...]


def read_image(path: Path) -> np.ndarray:
    """An RGB uint8 image (alpha and grey channels dropped or expanded)."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            arr = np.asarray(im.convert("RGB"))
    except (OSError, ValueError) as exc:
        raise AnnotationError(f"cannot read the image ({exc})", path, "check the file") from None
    return arr


def read_labels(path: Path) -> np.ndarray:
    """An instance label image as int32 (0 = background)."""
    if path.suffix.lower() in (".tif", ".tiff"):
        import tifffile

        arr = tifffile.imread(path)
    else:
        from PIL import Image

        with Image.open(path) as im:
            arr = np.asarray(im)
    if arr.ndim == 3:  # an RGB(A)-encoded mask: one channel holds the labels
        arr = arr[..., 0]
    return arr.astype(np.int32)


def read_patch_folder(
    folder: str | Path,
    class_names: list[str] | None = None,
    split: str | None = None,
    limit: int | None = None,
    seed: int = 0,
) -> PatchSet:
    """Find the labelled patches of ``folder``.

    Parameters
    ----------
    folder
        A folder with ``labels.csv`` or one sub-folder per class.
    class_names
        The model's class names, used to map named sub-folders onto class indices.
    split
        With ``labels.csv``, keep only rows whose ``split`` column equals this.
    limit
        Keep a random, class-stratified subset of at most this many patches.
    seed
        Seed of that subset.

    Raises
    ------
    AnnotationError
        When the folder has no labelled patches, or fewer than one class.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise AnnotationError("no such patch folder", folder, "give a folder of class sub-folders")
    paths: list[Path] = []
    labels: list[int] = []
    names: list[str] = []
    csv_path = folder / "labels.csv"
    if csv_path.is_file():
        with csv_path.open(newline="") as fh:
            for row in csv.DictReader(fh):
                if split is not None and row.get("split") != split:
                    continue
                try:
                    paths.append(folder / row["path"])
                    labels.append(int(row["label"]))
                except (KeyError, ValueError):
                    raise AnnotationError(
                        "labels.csv needs columns path and an integer label", csv_path
                    ) from None
        n = max(labels, default=1) + 1
        names = (
            list(class_names)
            if class_names and len(class_names) >= n
            else [str(i) for i in range(n)]
        )
    else:
        subdirs = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
        mapped = {d: class_value(d.name, class_names) for d in subdirs}
        if any(v is None for v in mapped.values()):
            mapped = {d: i for i, d in enumerate(subdirs)}  # fall back to sorted order
            names = [d.name for d in subdirs]
        else:
            n = max((v for v in mapped.values() if v is not None), default=1) + 1
            names = (
                list(class_names)
                if class_names and len(class_names) >= n
                else [str(i) for i in range(n)]
            )
        for d, index in mapped.items():
            for p in sorted(d.iterdir()):
                if p.suffix.lower() in IMAGE_SUFFIXES:
                    paths.append(p)
                    labels.append(int(index or 0))
    if not paths:
        raise AnnotationError(
            "no labelled patches found",
            folder,
            "use one sub-folder per class (0/, 1/) or a labels.csv",
        )
    y = np.asarray(labels, dtype=np.int64)
    if limit is not None and limit < y.size:
        keep = stratified_subset(y, limit, seed)
        paths = [paths[i] for i in keep]
        y = y[keep]
    return PatchSet(tuple(paths), y, tuple(names))


def stratified_subset(labels: np.ndarray, size: int, seed: int = 0) -> np.ndarray:
    """Sorted indices of a random subset of ``size`` items with the class proportions kept."""
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels)
    chosen: list[np.ndarray] = []
    classes, counts = np.unique(labels, return_counts=True)
    quota = np.floor(counts / labels.size * size).astype(int)
    quota[np.argsort(-(counts / labels.size * size - quota))[: size - quota.sum()]] += 1
    for c, q in zip(classes, quota, strict=True):
        idx = np.flatnonzero(labels == c)
        chosen.append(rng.choice(idx, size=min(q, idx.size), replace=False))
    return np.sort(np.concatenate(chosen))


def load_patches(paths: tuple[Path, ...] | list[Path]) -> np.ndarray:
    """Read patches of one size into a (N, H, W, 3) uint8 array."""
    images = [read_image(p) for p in paths]
    shapes = {im.shape for im in images}
    if len(shapes) > 1:
        raise AnnotationError(
            f"patches have different sizes {sorted(shapes)[:3]}",
            Path(paths[0]).parent,
            "use patches of one size",
        )
    return np.stack(images) if images else np.zeros((0, 1, 1, 3), np.uint8)


def find_nuclei_pairs(folder: str | Path) -> list[tuple[Path, Path]]:
    """Pairs of (image, instance mask) paths of a nuclei folder, in name order.

    Raises
    ------
    AnnotationError
        When no image has a mask.
    """
    folder = Path(folder)
    image_dir = folder / "images"
    if not image_dir.is_dir():
        raise AnnotationError(
            "no images/ sub-folder", folder, "put images in images/ and masks in masks/"
        )
    mask_dir = next((folder / m for m in MASK_FOLDERS if (folder / m).is_dir()), None)
    if mask_dir is None:
        raise AnnotationError(
            "no mask sub-folder", folder, f"put instance masks in one of {', '.join(MASK_FOLDERS)}"
        )
    masks = {p.stem: p for p in mask_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES}
    pairs = []
    for img in sorted(image_dir.iterdir()):
        if img.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        for suffix in MASK_SUFFIXES:
            if img.stem + suffix in masks:
                pairs.append((img, masks[img.stem + suffix]))
                break
    if not pairs:
        raise AnnotationError(
            "no image has a mask of the same name", folder, f"masks are read from {mask_dir}"
        )
    return pairs


def holdout_images(stems: Sequence[str], n: int, folder: str | Path | None = None) -> list[str]:
    """The ``n`` image ids (file stems) kept out of training: a fixed permutation of the sorted ids.

    ``wsi-ssl finetune --holdout n`` leaves them out and ``wsi-ssl evaluate --holdout n`` scores
    only them, so a model is scored on images it never saw.
    """
    names = sorted(stems)
    if not 0 < n < len(names):
        raise AnnotationError(
            f"cannot hold out {n} of {len(names)} images",
            folder,
            f"hold out between 1 and {len(names) - 1}",
        )
    order = np.random.default_rng(HOLDOUT_SEED).permutation(len(names))
    return sorted(names[int(k)] for k in order[:n])
