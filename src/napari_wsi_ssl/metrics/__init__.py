"""Metrics for patch classification, pixel segmentation and nuclei instances, in plain numpy.

No torch and no other layer of the package: training (its validation mIoU) and evaluation both
use them.

Conventions for the degenerate cases (chosen so that no metric warns, raises or returns NaN
on inputs a user can produce, such as a test set with one class or an empty prediction):

* A ratio whose numerator and denominator are both zero means "nothing to find and nothing
  found": precision, recall, F1 and Dice are then 1.0. When there was something to find but
  nothing was predicted (or the reverse), they are 0.0.
* IoU of a class absent from both truth and prediction is NaN in :func:`iou_per_class`
  (it cannot be measured), and :func:`mean_iou` averages only the measurable classes. With
  no labelled pixel at all, ``mean_iou`` is NaN: there is nothing to evaluate.
* ROC AUC needs both classes in the truth. With one class it is NaN (undefined, not 0.5),
  and the ROC curve is the diagonal ``[0, 1]``. :func:`bootstrap_ci` ignores NaN resamples.
* Nuclei: with no instance in truth and prediction, AJI, PQ, DQ and SQ are 1.0. With
  instances on one side only they are 0.0. SQ with no matched pair is 0.0.

Unlabelled pixels are excluded with ``ignore_label`` (0 in the annotation layer convention).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .instances import aji, dice, nuclei_metrics, panoptic_quality

__all__ = [
    "accuracy",
    "aji",
    "balanced_accuracy",
    "bootstrap_ci",
    "bootstrap_ci_dict",
    "classification_metrics",
    "confusion_matrix",
    "dice",
    "f1",
    "iou_per_class",
    "mean_iou",
    "nuclei_metrics",
    "panoptic_quality",
    "pixel_prf",
    "precision",
    "recall",
    "roc_auc",
    "roc_curve",
    "segmentation_metrics",
]


def _ratio(num: float, den: float, *, empty: float = 1.0) -> float:
    """``num / den``, or ``empty`` when ``den`` is 0 (num is then 0 too)."""
    return float(num) / float(den) if den else empty


# --------------------------------------------------------------------------- classification


def confusion_matrix(y_true: Any, y_pred: Any, n_classes: int | None = None) -> np.ndarray:
    """Confusion matrix ``cm[true, pred]`` of integer class labels.

    Parameters
    ----------
    y_true, y_pred
        Integer labels of the same shape, ``0 <= label < n_classes``.
    n_classes
        Number of classes; by default ``max(label) + 1`` over both arrays (at least 2).
    """
    t = np.asarray(y_true, dtype=np.int64).ravel()
    p = np.asarray(y_pred, dtype=np.int64).ravel()
    if t.shape != p.shape:
        raise ValueError(f"y_true has {t.size} values, y_pred {p.size}")
    if n_classes is None:
        n_classes = max(2, int(max(t.max(initial=0), p.max(initial=0))) + 1)
    if t.size and (min(t.min(), p.min()) < 0 or max(t.max(), p.max()) >= n_classes):
        raise ValueError(f"labels must lie in [0, {n_classes})")
    return np.bincount(t * n_classes + p, minlength=n_classes * n_classes).reshape(
        n_classes, n_classes
    )


def _binary_counts(cm: np.ndarray, positive: int) -> tuple[int, int, int, int]:
    tp = int(cm[positive, positive])
    fp = int(cm[:, positive].sum()) - tp
    fn = int(cm[positive, :].sum()) - tp
    tn = int(cm.sum()) - tp - fp - fn
    return tp, fp, fn, tn


def _prf_from_counts(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    prec = _ratio(tp, tp + fp, empty=1.0 if fn == 0 else 0.0)
    rec = _ratio(tp, tp + fn, empty=1.0 if fp == 0 else 0.0)
    f = _ratio(2 * tp, 2 * tp + fp + fn)
    return prec, rec, f


def accuracy(y_true: Any, y_pred: Any) -> float:
    """Fraction of correct labels (1.0 for empty input)."""
    t, p = np.asarray(y_true).ravel(), np.asarray(y_pred).ravel()
    return _ratio(int((t == p).sum()), t.size)


def precision(y_true: Any, y_pred: Any, positive: int = 1) -> float:
    """Precision of class ``positive`` (one-vs-rest)."""
    return _prf(y_true, y_pred, positive)[0]


def recall(y_true: Any, y_pred: Any, positive: int = 1) -> float:
    """Recall (sensitivity) of class ``positive`` (one-vs-rest)."""
    return _prf(y_true, y_pred, positive)[1]


def f1(y_true: Any, y_pred: Any, positive: int = 1) -> float:
    """F1 score of class ``positive`` (one-vs-rest)."""
    return _prf(y_true, y_pred, positive)[2]


def _prf(y_true: Any, y_pred: Any, positive: int) -> tuple[float, float, float]:
    cm = confusion_matrix(y_true, y_pred, _n(y_true, y_pred, positive))
    tp, fp, fn, _ = _binary_counts(cm, positive)
    return _prf_from_counts(tp, fp, fn)


def _n(y_true: Any, y_pred: Any, positive: int) -> int:
    top = max(int(np.max(y_true, initial=0)), int(np.max(y_pred, initial=0)), positive)
    return max(2, top + 1)


def balanced_accuracy(y_true: Any, y_pred: Any) -> float:
    """Mean recall over the classes present in ``y_true``."""
    cm = confusion_matrix(y_true, y_pred)
    support = cm.sum(axis=1)
    present = support > 0
    if not present.any():
        return 1.0
    return float(np.mean(np.diag(cm)[present] / support[present]))


def roc_curve(y_true: Any, y_score: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ROC curve of binary labels against scores of the positive class.

    Returns
    -------
    fpr, tpr, thresholds
        One point per distinct score, from (0, 0) at threshold +inf to (1, 1). With a single
        class in ``y_true`` the rate of the missing class is taken as the diagonal.
    """
    t = np.asarray(y_true).ravel().astype(bool)
    s = np.asarray(y_score, dtype=np.float64).ravel()
    if t.shape != s.shape:
        raise ValueError(f"y_true has {t.size} values, y_score {s.size}")
    order = np.argsort(-s, kind="mergesort")
    s, t = s[order], t[order]
    # last index of each run of equal scores: ties move the curve diagonally, as they should
    last = np.r_[np.flatnonzero(np.diff(s)), s.size - 1] if s.size else np.zeros(0, dtype=np.int64)
    tps = np.cumsum(t)[last].astype(np.float64)
    fps = (last + 1 - tps).astype(np.float64)
    tps, fps = np.r_[0.0, tps], np.r_[0.0, fps]
    thresholds = np.r_[np.inf, s[last]]
    n_pos, n_neg = tps[-1], fps[-1]
    tpr = tps / n_pos if n_pos else np.linspace(0.0, 1.0, tps.size)
    fpr = fps / n_neg if n_neg else np.linspace(0.0, 1.0, fps.size)
    return fpr, tpr, thresholds


