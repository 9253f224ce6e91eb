"""Tumour map evaluation: pixel metrics of a probability map against a ground-truth mask."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from .. import metrics
from ..errors import AnnotationError
from ..events import CancelToken, run_to_end
from ..inference import PredictConfig, predict_slide
from ..inference.store import PredictionStore
from ..slide import open_slide
from . import plots
from ._common import Events, _check, write_report

# ---------------------------------------------------------------------------- segmentation


def block_confusions(
    truth: np.ndarray,
    pred: np.ndarray,
    n_classes: int,
    ignore_label: int | None = None,
    blocks: int = 16,
) -> np.ndarray:
    """Confusion matrices of a ``blocks`` x ``blocks`` grid of image blocks, shape (B, C, C).

    Neighbouring pixels are not independent, so the bootstrap resamples blocks, not pixels.
    """
    t = np.asarray(truth).astype(np.int64)
    p = np.asarray(pred).astype(np.int64)
    h, w = t.shape
    by = np.minimum(np.arange(h) * blocks // max(h, 1), blocks - 1)
    bx = np.minimum(np.arange(w) * blocks // max(w, 1), blocks - 1)
    block = by[:, None] * blocks + bx[None, :]
    keep = np.ones_like(t, dtype=bool) if ignore_label is None else t != ignore_label
    keep &= (t >= 0) & (t < n_classes) & (p >= 0) & (p < n_classes)
    key = (block[keep] * n_classes + t[keep]) * n_classes + p[keep]
    counts = np.bincount(key, minlength=blocks * blocks * n_classes * n_classes)
    cms = counts.reshape(blocks * blocks, n_classes, n_classes)
    return cms[cms.sum(axis=(1, 2)) > 0]


def segmentation_report(
    truth: np.ndarray,
    prob: np.ndarray,
    out_dir: str | Path | None = None,
    ignore_label: int | None = None,
    threshold: float = 0.5,
    n_boot: int = 1000,
    seed: int = 0,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Binary tumour segmentation metrics of a probability map against a 0/1 mask.

    Parameters
    ----------
    truth
        (h, w) labels: 1 tumour, 0 not tumour; pixels equal to ``ignore_label`` are left out.
    prob
        (h, w) tumour probability on the same grid.
    """
    truth = np.asarray(truth)
    prob = np.asarray(prob, dtype=np.float32)
    if truth.shape != prob.shape:
        raise ValueError(f"mask {truth.shape} and probability map {prob.shape} differ in shape")
    pred = (prob >= threshold).astype(np.int64)
    t = truth.astype(np.int64)
    if ignore_label is not None:
        t = np.where(truth == ignore_label, -1, t)
    cms = block_confusions(t, pred, 2, ignore_label=-1)
    report: dict[str, Any] = {"kind": "mask", **(extra or {}), "threshold": threshold}
    report.update(metrics.segmentation_from_confusion(cms.sum(axis=0)))
    labelled = t >= 0
    report["auc"] = metrics.roc_auc(t[labelled] == 1, prob[labelled])
    keys = ("miou", "pixel_precision", "pixel_recall", "pixel_f1", "dice", "pixel_accuracy")

    def from_blocks(c: np.ndarray) -> dict[str, float]:
        seg = metrics.segmentation_from_confusion(c.sum(axis=0))
        return {k: seg[k] for k in keys}

    report["ci"] = metrics.bootstrap_ci_dict(from_blocks, cms, n=n_boot, seed=seed)
    if out_dir is not None:
        out_dir = Path(out_dir)
        shown = np.where(labelled, truth, -1)
        fpr, tpr, _ = metrics.roc_curve(t[labelled] == 1, prob[labelled])
        report["plots"] = {
            "confusion": str(
                plots.plot_confusion(
                    report["confusion"], ["other", "tumour"], out_dir / "confusion.png", "Pixels"
                )
            ),
            "roc": str(
                plots.plot_roc(fpr, tpr, report["auc"], out_dir / "roc.png", title="Pixel ROC")
            ),
            "map": str(plots.plot_mask_comparison(shown, prob, out_dir / "map.png", threshold)),
        }
        write_report(report, out_dir)
    return report


# ------------------------------------------------------------------------------ slide + mask


def read_mask(mask: str | Path | np.ndarray) -> np.ndarray:
    """A ground-truth mask from an array, a TIFF or an image file (first channel of RGB)."""
    if isinstance(mask, np.ndarray):
        arr = mask
    else:
        path = Path(mask)
        if not path.is_file():
            raise AnnotationError("no such mask file", path, "give the tumour mask (1 = tumour)")
        try:
            if path.suffix.lower() in (".tif", ".tiff"):
                import tifffile

                arr = tifffile.imread(path)
            else:
                from PIL import Image

                with Image.open(path) as im:
                    arr = np.asarray(im)
        except (OSError, ValueError) as exc:
            raise AnnotationError(f"cannot read the mask ({exc})", path) from None
    if arr.ndim == 3:
        arr = arr[..., 0]
    if arr.ndim != 2:
        raise AnnotationError(f"a mask must be 2-D, got shape {arr.shape}")
    return np.asarray(arr)


