"""The label-efficiency study: fine-tuning with and without self-supervised pretraining.

Protocol (paper 2's table, paper 1's comparison), on any labelled patch folder:

1. Split the patches, stratified by class, into a held-out test set (``test_fraction``) and a
   training pool. The test set is never seen by pretraining or fine-tuning.
2. Pretrain once on the training pool with its labels hidden (reconstruction).
3. Split the pool into ``folds`` stratified folds. For each fold ``k`` the other folds form the
   training set (fold ``k`` is left out, so the k training sets differ as in cross-validation);
   for each label fraction a stratified subset of that training set (at least
   ``min_per_class`` per class) is labelled. Fine-tuning holds out 20% of those labels to pick
   its best epoch.
4. Fine-tune each mode on it: ``full`` and ``frozen-encoder`` from the pretrained weights,
   ``scratch`` from random weights. Score the held-out test set.
5. Report precision, recall, F1, accuracy and AUC as mean ± sd over the folds.

Results are written after every run (``study.json``), so an interrupted study resumes where it
stopped when run again with the same output folder and settings.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .. import metrics
from .._atomic import atomic_write_text
from ..errors import AnnotationError, CancelledError, WsiSslError
from ..events import CancelToken, Log, Progress, run_to_end
from ..vocab import Budget, Mode, Objective, Preset
from . import plots
from ._common import _check, clean
from ._finetune import finetune_patches, pretrain_patches
from .data import PatchSet, load_patches, read_patch_folder
from .report import predict_patch_probs

METRICS = ("precision", "recall", "f1", "accuracy", "auc")


@dataclass(frozen=True)
class StudyConfig:
    """Settings of a label-efficiency study.

    Budgets: ``pretrain_budget`` and ``finetune_budget``; with none, the training defaults
    apply (the papers' 200 and 80 epochs). ``objective`` is the pretraining objective
    (``vocab.Objective``); a study per objective compares them.
    """

    fractions: tuple[float, ...] = (0.01, 0.03, 0.1, 0.3, 1.0)
    folds: int = 5
    modes: tuple[str, ...] = Mode.values()
    test_fraction: float = 0.2
    min_per_class: int = 2
    preset: str = Preset.RESNET34_AE.value
    width: int = 64
    patch_size: int | None = None
    batch_size: int = 32
    pretrain_budget: Budget | None = None
    objective: str = Objective.L1.value
    finetune_budget: Budget | None = None
    limit: int | None = None
    pretrained: str | None = None
    device: str = "auto"
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.fractions or any(not 0 < f <= 1 for f in self.fractions):
            raise WsiSslError(f"label fractions must lie in (0, 1], got {self.fractions}")
        if self.folds < 2:
            raise WsiSslError(f"a study needs at least 2 folds, got {self.folds}")
        unknown = set(self.modes) - set(Mode.values())
        if unknown or not self.modes:
            raise WsiSslError(
                f"unknown modes {sorted(unknown)}", hint=f"choose among {', '.join(Mode.values())}"
            )
        object.__setattr__(self, "modes", tuple(Mode(m).value for m in self.modes))
        object.__setattr__(self, "objective", Objective.check(self.objective, "objective"))
        if not 0 < self.test_fraction < 1:
            raise WsiSslError(f"test_fraction must lie in (0, 1), got {self.test_fraction}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def split_study(labels: np.ndarray, config: StudyConfig) -> tuple[np.ndarray, list[np.ndarray]]:
    """Indices of the held-out test set and of each fold of the training pool (stratified)."""
    from sklearn.model_selection import StratifiedKFold, train_test_split

    idx = np.arange(labels.size)
    counts = np.bincount(labels)
    if (counts[counts > 0] < config.folds + 1).any() or (counts > 0).sum() < 2:
        raise AnnotationError(
            f"a study needs two classes with at least {config.folds + 1} patches each, got {counts.tolist()}"
        )
    pool, test = train_test_split(
        idx, test_size=config.test_fraction, stratify=labels, random_state=config.seed
    )
    skf = StratifiedKFold(n_splits=config.folds, shuffle=True, random_state=config.seed)
    folds = [np.sort(pool[val]) for _, val in skf.split(pool, labels[pool])]
    return np.sort(test), folds


def labelled_subset(
    labels: np.ndarray, train: np.ndarray, fraction: float, config: StudyConfig, fold: int
) -> np.ndarray:
    """The labelled part of a fold's training set: a stratified fraction, nested across fractions.

    Each class keeps ``round(fraction * n_class)`` patches, at least ``min_per_class``. The same
    random order is used for every fraction of a fold, so a smaller labelled set is always part
    of a larger one, as when a user labels more over time.
    """
    if fraction >= 1:
        return train
    rng = np.random.default_rng(config.seed * 1000 + fold)
    chosen = []
    for c in np.unique(labels[train]):
        members = train[labels[train] == c]
        order = members[rng.permutation(members.size)]
        quota = min(members.size, max(config.min_per_class, int(round(fraction * members.size))))
        chosen.append(order[:quota])
    return np.sort(np.concatenate(chosen))


def _link_folder(root: Path, patches: PatchSet, indices: np.ndarray, labelled: bool = True) -> Path:
    """An ImageFolder of symbolic links (``root/<label>/``, or flat when unlabelled)."""
    if root.exists():
        shutil.rmtree(root)
    for i in indices:
        src = patches.paths[int(i)].resolve()
        folder = root / str(int(patches.labels[i])) if labelled else root
        folder.mkdir(parents=True, exist_ok=True)
        link = folder / f"{int(i):06d}{src.suffix}"
        try:
            link.symlink_to(src)
        except OSError:  # file systems without symbolic links
            shutil.copyfile(src, link)
    return root


def _summarise(runs: list[dict[str, Any]], config: StudyConfig) -> list[dict[str, Any]]:
    rows = []
    for fraction in config.fractions:
        for mode in config.modes:
            done = [r for r in runs if r["fraction"] == fraction and r["mode"] == mode]
            if not done:
                continue
            row: dict[str, Any] = {"fraction": fraction, "mode": mode, "folds": len(done)}
            row["n_labelled"] = int(np.mean([r["n_labelled"] for r in done]))
            for key in METRICS:
                values = np.array(
                    [np.nan if r[key] is None else r[key] for r in done], dtype=np.float64
                )
                finite = values[np.isfinite(values)]
                row[key] = float(finite.mean()) if finite.size else None
                row[f"{key}_sd"] = (
                    float(finite.std(ddof=1)) if finite.size > 1 else (0.0 if finite.size else None)
                )
            rows.append(row)
    return rows


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """The study as a markdown table: one row per label fraction and mode, mean ± sd over folds."""
    head = "| labelled | n | mode | folds | " + " | ".join(METRICS) + " |"
    lines = [head, "|" + "---|" * (4 + len(METRICS))]
    for r in rows:
        cells = []
        for key in METRICS:
            mean, sd = r.get(key), r.get(f"{key}_sd")
            cells.append("n/a" if mean is None else f"{mean:.3f} ± {sd or 0:.3f}")
        lines.append(
            f"| {100 * r['fraction']:g}% | {r['n_labelled']} | {r['mode']} | {r['folds']} | "
            + " | ".join(cells)
            + " |"
        )
    return "\n".join(lines) + "\n"


def write_outputs(
    out_dir: Path, state: dict[str, Any], config: StudyConfig, with_plots: bool = True
) -> dict[str, Any]:
    """Write ``study.json``, ``study.md`` and (``with_plots``) the metric plots; return the summary."""
    rows = _summarise(state["runs"], config)
    state["summary"] = rows
    atomic_write_text(out_dir / "study.json", json.dumps(clean(state), indent=2) + "\n")
    text = f"# Label-efficiency study\n\n{markdown_table(rows)}"
    atomic_write_text(out_dir / "study.md", text)
    plot_paths = {}
    for metric in ("f1", "auc", "accuracy") if with_plots else ():
        curves = {}
        for mode in config.modes:
            mode_rows = [r for r in rows if r["mode"] == mode]
            fr = [r["fraction"] for r in mode_rows]
            if fr == [f for f in config.fractions if f in fr] and fr:
                mean = [np.nan if r[metric] is None else r[metric] for r in mode_rows]
                sd = [np.nan if r[f"{metric}_sd"] is None else r[f"{metric}_sd"] for r in mode_rows]
                curves[mode] = (mean, sd)
        fractions = sorted({r["fraction"] for r in rows})
        if curves and all(len(c[0]) == len(fractions) for c in curves.values()):
            plot_paths[metric] = str(
                plots.plot_study(fractions, curves, metric, out_dir / f"study_{metric}.png")
            )
    return {
        "out_dir": str(out_dir),
        "table": str(out_dir / "study.md"),
        "json": str(out_dir / "study.json"),
        "plots": plot_paths,
        "runs": len(state["runs"]),
        "summary": rows,
    }


def _score(
    checkpoint_path: Path, images: np.ndarray, labels: np.ndarray, device: str, batch_size: int
) -> Generator[Any, None, dict[str, Any]]:
    from ..models import load_checkpoint  # torch: evaluation stays light to import

    ckpt = load_checkpoint(checkpoint_path)
    prob = yield from predict_patch_probs(ckpt, images, device, batch_size)
    out = metrics.classification_metrics(labels, prob)
    return {k: out[k] for k in (*METRICS, "balanced_accuracy", "confusion")}


def iter_study(
    folder: str | Path,
    out_dir: str | Path,
    config: StudyConfig = StudyConfig(),
    cancel: CancelToken | None = None,
) -> Generator[Any, None, dict[str, Any]]:
    """Run the study on a labelled patch folder; yields events, returns the summary.

    On cancel, the finished runs stay in ``study.json`` (and the table and plots show them)
    and ``CancelledError`` is raised.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    patches = read_patch_folder(folder, limit=config.limit, seed=config.seed)
    test, folds = split_study(patches.labels, config)
    state_path = out / "study.json"
    state: dict[str, Any] = {"config": config.to_dict(), "data": str(folder), "runs": []}
    if state_path.is_file():
        old = json.loads(state_path.read_text())
        if old.get("config") == clean(config.to_dict()) and old.get("data") == str(folder):
            state["runs"] = old.get("runs", [])
            yield Log(f"resuming: {len(state['runs'])} runs already done")
    state["n_patches"] = int(patches.labels.size)
    state["n_test"] = int(test.size)
    state["splits"] = {"test": test.tolist(), "folds": [f.tolist() for f in folds]}
    work = out / "work"
    test_images = load_patches([patches.paths[i] for i in test])
    test_labels = patches.labels[test]

    pool = np.sort(np.concatenate(folds))
    # each objective its own file: a study rerun in ``out`` with another objective retrains
    name = "pretrained" if config.objective == Objective.L1 else f"pretrained-{config.objective}"
    pretrained = Path(config.pretrained) if config.pretrained else out / f"{name}.pt"
    if any(m != Mode.SCRATCH for m in config.modes) and not pretrained.is_file():
        yield Log(f"pretraining on {pool.size} unlabelled patches")
        start = time.perf_counter()
        pool_dir = _link_folder(work / "pool", patches, pool, labelled=False)
        yield from pretrain_patches(pool_dir, pretrained, config, cancel)
        state["pretrain_seconds"] = round(time.perf_counter() - start, 1)

    plan = [(f, k, m) for f in config.fractions for k in range(config.folds) for m in config.modes]
    done = {(r["fraction"], r["fold"], r["mode"]) for r in state["runs"]}
    try:
        yield from _run_plan(
            plan,
            done,
            patches,
            folds,
            pretrained,
            test_images,
            test_labels,
            work,
            out,
            state,
            config,
            cancel,
        )
    except CancelledError:
        write_outputs(out, state, config)
        raise
    yield Progress(len(plan), len(plan), message="done")
    shutil.rmtree(work, ignore_errors=True)
    return write_outputs(out, state, config)


def _run_plan(
    plan: list[tuple[float, int, str]],
    done: set[tuple[float, int, str]],
    patches: PatchSet,
    folds: list[np.ndarray],
    pretrained: Path,
    test_images: np.ndarray,
    test_labels: np.ndarray,
    work: Path,
    out: Path,
    state: dict[str, Any],
    config: StudyConfig,
    cancel: CancelToken | None,
) -> Generator[Any, None, None]:
    for i, (fraction, fold, mode) in enumerate(plan):
        _check(cancel)
        if (fraction, fold, mode) in done:
            continue
        train = np.sort(np.concatenate([f for j, f in enumerate(folds) if j != fold]))
        labelled = labelled_subset(patches.labels, train, fraction, config, fold)
        yield Progress(i, len(plan), message=f"{mode}, {100 * fraction:g}% labels, fold {fold + 1}")
        train_dir = _link_folder(work / "train", patches, labelled)
        ckpt = work / "run.pt"
        ckpt.unlink(missing_ok=True)  # never resume from the previous run's checkpoint
        start = time.perf_counter()
        init = None if mode == Mode.SCRATCH else pretrained
        seed = config.seed * 1000 + fold
        yield from finetune_patches(train_dir, init, mode, ckpt, config, seed, cancel)
        _check(cancel)  # training returns early on cancel: never score a half-trained model
        seconds = time.perf_counter() - start
        scores = yield from _score(ckpt, test_images, test_labels, config.device, config.batch_size)
        run = {"fraction": fraction, "fold": fold, "mode": mode, "n_labelled": int(labelled.size)}
        run.update(scores)
        run["finetune_seconds"] = round(seconds, 1)
        state["runs"].append(clean(run))
        write_outputs(out, state, config, with_plots=False)  # plots once, at the end


def run_study(
    folder: str | Path, out_dir: str | Path, config: StudyConfig = StudyConfig()
) -> dict[str, Any]:
    """:func:`iter_study` run to its end."""
    return run_to_end(iter_study(folder, out_dir, config))  # type: ignore[no-any-return]