def roc_auc(y_true: Any, y_score: Any) -> float:
    """Area under the ROC curve; NaN when ``y_true`` holds a single class (undefined)."""
    t = np.asarray(y_true).ravel().astype(bool)
    if t.all() or not t.any():
        return float("nan")
    fpr, tpr, _ = roc_curve(t, y_score)
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2.0))


def classification_metrics(
    y_true: Any, y_prob: Any, positive: int = 1, threshold: float = 0.5
) -> dict[str, Any]:
    """All classification metrics of one set of predictions.

    Parameters
    ----------
    y_true
        Integer labels, shape (N,).
    y_prob
        Class probabilities, shape (N, C), or the positive-class probability, shape (N,).
    positive
        The class whose precision, recall, F1 and AUC are reported (1 = tumour).
    threshold
        With two classes, predict ``positive`` when its probability is ``>= threshold``;
        with more, the arg-max class.

    Returns
    -------
    dict
        ``accuracy, balanced_accuracy, precision, recall, f1, auc, confusion`` (list of lists),
        and ``n``.
    """
    t = np.asarray(y_true, dtype=np.int64).ravel()
    prob = np.asarray(y_prob, dtype=np.float64)
    if prob.ndim == 1:
        prob = np.stack([1.0 - prob, prob], axis=1)
    if prob.shape[0] != t.size:
        raise ValueError(f"y_true has {t.size} values, y_prob {prob.shape[0]} rows")
    n_classes = max(prob.shape[1], int(t.max(initial=0)) + 1)
    if prob.shape[1] == 2:
        pred = np.where(prob[:, positive] >= threshold, positive, 1 - positive)
    else:
        pred = prob.argmax(axis=1)
    cm = confusion_matrix(t, pred, n_classes)
    tp, fp, fn, _ = _binary_counts(cm, positive)
    prec, rec, f = _prf_from_counts(tp, fp, fn)
    return {
        "accuracy": accuracy(t, pred),
        "balanced_accuracy": balanced_accuracy(t, pred),
        "precision": prec,
        "recall": rec,
        "f1": f,
        "auc": roc_auc(t == positive, prob[:, positive]),
        "confusion": cm.tolist(),
        "n": int(t.size),
    }


