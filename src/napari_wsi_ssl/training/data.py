"""Training inputs: pretraining sources and the ``FinetuneData`` description of labelled data.

``FinetuneData`` covers every way labels arrive: an annotation array painted over a slide (the
napari Fine-tune dock), a mask image or GeoJSON file over a slide, a labelled patch folder
(ImageFolder layout) and a nuclei image/instance-mask folder.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import Dataset

from ..classes import unify_classes
from ..errors import AnnotationError, TrainingError
from ..geometry import Rect
from ..patches import IMAGE_SUFFIXES, SLIDE_SUFFIXES
from ..patches.coords import mask_window
from ..qupath import classification_of, load_features, polygons, rasterise_features
from ..slide import Slide, open_slide, tissue_mask
from ..vocab import UNLABELLED, default_class_name


class Indexed(Dataset):
    """A subset (or concatenation) of datasets that passes ``epoch`` on to them."""

    def __init__(
        self, parts: Sequence[Dataset], index: Sequence[tuple[int, int]] | None = None
    ) -> None:
        self.parts = list(parts)
        self.index = (
            list(index)
            if index is not None
            else [(p, i) for p, d in enumerate(self.parts) for i in range(len(d))]  # type: ignore[arg-type]
        )
        self._epoch = 0

    @property
    def epoch(self) -> int:
        return self._epoch

    @epoch.setter
    def epoch(self, value: int) -> None:
        self._epoch = value
        for d in self.parts:
            d.epoch = value  # type: ignore[attr-defined]

    def subset(self, positions: Sequence[int]) -> Indexed:
        return Indexed(self.parts, [self.index[int(k)] for k in positions])

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, k: int) -> dict[str, Any]:
        p, i = self.index[k]
        sample = dict(self.parts[p][i])
        sample["index"] = k
        return sample


def _is_plain_image_tiff(path: Path) -> bool:
    """A small untiled single-level TIFF is a patch image, not a slide."""
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            page: Any = tif.pages[0]
            return (
                not page.is_tiled and len(tif.series[0].levels) == 1 and max(page.shape[:2]) <= 4096
            )
    except Exception:
        return False


def resolve_sources(sources: Sequence[str | Path]) -> tuple[list[Path], list[Path]]:
    """Split pretraining sources into (slides, patch images); folders are searched recursively."""
    slides: list[Path] = []
    images: list[Path] = []
    for src in map(Path, sources):
        if not src.exists():
            raise TrainingError("no such file or folder", src)
        files = [src] if src.is_file() else sorted(p for p in src.rglob("*") if p.is_file())
        for f in files:
            suffix = f.suffix.lower()
            if suffix in (".tif", ".tiff") and _is_plain_image_tiff(f):
                images.append(f)
            elif suffix in SLIDE_SUFFIXES:
                slides.append(f)
            elif suffix in IMAGE_SUFFIXES:
                images.append(f)
    if not slides and not images:
        raise TrainingError(
            "no slide or image found",
            sources[0] if sources else None,
            "give slides or folders of patches",
        )
    return slides, images


@dataclass(frozen=True, eq=False)
class FinetuneData:
    """Labelled data for fine-tuning; build it with the ``from_*`` constructors.

    ``labels`` is a uint8 array (``UNLABELLED`` 0, then 1 tumour, 2 normal, ... by default) whose
    pixel covers ``labels_downsample`` level-0 pixels of ``slide``; ``region`` (a ``Rect``, or
    ``(x, y, w, h)``, in level-0 pixels) limits where patches are drawn. ``class_names`` maps
    label values to the names the user gave them (a painted layer's, a GeoJSON's); the
    checkpoint stores them.
    """

    kind: str  # "slide", "patches" or "nuclei"
    slide: Path | None = None
    labels: np.ndarray | None = None
    labels_downsample: float = 1.0
    region: Rect | None = None
    folder: Path | None = None
    slide_mpp: float | None = None
    class_names: Mapping[int, str] | None = None
    #: Further slides of a several-slide fine-tuning (``several``), each a one-slide part.
    more: tuple[FinetuneData, ...] = ()
    #: Nuclei image ids (file stems) left out of training, e.g. a held-out split.
    exclude: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "region", Rect.coerce(self.region))

    @classmethod
    def from_arrays(
        cls,
        slide: str | Path,
        labels: np.ndarray,
        downsample: float,
        region: Rect | Sequence[float] | None = None,
        slide_mpp: float | None = None,
        class_names: Mapping[int, str] | None = None,
    ) -> FinetuneData:
        """Painted labels over a slide; ``class_names`` are the names painted (value -> name)."""
        labels = np.asarray(labels)
        if labels.ndim != 2:
            raise AnnotationError(f"the annotation must be 2-D, got shape {labels.shape}", slide)
        return cls(
            "slide",
            Path(slide),
            labels.astype(np.uint8),
            float(downsample),
            Rect.coerce(region),
            slide_mpp=slide_mpp,
            class_names=dict(class_names) if class_names else None,
        )

    @classmethod
    def from_mask_file(
        cls,
        slide: str | Path,
        mask: str | Path,
        region: Rect | Sequence[float] | None = None,
        zero_is: str = "auto",
        slide_mpp: float | None = None,
    ) -> FinetuneData:
        """A mask image (TIFF/PNG, any size: its downsample is the slide width over its width) or a GeoJSON file.

        ``zero_is="auto"``: a mask of only 0/1 is a full ground truth (0 becomes class 2, normal);
        otherwise 0 is unlabelled. GeoJSON features are classified by ``classification.name``
        (tumour/tumor -> 1, anything else -> 2) or an integer ``label`` property; a value whose
        features share one classification name is called by that name.
        """
        mask = Path(mask)
        with open_slide(slide, mpp=slide_mpp) as s:
            width, height = s.dimensions
        names: dict[int, str] | None = None
        if mask.suffix.lower() in (".geojson", ".json"):
            labels, ds, names = _rasterise_geojson(mask, width, height)
        else:
            labels = _read_mask(mask)
            ds = width / labels.shape[1]
            values = set(np.unique(labels).tolist())
            if zero_is == "normal" or (zero_is == "auto" and values <= {0, 1}):
                labels = np.where(labels > 0, 1, 2).astype(np.uint8)
        return cls(
            "slide",
            Path(slide),
            labels,
            float(ds),
            Rect.coerce(region),
            slide_mpp=slide_mpp,
            class_names=names,
        )

    @classmethod
    def several(cls, parts: Sequence[FinetuneData]) -> FinetuneData:
        """Slide parts as one fine-tuning: the same class name gets the same value on every
        slide (``classes.unify_classes``; AnnotationError when two slides disagree).

        The first part carries the rest in ``more``; one part is returned as it is.
        """
        if any(p.kind != "slide" or p.labels is None for p in parts):
            raise AnnotationError("several slides fine-tune from slide annotations only")
        if len(parts) == 1:
            return parts[0]
        labels, names = unify_classes([(p.slide, p.labels, p.class_names) for p in parts])  # type: ignore[misc]
        unified = [
            replace(p, labels=lab, class_names=names, more=())
            for p, lab in zip(parts, labels, strict=True)
        ]
        return replace(unified[0], more=tuple(unified[1:]))

    def slides(self) -> list[FinetuneData]:
        """The one-slide parts: this one, then ``more``."""
        return [replace(self, more=()), *self.more] if self.more else [self]

    @classmethod
    def from_patches(cls, folder: str | Path) -> FinetuneData:
        return cls("patches", folder=Path(folder))

    @classmethod
    def from_nuclei(
        cls, folder: str | Path, mpp: float | None = None, exclude: Sequence[str] = ()
    ) -> FinetuneData:
        """A nuclei folder whose images are ``mpp`` µm/px (``slide_mpp``; ``None``: unknown),
        without the images ``exclude`` names (ids: file stems), e.g. a held-out split."""
        return cls("nuclei", folder=Path(folder), slide_mpp=mpp, exclude=tuple(exclude))


def check_painted(
    labels: np.ndarray, downsample: float, slide: Slide, region: Rect | None = None
) -> list[int]:
    """The painted classes a fine-tuning can use; AnnotationError naming the slide otherwise.

    Refused: an annotation whose extent (shape times ``downsample``) is not the slide's, a
    region outside the slide, fewer than two classes painted inside the region, and a class
    painted only off the tissue (on the glass, where it would teach the background).
    """
    path = slide.path
    w0, h0 = slide.dimensions
    lh, lw = labels.shape
    if abs(lw * downsample - w0) > downsample or abs(lh * downsample - h0) > downsample:
        raise AnnotationError(
            f"the annotation ({lw} x {lh} px at downsample {downsample:g}) covers "
            f"{lw * downsample:.0f} x {lh * downsample:.0f} px, not the slide's {w0} x {h0}",
            path,
            "paint on the annotation layer made for this slide, or give a mask of its shape",
        )
    if region is not None:
        region.check_inside(w0, h0, path)
    win = mask_window(labels.shape, downsample, region)
    window = labels[win.y0 : win.y1, win.x0 : win.x1]
    present = sorted(int(v) for v in np.unique(window) if v != UNLABELLED)
    where = " inside the region" if region is not None else ""
    if len(present) < 2:
        raise AnnotationError(
            f"needs at least two painted classes{where}, found {present or 'none'}",
            path,
            "paint tumour (1) and normal tissue (2)" + (" inside the region" if where else ""),
        )
    mask, mask_ds = tissue_mask(slide)
    if mask.any():
        rng = np.random.default_rng(0)
        for value in present:
            rows, cols = np.nonzero(labels == value)
            if rows.size > 100_000:
                pick = rng.choice(rows.size, 100_000, replace=False)
                rows, cols = rows[pick], cols[pick]
            mr = np.clip(
                ((rows + 0.5) * downsample / mask_ds).astype(np.int64), 0, mask.shape[0] - 1
            )
            mc = np.clip(
                ((cols + 0.5) * downsample / mask_ds).astype(np.int64), 0, mask.shape[1] - 1
            )
            if not mask[mr, mc].any():
                name = default_class_name(value)
                raise AnnotationError(
                    f"label {value} ({name}) is painted only outside the tissue",
                    path,
                    "paint it on the tissue, not on the glass",
                )
    return present


def _read_mask(path: Path) -> np.ndarray:
    if not path.is_file():
        raise AnnotationError("no such mask file", path)
    try:
        if path.suffix.lower() in (".tif", ".tiff"):
            import tifffile

            arr = tifffile.imread(path, level=0)
        else:
            from PIL import Image

            with Image.open(path) as im:
                arr = np.asarray(im)
    except Exception as exc:
        raise AnnotationError(f"cannot read the mask ({type(exc).__name__})", path) from None
    arr = np.asarray(arr)
    if arr.ndim == 3:
        arr = arr[..., 0] if arr.shape[-1] in (3, 4) else arr[0]
    if arr.ndim != 2 or arr.size == 0:
        raise AnnotationError(f"the mask must be a 2-D image, got shape {arr.shape}", path)
    if arr.max() > 255:
        raise AnnotationError("mask values above 255 are not class labels", path)
    return arr.astype(np.uint8)


def _class_of(props: dict[str, Any]) -> tuple[int, str]:
    """A feature's label value and its classification name ("" when it has none)."""
    name = classification_of({"properties": props})[0]
    if isinstance(props.get("label"), int):
        return int(props["label"]), name
    return (1 if name.lower().startswith(("tumo", "metast", "cancer")) else 2), name


def _rasterise_geojson(
    path: Path, width: int, height: int
) -> tuple[np.ndarray, float, dict[int, str]]:
    """The labels of a GeoJSON's polygons, their downsample, and the names of the values."""
    feats = load_features(path)
    ds = max(1.0, max(width, height) / 8192)
    shape = (int(np.ceil(height / ds)), int(np.ceil(width / ds)))
    spelled: dict[int, set[str]] = {}

    def value_of(_: int, feat: Any) -> int:
        value, name = _class_of(feat.get("properties") or {})
        spelled.setdefault(value, set()).add(name)
        return value

    out = rasterise_features(feats, shape, value_of, ds, dtype=np.uint8)
    if not any(polygons(f) for f in feats):
        raise AnnotationError("the GeoJSON holds no polygon", path)
    names = {v: next(iter(s)) for v, s in spelled.items() if len(s) == 1 and "" not in s}
    return out, ds, names
