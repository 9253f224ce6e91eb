"""Nuclei instance metrics: foreground Dice, aggregated Jaccard index and panoptic quality.

Conventions: with no instance in truth and prediction, every score is 1.0; with instances on one
side only, 0.0. SQ with no matched pair is 0.0. See :mod:`napari_wsi_ssl.metrics`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["aji", "dice", "nuclei_metrics", "panoptic_quality"]


def _ratio(num: float, den: float, *, empty: float = 1.0) -> float:
    return float(num) / float(den) if den else empty


def dice(y_true: Any, y_pred: Any) -> float:
    """Dice of two binary masks (non-zero = foreground); 1.0 when both are empty."""
    t = np.asarray(y_true).astype(bool)
    p = np.asarray(y_pred).astype(bool)
    if t.shape != p.shape:
        raise ValueError(f"truth has shape {t.shape}, prediction {p.shape}")
    return _ratio(
        2 * int(np.count_nonzero(t & p)), int(np.count_nonzero(t)) + int(np.count_nonzero(p))
    )


def _pairs(true: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, ...]:
    """Overlapping (true id, pred id, intersection) triples of non-zero labels, and the areas."""
    t = np.asarray(true).ravel().astype(np.int64)
    p = np.asarray(pred).ravel().astype(np.int64)
    if t.shape != p.shape:
        raise ValueError(f"truth has shape {np.shape(true)}, prediction {np.shape(pred)}")
    t_ids, t_inv = np.unique(t, return_inverse=True)
    p_ids, p_inv = np.unique(p, return_inverse=True)
    t_area = np.bincount(t_inv, minlength=t_ids.size)
    p_area = np.bincount(p_inv, minlength=p_ids.size)
    key = t_inv * p_ids.size + p_inv
    uniq, inter = np.unique(key, return_counts=True)
    ti, pi = uniq // p_ids.size, uniq % p_ids.size
    t_fg, p_fg = t_ids != 0, p_ids != 0
    keep = t_fg[ti] & p_fg[pi]
    return ti[keep], pi[keep], inter[keep], t_area, p_area, t_fg, p_fg


def aji(true_labels: Any, pred_labels: Any) -> float:
    """Aggregated Jaccard index (Kumar et al. 2017) of two instance label images (0 = background).

    Each true nucleus is paired with the predicted one of highest IoU (a prediction may be
    chosen more than once, as in the original definition); unpaired predictions add their area
    to the union.
    """
    ti, pi, inter, t_area, p_area, t_fg, p_fg = _pairs(true_labels, pred_labels)
    n_true, n_pred = int(t_fg.sum()), int(p_fg.sum())
    if n_true == 0 and n_pred == 0:
        return 1.0
    union_pairs = t_area[ti] + p_area[pi] - inter
    iou = inter / union_pairs
    # best pair per true nucleus: sort by true id, then IoU descending
    order = np.lexsort((-iou, ti))
    ti, pi, inter, union_pairs = ti[order], pi[order], inter[order], union_pairs[order]
    first = np.r_[True, ti[1:] != ti[:-1]] if ti.size else np.zeros(0, dtype=bool)
    c = int(inter[first].sum())
    u = int(union_pairs[first].sum())
    unmatched_true = t_fg.copy()
    unmatched_true[ti[first]] = False
    u += int(t_area[unmatched_true].sum())
    unused_pred = p_fg.copy()
    unused_pred[pi[first]] = False
    u += int(p_area[unused_pred].sum())
    return _ratio(c, u, empty=1.0)


def panoptic_quality(
    true_labels: Any, pred_labels: Any, iou_threshold: float = 0.5
) -> dict[str, float]:
    """Panoptic quality of instance label images: ``pq = dq * sq``.

    Pairs with IoU above ``iou_threshold`` (>= 0.5, so the matching is unique) are true
    positives. ``dq = tp / (tp + fp/2 + fn/2)`` and ``sq`` is the mean IoU of those pairs.

    Returns
    -------
    dict
        ``pq, dq, sq, tp, fp, fn``.
    """
    if iou_threshold < 0.5:
        raise ValueError("iou_threshold below 0.5 makes the matching ambiguous")
    ti, pi, inter, t_area, p_area, t_fg, p_fg = _pairs(true_labels, pred_labels)
    n_true, n_pred = int(t_fg.sum()), int(p_fg.sum())
    iou = inter / (t_area[ti] + p_area[pi] - inter) if ti.size else np.zeros(0)
    matched = iou > iou_threshold
    tp = int(matched.sum())
    fp, fn = n_pred - tp, n_true - tp
    if n_true == 0 and n_pred == 0:
        return {"pq": 1.0, "dq": 1.0, "sq": 1.0, "tp": 0, "fp": 0, "fn": 0}
    dq = tp / (tp + 0.5 * fp + 0.5 * fn)
    sq = float(iou[matched].mean()) if tp else 0.0
    return {"pq": dq * sq, "dq": dq, "sq": sq, "tp": tp, "fp": fp, "fn": fn}


def nuclei_metrics(true_labels: Any, pred_labels: Any) -> dict[str, float]:
    """Dice (foreground), AJI and PQ (with DQ, SQ) of one image's instance labels."""
    pq = panoptic_quality(true_labels, pred_labels)
    return {
        "dice": dice(true_labels, pred_labels),
        "aji": aji(true_labels, pred_labels),
        "pq": pq["pq"],
        "dq": pq["dq"],
        "sq": pq["sq"],
        "n_true": int(pq["tp"] + pq["fn"]),
        "n_pred": int(pq["tp"] + pq["fp"]),
    }