# ------------------------------------------------------------------------------ segmentation


def _seg_confusion(
    y_true: Any, y_pred: Any, n_classes: int, ignore_label: int | None
) -> np.ndarray:
    t = np.asarray(y_true).ravel()
    p = np.asarray(y_pred).ravel()
    if t.shape != p.shape:
        raise ValueError(f"truth has shape {np.shape(y_true)}, prediction {np.shape(y_pred)}")
    if ignore_label is not None:
        keep = t != ignore_label
        t, p = t[keep], p[keep]
    return confusion_matrix(t, p, n_classes)


def iou_from_confusion(cm: np.ndarray) -> np.ndarray:
    """IoU per class from a confusion matrix; NaN for a class absent from truth and prediction."""
    cm = np.asarray(cm, dtype=np.float64)
    tp = np.diag(cm)
    den = cm.sum(axis=0) + cm.sum(axis=1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, tp / np.where(den > 0, den, 1.0), np.nan)


def iou_per_class(
    y_true: Any, y_pred: Any, n_classes: int = 2, ignore_label: int | None = None
) -> np.ndarray:
    """Intersection over union of each class (NaN where the class is in neither array)."""
    return iou_from_confusion(_seg_confusion(y_true, y_pred, n_classes, ignore_label))


def _nanmean(values: np.ndarray) -> float:
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else float("nan")


def mean_iou(
    y_true: Any, y_pred: Any, n_classes: int = 2, ignore_label: int | None = None
) -> float:
    """Mean IoU over the classes present in truth or prediction."""
    return _nanmean(iou_per_class(y_true, y_pred, n_classes, ignore_label))


def pixel_prf(
    y_true: Any, y_pred: Any, positive: int = 1, ignore_label: int | None = None
) -> tuple[float, float, float]:
    """Pixel precision, recall and F1 of class ``positive`` (F1 equals Dice)."""
    n = _n(y_true, y_pred, positive)
    if ignore_label is not None:
        n = max(n, ignore_label + 1)
    cm = _seg_confusion(y_true, y_pred, n, ignore_label)
    return _prf_from_counts(*_binary_counts(cm, positive)[:3])


