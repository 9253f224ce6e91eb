"""The study's arms on one labelled set: fine-tuning, the fast head, the linear probe; scoring.

Every arm returns the tumour probability of each test patch and a threshold chosen on the
validation share of its own labelled patches (the one that maximises balanced accuracy there,
as a user with those labels would choose it), never on the test patches.

- ``full``, ``frozen-encoder`` and ``scratch`` run the product's fine-tuning for the study's
  budget in steps; fine-tuning holds out 20 % of the labels itself (best epoch), and the same
  patches choose the threshold.
- ``fast`` is the product's fast mode on patches: the product's light head (a linear layer,
  full-batch Adam, class-weighted) on the frozen encoder's pooled features; it holds out the
  same 20 %.
- ``probe`` is the cheapest signal of an encoder: a logistic regression (scikit-learn,
  standardised features) on the same features, threshold chosen the same way.
"""

from __future__ import annotations

from collections.abc import Generator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import metrics
from ..events import CancelToken, Log
from .data import load_patches

if TYPE_CHECKING:
    from .study import StudyConfig

#: Share of a labelled set held out to choose the epoch and the threshold (fine-tuning's own).
VAL_FRACTION = 0.2


def centre_crop(images: np.ndarray, size: int | None) -> np.ndarray:
    """The centre ``size`` px of (N, H, W, 3) patches (PCam's label is about the centre)."""
    if size is None or size >= min(images.shape[1:3]):
        return images
    top, left = (images.shape[1] - size) // 2, (images.shape[2] - size) // 2
    return np.ascontiguousarray(images[:, top : top + size, left : left + size])


def validation_split(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, val) positions of ``n`` labelled patches: fine-tuning's own split."""
    from ..training import FinetuneConfig  # torch: evaluation stays light to import

    return FinetuneConfig(val_fraction=VAL_FRACTION, seed=seed).split(n)


def choose_threshold(labels: np.ndarray, prob: np.ndarray) -> float:
    """The threshold on ``prob`` with the best balanced accuracy on ``labels`` (0.5 if undefined)."""
    if labels.size == 0 or np.unique(labels).size < 2:
        return 0.5
    from sklearn.metrics import roc_curve

    fpr, tpr, thr = roc_curve(labels, prob)
    best = int(np.argmax(tpr - fpr))
    return float(min(max(thr[best], 0.0), 1.0))


def scores_at(labels: np.ndarray, prob: np.ndarray, threshold: float) -> dict[str, Any]:
    """AUC and the threshold metrics of tumour probabilities ``prob`` at ``threshold``."""
    pred = (prob >= threshold).astype(np.int64)
    return {
        "auc": metrics.roc_auc(labels, prob),
        "balanced_accuracy": metrics.balanced_accuracy(labels, pred),
        "accuracy": metrics.accuracy(labels, pred),
        "precision": metrics.precision(labels, pred),
        "recall": metrics.recall(labels, pred),
        "f1": metrics.f1(labels, pred),
        "threshold": threshold,
    }


# -- fine-tuning arms ------------------------------------------------------------------------


def finetune_arm(
    train_dir: Path,
    init: Path | None,
    mode: str,
    work: Path,
    test_images: np.ndarray,
    config: StudyConfig,
    seed: int,
    cancel: CancelToken | None = None,
) -> Generator[Any, None, tuple[np.ndarray, float]]:
    """Fine-tune on ``train_dir`` (an ImageFolder); (test tumour probabilities, threshold)."""
    from ..models import load_checkpoint  # torch: evaluation stays light to import
    from ..patches import ImageFolderPatches
    from ._finetune import finetune_patches
    from .report import predict_patch_probs

    ckpt = work / "run.pt"
    ckpt.unlink(missing_ok=True)  # never resume from the previous run's checkpoint
    yield from finetune_patches(train_dir, init, mode, ckpt, config, seed, cancel, VAL_FRACTION)
    if cancel is not None and cancel.cancelled:
        return np.zeros(0), 0.5
    model = load_checkpoint(ckpt)
    folder = ImageFolderPatches(train_dir)
    _, val = validation_split(len(folder.files), seed)
    val_images = centre_crop(load_patches([folder.files[i] for i in val]), config.patch_size)
    val_prob = yield from predict_patch_probs(model, val_images, config.device, config.batch_size)
    threshold = choose_threshold(folder.targets[val], val_prob[:, 1] if val.size else val_prob)
    prob = yield from predict_patch_probs(model, test_images, config.device, config.batch_size)
    return prob[:, 1], threshold


# -- frozen features: the fast head and the linear probe -------------------------------------


