"""Reports: patch folders through a real (tiny) model, masks, nuclei folders, plots and JSON."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from napari_wsi_ssl import metrics
from napari_wsi_ssl.errors import AnnotationError, CancelledError, CheckpointError
from napari_wsi_ssl.evaluation import data, plots, report
from napari_wsi_ssl.events import CancelToken, Progress


@pytest.fixture(scope="module")
def tiny_classifier(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch

    from napari_wsi_ssl.models import build_model, save_checkpoint

    torch.manual_seed(0)
    model = build_model("resnet34-ae", task="classify", num_classes=2, width=8)
    path = tmp_path_factory.mktemp("ckpt") / "cls.pt"
    return save_checkpoint(path, model, mpp=0.5, patch_size=32)


def _write_patch_folder(root: Path, n_per_class: int = 6, size: int = 32) -> Path:
    rng = np.random.default_rng(0)
    for label in (0, 1):
        (root / str(label)).mkdir(parents=True)
        for i in range(n_per_class):
            arr = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
            Image.fromarray(arr).save(root / str(label) / f"p{i}.png")
    return root


def test_evaluate_patches_with_a_real_model(tmp_path: Path, tiny_classifier: Path) -> None:
    folder = _write_patch_folder(tmp_path / "patches")
    out = tmp_path / "report"
    events = []
    gen = report.iter_evaluate_patches(
        tiny_classifier, folder, out_dir=out, device="cpu", batch_size=5, n_boot=50
    )
    while True:
        try:
            events.append(next(gen))
        except StopIteration as stop:
            result = stop.value
            break
    assert [e.step for e in events if isinstance(e, Progress)] == [5, 10, 12]
    for key in ("accuracy", "precision", "recall", "f1", "auc", "confusion", "ci"):
        assert key in result
    assert np.asarray(result["confusion"]).sum() == 12
    assert set(result["ci"]) >= {"accuracy", "precision", "recall", "f1", "auc"}
    on_disk = json.loads((out / "report.json").read_text())
    assert on_disk["confusion"] == result["confusion"]
    assert on_disk["n"] == 12
    for name in ("confusion", "roc"):
        png = Path(result["plots"][name])
        assert png.is_file() and png.read_bytes()[:4] == b"\x89PNG"
    assert not list(out.glob(".*.tmp"))  # atomic writes left no temporary file


def test_evaluate_patches_cancel_writes_nothing(tmp_path: Path, tiny_classifier: Path) -> None:
    folder = _write_patch_folder(tmp_path / "patches", 4)
    token = CancelToken()
    token.cancel()
    with pytest.raises(CancelledError):
        report.evaluate_patches(
            tiny_classifier, folder, out_dir=tmp_path / "out", device="cpu", cancel=token
        )
    assert not (tmp_path / "out" / "report.json").exists()


def test_evaluate_patches_rejects_a_reconstruction_model(tmp_path: Path) -> None:
    from napari_wsi_ssl.models import build_model, save_checkpoint

    ckpt = save_checkpoint(
        tmp_path / "ae.pt", build_model("resnet34-ae", width=8), mpp=None, patch_size=32
    )
    folder = _write_patch_folder(tmp_path / "patches", 2)
    with pytest.raises(CheckpointError, match="cannot classify"):
        report.evaluate_patches(ckpt, folder, device="cpu")


def test_classification_report_perfect_scores(tmp_path: Path) -> None:
    y = np.array([0, 0, 1, 1, 1])
    prob = np.array([0.1, 0.2, 0.8, 0.9, 0.7])
    out = report.classification_report(
        y, np.stack([1 - prob, prob], 1), ["normal", "tumour"], tmp_path, n_boot=100
    )
    assert out["accuracy"] == out["auc"] == out["f1"] == 1.0
    assert out["ci"]["accuracy"] == [1.0, 1.0]
    assert out["roc"]["fpr"][0] == 0.0 and out["roc"]["tpr"][-1] == 1.0
    assert json.loads((tmp_path / "report.json").read_text())["class_names"] == ["normal", "tumour"]


def test_read_patch_folder_layouts(tmp_path: Path) -> None:
    root = _write_patch_folder(tmp_path / "a", 3)
    ps = data.read_patch_folder(root)
    assert len(ps.paths) == 6 and ps.labels.tolist() == [0, 0, 0, 1, 1, 1]
    # named class folders map onto the model's class names, whatever their order on disk
    named = tmp_path / "b"
    named.mkdir()
    (root / "0").rename(named / "normal")
    (root / "1").rename(named / "tumor")
    ps = data.read_patch_folder(named, class_names=["normal", "tumour"])
    assert ps.labels.tolist() == [0, 0, 0, 1, 1, 1]
    (named / "labels.csv").write_text(
        "path,split,label\nnormal/p0.png,test,0\ntumor/p1.png,train,1\n"
    )
    ps = data.read_patch_folder(named, split="test")
    assert [p.name for p in ps.paths] == ["p0.png"] and ps.labels.tolist() == [0]
    with pytest.raises(AnnotationError, match="no labelled patches"):
        data.read_patch_folder(tmp_path / "a")  # now empty
    with pytest.raises(AnnotationError, match="no such patch folder"):
        data.read_patch_folder(tmp_path / "missing")


def test_stratified_subset_keeps_proportions() -> None:
    labels = np.array([0] * 80 + [1] * 20)
    idx = data.stratified_subset(labels, 10, seed=1)
    assert idx.size == 10 and (labels[idx] == 1).sum() == 2
    assert np.array_equal(idx, np.sort(idx))


def test_segmentation_report_by_hand(tmp_path: Path) -> None:
    truth = np.zeros((64, 64), dtype=np.uint8)
    truth[:, :32] = 1
    prob = np.zeros((64, 64), dtype=np.float32)
    prob[:, :16] = 0.9  # half the tumour found, no false positive
    out = report.segmentation_report(truth, prob, tmp_path, n_boot=100)
    assert out["pixel_precision"] == 1.0
    assert out["pixel_recall"] == pytest.approx(0.5)
    assert out["iou"] == [pytest.approx(32 / 48), pytest.approx(0.5)]
    assert out["miou"] == pytest.approx((32 / 48 + 0.5) / 2)
    lo, hi = out["ci"]["pixel_recall"]
    assert lo <= 0.5 <= hi
    assert json.loads((tmp_path / "report.json").read_text())["kind"] == "mask"
    assert {Path(p).name for p in out["plots"].values()} == {"confusion.png", "roc.png", "map.png"}


def test_segmentation_report_ignore_label() -> None:
    truth = np.array([[1, 1, 2, 2]] * 4)  # 2 = unlabelled here
    prob = np.array([[0.9, 0.1, 0.9, 0.9]] * 4)
    out = report.segmentation_report(truth, prob, ignore_label=2, n_boot=10)
    assert out["n_pixels"] == 8 and out["pixel_recall"] == 0.5 and out["pixel_precision"] == 1.0


def test_block_confusions_sum_to_the_whole() -> None:
    rng = np.random.default_rng(0)
    t, p = rng.integers(0, 2, (50, 70)), rng.integers(0, 2, (50, 70))
    cms = report.block_confusions(t, p, 2, blocks=8)
    assert cms.shape == (64, 2, 2)
    assert np.array_equal(cms.sum(0), metrics.confusion_matrix(t, p, 2))


def _write_nuclei_folder(root: Path, n: int = 3) -> Path:
    (root / "images").mkdir(parents=True)
    (root / "masks_instance_png").mkdir()
    for i in range(n):
        labels = np.zeros((48, 64), np.uint16)
        labels[5:15, 5:15] = 1
        labels[20:32, 30:44] = 2
        rgb = np.full((48, 64, 4), 235, np.uint8)
        rgb[labels > 0] = (70, 40, 140, 255)
        Image.fromarray(rgb).save(root / "images" / f"im{i}.png")
        Image.fromarray(labels).save(root / "masks_instance_png" / f"im{i}_instance.png")
    return root


def test_evaluate_nuclei_with_a_predictor(tmp_path: Path) -> None:
    folder = _write_nuclei_folder(tmp_path / "nuclei")
    pairs = data.find_nuclei_pairs(folder)
    assert [p[0].name for p in pairs] == ["im0.png", "im1.png", "im2.png"]
    truth = data.read_labels(pairs[0][1])
    out = report.evaluate_nuclei(
        folder, predictor=lambda im: truth, out_dir=tmp_path / "r", n_boot=20
    )
    assert (
        out["dice"] == out["aji"] == out["pq"] == 1.0
        and out["n_images"] == 3
        and out["n_true"] == 6
    )
    assert out["ci"]["aji"] == [1.0, 1.0]
    assert Path(out["plots"]["metrics"]).is_file()
    empty = report.evaluate_nuclei(
        folder, predictor=lambda im: np.zeros(im.shape[:2], np.int32), n_boot=5
    )
    assert empty["dice"] == empty["aji"] == empty["pq"] == 0.0


def test_evaluate_nuclei_classical_fallback(tmp_path: Path) -> None:
    folder = _write_nuclei_folder(tmp_path / "nuclei", 2)
    out = report.evaluate_nuclei(folder, mpp=0.5, n_boot=5)
    assert out["method"] == "classical"
    assert out["dice"] > 0.8  # two flat purple blobs on white: the watershed must find them


def test_find_nuclei_pairs_errors(tmp_path: Path) -> None:
    with pytest.raises(AnnotationError, match="images/"):
        data.find_nuclei_pairs(tmp_path)
    (tmp_path / "images").mkdir()
    with pytest.raises(AnnotationError, match="mask sub-folder"):
        data.find_nuclei_pairs(tmp_path)


def test_plots_write_pngs(tmp_path: Path) -> None:
    p = plots.plot_study(
        [0.1, 1.0], {"scratch": ([0.6, 0.7], [0.05, 0.02])}, "f1", tmp_path / "s.png"
    )
    b = plots.plot_bars(
        {"dice": 0.5, "aji": float("nan")}, tmp_path / "b.png", {"dice": [0.4, 0.6]}
    )
    for path in (p, b):
        with Image.open(path) as im:
            assert im.size[0] > 100 and im.format == "PNG"


def test_clean_makes_json_safe() -> None:
    text = json.dumps(
        report.clean({"a": float("nan"), "b": np.float32(0.5), "c": [np.int64(2)], "d": Path("x")})
    )
    assert json.loads(text) == {"a": None, "b": 0.5, "c": [2], "d": "x"}


def test_evaluate_slide_mask_on_the_synthetic_slide(tmp_path: Path, synthetic) -> None:
    """A tiny untrained segmentation model through predict_slide, scored on the ground-truth grid."""
    import torch

    from napari_wsi_ssl.cli import main
    from napari_wsi_ssl.models import build_model, save_checkpoint
    from napari_wsi_ssl.synthetic import read_tumour_mask

    torch.manual_seed(0)
    model = build_model("unet-resnet34", task="segment", num_classes=3, width=8)
    ckpt = save_checkpoint(tmp_path / "seg.pt", model, mpp=2.0, patch_size=64)
    truth = read_tumour_mask(synthetic)
    out = tmp_path / "mask_report"
    argv = [
        "evaluate",
        "--model",
        str(ckpt),
        "--slide",
        str(synthetic.slide),
        "--mask",
        str(synthetic.tumour_mask),
    ]
    assert main([*argv, "-o", str(out), "--device", "cpu", "--bootstrap", "20", "--json"]) == 0
    result = json.loads((out / "report.json").read_text())
    assert result["kind"] == "mask" and result["mask_downsample"] == synthetic.gt_downsample
    assert result["n_pixels"] == truth.size
    assert np.asarray(result["confusion"]).sum(axis=1).tolist() == [
        int((truth != 1).sum()),
        int((truth == 1).sum()),
    ]
    for key in ("miou", "pixel_f1", "pixel_precision", "pixel_recall"):
        assert key in result and key in result["ci"]
    assert all(Path(p).is_file() for p in result["plots"].values())
    assert Path(result["prediction"]).is_dir()


def test_mask_downsample_rejects_a_mask_of_another_aspect() -> None:
    from napari_wsi_ssl.evaluation.masks import mask_downsample_for

    assert mask_downsample_for((2048, 2048), (256, 256)) == 8.0
    with pytest.raises(AnnotationError, match="aspect"):
        mask_downsample_for((2048, 2048), (256, 128))
