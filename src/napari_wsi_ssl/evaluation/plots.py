"""Report plots drawn with matplotlib's Agg canvas (no pyplot, no Qt), written atomically.

Figures are built on :class:`matplotlib.figure.Figure` directly, so that drawing from a worker
thread never touches pyplot's global state or a GUI backend.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .._atomic import atomic_write_bytes


def _figure(width: float = 4.2, height: float = 3.6) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Any, path: str | Path) -> Path:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return atomic_write_bytes(path, buf.getvalue())


def plot_confusion(
    confusion: Sequence[Sequence[int]] | np.ndarray,
    class_names: Sequence[str],
    path: str | Path,
    title: str = "Confusion matrix",
) -> Path:
    """Confusion matrix heat map with counts and row percentages (rows = truth)."""
    cm = np.asarray(confusion, dtype=np.int64)
    n = cm.shape[0]
    names = list(class_names)[:n] + [str(i) for i in range(len(class_names), n)]
    fig = _figure()
    ax = fig.add_subplot()
    rows = cm.sum(axis=1, keepdims=True)
    frac = np.divide(cm, rows, out=np.zeros(cm.shape, dtype=np.float64), where=rows > 0)
    ax.imshow(frac, cmap="Blues", vmin=0, vmax=1)
    for i in range(n):
        for j in range(n):
            colour = "white" if frac[i, j] > 0.5 else "black"
            ax.text(
                j, i, f"{cm[i, j]}\n{100 * frac[i, j]:.1f}%", ha="center", va="center", color=colour
            )
    ax.set_xticks(range(n), names)
    ax.set_yticks(range(n), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    return _save(fig, path)


def plot_roc(
    fpr: Sequence[float] | np.ndarray,
    tpr: Sequence[float] | np.ndarray,
    auc: float | None,
    path: str | Path,
    ci: Sequence[float] | None = None,
    title: str = "ROC curve",
) -> Path:
    """ROC curve with the chance diagonal and the AUC (and its interval) in the legend."""
    fig = _figure()
    ax = fig.add_subplot()
    label = "model"
    if auc is not None and np.isfinite(auc):
        label = f"AUC {auc:.3f}"
        if ci is not None and all(v is not None and np.isfinite(v) for v in ci):
            label += f" [{ci[0]:.3f}, {ci[1]:.3f}]"
    ax.plot(fpr, tpr, lw=2, label=label)
    ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=1, label="chance")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title(title)
    ax.legend(loc="lower right")
    return _save(fig, path)


def plot_bars(
    values: Mapping[str, float | None],
    path: str | Path,
    cis: Mapping[str, Sequence[float | None]] | None = None,
    title: str = "Metrics",
) -> Path:
    """Bar chart of metrics in [0, 1] with their 95% intervals as error bars."""
    names = [k for k, v in values.items() if v is not None and np.isfinite(v)]
    heights = np.array([float(values[k]) for k in names])  # type: ignore[arg-type]
    fig = _figure(max(3.0, 0.9 * len(names) + 1.5), 3.4)
    ax = fig.add_subplot()
    err = None
    if cis:
        lo = [heights[i] - (cis.get(k) or [heights[i]])[0] for i, k in enumerate(names)]
        hi = [(cis.get(k) or [None, heights[i]])[1] - heights[i] for i, k in enumerate(names)]
        err = np.nan_to_num(np.array([lo, hi], dtype=np.float64).clip(min=0))
    ax.bar(names, heights, yerr=err, capsize=4, color="#4c72b0")
    for i, h in enumerate(heights):
        ax.text(i, min(h + 0.03, 1.02), f"{h:.3f}", ha="center", va="bottom", fontsize=8)
    ax.set_ylim(0, 1.1)
    ax.set_title(title)
    return _save(fig, path)


def plot_study(
    fractions: Sequence[float],
    curves: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    metric: str,
    path: str | Path,
    title: str | None = None,
) -> Path:
    """Metric (mean ± sd over folds) against the labelled fraction, one curve per mode."""
    fig = _figure(5.0, 3.8)
    ax = fig.add_subplot()
    x = np.asarray(fractions, dtype=np.float64) * 100
    for mode, (mean, sd) in curves.items():
        m = np.asarray(mean, dtype=np.float64)
        s = np.nan_to_num(np.asarray(sd, dtype=np.float64))
        ax.errorbar(x, m, yerr=s, marker="o", capsize=3, label=mode)
    ax.set_xscale("log")
    ax.set_xticks(x, [f"{v:g}%" for v in x])
    ax.set_xlabel("labelled fraction of the training set")
    ax.set_ylabel(metric)
    ax.set_title(title or f"{metric} against labelled data")
    ax.grid(alpha=0.3)
    ax.legend()
    return _save(fig, path)


def plot_mask_comparison(
    truth: np.ndarray,
    prob: np.ndarray,
    path: str | Path,
    threshold: float = 0.5,
    title: str = "Tumour map",
) -> Path:
    """Ground truth, probability map and their agreement (TP/FP/FN colours), side by side."""
    fig = _figure(9.0, 3.3)
    axes = fig.subplots(1, 3)
    t = np.asarray(truth) == 1
    p = np.asarray(prob) >= threshold
    agree = np.ones((*t.shape, 3))
    agree[t & p] = (0.2, 0.6, 0.2)  # true positive: green
    agree[~t & p] = (0.9, 0.6, 0.1)  # false positive: orange
    agree[t & ~p] = (0.8, 0.1, 0.1)  # false negative: red
    agree[np.asarray(truth) < 0] = (0.85, 0.85, 0.85)
    axes[0].imshow(t, cmap="gray", interpolation="nearest")
    axes[0].set_title("ground truth")
    axes[1].imshow(prob, cmap="magma", vmin=0, vmax=1, interpolation="nearest")
    axes[1].set_title("probability")
    axes[2].imshow(agree, interpolation="nearest")
    axes[2].set_title("TP green, FP orange, FN red")
    for ax in axes:
        ax.set_axis_off()
    fig.suptitle(title)
    return _save(fig, path)


def plot_rounds(summary: dict[str, Any], metric: str, path: str | Path, title: str) -> Path:
    """The simulated annotator's quality against rounds, one line per strategy (mean over seeds, band: min to max)."""
    fig = _figure(5.0, 3.6)
    ax = fig.add_subplot()
    for strategy, c in summary["curves"][metric].items():
        x = np.arange(len(c["mean"]))
        (line,) = ax.plot(x, c["mean"], marker="o", label=f"{strategy} ({c['seeds']} seeds)")
        ax.fill_between(x, c["min"], c["max"], color=line.get_color(), alpha=0.2)
    k = summary["config"]["k"]
    ax.set_xlabel(f"round ({k} strokes each; round 0: one stroke per class)")
    ax.set_ylabel(metric)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    return _save(fig, path)
