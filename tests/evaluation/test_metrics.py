"""Metrics against hand-computed cases, scikit-learn where it has the same metric, and edge cases."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from sklearn import metrics as skm

from napari_wsi_ssl import metrics as m


@pytest.fixture(autouse=True)
def _no_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


# ------------------------------------------------------------------------- classification


def test_binary_classification_by_hand() -> None:
    # truth 1 1 1 0 0 0 0 1, prediction 1 0 1 0 1 0 0 1 -> tp 3, fn 1, fp 1, tn 3
    y = np.array([1, 1, 1, 0, 0, 0, 0, 1])
    p = np.array([1, 0, 1, 0, 1, 0, 0, 1])
    assert m.confusion_matrix(y, p).tolist() == [[3, 1], [1, 3]]
    assert m.accuracy(y, p) == 6 / 8
    assert m.precision(y, p) == 3 / 4
    assert m.recall(y, p) == 3 / 4
    assert m.f1(y, p) == 3 / 4
    assert m.balanced_accuracy(y, p) == 0.75


def test_unbalanced_precision_recall_by_hand() -> None:
    y = np.array([1, 1, 1, 1, 0, 0])
    p = np.array([1, 0, 0, 0, 1, 0])  # tp 1, fn 3, fp 1, tn 1
    assert m.precision(y, p) == 0.5
    assert m.recall(y, p) == 0.25
    assert m.f1(y, p) == pytest.approx(2 * 0.5 * 0.25 / 0.75)
    assert m.balanced_accuracy(y, p) == pytest.approx((0.25 + 0.5) / 2)


def test_roc_auc_by_hand_with_ties() -> None:
    # positives scores 0.9, 0.5; negatives 0.5, 0.1: pairs (0.9>0.5, 0.9>0.1, 0.5=0.5 -> 1/2, 0.5>0.1)
    y = np.array([1, 1, 0, 0])
    s = np.array([0.9, 0.5, 0.5, 0.1])
    assert m.roc_auc(y, s) == pytest.approx(3.5 / 4)
    fpr, tpr, thr = m.roc_curve(y, s)
    assert fpr.tolist() == [0.0, 0.0, 0.5, 1.0]
    assert tpr.tolist() == [0.0, 0.5, 1.0, 1.0]
    assert thr[0] == np.inf and thr[1:].tolist() == [0.9, 0.5, 0.1]


def test_classification_matches_sklearn_on_random_data() -> None:
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 500)
    score = np.clip(y * 0.3 + rng.normal(0.35, 0.25, 500), 0, 1).round(2)  # rounded: ties
    pred = (score >= 0.5).astype(int)
    out = m.classification_metrics(y, score)
    assert out["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    assert out["precision"] == pytest.approx(skm.precision_score(y, pred))
    assert out["recall"] == pytest.approx(skm.recall_score(y, pred))
    assert out["f1"] == pytest.approx(skm.f1_score(y, pred))
    assert out["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(y, pred))
    assert out["auc"] == pytest.approx(skm.roc_auc_score(y, score))
    assert out["confusion"] == skm.confusion_matrix(y, pred).tolist()
    assert out["n"] == 500


def test_classification_from_two_column_probabilities_and_threshold() -> None:
    prob = np.array([[0.8, 0.2], [0.3, 0.7], [0.6, 0.4], [0.1, 0.9]])
    y = np.array([0, 1, 1, 1])
    out = m.classification_metrics(y, prob)
    assert out["confusion"] == [[1, 0], [1, 2]]
    out = m.classification_metrics(y, prob, threshold=0.3)
    assert out["confusion"] == [[1, 0], [0, 3]]
    assert out["auc"] == 1.0


def test_single_class_present() -> None:
    y = np.ones(5, dtype=int)
    assert math.isnan(m.roc_auc(y, np.linspace(0, 1, 5)))
    fpr, tpr, _ = m.roc_curve(y, np.linspace(0, 1, 5))
    assert fpr[0] == 0 and fpr[-1] == 1 and tpr[-1] == 1
    # all negative, all predicted negative: nothing to find, nothing found
    zeros = np.zeros(4, dtype=int)
    assert m.precision(zeros, zeros) == 1.0
    assert m.recall(zeros, zeros) == 1.0
    assert m.f1(zeros, zeros) == 1.0
    assert m.balanced_accuracy(zeros, zeros) == 1.0
    out = m.classification_metrics(zeros, np.zeros(4))
    assert out["accuracy"] == 1.0 and math.isnan(out["auc"])


def test_empty_predictions_are_zero_not_nan() -> None:
    y = np.array([1, 1, 0])
    p = np.zeros(3, dtype=int)  # no positive predicted
    assert m.precision(y, p) == 0.0
    assert m.recall(y, p) == 0.0
    assert m.f1(y, p) == 0.0
    # positives predicted where there are none
    assert m.recall(np.zeros(3, int), np.ones(3, int)) == 0.0
    assert m.precision(np.zeros(3, int), np.ones(3, int)) == 0.0


def test_confusion_rejects_mismatch() -> None:
    with pytest.raises(ValueError, match="values"):
        m.confusion_matrix([0, 1], [0])
    with pytest.raises(ValueError, match="labels must lie"):
        m.confusion_matrix([0, 3], [0, 1], n_classes=2)


# ---------------------------------------------------------------------------- segmentation


def test_segmentation_by_hand_with_ignore_label() -> None:
    truth = np.array([[1, 1, 2, 2], [1, 1, 2, 2], [0, 0, 0, 0]])  # 0 unlabelled
    pred = np.array([[1, 1, 1, 2], [2, 1, 2, 2], [1, 1, 1, 1]])
    # labelled pixels: class 1: true at 4 px, predicted 1 at 3 of them; class 2: true 4, 3 correct
    iou = m.iou_per_class(truth, pred, n_classes=3, ignore_label=0)
    assert math.isnan(iou[0])  # class 0 never occurs among labelled pixels
    assert iou[1] == pytest.approx(3 / 5)  # tp 3, fp 1, fn 1
    assert iou[2] == pytest.approx(3 / 5)
    assert m.mean_iou(truth, pred, n_classes=3, ignore_label=0) == pytest.approx(0.6)
    p, r, f = m.pixel_prf(truth, pred, positive=1, ignore_label=0)
    assert (p, r, f) == (pytest.approx(0.75), pytest.approx(0.75), pytest.approx(0.75))


def test_binary_segmentation_metrics_by_hand() -> None:
    truth = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    pred = np.array([0, 0, 0, 1, 1, 1, 0, 0])
    out = m.segmentation_metrics(truth, pred)
    # class 0: tp 3, fp 2, fn 1 -> 3/6; class 1: tp 2, fp 1, fn 2 -> 2/5
    assert out["iou"] == [pytest.approx(0.5), pytest.approx(0.4)]
    assert out["miou"] == pytest.approx(0.45)
    assert out["pixel_precision"] == pytest.approx(2 / 3)
    assert out["pixel_recall"] == pytest.approx(0.5)
    assert out["pixel_f1"] == pytest.approx(4 / 7) == out["dice"]
    assert out["n_pixels"] == 8
    assert out["iou"][1] == pytest.approx(skm.jaccard_score(truth, pred))


def test_segmentation_single_class_and_empty_prediction() -> None:
    bg = np.zeros((4, 4), dtype=np.uint8)
    out = m.segmentation_metrics(bg, bg)
    assert out["iou"] == [1.0, None]
    assert out["miou"] == 1.0 and out["pixel_f1"] == 1.0
    truth = bg.copy()
    truth[:2] = 1
    out = m.segmentation_metrics(truth, bg)  # tumour missed entirely
    assert out["iou"] == [pytest.approx(0.5), 0.0]
    assert out["pixel_precision"] == 0.0 and out["pixel_recall"] == 0.0 and out["pixel_f1"] == 0.0
    # nothing labelled at all: nothing to evaluate
    assert math.isnan(m.mean_iou(bg, bg, ignore_label=0))


def test_dice() -> None:
    a = np.array([[1, 1, 0], [0, 0, 0]])
    b = np.array([[0, 3, 3], [0, 0, 0]])
    assert m.dice(a, b) == 0.5
    assert m.dice(np.zeros((2, 2)), np.zeros((2, 2))) == 1.0
    assert m.dice(a, np.zeros_like(a)) == 0.0


# ---------------------------------------------------------------------------------- nuclei


def _two_nuclei() -> tuple[np.ndarray, np.ndarray]:
    true = np.zeros((6, 8), dtype=np.int32)
    true[0:2, 0:2] = 1  # area 4
    true[3:6, 4:8] = 2  # area 12
    pred = np.zeros_like(true)
    pred[0:2, 0:3] = 5  # area 6, overlaps 1 by 4: IoU 4/6
    pred[3:6, 5:8] = 7  # area 9, overlaps 2 by 9: IoU 9/12
    pred[0:1, 6:8] = 9  # area 2, false positive
    return true, pred


def test_aji_by_hand() -> None:
    true, pred = _two_nuclei()
    # C = 4 + 9; U = 6 + 12 (pair unions) + 2 (unused prediction)
    assert m.aji(true, pred) == pytest.approx(13 / 20)


def test_aji_counts_missed_nuclei_in_union() -> None:
    true, pred = _two_nuclei()
    pred[pred == 7] = 0  # nucleus 2 missed
    # C = 4; U = 6 + 12 (missed true area) + 2
    assert m.aji(true, pred) == pytest.approx(4 / 20)


def test_pq_by_hand() -> None:
    true, pred = _two_nuclei()
    out = m.panoptic_quality(true, pred)
    assert (out["tp"], out["fp"], out["fn"]) == (2, 1, 0)
    assert out["dq"] == pytest.approx(2 / 2.5)
    assert out["sq"] == pytest.approx((4 / 6 + 9 / 12) / 2)
    assert out["pq"] == pytest.approx(out["dq"] * out["sq"])


def test_pq_threshold_excludes_weak_overlap() -> None:
    true = np.zeros((4, 4), dtype=np.int32)
    true[:, :2] = 1
    pred = np.zeros_like(true)
    pred[:, 1:4] = 1  # IoU 4/12
    out = m.panoptic_quality(true, pred)
    assert (out["tp"], out["fp"], out["fn"], out["pq"], out["sq"]) == (0, 1, 1, 0.0, 0.0)
    with pytest.raises(ValueError, match="ambiguous"):
        m.panoptic_quality(true, pred, iou_threshold=0.3)


def test_nuclei_perfect_and_no_instances() -> None:
    true, _ = _two_nuclei()
    relabelled = np.where(true > 0, true + 10, 0)
    out = m.nuclei_metrics(true, relabelled)
    assert out["dice"] == out["aji"] == out["pq"] == 1.0
    empty = np.zeros_like(true)
    out = m.nuclei_metrics(empty, empty)
    assert out["dice"] == out["aji"] == out["pq"] == out["dq"] == out["sq"] == 1.0
    out = m.nuclei_metrics(true, empty)
    assert out["dice"] == out["aji"] == out["pq"] == 0.0 and out["n_true"] == 2
    out = m.nuclei_metrics(empty, true)
    assert out["dice"] == out["aji"] == out["pq"] == 0.0 and out["n_pred"] == 2


# ------------------------------------------------------------------------------- bootstrap


def test_bootstrap_ci_covers_the_estimate_and_is_reproducible() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 300)
    p = np.where(rng.random(300) < 0.8, y, 1 - y)
    lo, hi = m.bootstrap_ci(m.accuracy, y, p, n=300, seed=1)
    acc = m.accuracy(y, p)
    assert lo < acc < hi
    assert 0.03 < hi - lo < 0.15  # ~ 4 standard errors of a proportion at n=300
    assert (lo, hi) == m.bootstrap_ci(m.accuracy, y, p, n=300, seed=1)
    assert (lo, hi) != m.bootstrap_ci(m.accuracy, y, p, n=300, seed=2)


def test_bootstrap_ci_skips_undefined_resamples() -> None:
    y = np.array([1, 0, 0, 0, 0, 0, 0, 0])  # many resamples have no positive: AUC undefined
    s = np.array([0.9, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7])
    lo, hi = m.bootstrap_ci(m.roc_auc, y, s, n=200, seed=0)
    assert lo == hi == 1.0
    assert all(math.isnan(v) for v in m.bootstrap_ci(m.roc_auc, np.ones(3), np.ones(3), n=20))
    assert all(math.isnan(v) for v in m.bootstrap_ci(m.accuracy, [], [], n=20))
