"""Nuclei instance evaluation: Dice, AJI and PQ of a model or the classical watershed."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .. import metrics
from ..errors import CheckpointError
from ..events import CancelToken, Progress, run_to_end
from ..inference import nuclei_classical
from ..inference.nuclei import nuclei_from_probs
from . import plots
from ._common import Events, _check, write_report
from .data import find_nuclei_pairs, read_image, read_labels

# ------------------------------------------------------------------------------- nuclei

NucleiPredictor = Callable[[np.ndarray], np.ndarray]


def nuclei_probs(checkpoint: Any, image: np.ndarray, device: str = "auto") -> np.ndarray:
    """Background/foreground/boundary probabilities (3, h, w) of a nuclei model on one image.

    The image is reflect-padded to a multiple of 32 px (the encoder's stride) and cropped back.
    """
    from ..models import choose_device, predict_batch  # torch: evaluation stays light to import

    dev = choose_device(device)
    h, w = image.shape[:2]
    ph, pw = -h % 32, -w % 32
    padded = np.pad(image[..., :3], ((0, ph), (0, pw), (0, 0)), mode="reflect")
    model = checkpoint.model.to(dev).eval()
    return predict_batch(model, padded[None], dev, "seg")[0, :, :h, :w]


def nuclei_probs_um(
    checkpoint: Any, image: np.ndarray, mpp: float | None, device: str = "auto", tta: bool = False
) -> np.ndarray:
    """:func:`nuclei_probs` of an image of ``mpp`` µm/px, run at the model's µm/px.

    The image is resampled to the checkpoint's µm/px and the probabilities back to the image's
    grid (bilinear); an unknown ``mpp`` or model µm/px runs at the image's own scale. ``tta``
    averages the probabilities over the 8 rotations and flips of the image (8 times the work).
    """
    import torch
    import torch.nn.functional as F

    from ..patches import resample_pair  # torch: evaluation stays light to import

    scale = 1.0 if mpp is None or checkpoint.mpp is None else mpp / checkpoint.mpp
    small, _ = resample_pair(image[..., :3], None, scale)
    if tta:
        probs = np.zeros((3, *small.shape[:2]), np.float32)
        for k in range(8):
            view = np.rot90(small[:, ::-1] if k >= 4 else small, k % 4)
            p = np.rot90(
                nuclei_probs(checkpoint, np.ascontiguousarray(view), device), -(k % 4), (1, 2)
            )
            probs += p[:, :, ::-1] if k >= 4 else p
        probs /= 8
    else:
        probs = nuclei_probs(checkpoint, small, device)
    if probs.shape[1:] == image.shape[:2]:
        return probs
    up = F.interpolate(torch.from_numpy(probs)[None], image.shape[:2], mode="bilinear")
    return up[0].numpy()


def _nuclei_predictor(
    checkpoint_path: str | Path | None, device: str, mpp: float | None, tta: bool = False
) -> tuple[NucleiPredictor, str]:
    if checkpoint_path is None:
        return (lambda image: nuclei_classical(image, mpp=mpp)), "classical"
    from ..models import load_checkpoint  # torch: evaluation stays light to import

    ckpt = load_checkpoint(checkpoint_path)
    if ckpt.task != "nuclei":
        raise CheckpointError(
            f"a {ckpt.task} model cannot segment nuclei", checkpoint_path, "use a nuclei model"
        )
    image_mpp = mpp if mpp is not None else ckpt.mpp

    def predict(image: np.ndarray) -> np.ndarray:
        probs = nuclei_probs_um(ckpt, image, image_mpp, device, tta)
        return nuclei_from_probs(probs, image_mpp)

    return predict, "model"


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
    images: Sequence[str] | None = None,
    tta: bool = False,
    cancel: CancelToken | None = None,
) -> Events:
    """Dice, AJI and PQ (mean over images) of nuclei instances on an image/mask folder.

    Without ``checkpoint_path`` the classical haematoxylin watershed is evaluated. A custom
    ``predictor(image) -> labels`` replaces both (for tests and comparisons). ``mpp`` is the
    images' µm/px (a model runs at its own, resampled; ``None``: the model's); ``images``
    limits the scoring to those ids (file stems), e.g. a held-out split; ``tta`` averages a
    model's probabilities over the 8 rotations and flips.
    """
    pairs = find_nuclei_pairs(folder)
    if images is not None:
        pairs = [p for p in pairs if p[0].stem in set(images)]
    pairs = pairs[:limit]
    method = "custom"
    if predictor is None:
        predictor, method = _nuclei_predictor(checkpoint_path, device, mpp, tta)
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
        "mpp": mpp,
        "tta": tta and checkpoint_path is not None,
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
