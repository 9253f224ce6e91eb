"""The light head: a per-location classifier trained on cached features at the painted pixels.

No convolution runs: the strokes are looked up in the feature cache, a logistic regression (or a
one-hidden-layer MLP) trains full-batch for a fixed number of steps, and it is saved as one small
checkpoint that records the encoder and feature settings it needs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import AnnotationError
from ..models.device import one_thread
from .cache import FeatureCache
from .config import HeadConfig

TASK = "feature-head"


def make_head(kind: str, in_channels: int, classes: int, hidden: int) -> nn.Module:
    if kind == "linear":
        return nn.Linear(in_channels, classes)
    return nn.Sequential(
        nn.Linear(in_channels, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, classes)
    )


@dataclass
class TrainedHead:
    """A head and what it means: ``label_values[i]`` is the painted label of output ``i``."""

    model: nn.Module
    kind: str
    hidden: int
    label_values: list[int]
    class_names: list[str]
    metrics: dict[str, float] = field(default_factory=dict)
    history: list[dict[str, float]] = field(default_factory=list)

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        """(N, K) class probabilities of (N, C) features."""
        with torch.inference_mode(), one_thread():
            logits = self.model(torch.from_numpy(np.asarray(x, np.float32)))
            return torch.softmax(logits, dim=1).numpy()


def label_points(
    cache: FeatureCache, labels: np.ndarray, labels_downsample: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Feature pixels under the painted labels: ``(fy, fx, value, stroke)``.

    ``labels`` is a (h, w) integer array at ``labels_downsample`` of level 0 (0 = unlabelled).
    Each label pixel gives its feature pixel and each feature pixel the label at its centre, so
    strokes thinner than a feature pixel and coarse label images both count. ``stroke`` is the
    connected component (8-connected, per label value) a point comes from. Points in tiles that
    the cache has not computed are left out.
    """
    from skimage.measure import label as components

    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise AnnotationError(f"labels must be a 2-D array, got shape {labels.shape}")
    comps = components(labels, background=0, connectivity=2)
    ly, lx = np.nonzero(labels)
    if len(ly) == 0:
        raise AnnotationError("no painted pixels: paint at least one stroke per class")
    grid, ld = cache.grid, float(labels_downsample)
    od, (ox, oy), (h, w) = grid.out_downsample, grid.origin, grid.shape
    fy_a = np.floor(((ly + 0.5) * ld - oy) / od).astype(np.int64)
    fx_a = np.floor(((lx + 0.5) * ld - ox) / od).astype(np.int64)
    fy0, fy1 = max(0, fy_a.min() - 1), min(h, fy_a.max() + 2)
    fx0, fx1 = max(0, fx_a.min() - 1), min(w, fx_a.max() + 2)
    gy, gx = np.mgrid[fy0:fy1, fx0:fx1]
    my = np.floor((oy + (gy + 0.5) * od) / ld).astype(np.int64)
    mx = np.floor((ox + (gx + 0.5) * od) / ld).astype(np.int64)
    inside = (my >= 0) & (my < labels.shape[0]) & (mx >= 0) & (mx < labels.shape[1])
    gy, gx, my, mx = gy[inside], gx[inside], my[inside], mx[inside]
    hit = labels[my, mx] != 0
    fy = np.concatenate([fy_a, gy[hit]])
    fx = np.concatenate([fx_a, gx[hit]])
    val = np.concatenate([labels[ly, lx], labels[my[hit], mx[hit]]]).astype(np.int64)
    comp = np.concatenate([comps[ly, lx], comps[my[hit], mx[hit]]]).astype(np.int64)
    ok = (fy >= 0) & (fy < h) & (fx >= 0) & (fx < w)
    fy, fx, val, comp = fy[ok], fx[ok], val[ok], comp[ok]
    done = cache.done[:]
    ok = done[fy // grid.tile, fx // grid.tile]
    fy, fx, val, comp = fy[ok], fx[ok], val[ok], comp[ok]
    vmax = int(val.max(initial=0)) + 1
    _, first = np.unique((fy * w + fx) * vmax + val, return_index=True)
    return fy[first], fx[first], val[first], comp[first]


def split_strokes(
    values: np.ndarray, strokes: np.ndarray, fraction: float, seed: int
) -> tuple[np.ndarray, str]:
    """A validation mask holding out ``fraction`` of each class's strokes (at least one when a
    class has two or more). When no class has two strokes, a random share of points is held
    out instead (second item: ``"strokes"`` or ``"points"``)."""
    rng = np.random.default_rng(seed)
    val = np.zeros(len(values), bool)
    if fraction <= 0:
        return val, "none"
    by_stroke = False
    for v in np.unique(values):
        ids = np.unique(strokes[values == v])
        if len(ids) < 2:
            continue
        n = max(1, int(round(len(ids) * fraction)))
        held = rng.permutation(ids)[:n]
        val |= (values == v) & np.isin(strokes, held)
        by_stroke = True
    if by_stroke:
        return val, "strokes"
    val[rng.permutation(len(values))[: int(round(len(values) * fraction))]] = True
    return val, "points"


def _balanced_cap(values: np.ndarray, cap: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed + 1)
    keep = []
    for v in np.unique(values):
        idx = np.nonzero(values == v)[0]
        keep.append(idx if len(idx) <= cap else rng.choice(idx, cap, replace=False))
    return np.sort(np.concatenate(keep))


def _shared_cap(values: np.ndarray, caps: dict[int, int], seed: int) -> np.ndarray:
    """Indices keeping at most ``caps[v]`` points of each value ``v`` (a slide's share of a cap)."""
    keep = [
        np.nonzero(values == v)[0][_balanced_cap(values[values == v], caps[int(v)], seed)]
        for v in np.unique(values)
    ]
    return np.sort(np.concatenate(keep))


def train_head(
    cache: FeatureCache,
    labels: np.ndarray,
    labels_downsample: float,
    config: HeadConfig = HeadConfig(),
    class_names: dict[int, str] | None = None,
    init: TrainedHead | None = None,
) -> TrainedHead:
    """Train a head on the cached features under the painted labels (full batch, balanced).

    ``init`` warm-starts from a previous head with the same classes (a live refinement round);
    a head with other classes or channels is ignored. Raises ``AnnotationError`` when fewer
    than two classes are painted on computed tiles.
    """
    return train_head_many([(cache, labels, labels_downsample)], config, class_names, init)


def train_head_many(
    sources: Sequence[tuple[FeatureCache, np.ndarray, float]],
    config: HeadConfig = HeadConfig(),
    class_names: dict[int, str] | None = None,
    init: TrainedHead | None = None,
) -> TrainedHead:
    """One head on the painted labels of several slides' caches (same encoder and basis),
    balanced across slides and classes.

    Each source is ``(cache, labels, labels_downsample)``, label values meaning the same class
    on every slide. Every class weighs the same in the loss, and within a class each slide that
    has it weighs the same, however much was painted where; the point cap is shared likewise.
    """
    found = []
    for cache, labels, ds in sources:
        try:
            found.append(label_points(cache, labels, ds))
        except AnnotationError as exc:
            if len(sources) == 1 or exc.path is not None:
                raise
            raise AnnotationError(exc.problem, cache.meta["slide"], exc.hint) from None
    all_vals = np.concatenate([f[2] for f in found])
    values = sorted(int(v) for v in np.unique(all_vals))
    if len(values) < 2:
        raise AnnotationError(
            f"paint at least two classes on computed tiles (found {values or 'none'})"
        )
    slides_with = {v: sum(bool((f[2] == v).any()) for f in found) for v in values}
    xs, vals, comps, slide_of = [], [], [], []
    offset = 0
    for s, ((cache, _, _), (fy, fx, val, comp)) in enumerate(zip(sources, found, strict=True)):
        keep = (
            _balanced_cap(val, config.max_samples, config.seed)
            if len(sources) == 1
            else _shared_cap(
                val, {v: -(-config.max_samples // n) for v, n in slides_with.items()}, config.seed
            )
        )
        xs.append(cache.at(fy[keep], fx[keep]))
        vals.append(val[keep])
        comps.append(comp[keep] + offset)
        slide_of.append(np.full(len(keep), s))
        offset += int(comp.max(initial=0)) + 1
    val, comp, slide = np.concatenate(vals), np.concatenate(comps), np.concatenate(slide_of)
    x = torch.from_numpy(np.concatenate(xs))
    y = torch.from_numpy(np.searchsorted(values, val))
    held, how = split_strokes(val, comp, config.val_fraction, config.seed)
    tr, va = torch.from_numpy(~held), torch.from_numpy(held)
    k = len(values)
    counts = torch.bincount(y[tr], minlength=k).float()
    weight = counts.sum() / (k * counts.clamp(min=1))
    sample_w = weight[y] * torch.from_numpy(_slide_share(val, slide, ~held))
    torch.manual_seed(config.seed)
    model = make_head(config.kind, x.shape[1], k, config.hidden)
    warm = (
        init is not None
        and init.label_values == values
        and init.kind == config.kind
        and in_channels(init.model) == x.shape[1]
    )
    if warm and init is not None:
        model.load_state_dict(init.model.state_dict())
    opt = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    history = []
    xt, yt, wt = x[tr], y[tr], sample_w[tr]
    with one_thread():
        for step in range(config.steps):
            opt.zero_grad(set_to_none=True)
            loss = _weighted_ce(model(xt), yt, wt)
            loss.backward()
            opt.step()
            if step == 0 or step == config.steps - 1:
                history.append({"step": step, "loss": float(loss.detach())})
    metrics = {
        "train_points": int(tr.sum()),
        "val_points": int(va.sum()),
        "first_loss": history[0]["loss"],
        "train_loss": history[-1]["loss"],
        "warm_start": float(warm),
    }
    if len(sources) > 1:
        metrics["slides"] = len(sources)
    model.eval()
    with torch.no_grad():
        if int(va.sum()):
            logits = model(x[va])
            pred = logits.argmax(1)
            per_class = [
                float((pred[y[va] == c] == c).float().mean())
                for c in range(k)
                if bool((y[va] == c).any())
            ]
            metrics["val_loss"] = float(_weighted_ce(logits, y[va], sample_w[va]))
            metrics["val_balanced_accuracy"] = float(np.mean(per_class))
            metrics["val_classes"] = float(len(per_class))
    names = class_names or {}
    return TrainedHead(
        model,
        config.kind,
        config.hidden,
        values,
        [names.get(v, default_name(v)) for v in values],
        {**metrics, "val_split": how},  # type: ignore[dict-item]
        history,
    )


def _slide_share(values: np.ndarray, slides: np.ndarray, train: np.ndarray) -> np.ndarray:
    """Per point, the factor that gives each slide an equal share of its class's weight:
    ``n_class / (slides with the class * n_class_on_this_slide)``, counted on training points
    (1 everywhere with one slide)."""
    out = np.ones(len(values), np.float32)
    for v in np.unique(values):
        in_class = values == v
        n_class = int((in_class & train).sum())
        on = [s for s in np.unique(slides[in_class]) if (in_class & train & (slides == s)).any()]
        for s in on:
            n = int((in_class & train & (slides == s)).sum())
            out[in_class & (slides == s)] = n_class / (len(on) * n)
    return out


def _weighted_ce(logits: torch.Tensor, y: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Cross-entropy weighted per point, normalised by the weights (as torch's class weights)."""
    return (F.cross_entropy(logits, y, reduction="none") * w).sum() / w.sum().clamp(min=1e-12)


def default_name(value: int) -> str:
    return {1: "tumour", 2: "normal"}.get(value, f"class {value}")


def in_channels(model: nn.Module) -> int:
    """The number of feature channels a head takes."""
    first = model if isinstance(model, nn.Linear) else model[0]  # type: ignore[index]
    return int(first.in_features)
