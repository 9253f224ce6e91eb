"""The label-efficiency study: fine-tuning with and without self-supervised pretraining.

Protocol (paper 2's table, paper 1's comparison), on any labelled patch folder:

1. The test set: with ``test`` (another labelled folder), all of it, and the folder's patches
   are the pool; without, a stratified ``test_fraction`` of the folder, the rest the pool. The
   test patches are never seen by pretraining, fine-tuning or the choice of a threshold.
2. Pretrain once per objective on the pool with its labels hidden (each objective its own
   checkpoint in the output folder, reused when there).
3. Repeats: with ``test``, ``folds`` seeds each draw a stratified labelled subset of the whole
   pool per fraction; without, the pool is split into ``folds`` stratified folds and fold ``k``
   is left out of repeat ``k``'s training set (cross-validation). A labelled subset keeps
   ``round(fraction * n_class)`` patches per class (at least ``min_per_class``), nested across
   fractions.
4. Each mode on it (``study_arms``): ``full`` and ``frozen-encoder`` fine-tuning from the
   pretrained weights, ``scratch`` from random weights, ``fast`` (the fast mode's light head on
   frozen pooled features) and ``probe`` (a logistic regression on them). Each holds out 20 % of
   its labels to choose the threshold of its predictions (best balanced accuracy there).
5. Report AUC and the threshold metrics on the test set as mean ± sd over repeats, with
   bootstrap intervals over test patches (``study_report``).

Objective ``none`` is the untrained encoder: its ``fast``/``probe`` rows are the baseline of the
cheap arms, and ``scratch`` (listed under ``none``) is the baseline of fine-tuning.

Results are written after every run (``study.json``, test probabilities in ``scores/``), so an
interrupted study resumes where it stopped when run again with the same output folder and
settings.
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

from ..errors import AnnotationError, CancelledError, WsiSslError
from ..events import CancelToken, Log, Progress, run_to_end
from ..vocab import Budget, Mode, Objective, Preset
from . import study_arms as arms
from ._common import _check, clean
from ._finetune import pretrain_patches
from .data import PatchSet, load_patches, read_patch_folder
from .study_report import markdown_table, write_outputs

__all__ = ["StudyConfig", "iter_study", "labelled_subset", "markdown_table", "run_study"]

#: The untrained encoder, compared with every pretraining objective.
NONE = "none"
#: Arms on frozen features: cheap, computed from one feature pass per encoder.
FEATURE_MODES = ("fast", "probe")
STUDY_MODES = (*Mode.values(), *FEATURE_MODES)


@dataclass(frozen=True)
class StudyConfig:
    """Settings of a label-efficiency study.

    Budgets: ``pretrain_budget`` and ``finetune_budget``; with none, the training defaults
    apply (the papers' 200 and 80 epochs). ``objectives`` are the pretraining objectives
    compared (``vocab.Objective`` names or ``"none"``), ``objective`` alone when empty.
    ``test`` is a labelled folder scored instead of a share of the patches; ``folds`` is then
    the number of seeds. ``patch_size`` crops training patches at random and test patches at
    their centre.
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
    objectives: tuple[str, ...] = ()
    finetune_budget: Budget | None = None
    limit: int | None = None
    pretrained: str | None = None
    test: str | None = None
    device: str = "auto"
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.fractions or any(not 0 < f <= 1 for f in self.fractions):
            raise WsiSslError(f"label fractions must lie in (0, 1], got {self.fractions}")
        if self.folds < 2:
            raise WsiSslError(f"a study needs at least 2 folds or seeds, got {self.folds}")
        unknown = set(self.modes) - set(STUDY_MODES)
        if unknown or not self.modes:
            raise WsiSslError(
                f"unknown modes {sorted(unknown)}", hint=f"choose among {', '.join(STUDY_MODES)}"
            )
        object.__setattr__(self, "objective", Objective.check(self.objective, "objective"))
        names = tuple(self.objectives) or (self.objective,)
        checked = tuple(o if o == NONE else Objective.check(o, "objective") for o in names)
        object.__setattr__(self, "objectives", tuple(dict.fromkeys(checked)))
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


def pretrained_path(out: Path, objective: str, config: StudyConfig) -> Path | None:
    """The encoder of ``objective``: None for ``none``, else its checkpoint in ``out``."""
    if objective == NONE:
        return None
    if config.pretrained and len(config.objectives) == 1:
        return Path(config.pretrained)
    # each objective its own file: a study rerun in ``out`` with another objective retrains
    return out / ("pretrained.pt" if objective == Objective.L1 else f"pretrained-{objective}.pt")


def study_plan(config: StudyConfig) -> list[tuple[str, float, int, str]]:
    """(objective, fraction, repeat, mode) of every run: the cheap arms first, then by fraction.

    ``scratch`` is run once, under ``none``; fine-tuning from ``none`` would be ``scratch``.
    """
    plan = []
    for fraction in config.fractions:
        for fold in range(config.folds):
            for objective in (NONE, *[o for o in config.objectives if o != NONE]):
                for mode in config.modes:
                    if mode == Mode.SCRATCH:
                        wanted = objective == NONE
                    elif mode in FEATURE_MODES:
                        wanted = objective != NONE or NONE in config.objectives
                    else:
                        wanted = objective != NONE
                    if not wanted:
                        continue
                    plan.append((objective, fraction, fold, mode))
    return sorted(plan, key=lambda p: p[3] not in FEATURE_MODES)  # stable: fractions keep order


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
    if config.test is not None:
        test_set = read_patch_folder(config.test)
        pool = np.arange(patches.labels.size)
        folds: list[np.ndarray] = []
        _need_two_classes(patches.labels, config)
        _need_two_classes(test_set.labels, config, config.test)
        test_paths, test_labels = list(test_set.paths), test_set.labels
    else:
        test, folds = split_study(patches.labels, config)
        pool = np.sort(np.concatenate(folds))
        test_paths, test_labels = [patches.paths[i] for i in test], patches.labels[test]
    state_path = out / "study.json"
    state: dict[str, Any] = {"config": config.to_dict(), "data": str(folder), "runs": []}
    if state_path.is_file():
        old = json.loads(state_path.read_text())
        if old.get("config") == clean(config.to_dict()) and old.get("data") == str(folder):
            state["runs"] = old.get("runs", [])
            state["pretrain_seconds"] = old.get("pretrain_seconds", {})
            yield Log(f"resuming: {len(state['runs'])} runs already done")
    state.setdefault("pretrain_seconds", {})
    state["n_patches"] = int(patches.labels.size)
    state["n_pool"] = int(pool.size)
    state["n_test"] = int(test_labels.size)
    state["test"] = config.test
    state["test_labels"] = test_labels.tolist()
    if config.test is None:
        state["splits"] = {"test": test.tolist(), "folds": [f.tolist() for f in folds]}
    work = out / "work"
    yield Log(f"loading {len(test_paths)} test patches")
    test_images = arms.centre_crop(load_patches(test_paths), config.patch_size)

    encoders = {o: pretrained_path(out, o, config) for o in config.objectives}
    if any(m != Mode.SCRATCH for m in config.modes):
        for objective, path in encoders.items():
            if path is None or path.is_file():
                continue
            _check(cancel)
            yield Log(f"pretraining ({objective}) on {pool.size} unlabelled patches")
            start = time.perf_counter()
            pool_dir = _link_folder(work / "pool", patches, pool, labelled=False)
            yield from pretrain_patches(pool_dir, path, config, cancel, objective)
            _check(cancel)
            state["pretrain_seconds"][objective] = round(time.perf_counter() - start, 1)

    plan = study_plan(config)
    done = {(r["objective"], r["fraction"], r["fold"], r["mode"]) for r in state["runs"]}
    ctx = _Context(patches, pool, folds, encoders, test_images, test_labels, work, out, config)
    try:
        for i, step in enumerate(plan):
            _check(cancel)
            if step in done:
                continue
            yield Progress(
                i, len(plan), message="{3}, {0}, {1:.0%} labels, repeat {2}".format(*step)
            )
            run = yield from _one_run(ctx, *step, cancel)
            _check(cancel)  # training returns early on cancel: never score a half-trained model
            state["runs"].append(clean(run))
            write_outputs(out, state, config, final=False)
    except CancelledError:
        write_outputs(out, state, config, final=False)
        raise
    yield Progress(len(plan), len(plan), message="done")
    shutil.rmtree(work, ignore_errors=True)
    yield Log("bootstrap intervals and plots")
    return write_outputs(out, state, config)


def _need_two_classes(labels: np.ndarray, config: StudyConfig, where: str | None = None) -> None:
    counts = np.bincount(labels)
    if (counts > 0).sum() < 2 or counts[counts > 0].min() < config.min_per_class:
        raise AnnotationError(
            f"a study needs two classes with at least {config.min_per_class} patches each, "
            f"got {counts.tolist()}",
            where,
        )


@dataclass
class _Context:
    patches: PatchSet
    pool: np.ndarray
    folds: list[np.ndarray]
    encoders: dict[str, Path | None]
    test_images: np.ndarray
    test_labels: np.ndarray
    work: Path
    out: Path
    config: StudyConfig
    pool_images: np.ndarray | None = None
    features: dict[str, tuple[np.ndarray, np.ndarray]] = dataclasses.field(default_factory=dict)

    def train_set(self, fold: int) -> np.ndarray:
        if not self.folds:  # a test folder: every repeat draws from the whole pool
            return self.pool
        return np.sort(np.concatenate([f for j, f in enumerate(self.folds) if j != fold]))

    def encoder_features(
        self, objective: str
    ) -> Generator[Any, None, tuple[np.ndarray, np.ndarray]]:
        if objective not in self.features:
            if self.pool_images is None:
                yield Log(f"loading {self.pool.size} pool patches")
                images = load_patches([self.patches.paths[i] for i in self.pool])
                self.pool_images = arms.centre_crop(images, self.config.patch_size)
            path = self.out / "features" / f"{objective}.npz"
            path.parent.mkdir(exist_ok=True)
            self.features[objective] = yield from arms.cached_features(
                path, self.encoders[objective], self.pool_images, self.test_images, self.config
            )
        return self.features[objective]


def _one_run(
    ctx: _Context,
    objective: str,
    fraction: float,
    fold: int,
    mode: str,
    cancel: CancelToken | None,
) -> Generator[Any, None, dict[str, Any]]:
    config = ctx.config
    labels = ctx.patches.labels
    labelled = labelled_subset(labels, ctx.train_set(fold), fraction, config, fold)
    seed = config.seed * 1000 + fold
    start = time.perf_counter()
    if mode in FEATURE_MODES:
        f_pool, f_test = yield from ctx.encoder_features(objective)
        where = np.searchsorted(ctx.pool, labelled)  # the pool is sorted
        prob, threshold = arms.fast_arm(
            f_pool[where], labels[labelled], f_test, seed, probe=mode == "probe"
        )
    else:
        train_dir = _link_folder(ctx.work / "train", ctx.patches, labelled)
        init = ctx.encoders.get(objective)
        prob, threshold = yield from arms.finetune_arm(
            train_dir, init, mode, ctx.work, ctx.test_images, config, seed, cancel
        )
        if cancel is not None and cancel.cancelled:
            return {}
    seconds = time.perf_counter() - start
    scores = ctx.out / "scores"
    scores.mkdir(exist_ok=True)
    name = f"{objective}_{mode}_{fraction:g}_{fold}.npy"
    np.save(scores / name, prob.astype(np.float32))
    run = {"objective": objective, "fraction": fraction, "fold": fold, "mode": mode}
    run["n_labelled"] = int(labelled.size)
    run.update(arms.scores_at(ctx.test_labels, prob, threshold))
    run["scores"] = f"scores/{name}"
    run["seconds"] = round(seconds, 1)
    return run


def run_study(
    folder: str | Path, out_dir: str | Path, config: StudyConfig = StudyConfig()
) -> dict[str, Any]:
    """:func:`iter_study` run to its end."""
    return run_to_end(iter_study(folder, out_dir, config))  # type: ignore[no-any-return]
