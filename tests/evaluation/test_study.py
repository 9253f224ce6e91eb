"""The label-efficiency study: splits, and a tiny end-to-end run on real PCam patches."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from napari_wsi_ssl.errors import AnnotationError, WsiSslError
from napari_wsi_ssl.evaluation.study import (
    StudyConfig,
    labelled_subset,
    markdown_table,
    split_study,
)


def test_split_is_stratified_disjoint_and_reproducible() -> None:
    labels = np.array([0] * 60 + [1] * 40)
    config = StudyConfig(folds=4, test_fraction=0.2, seed=3)
    test, folds = split_study(labels, config)
    assert test.size == 20 and (labels[test] == 1).sum() == 8
    everything = np.concatenate([test, *folds])
    assert np.array_equal(np.sort(everything), np.arange(100))  # a partition
    assert all(abs((labels[f] == 1).mean() - 0.4) < 0.06 for f in folds)
    again_test, again_folds = split_study(labels, config)
    assert np.array_equal(test, again_test) and all(
        np.array_equal(a, b) for a, b in zip(folds, again_folds, strict=True)
    )


def test_labelled_subsets_are_nested_and_keep_both_classes() -> None:
    labels = np.array([0] * 90 + [1] * 10)
    train = np.arange(100)
    config = StudyConfig(min_per_class=2)
    small = labelled_subset(labels, train, 0.01, config, fold=0)
    mid = labelled_subset(labels, train, 0.3, config, fold=0)
    assert set(labels[small]) == {0, 1} and small.size == 4
    assert mid.size == 30 and set(small) <= set(mid)
    assert np.array_equal(labelled_subset(labels, train, 1.0, config, 0), train)


def test_config_and_data_errors() -> None:
    with pytest.raises(WsiSslError, match="fractions"):
        StudyConfig(fractions=(0.0, 1.0))
    with pytest.raises(WsiSslError, match="modes"):
        StudyConfig(modes=("fancy",))
    with pytest.raises(AnnotationError, match="two classes"):
        split_study(np.zeros(30, dtype=np.int64), StudyConfig())


def test_markdown_table_shape() -> None:
    rows = [
        {"fraction": 0.1, "mode": "scratch", "objective": "none", "folds": 2, "n_labelled": 5}
        | {"auc": 0.5, "auc_sd": 0.1, "auc_ci": [0.4, 0.6]}
        | {"balanced_accuracy": None, "balanced_accuracy_sd": None}
        | {"threshold": 0.3, "threshold_sd": 0.0}
    ]
    lines = markdown_table(rows).strip().splitlines()
    assert len(lines) == 3
    assert lines[2].startswith("| 10% | 5 | scratch | none | 2 | 0.500 ± 0.100 [0.400, 0.600]")
    assert lines[2].endswith("| n/a | 0.300 ± 0.000 |")


def test_tiny_study_end_to_end(tmp_path: Path, shared_data: Path) -> None:
    """40 PCam patches, 2 fractions, 2 folds, 2 modes, width 8, a few steps: the outputs' shape."""
    from napari_wsi_ssl.cli import main

    pcam = shared_data / "pcam" / "valid"
    out = tmp_path / "study"
    argv = [
        "study", str(pcam), "-o", str(out), "--limit", "40", "--fractions", "0.25,1", "--folds", "2",
        "--modes", "full,scratch", "--width", "8", "--patch-size", "32", "--batch-size", "8", "--pretrain-steps", "2",
        "--finetune-steps", "2", "--device", "cpu", "--json",
    ]  # fmt: skip
    assert main(argv) == 0
    data = json.loads((out / "study.json").read_text())
    assert len(data["runs"]) == 2 * 2 * 2  # fractions x folds x modes
    assert data["n_patches"] == 40 and data["n_test"] == 8
    assert {r["mode"] for r in data["runs"]} == {"full", "scratch"}
    for run in data["runs"]:
        assert set(run) >= {"balanced_accuracy", "f1", "auc", "threshold", "n_labelled", "fold"}
        assert 0.0 <= run["accuracy"] <= 1.0 and run["objective"] == (
            "l1" if run["mode"] == "full" else "none"
        )
    assert len(data["summary"]) == 2 * 2 and all(row["folds"] == 2 for row in data["summary"])
    table = (out / "study.md").read_text().strip().splitlines()
    assert len([line for line in table if line.startswith("| ") and "%" in line]) == 4
    for metric in ("auc", "balanced_accuracy"):
        assert (out / f"study_{metric}.png").read_bytes()[:4] == b"\x89PNG"
    assert (out / "pretrained.pt").is_file()
    assert not (out / "work").exists()
    # a second run finds every result done and retrains nothing
    assert main(argv) == 0
    assert len(json.loads((out / "study.json").read_text())["runs"]) == 8


def test_cancelled_study_keeps_its_outputs(tmp_path: Path, shared_data: Path) -> None:
    from napari_wsi_ssl.errors import CancelledError
    from napari_wsi_ssl.evaluation.study import iter_study
    from napari_wsi_ssl.events import CancelToken, run_to_end

    token = CancelToken()
    token.cancel()
    config = StudyConfig(
        fractions=(1.0,), folds=2, modes=("scratch",), limit=20, width=8, device="cpu"
    )
    with pytest.raises(CancelledError):
        run_to_end(iter_study(shared_data / "pcam" / "valid", tmp_path, config, cancel=token))
    data = json.loads((tmp_path / "study.json").read_text())
    assert data["runs"] == [] and data["n_patches"] == 20
