"""The study across objectives with a separate test folder: plan, intervals, a tiny real run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from napari_wsi_ssl import metrics
from napari_wsi_ssl.errors import TrainingError
from napari_wsi_ssl.evaluation.study import StudyConfig, study_plan
from napari_wsi_ssl.evaluation.study_arms import choose_threshold, scores_at
from napari_wsi_ssl.evaluation.study_report import (
    resample_weights,
    weighted_auc,
    weighted_balanced_accuracy,
)


def test_plan_runs_scratch_once_and_cheap_arms_first() -> None:
    config = StudyConfig(
        fractions=(0.1, 1.0),
        folds=3,
        modes=("scratch", "full", "fast", "probe"),
        objectives=("none", "l1", "mim"),
    )
    plan = study_plan(config)
    by_mode = {m: [p for p in plan if p[3] == m] for m in config.modes}
    assert {p[0] for p in by_mode["scratch"]} == {"none"} and len(by_mode["scratch"]) == 6
    assert {p[0] for p in by_mode["full"]} == {"l1", "mim"} and len(by_mode["full"]) == 12
    assert {p[0] for p in by_mode["fast"]} == {"none", "l1", "mim"}
    assert len(plan) == len(set(plan)) == 6 + 12 + 18 + 18
    assert all(p[3] in ("fast", "probe") for p in plan[:36])
    # without "none" among the objectives, the untrained encoder's cheap arms are not run
    assert {p[0] for p in study_plan(StudyConfig(objectives=("l1",), modes=("fast",)))} == {"l1"}
    with pytest.raises(TrainingError, match="objective"):
        StudyConfig(objectives=("none", "byol"))


def test_weighted_bootstrap_equals_resampling() -> None:
    rng = np.random.default_rng(4)
    y = rng.integers(0, 2, 400)
    prob = np.round(rng.random(400) * 0.6 + 0.3 * y, 2)  # rounded: many ties
    w = resample_weights(y.size, 20, seed=2)
    auc = weighted_auc(y, prob, w)
    bacc = weighted_balanced_accuracy(y, prob, 0.5, w)
    for k in (0, 7, 19):
        idx = np.repeat(np.arange(y.size), w[k].astype(int))
        assert auc[k] == pytest.approx(metrics.roc_auc(y[idx], prob[idx]), abs=1e-6)
        expected = metrics.balanced_accuracy(y[idx], (prob[idx] >= 0.5).astype(int))
        assert bacc[k] == pytest.approx(expected, abs=1e-6)
    assert weighted_auc(y, prob, np.ones((1, y.size)))[0] == pytest.approx(metrics.roc_auc(y, prob))


def test_threshold_is_chosen_on_validation_patches() -> None:
    y = np.array([0, 0, 0, 1, 1, 1])
    prob = np.array([0.01, 0.02, 0.03, 0.05, 0.06, 0.9])  # all "normal" at 0.5
    t = choose_threshold(y, prob)
    assert 0.03 < t <= 0.05
    s = scores_at(y, prob, t)
    assert s["balanced_accuracy"] == 1.0 and s["auc"] == 1.0 and s["threshold"] == t
    assert scores_at(y, prob, 0.5)["balanced_accuracy"] == pytest.approx(4 / 6)
    assert choose_threshold(np.array([1, 1]), np.array([0.2, 0.3])) == 0.5


def _folder(root: Path, src: Path, per_class: int) -> Path:
    for c in ("0", "1"):
        (root / c).mkdir(parents=True)
        for p in sorted((src / c).iterdir())[:per_class]:
            (root / c / p.name).symlink_to(p.resolve())
    return root


def test_tiny_study_scores_the_test_folder(tmp_path: Path, shared_data: Path) -> None:
    """Pool from pcam/train, 10 patches of pcam/valid as the test folder, 2 objectives plus the
    untrained encoder, every mode but frozen-encoder, 2 seeds, real steps: the results' shapes,
    and that the test folder is what is scored."""
    from napari_wsi_ssl.cli import main

    test = _folder(tmp_path / "test", shared_data / "pcam" / "valid", 5)
    out = tmp_path / "study"
    argv = [
        "study", str(shared_data / "pcam" / "train"), "--test", str(test), "-o", str(out),
        "--limit", "24", "--objectives", "none,l1,mim", "--modes", "scratch,fast,probe,full",
        "--fractions", "1", "--folds", "2", "--width", "8", "--patch-size", "32",
        "--batch-size", "4", "--pretrain-steps", "1", "--finetune-steps", "2", "--device", "cpu",
        "--json",
    ]  # fmt: skip
    assert main(argv) == 0
    data = json.loads((out / "study.json").read_text())
    assert data["n_pool"] == 24 and data["n_test"] == 10 and data["test"] == str(test)
    assert sorted(data["test_labels"]) == [0] * 5 + [1] * 5
    # per seed: scratch, fast x3, probe x3, full x2 (l1, mim)
    assert len(data["runs"]) == 2 * 9
    for run in data["runs"]:
        prob = np.load(out / run["scores"])
        assert prob.shape == (10,) and np.all((prob >= 0) & (prob <= 1))
        assert run["auc"] == pytest.approx(metrics.roc_auc(np.array(data["test_labels"]), prob))
        assert 0 <= run["threshold"] <= 1
    assert {r["n_labelled"] for r in data["runs"]} == {24}
    assert (out / "pretrained.pt").is_file() and (out / "pretrained-mim.pt").is_file()
    assert sorted(p.name for p in (out / "features").iterdir()) == [
        "l1.npz",
        "mim.npz",
        "none.npz",
    ]
    summary = data["summary"]
    assert len(summary) == 9 and all(row["folds"] == 2 for row in summary)
    for row in summary:
        low, high = row["auc_ci"]
        assert low is None or low <= high
    # at the fraction nearest 10 % (the only one): mim against l1 and scratch, in each mode
    assert {(c["objective"], c["mode"]) for c in data["comparison"]} == {
        ("mim", m) for m in ("fast", "probe", "full")
    }
    assert all(c["fraction"] == 1.0 and "gap_l1_ci" in c for c in data["comparison"])
    assert (out / "study_auc.png").read_bytes()[:4] == b"\x89PNG"
    assert "| mim | full |" in (out / "study.md").read_text()
    # a second run finds every result done: nothing is retrained or rescored
    stamp = (out / "pretrained-mim.pt").stat().st_mtime_ns
    assert main(argv) == 0
    again = json.loads((out / "study.json").read_text())
    assert again["runs"] == data["runs"]
    assert (out / "pretrained-mim.pt").stat().st_mtime_ns == stamp
