"""The study's outputs: summary rows with bootstrap intervals, the table, the plots, the answer.

Intervals resample the test patches (1,000 resamples): each resample recomputes every repeat's
metric on the same patches and averages over repeats, so an interval is that of the cell's
mean. Differences between two cells (``comparison``) resample both together (paired).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .._atomic import atomic_write_text
from . import plots
from ._common import clean

if TYPE_CHECKING:
    from .study import StudyConfig

METRICS = ("auc", "balanced_accuracy", "accuracy", "precision", "recall", "f1")
#: Metrics with bootstrap intervals.
INTERVALS = ("auc", "balanced_accuracy")
#: What "helps" means: at least this much AUC above both ``l1`` and ``scratch``.
MARGIN = 0.03
BOOTSTRAP = 1000
#: Objectives in the plots' order; each keeps its colour in every panel.
ORDER = ("none", "l1", "mim", "stain", "cross-stain")


def _cells(runs: list[dict[str, Any]]) -> dict[tuple[str, str, float], list[dict[str, Any]]]:
    cells: dict[tuple[str, str, float], list[dict[str, Any]]] = {}
    for r in sorted(runs, key=lambda r: r["fold"]):
        cells.setdefault((r.get("objective", "l1"), r["mode"], r["fraction"]), []).append(r)
    return cells


def _load(out: Path, runs: list[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
    """(repeats, N) test probabilities and the repeats' thresholds."""
    probs = np.stack([np.load(out / r["scores"]) for r in runs])
    return probs, np.array([r["threshold"] for r in runs])


def resample_weights(n: int, n_boot: int = BOOTSTRAP, seed: int = 0) -> np.ndarray:
    """(n_boot, n) counts of each test patch in each bootstrap resample (with replacement)."""
    idx = np.random.default_rng(seed).integers(0, n, (n_boot, n))
    flat = (idx + np.arange(n_boot)[:, None] * n).ravel()
    return np.bincount(flat, minlength=n_boot * n).reshape(n_boot, n).astype(np.float32)


def weighted_auc(y: np.ndarray, prob: np.ndarray, w: np.ndarray) -> np.ndarray:
    """ROC AUC of ``prob`` under each row of patch weights ``w`` (ties count a half): the
    Mann-Whitney statistic, so a bootstrap needs one sort, not one per resample."""
    order = np.argsort(prob, kind="stable")
    p, pos, w = prob[order], y[order] == 1, w[:, order]
    wn = np.where(pos, 0.0, w)
    cum = np.concatenate([np.zeros((len(w), 1), w.dtype), np.cumsum(wn, axis=1)], axis=1)
    first = np.searchsorted(p, p, side="left")
    last = np.searchsorted(p, p, side="right")
    below, equal = cum[:, first], cum[:, last] - cum[:, first]
    wp = np.where(pos, w, 0.0)
    num = (wp * (below + 0.5 * equal)).sum(1)
    den = wp.sum(1) * wn.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / den, np.nan)  # type: ignore[no-any-return]


def weighted_balanced_accuracy(
    y: np.ndarray, prob: np.ndarray, threshold: float, w: np.ndarray
) -> np.ndarray:
    """Balanced accuracy at ``threshold`` under each row of patch weights ``w``."""
    hit = (prob >= threshold) == (y == 1)
    with np.errstate(invalid="ignore", divide="ignore"):  # a resample without a class: NaN
        rates = [(w * (hit & (y == c))).sum(1) / (w * (y == c)).sum(1) for c in (0, 1)]
    return (rates[0] + rates[1]) / 2  # type: ignore[no-any-return]


def _interval(values: np.ndarray) -> list[float | None]:
    v = values[np.isfinite(values)]
    return [float(q) for q in np.quantile(v, [0.025, 0.975])] if v.size else [None, None]


