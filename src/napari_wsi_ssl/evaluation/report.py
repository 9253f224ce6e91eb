"""Evaluate a model on labelled data and write ``report.json`` with its plots.

The command line (``wsi-ssl evaluate``) and the napari Evaluate dock share these functions.
Each ``iter_evaluate_*`` is a generator of :mod:`~napari_wsi_ssl.events` returning the report
dict; ``evaluate_*`` runs it to the end. On cancel they raise ``CancelledError`` and write
nothing. A report dict holds the metrics, ``ci`` (bootstrap 95% intervals, ``[low, high]``
per metric), ``plots`` (PNG paths) and ``report`` (the JSON path) when ``out_dir`` is given.
"""

from __future__ import annotations

import time
from collections.abc import Generator
from pathlib import Path
from typing import Any

import numpy as np

from .. import metrics
from ..errors import CheckpointError
from ..events import CancelToken, Log, Progress, run_to_end
from . import plots
from ._common import Events, _check, _thin_curve, clean, write_report
from .data import load_patches, read_patch_folder
from .masks import (
    block_confusions,
    evaluate_slide_mask,
    iter_evaluate_slide_mask,
    segmentation_report,
)
from .nuclei import evaluate_nuclei, iter_evaluate_nuclei, nuclei_probs

__all__ = [
    "block_confusions",
    "classification_report",
    "clean",
    "evaluate_nuclei",
    "evaluate_patches",
    "evaluate_slide_mask",
    "iter_evaluate_nuclei",
    "iter_evaluate_patches",
    "iter_evaluate_slide_mask",
    "nuclei_probs",
    "predict_patch_probs",
    "segmentation_report",
    "write_report",
]


# ------------------------------------------------------------------------------ patches


def predict_patch_probs(
    checkpoint: Any,
    images: np.ndarray,
    device: str = "auto",
    batch_size: int = 64,
    cancel: CancelToken | None = None,
) -> Generator[Progress, None, np.ndarray]:
    """Class probabilities (N, C) of a loaded checkpoint on (N, H, W, 3) uint8 patches.

    Classification models give the softmax of their logits; segmentation models the mean
    probability of each class over the centre half of the patch (where PCam's label applies).
    """
    from ..models import choose_device, predict_batch  # torch: evaluation stays light to import

    if checkpoint.task not in ("classify", "segment"):
        raise CheckpointError(
            f"a {checkpoint.task} model cannot classify patches",
            checkpoint.path,
            "use a fine-tuned model",
        )
    dev = choose_device(device)
    model = checkpoint.model.to(dev).eval()
    out: list[np.ndarray] = []
    n = images.shape[0]
    for start in range(0, n, batch_size):
        _check(cancel)
        batch = images[start : start + batch_size]
        if checkpoint.task == "classify":
            prob = predict_batch(model, batch, dev, "logits")
        else:
            seg = predict_batch(model, batch, dev, "seg")
            h, w = seg.shape[-2:]
            prob = seg[..., h // 4 : h - h // 4, w // 4 : w - w // 4].mean(axis=(2, 3))
        out.append(prob)
        yield Progress(min(start + batch_size, n), n, message="scoring patches")
    return np.concatenate(out) if out else np.zeros((0, len(checkpoint.class_names)))


def classification_report(
    y_true: np.ndarray,
    prob: np.ndarray,
    class_names: list[str] | tuple[str, ...],
    out_dir: str | Path | None = None,
    positive: int = 1,
    n_boot: int = 1000,
    seed: int = 0,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Metrics, bootstrap intervals, ROC points and (with ``out_dir``) plots and ``report.json``."""
    report: dict[str, Any] = {"kind": "patches", **(extra or {})}
    report.update(metrics.classification_metrics(y_true, prob, positive=positive))
    report["class_names"] = list(class_names)
    score = prob[:, positive] if prob.ndim == 2 else prob
    positive_true = (np.asarray(y_true) == positive).astype(np.int64)

    def all_metrics(t: np.ndarray, p: np.ndarray) -> dict[str, float]:
        out = metrics.classification_metrics(t, p, positive=positive)
        return {
            k: out[k] for k in ("accuracy", "balanced_accuracy", "precision", "recall", "f1", "auc")
        }

    report["ci"] = metrics.bootstrap_ci_dict(
        all_metrics, np.asarray(y_true), prob, n=n_boot, seed=seed
    )
    fpr, tpr, _ = metrics.roc_curve(positive_true, score)
    report["roc"] = dict(zip(("fpr", "tpr"), _thin_curve(fpr, tpr), strict=True))
    if out_dir is not None:
        out_dir = Path(out_dir)
        report["plots"] = {
            "confusion": str(
                plots.plot_confusion(report["confusion"], class_names, out_dir / "confusion.png")
            ),
            "roc": str(
                plots.plot_roc(fpr, tpr, report["auc"], out_dir / "roc.png", report["ci"]["auc"])
            ),
        }
        write_report(report, out_dir)
    return report


def iter_evaluate_patches(
    checkpoint_path: str | Path,
    folder: str | Path,
    out_dir: str | Path | None = None,
    device: str = "auto",
    batch_size: int = 64,
    split: str | None = None,
    limit: int | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    cancel: CancelToken | None = None,
) -> Events:
    """Evaluate a classification (or segmentation) checkpoint on a labelled patch folder."""
    from ..models import load_checkpoint  # torch: evaluation stays light to import

    ckpt = load_checkpoint(checkpoint_path)
    patches = read_patch_folder(folder, ckpt.class_names, split=split, limit=limit, seed=seed)
    yield Log(f"{len(patches.paths)} patches in {len(set(patches.labels.tolist()))} classes")
    images = load_patches(patches.paths)
    start = time.perf_counter()
    prob = yield from predict_patch_probs(ckpt, images, device, batch_size, cancel)
    seconds = time.perf_counter() - start
    names = (
        list(ckpt.class_names)
        if len(ckpt.class_names) >= prob.shape[1]
        else list(patches.class_names)
    )
    extra = {"model": str(checkpoint_path), "data": str(folder), "seconds": round(seconds, 2)}
    return classification_report(
        patches.labels, prob, names, out_dir, n_boot=n_boot, seed=seed, extra=extra
    )


def evaluate_patches(
    checkpoint_path: str | Path, folder: str | Path, **kwargs: Any
) -> dict[str, Any]:
    """:func:`iter_evaluate_patches` run to its end."""
    return run_to_end(iter_evaluate_patches(checkpoint_path, folder, **kwargs))  # type: ignore[no-any-return]