def encoder_features(
    checkpoint: Path | None,
    images: np.ndarray,
    config: StudyConfig,
    calibrate: np.ndarray | None = None,
) -> np.ndarray:
    """Pooled encoder features (N, C) of (N, H, W, 3) uint8 patches: the global average of the
    stages at strides 8, 16 and 32, concatenated.

    ``checkpoint`` None is the untrained encoder (seeded); its batch-norm statistics are set by
    forward passes over ``calibrate`` patches first (a random encoder's are not those of any
    data, which is not what pretraining is compared with).
    """
    import torch  # torch: evaluation stays light to import

    from ..models import build_model, load_checkpoint
    from ..models.device import one_thread

    if checkpoint is None:
        torch.manual_seed(config.seed)
        model = build_model(config.preset, width=config.width)
    else:
        model = load_checkpoint(checkpoint).model
    batch = max(config.batch_size, 64)

    def run(part: np.ndarray) -> list[torch.Tensor]:
        x = torch.from_numpy(part).permute(0, 3, 1, 2).float().div_(255.0)
        return model.forward_features(x)  # type: ignore[no-any-return]

    out = []
    with torch.no_grad(), one_thread():
        if calibrate is not None:
            model.train()
            for s in range(0, len(calibrate), batch):
                run(calibrate[s : s + batch])
        model.eval()
        for s in range(0, len(images), batch):
            feats = run(images[s : s + batch])
            out.append(torch.cat([f.mean(dim=(2, 3)) for f in feats[2:]], 1).numpy())
    return np.concatenate(out).astype(np.float32)


def _standardise(train: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    mean, sd = train.mean(0), train.std(0) + 1e-6
    return [(a - mean) / sd for a in (train, *others)]


def fast_arm(
    x: np.ndarray, y: np.ndarray, x_test: np.ndarray, seed: int, probe: bool = False
) -> tuple[np.ndarray, float]:
    """The fast head (or, ``probe``, a logistic regression) on labelled features ``x, y``;
    (test tumour probabilities, threshold chosen on the held-out 20 %)."""
    tr, va = validation_split(len(y), seed)
    xt, xv, xs = _standardise(x[tr], x[va], x_test)
    fit = _probe if probe else _head
    predict = fit(xt, y[tr], seed)
    return predict(xs), choose_threshold(y[va], predict(xv) if va.size else np.zeros(0))


def _probe(x: np.ndarray, y: np.ndarray, seed: int) -> Any:
    from sklearn.linear_model import LogisticRegression

    clf = LogisticRegression(C=0.1, max_iter=2000, random_state=seed).fit(x, y)
    return lambda a: clf.predict_proba(a)[:, 1]


def _head(x: np.ndarray, y: np.ndarray, seed: int) -> Any:
    """The product's light head, trained as ``features.head.train_head`` trains it."""
    import torch
    import torch.nn.functional as F

    from ..features.config import HeadConfig
    from ..features.head import make_head
    from ..models.device import one_thread

    cfg = HeadConfig(seed=seed)
    xt, yt = torch.from_numpy(x.astype(np.float32)), torch.from_numpy(y.astype(np.int64))
    counts = torch.bincount(yt, minlength=2).float()
    weight = counts.sum() / (2 * counts.clamp(min=1))
    torch.manual_seed(seed)
    model = make_head(cfg.kind, x.shape[1], 2, cfg.hidden)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    with one_thread():
        for _ in range(cfg.steps):
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(model(xt), yt, weight=weight).backward()
            opt.step()
    model.eval()

    def predict(a: np.ndarray) -> np.ndarray:
        with torch.no_grad(), one_thread():
            logits = model(torch.from_numpy(a.astype(np.float32)))
            return torch.softmax(logits, 1)[:, 1].numpy()  # type: ignore[no-any-return]

    return predict


def cached_features(
    path: Path,
    checkpoint: Path | None,
    pool: np.ndarray,
    test: np.ndarray,
    config: StudyConfig,
) -> Generator[Any, None, tuple[np.ndarray, np.ndarray]]:
    """Features of the pool and the test patches for one encoder, computed once (``path``)."""
    from .._atomic import atomic_path

    if path.is_file():
        with np.load(path) as f:
            return f["pool"], f["test"]
    yield Log(f"encoder features of {len(pool) + len(test)} patches ({path.stem})")
    calibrate = pool[np.random.default_rng(config.seed).permutation(len(pool))[:640]]
    both = encoder_features(
        checkpoint, np.concatenate([pool, test]), config, calibrate if checkpoint is None else None
    )
    f_pool, f_test = both[: len(pool)], both[len(pool) :]
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, pool=f_pool, test=f_test)
    return f_pool, f_test