def summarise(
    runs: list[dict[str, Any]], out: Path, labels: np.ndarray | None, n_boot: int = BOOTSTRAP
) -> list[dict[str, Any]]:
    """One row per (objective, mode, fraction): mean and sd over repeats; with ``labels`` (the
    test labels) the bootstrap intervals of the means of ``INTERVALS`` too."""
    rows = []
    for (objective, mode, fraction), done in _cells(runs).items():
        row: dict[str, Any] = {"objective": objective, "mode": mode, "fraction": fraction}
        row["folds"] = len(done)
        row["n_labelled"] = int(np.mean([r["n_labelled"] for r in done]))
        for key in (*METRICS, "threshold"):
            values = np.array([np.nan if r.get(key) is None else r[key] for r in done], float)
            finite = values[np.isfinite(values)]
            row[key] = float(finite.mean()) if finite.size else None
            row[f"{key}_sd"] = float(finite.std(ddof=1)) if finite.size > 1 else 0.0
        if labels is not None and all("scores" in r for r in done):
            probs, thr = _load(out, done)
            w = resample_weights(labels.size, n_boot)
            aucs = np.mean([weighted_auc(labels, p, w) for p in probs], axis=0)
            baccs = [
                weighted_balanced_accuracy(labels, p, t, w) for p, t in zip(probs, thr, strict=True)
            ]
            row["auc_ci"] = _interval(aucs)
            row["balanced_accuracy_ci"] = _interval(np.mean(baccs, axis=0))
        rows.append(row)
    order = {"scratch": 0, "probe": 1, "fast": 2, "frozen-encoder": 3, "full": 4}
    return sorted(rows, key=lambda r: (r["fraction"], order.get(r["mode"], 9), r["objective"]))


def compare(
    runs: list[dict[str, Any]], out: Path, labels: np.ndarray, n_boot: int = BOOTSTRAP
) -> list[dict[str, Any]]:
    """At the fraction nearest 10 %: each objective's AUC minus ``l1``'s (same mode) and minus
    ``scratch``'s, with paired bootstrap intervals, and whether it meets the bar (both gaps
    ≥ ``MARGIN`` with intervals above zero)."""
    cells = _cells(runs)
    fractions = sorted({f for _, _, f in cells})
    if not fractions:
        return []
    at = min(fractions, key=lambda f: abs(np.log(f / 0.1)))
    scratch = cells.get(("none", "scratch", at))
    w = resample_weights(labels.size, n_boot, seed=1)
    result = []
    for (objective, mode, fraction), done in sorted(cells.items()):
        if fraction != at or mode == "scratch" or objective in ("none", "l1"):
            continue
        entry: dict[str, Any] = {"objective": objective, "mode": mode, "fraction": at}
        for ref_name, ref in (("l1", cells.get(("l1", mode, at))), ("scratch", scratch)):
            if not ref:
                continue
            a, b = _load(out, done)[0], _load(out, ref)[0]
            ones = np.ones((1, labels.size))

            def gap(w: np.ndarray, a: np.ndarray = a, b: np.ndarray = b) -> np.ndarray:
                mean_a = np.mean([weighted_auc(labels, p, w) for p in a], axis=0)
                return mean_a - np.mean([weighted_auc(labels, p, w) for p in b], axis=0)  # type: ignore[no-any-return]

            entry[f"gap_{ref_name}"] = float(gap(ones)[0])
            entry[f"gap_{ref_name}_ci"] = _interval(gap(w))
        entry["helps"] = all(
            f"gap_{r}" in entry and entry[f"gap_{r}"] >= MARGIN and entry[f"gap_{r}_ci"][0] > 0
            for r in ("l1", "scratch")
        )
        result.append(entry)
    return result


def _fmt(mean: Any, sd: Any, ci: Any = None) -> str:
    if mean is None:
        return "n/a"
    text = f"{mean:.3f} ± {sd or 0:.3f}"
    if ci and ci[0] is not None:
        text += f" [{ci[0]:.3f}, {ci[1]:.3f}]"
    return text


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """One row per fraction, mode and objective: mean ± sd over repeats [95 % interval]."""
    lines = [
        "| labelled | n | mode | objective | repeats | AUC | balanced accuracy | threshold |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {100 * r['fraction']:g}% | {r['n_labelled']} | {r['mode']} | "
            f"{r.get('objective', 'l1')} | {r['folds']} | "
            f"{_fmt(r.get('auc'), r.get('auc_sd'), r.get('auc_ci'))} | "
            f"{_fmt(r.get('balanced_accuracy'), r.get('balanced_accuracy_sd'), r.get('balanced_accuracy_ci'))} | "
            f"{_fmt(r.get('threshold'), r.get('threshold_sd'))} |"
        )
    return "\n".join(lines) + "\n"