def mask_downsample_for(slide_size: tuple[int, int], mask_shape: tuple[int, int]) -> float:
    """Level-0 pixels per mask pixel, from the slide's (width, height) and the mask's (h, w)."""
    ds = slide_size[0] / mask_shape[1]
    ds_y = slide_size[1] / mask_shape[0]
    if abs(ds - ds_y) > 0.05 * ds + 1.0 / mask_shape[0] * ds:
        raise AnnotationError(
            f"the mask ({mask_shape[1]} x {mask_shape[0]}) does not have the slide's aspect "
            f"({slide_size[0]} x {slide_size[1]})",
            hint="give a mask of the whole slide at one downsample",
        )
    return float(round(ds)) if abs(ds - round(ds)) < 0.02 * ds else ds


def map_on_mask_grid(
    store: str | Path,
    mask_shape: tuple[int, int],
    mask_downsample: float,
    slide_mpp: tuple[float, float] | None = None,
) -> np.ndarray:
    """The tumour probability of a prediction store sampled at the mask's pixel centres.

    The pyramid level closest to the mask's downsample is read and sampled by nearest pixel;
    pixels outside the predicted region are 0 (not tumour). The store places itself on the
    slide's level-0 pixels, so ``slide_mpp`` is not needed (kept for callers).
    """
    tumour = PredictionStore(store)["tumour"]
    k = int(np.argmin([abs(np.log(d / mask_downsample)) for d in tumour.downsamples]))
    d = tumour.downsamples[k]
    ox, oy = tumour.origin
    arr = np.asarray(tumour.probability(k))
    cy = (np.arange(mask_shape[0]) + 0.5) * mask_downsample
    cx = (np.arange(mask_shape[1]) + 0.5) * mask_downsample
    iy = np.floor((cy - oy) / d).astype(np.int64)
    ix = np.floor((cx - ox) / d).astype(np.int64)
    inside_y = (iy >= 0) & (iy < arr.shape[0])
    inside_x = (ix >= 0) & (ix < arr.shape[1])
    out = np.zeros(mask_shape, dtype=np.float32)
    out[np.ix_(inside_y, inside_x)] = arr[np.ix_(iy[inside_y], ix[inside_x])]
    return out


def iter_evaluate_slide_mask(
    checkpoint_path: str | Path,
    slide_path: str | Path,
    mask: str | Path | np.ndarray,
    out_dir: str | Path | None = None,
    device: str = "auto",
    mask_downsample: float | None = None,
    ignore_label: int | None = None,
    threshold: float = 0.5,
    n_boot: int = 1000,
    seed: int = 0,
    config: Any = None,
    cancel: CancelToken | None = None,
) -> Events:
    """Predict a slide's tumour map and score it against a ground-truth mask.

    Parameters
    ----------
    mask
        (h, w) mask of the whole slide at ``mask_downsample`` (inferred from the slide size when
        ``None``); 1 is tumour, anything else not tumour, ``ignore_label`` unlabelled.
    config
        A :class:`~napari_wsi_ssl.inference.PredictConfig`; ``device`` applies when it is None.
        The prediction store is written to ``out_dir/prediction`` (or a temporary folder).
    """
    import tempfile

    truth = read_mask(mask)
    with open_slide(slide_path) as slide:
        slide_size, slide_mpp = slide.dimensions, slide.mpp
    ds = mask_downsample or mask_downsample_for(slide_size, truth.shape)
    cfg = config if config is not None else PredictConfig(device=device)
    with tempfile.TemporaryDirectory() as tmp:
        pred_dir = Path(out_dir) / "prediction" if out_dir is not None else Path(tmp)
        start = time.perf_counter()
        store = yield from predict_slide(
            slide_path, checkpoint_path, pred_dir, config=cfg, cancel=cancel
        )
        seconds = time.perf_counter() - start
        _check(cancel)
        prob = map_on_mask_grid(store, truth.shape, ds, slide_mpp)
    extra = {
        "model": str(checkpoint_path),
        "slide": str(slide_path),
        "mask": str(mask) if not isinstance(mask, np.ndarray) else "array",
        "mask_downsample": ds,
        "predict_seconds": round(seconds, 2),
        "prediction": str(store) if out_dir is not None else None,
    }
    return segmentation_report(truth, prob, out_dir, ignore_label, threshold, n_boot, seed, extra)


def evaluate_slide_mask(
    checkpoint_path: str | Path,
    slide_path: str | Path,
    mask: str | Path | np.ndarray,
    **kwargs: Any,
) -> dict[str, Any]:
    """:func:`iter_evaluate_slide_mask` run to its end."""
    return run_to_end(iter_evaluate_slide_mask(checkpoint_path, slide_path, mask, **kwargs))  # type: ignore[no-any-return]
