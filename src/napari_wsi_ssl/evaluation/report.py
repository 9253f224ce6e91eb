"""Evaluate a model on labelled data and write ``report.json`` with its plots.

The command line (``wsi-ssl evaluate``) and the napari Evaluate dock share these functions.
Each ``iter_evaluate_*`` is a generator of :mod:`~napari_wsi_ssl.events` returning the report
dict; ``evaluate_*`` runs it to the end. On cancel they raise ``CancelledError`` and write
nothing. A report dict holds the metrics, ``ci`` (bootstrap 95% intervals, ``[low, high]``
per metric), ``plots`` (PNG paths) and ``report`` (the JSON path) when ``out_dir`` is given.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

import numpy as np

from .._atomic import atomic_write_text
from ..errors import CancelledError, CheckpointError
from ..events import CancelToken, Log, Progress, run_to_end
from . import metrics, plots
from .data import find_nuclei_pairs, load_patches, read_image, read_labels, read_patch_folder

Events = Generator[Any, None, dict[str, Any]]


def clean(value: Any) -> Any:
    """A JSON-safe copy: numpy to Python, NaN/inf to ``None``, paths to strings."""
    if isinstance(value, dict):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean(v) for v in value]
    if isinstance(value, np.ndarray):
        return clean(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


def write_report(report: dict[str, Any], out_dir: str | Path) -> Path:
    """Write ``report`` as ``out_dir/report.json`` (atomically) and return its path."""
    path = Path(out_dir) / "report.json"
    report["report"] = str(path)
    atomic_write_text(path, json.dumps(clean(report), indent=2) + "\n")
    return path


def _check(cancel: CancelToken | None) -> None:
    if cancel is not None and cancel.cancelled:
        raise CancelledError("evaluation cancelled; no report was written")


def _thin_curve(
    fpr: np.ndarray, tpr: np.ndarray, points: int = 256
) -> tuple[list[float], list[float]]:
    if fpr.size <= points:
        return fpr.tolist(), tpr.tolist()
    idx = np.unique(np.linspace(0, fpr.size - 1, points).round().astype(int))
    return fpr[idx].tolist(), tpr[idx].tolist()


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
    import torch

    from ..training import autocast_for, choose_device

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
        batch = torch.from_numpy(np.ascontiguousarray(images[start : start + batch_size]))
        x = batch.to(dev).permute(0, 3, 1, 2).float().div_(255.0)
        with torch.inference_mode(), autocast_for(dev):
            result = model(x)
        if checkpoint.task == "classify":
            prob = torch.softmax(result["logits"].float(), dim=1)
        else:
            seg = torch.softmax(result["seg"].float(), dim=1)
            h, w = seg.shape[-2:]
            prob = seg[..., h // 4 : h - h // 4, w // 4 : w - w // 4].mean(dim=(2, 3))
        out.append(prob.cpu().numpy())
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
    from ..models import load_checkpoint

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


# ------------------------------------------------------------------------------- nuclei

NucleiPredictor = Callable[[np.ndarray], np.ndarray]


def nuclei_probs(checkpoint: Any, image: np.ndarray, device: str = "auto") -> np.ndarray:
    """Background/foreground/boundary probabilities (3, h, w) of a nuclei model on one image.

    The image is reflect-padded to a multiple of 32 px (the encoder's stride) and cropped back.
    """
    import torch

    from ..training import autocast_for, choose_device

    dev = choose_device(device)
    h, w = image.shape[:2]
    ph, pw = -h % 32, -w % 32
    padded = np.pad(image[..., :3], ((0, ph), (0, pw), (0, 0)), mode="reflect")
    x = (
        torch.from_numpy(np.ascontiguousarray(padded))
        .to(dev)
        .permute(2, 0, 1)[None]
        .float()
        .div_(255.0)
    )
    model = checkpoint.model.to(dev).eval()
    with torch.inference_mode(), autocast_for(dev):
        seg = model(x)["seg"]
    return torch.softmax(seg.float(), dim=1)[0, :, :h, :w].cpu().numpy()


def _nuclei_predictor(
    checkpoint_path: str | Path | None, device: str, mpp: float | None
) -> tuple[NucleiPredictor, str]:
    from ..inference import nuclei_classical
    from ..inference.nuclei import nuclei_from_probs

    if checkpoint_path is None:
        return (lambda image: nuclei_classical(image, mpp=mpp)), "classical"
    from ..models import load_checkpoint

    ckpt = load_checkpoint(checkpoint_path)
    if ckpt.task != "nuclei":
        raise CheckpointError(
            f"a {ckpt.task} model cannot segment nuclei", checkpoint_path, "use a nuclei model"
        )
    model_mpp = mpp if mpp is not None else ckpt.mpp
    return (lambda image: nuclei_from_probs(nuclei_probs(ckpt, image, device), model_mpp)), "model"


def iter_evaluate_nuclei(
    folder: str | Path,
    checkpoint_path: str | Path | None = None,
    out_dir: str | Path | None = None,
    device: str = "auto",
    mpp: float | None = None,
    limit: int | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    predictor: NucleiPredictor | None = None,
    cancel: CancelToken | None = None,
) -> Events:
    """Dice, AJI and PQ (mean over images) of nuclei instances on an image/mask folder.

    Without ``checkpoint_path`` the classical haematoxylin watershed is evaluated. A custom
    ``predictor(image) -> labels`` replaces both (for tests and comparisons).
    """
    pairs = find_nuclei_pairs(folder)[:limit]
    method = "custom"
    if predictor is None:
        predictor, method = _nuclei_predictor(checkpoint_path, device, mpp)
    per_image: list[dict[str, Any]] = []
    start = time.perf_counter()
    for i, (image_path, mask_path) in enumerate(pairs):
        _check(cancel)
        truth = read_labels(mask_path)
        pred = np.asarray(predictor(read_image(image_path)))
        if pred.shape != truth.shape:
            raise CheckpointError(
                f"prediction {pred.shape} and mask {truth.shape} differ in shape",
                mask_path,
                "check the mask",
            )
        per_image.append({"image": image_path.name, **metrics.nuclei_metrics(truth, pred)})
        yield Progress(i + 1, len(pairs), message="nuclei")
    keys = ("dice", "aji", "pq", "dq", "sq")
    table = np.array([[row[k] for k in keys] for row in per_image], dtype=np.float64)
    report: dict[str, Any] = {
        "kind": "nuclei",
        "method": method,
        "model": None if checkpoint_path is None else str(checkpoint_path),
        "data": str(folder),
        "n_images": len(per_image),
        "n_true": int(sum(r["n_true"] for r in per_image)),
        "n_pred": int(sum(r["n_pred"] for r in per_image)),
        "seconds": round(time.perf_counter() - start, 2),
    }
    report.update({k: float(table[:, j].mean()) for j, k in enumerate(keys)})
    report["ci"] = metrics.bootstrap_ci_dict(
        lambda rows: dict(zip(keys, rows.mean(axis=0).tolist(), strict=True)),
        table,
        n=n_boot,
        seed=seed,
    )
    report["per_image"] = per_image
    if out_dir is not None:
        values = {k: report[k] for k in keys}
        report["plots"] = {
            "metrics": str(
                plots.plot_bars(values, Path(out_dir) / "nuclei.png", report["ci"], "Nuclei")
            )
        }
        write_report(report, out_dir)
    return report


def evaluate_nuclei(
    folder: str | Path, checkpoint_path: str | Path | None = None, **kwargs: Any
) -> dict[str, Any]:
    """:func:`iter_evaluate_nuclei` run to its end."""
    return run_to_end(iter_evaluate_nuclei(folder, checkpoint_path, **kwargs))  # type: ignore[no-any-return]


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