def comparison_table(entries: list[dict[str, Any]]) -> str:
    if not entries:
        return ""
    lines = [
        f"| objective | mode | labelled | AUC minus l1 [paired 95 % CI] | AUC minus scratch | ≥ {MARGIN} over both |",
        "|---|---|---|---|---|---|",
    ]
    for e in entries:
        cells = []
        for ref in ("l1", "scratch"):
            g, ci = e.get(f"gap_{ref}"), e.get(f"gap_{ref}_ci") or [None, None]
            text = "n/a" if g is None else f"{g:+.3f}"
            cells.append(text if ci[0] is None else f"{text} [{ci[0]:+.3f}, {ci[1]:+.3f}]")
        lines.append(
            f"| {e['objective']} | {e['mode']} | {100 * e['fraction']:g}% | "
            f"{cells[0]} | {cells[1]} | {'yes' if e['helps'] else 'no'} |"
        )
    return "\n".join(lines) + "\n"


def plot_curves(rows: list[dict[str, Any]], metric: str, path: Path) -> Path | None:
    """``metric`` against the labelled fraction: a panel per mode, a line per objective (error
    bars: the bootstrap interval, or the sd over repeats), scratch dashed in every panel."""
    modes = [
        m for m in ("probe", "fast", "frozen-encoder", "full") if any(r["mode"] == m for r in rows)
    ]
    scratch = [r for r in rows if r["mode"] == "scratch"]
    if not modes and not scratch:
        return None
    fig = plots._figure(4.0 * max(1, len(modes)), 3.8)
    axes = [fig.add_subplot(1, max(1, len(modes)), k + 1) for k in range(max(1, len(modes)))]
    for ax, mode in zip(axes, modes or ["scratch"], strict=True):
        lines: dict[tuple[str, str], list[dict[str, Any]]] = {}
        if scratch:
            lines[("scratch", "none")] = scratch
        for r in rows:
            if r["mode"] == mode != "scratch":
                lines.setdefault((mode, r["objective"]), []).append(r)

        def rank(item: Any) -> tuple[bool, int]:
            (m, objective), _ = item
            return m != "scratch", ORDER.index(objective) if objective in ORDER else len(ORDER)

        for (m, objective), line in sorted(lines.items(), key=rank):
            line = sorted(line, key=lambda r: r["fraction"])
            x = [100 * r["fraction"] for r in line]
            y = [np.nan if r[metric] is None else r[metric] for r in line]
            ci = [r.get(f"{metric}_ci") for r in line]
            if all(c and c[0] is not None for c in ci):
                err = np.abs(np.array([[c[0], c[1]] for c in ci]).T - np.array(y))  # type: ignore[index]
            else:
                err = np.nan_to_num(np.array([r[f"{metric}_sd"] or 0 for r in line]))
            colour = f"C{ORDER.index(objective)}" if objective in ORDER else None
            style = {"linestyle": "--", "color": "0.4"} if m == "scratch" else {"color": colour}
            label = "scratch" if m == "scratch" else objective
            ax.errorbar(x, y, yerr=err, marker="o", capsize=3, label=label, **style)
        ax.set_xscale("log")
        ticks = sorted({100 * r["fraction"] for r in rows})
        ax.set_xticks(ticks, [f"{v:g}%" for v in ticks])
        ax.set_xlabel("labelled fraction of the pool")
        ax.set_ylabel(metric.replace("_", " "))
        ax.set_title(mode)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return plots._save(fig, path)


def write_outputs(
    out_dir: Path, state: dict[str, Any], config: StudyConfig | None = None, final: bool = True
) -> dict[str, Any]:
    """Write ``study.json`` and ``study.md`` (and, ``final``, the intervals, the comparison and
    the plots); return the summary."""
    labels = state.get("test_labels")
    labels_arr = np.asarray(labels) if final and labels is not None else None
    rows = summarise(state["runs"], out_dir, labels_arr)
    state["summary"] = rows
    text = f"# Label-efficiency study\n\n{markdown_table(rows)}"
    plot_paths = {}
    if labels_arr is not None:
        state["comparison"] = compare(state["runs"], out_dir, labels_arr)
        text += "\n" + comparison_table(state["comparison"])
        for metric in INTERVALS:
            path = plot_curves(rows, metric, out_dir / f"study_{metric}.png")
            if path is not None:
                plot_paths[metric] = str(path)
    atomic_write_text(out_dir / "study.json", json.dumps(clean(state), indent=2) + "\n")
    atomic_write_text(out_dir / "study.md", text)
    return {
        "out_dir": str(out_dir),
        "table": str(out_dir / "study.md"),
        "json": str(out_dir / "study.json"),
        "plots": plot_paths,
        "runs": len(state["runs"]),
        "summary": rows,
        "comparison": state.get("comparison", []),
    }