def segmentation_from_confusion(cm: np.ndarray, positive: int = 1) -> dict[str, Any]:
    """Segmentation metrics of a (summed) pixel confusion matrix."""
    iou = iou_from_confusion(cm)
    prec, rec, f = _prf_from_counts(*_binary_counts(np.asarray(cm), positive)[:3])
    return {
        "iou": [None if not np.isfinite(v) else float(v) for v in iou],
        "miou": _nanmean(iou),
        "pixel_precision": prec,
        "pixel_recall": rec,
        "pixel_f1": f,
        "dice": f,
        "pixel_accuracy": _ratio(float(np.trace(cm)), float(np.sum(cm))),
        "confusion": np.asarray(cm).astype(np.int64).tolist(),
        "n_pixels": int(np.sum(cm)),
    }


def segmentation_metrics(
    y_true: Any,
    y_pred: Any,
    n_classes: int = 2,
    positive: int = 1,
    ignore_label: int | None = None,
) -> dict[str, Any]:
    """IoU per class, mIoU, pixel precision/recall/F1, Dice and accuracy of a label image.

    ``y_true`` pixels equal to ``ignore_label`` are left out of every number.
    """
    n = n_classes if ignore_label is None else max(n_classes, ignore_label + 1)
    cm = _seg_confusion(y_true, y_pred, n, ignore_label)
    if n != n_classes:
        cm = cm[:n_classes, :n_classes]
    return segmentation_from_confusion(cm, positive)


# ------------------------------------------------------------------------------- bootstrap


def bootstrap_ci(
    metric_fn: Callable[..., float],
    *arrays: Any,
    n: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of ``metric_fn(*arrays)``.

    The arrays are resampled together, with replacement, along their first axis (samples,
    images or image blocks). Resamples where the metric is undefined (NaN, e.g. AUC of a
    resample with one class) are left out; if all are, the interval is ``(nan, nan)``.

    Parameters
    ----------
    metric_fn
        Called as ``metric_fn(*resampled_arrays)`` and returning a float.
    arrays
        Arrays (or lists) with the same length along axis 0.
    n
        Number of resamples.
    seed
        Seed of the resampling, so that an interval is reproducible.
    level
        Coverage of the interval (0.95 for 95%).
    """
    out = bootstrap_ci_dict(lambda *a: {"v": metric_fn(*a)}, *arrays, n=n, seed=seed, level=level)
    low, high = out.get("v", [None, None])
    return (float("nan") if low is None else low), (float("nan") if high is None else high)


def bootstrap_ci_dict(
    metric_fn: Callable[..., dict[str, float]],
    *arrays: Any,
    n: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, list[float | None]]:
    """Bootstrap intervals of several metrics computed from the same resamples.

    Like :func:`bootstrap_ci`, but ``metric_fn`` returns a dict of floats; the result maps each
    key to ``[low, high]``, with ``None`` where no resample gave a defined value (JSON-safe).
    Empty arrays give an empty dict.
    """
    arrs = [a if isinstance(a, list) else np.asarray(a) for a in arrays]
    if not arrs:
        raise ValueError("bootstrap needs at least one array")
    size = len(arrs[0])
    if any(len(a) != size for a in arrs):
        raise ValueError("all arrays must have the same length along axis 0")
    rng = np.random.default_rng(seed)
    samples: dict[str, list[float]] = {}
    for _ in range(n if size else 0):
        idx = rng.integers(0, size, size)
        for key, value in metric_fn(*[_take(a, idx) for a in arrs]).items():
            samples.setdefault(key, []).append(float(value))
    alpha = (1.0 - level) / 2.0
    result: dict[str, list[float | None]] = {}
    for key, values in samples.items():
        v = np.asarray(values)
        v = v[np.isfinite(v)]
        if v.size:
            low, high = np.quantile(v, [alpha, 1.0 - alpha])
            result[key] = [float(low), float(high)]
        else:
            result[key] = [None, None]
    return result


def _take(a: Any, idx: np.ndarray) -> Any:
    if isinstance(a, list):
        return [a[i] for i in idx]
    return a[idx]
