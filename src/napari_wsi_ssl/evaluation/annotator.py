"""A simulated annotator: does painting where the suggestions point beat painting at random?

On a slide whose labels are known (a ``Truth``: 1 tumour, 2 normal, 0 unknown, at some downsample
of level 0), a simulated user starts with one stroke of each class at random, then paints ``k``
strokes per round and the fast mode's head is retrained from its last weights (``Refiner``)
after each round. A stroke is a square of ``stroke`` level-0 px of the true label, on known
pixels only. Strategies:

- ``suggested``: in the cells ``suggest_regions`` gives with the cache's features (the GUI's
  ranking: clusters of cell features without strokes, their uncertain and representative
  cells), at the cell's most uncertain known pixel, clipped to the cell;
- ``representative``: the same ranking without uncertainty (``uncertainty_weight`` 0);
- ``distance``: the older ranking, the top cells by uncertainty x known fraction x distance
  from the strokes;
- ``uncertainty``: that without the distance term (painted cells still never come up);
- ``sampled``: cells drawn at random with probabilities proportional to the ``distance`` score;
- ``random``: at a random known pixel not yet painted.

The map's quality after each round: with a patch grid (a PCam mosaic) the AUC of each patch's
mean tumour probability over its centre (all patches, and those never painted); otherwise the
pixel AUC and Dice (at 0.5) of the tumour map on the known pixels.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import WsiSslError
from ..inference.store import ATTR
from ..metrics import roc_auc

#: (their order seeds each strategy's draws: new ones go last)
STRATEGIES = ("suggested", "uncertainty", "random", "sampled", "representative", "distance")


@dataclass(frozen=True)
class Truth:
    """Known labels of a slide; with ``patches``, a grid of ``patch`` px patches whose labels
    (1 tumour, 0 normal) hold for their centre ``centre`` px, from the level-0 origin."""

    labels: np.ndarray
    downsample: float
    patches: np.ndarray | None = None
    patch: int = 96
    centre: int = 32


@dataclass(frozen=True)
class SimulationConfig:
    rounds: int = 8
    k: int = 3
    seeds: tuple[int, ...] = (0, 1, 2)
    strategies: tuple[str, ...] = ("suggested", "random")
    stroke: int = 32
    cell: int = 12
    distance_scale: float = 2.0
    uncertainty_weight: float | None = None  # None: suggest_regions' default

    def __post_init__(self) -> None:
        bad = [s for s in self.strategies if s not in STRATEGIES]
        if bad or not self.strategies:
            raise WsiSslError(f"strategies must be among {STRATEGIES}, got {self.strategies}")
        if self.rounds < 1 or self.k < 1 or self.stroke < 1 or self.cell < 1 or not self.seeds:
            raise WsiSslError("rounds, k, stroke and cell must be at least 1, with a seed")


@dataclass
class Maps:
    """The tumour probability and uncertainty maps of a head's store, in [0, 1]."""

    tumour: np.ndarray
    uncertainty: np.ndarray
    out_downsample: float
    origin: tuple[float, float]  # (x, y) level-0 px

    @classmethod
    def read(cls, store: str | Path) -> Maps:
        import zarr

        root = zarr.open_group(zarr.DirectoryStore(str(store)), mode="r")
        grid = root.attrs[ATTR]["feature_grid"]
        ox, oy = grid["origin"]
        return cls(
            root["tumour"]["0"][:].astype(np.float32) / 255.0,
            root["uncertainty"]["0"][:].astype(np.float32) / 255.0,
            float(grid["out_downsample"]),
            (float(ox), float(oy)),
        )

    def at(self, which: np.ndarray, ys: np.ndarray, xs: np.ndarray, ds: float) -> np.ndarray:
        """Values of map ``which`` at the centres of pixels ``(ys, xs)`` of a ``ds`` grid."""
        my = np.floor(((ys + 0.5) * ds - self.origin[1]) / self.out_downsample).astype(np.int64)
        mx = np.floor(((xs + 0.5) * ds - self.origin[0]) / self.out_downsample).astype(np.int64)
        my = np.clip(my, 0, which.shape[0] - 1)
        mx = np.clip(mx, 0, which.shape[1] - 1)
        return which[my, mx]


def quality(maps: Maps, truth: Truth, painted: np.ndarray) -> dict[str, float]:
    """The map's quality against the truth (see the module's docstring)."""
    if truth.patches is not None:
        side_y, side_x = truth.patches.shape
        o = (truth.patch - truth.centre) / 2
        scores = np.zeros(truth.patches.shape, np.float32)
        touched = np.zeros(truth.patches.shape, bool)
        od, (ox, oy) = maps.out_downsample, maps.origin
        n = max(1, round(truth.centre / od))
        ds = truth.downsample
        for r in range(side_y):
            for c in range(side_x):
                y0, x0 = r * truth.patch + o, c * truth.patch + o
                my, mx = int((y0 - oy) / od), int((x0 - ox) / od)
                scores[r, c] = maps.tumour[my : my + n, mx : mx + n].mean()
                sy, sx = int(y0 / ds), int(x0 / ds)
                m = max(1, round(truth.centre / ds))
                touched[r, c] = bool(painted[sy : sy + m, sx : sx + m].any())
        y = truth.patches == 1
        return {
            "auc": roc_auc(y, scores),
            "auc_unpainted": roc_auc(y[~touched], scores[~touched]),
            "painted_patches": int(touched.sum()),
        }
    ys, xs = np.nonzero(truth.labels)
    p = maps.at(maps.tumour, ys, xs, truth.downsample)
    y = truth.labels[ys, xs] == 1
    pred = p >= 0.5
    dice = 2 * float((pred & y).sum()) / max(1, int(pred.sum() + y.sum()))
    return {"auc": roc_auc(y, p), "dice": dice}


def _square(shape: tuple[int, int], cy: int, cx: int, half: int) -> tuple[slice, slice]:
    return (
        slice(max(0, cy - half), min(shape[0], cy + half + 1)),
        slice(max(0, cx - half), min(shape[1], cx + half + 1)),
    )


def paint(
    labels: np.ndarray,
    truth: Truth,
    centre: tuple[int, int],
    side: int,
    clip: tuple[int, int, int, int] | None = None,
) -> int:
    """Paint a square of ``side`` level-0 px of the true labels around ``centre`` (truth px),
    on known pixels only, within ``clip`` (truth px ``(y0, x0, y1, x1)``); returns pixels painted."""
    half = max(0, round(side / truth.downsample / 2))
    sy, sx = _square(labels.shape, centre[0], centre[1], half)
    if clip is not None:
        sy = slice(max(sy.start, clip[0]), min(sy.stop, clip[2]))
        sx = slice(max(sx.start, clip[1]), min(sx.stop, clip[3]))
    t = truth.labels[sy, sx]
    region = labels[sy, sx]
    region[t != 0] = t[t != 0]
    return int((t != 0).sum())


@dataclass
class Stroke:
    round: int
    centre: tuple[int, int]  # level-0 (y, x)
    label: int
    pixels: int
    box: tuple[int, int, int, int] | None = None  # the suggestion's level-0 box


def _random_strokes(
    labels: np.ndarray,
    truth: Truth,
    n: int,
    rng: np.random.Generator,
    rnd: int,
    side: int,
    only: int | None = None,
) -> list[Stroke]:
    known = truth.labels != 0 if only is None else truth.labels == only
    cand = np.flatnonzero(known & (labels == 0))
    out = []
    for i in rng.permutation(len(cand))[:n]:
        cy, cx = np.unravel_index(cand[i], labels.shape)
        lab = int(truth.labels[cy, cx])
        px = paint(labels, truth, (int(cy), int(cx)), side)
        ds = truth.downsample
        out.append(Stroke(rnd, (int(cy * ds), int(cx * ds)), lab, px))
    return out


def _suggested_strokes(
    labels: np.ndarray,
    truth: Truth,
    maps: Maps,
    config: SimulationConfig,
    rnd: int,
    strategy: str,
    features: np.ndarray | None,
    rng: np.random.Generator | None,
) -> list[Stroke]:
    """Strokes in the cells ``strategy`` picks with ``suggest_regions`` (``features``: the
    cells' mean features, for ``suggested`` and ``representative``)."""
    from ..features import suggest_regions  # torch: evaluation stays light to import

    ds = truth.downsample
    known = truth.labels != 0
    kwargs: dict[str, Any] = {}
    if strategy in ("suggested", "representative"):
        kwargs["features"] = features
        kwargs["seed"] = 0 if rng is None else int(rng.integers(2**31))
        if strategy == "representative":
            kwargs["uncertainty_weight"] = 0.0
        elif config.uncertainty_weight is not None:
            kwargs["uncertainty_weight"] = config.uncertainty_weight
    else:
        kwargs["distance_scale"] = config.distance_scale if strategy != "uncertainty" else 1e-9
    suggestions = suggest_regions(
        maps.uncertainty,
        maps.out_downsample,
        maps.origin,
        labels,
        ds,
        (known, ds),
        k=config.k * 4 if strategy != "sampled" else maps.uncertainty.size,
        cell=config.cell,
        **kwargs,
    )
    if strategy == "sampled" and suggestions and rng is not None:
        p = np.array([s.score for s in suggestions])
        order = rng.choice(len(p), size=len(p), replace=False, p=p / p.sum())
        suggestions = [suggestions[i] for i in order]
    out: list[Stroke] = []
    for s in suggestions:
        if len(out) == config.k:
            break
        y0, x0, y1, x1 = s.box
        clip = (
            int(np.ceil(y0 / ds - 0.5)),
            int(np.ceil(x0 / ds - 0.5)),
            int(np.ceil(y1 / ds - 0.5)),
            int(np.ceil(x1 / ds - 0.5)),
        )
        sub = known[clip[0] : clip[2], clip[1] : clip[3]] & (
            labels[clip[0] : clip[2], clip[1] : clip[3]] == 0
        )
        ys, xs = np.nonzero(sub)
        if len(ys) == 0:
            continue
        ys, xs = ys + clip[0], xs + clip[1]
        u = maps.at(maps.uncertainty, ys, xs, ds)
        i = int(np.argmax(u))
        cy, cx = int(ys[i]), int(xs[i])
        lab = int(truth.labels[cy, cx])
        px = paint(labels, truth, (cy, cx), config.stroke, clip)
        out.append(Stroke(rnd, (int(cy * ds), int(cx * ds)), lab, px, s.box))
    return out


def known_cell_features(cache: Any, truth: Truth, cell: int) -> np.ndarray:
    """The cells' mean features over the known pixels (``features.cell_features``)."""
    from ..features.suggest import _resample, cell_features

    grid = cache.grid
    known = _resample(
        truth.labels != 0, truth.downsample, grid.shape, grid.out_downsample, grid.origin
    )
    return cell_features(cache, cell, known)


@dataclass
class Run:
    strategy: str
    seed: int
    quality: list[dict[str, float]] = field(default_factory=list)
    strokes: list[Stroke] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)


def simulate_run(
    cache: Any,
    truth: Truth,
    strategy: str,
    seed: int,
    config: SimulationConfig,
    out_dir: str | Path,
    head_config: Any = None,
) -> Run:
    """One simulated user (``strategy``, ``seed``) over ``config.rounds`` rounds on ``cache``."""
    from dataclasses import replace

    from ..features import HeadConfig, Refiner  # torch: evaluation stays light to import

    out_dir = Path(out_dir)
    rng = np.random.default_rng(seed)
    hc = replace(head_config or HeadConfig(), seed=seed)
    refiner = Refiner(cache, hc)
    labels = np.zeros(truth.labels.shape, np.uint8)
    run = Run(strategy, seed)
    for v in (1, 2):  # round 0: one random stroke of each class, the same for every strategy
        run.strokes += _random_strokes(labels, truth, 1, rng, 0, config.stroke, only=v)
    strategy_rng = np.random.default_rng([seed, STRATEGIES.index(strategy)])
    features = None
    if strategy in ("suggested", "representative"):
        features = known_cell_features(refiner.cache, truth, config.cell)
    last_store: Path | None = None
    maps: Maps | None = None
    for rnd in range(config.rounds + 1):
        if rnd > 0:
            assert maps is not None
            if strategy == "random":
                new = _random_strokes(labels, truth, config.k, strategy_rng, rnd, config.stroke)
            else:
                new = _suggested_strokes(
                    labels, truth, maps, config, rnd, strategy, features, strategy_rng
                )
            run.strokes += new
        t0 = time.perf_counter()
        result = refiner.refine(labels, truth.downsample, out_dir, head_path=out_dir / "head.pt")
        run.seconds.append(time.perf_counter() - t0)
        if last_store is not None and last_store != result.store:
            shutil.rmtree(last_store, ignore_errors=True)
        last_store = result.store
        maps = Maps.read(result.store)
        q = quality(maps, truth, labels != 0)
        q["val_balanced_accuracy"] = float(result.metrics.get("val_balanced_accuracy", np.nan))
        run.quality.append(q)
    return run


def summarise(runs: list[Run], metric: str = "auc") -> dict[str, dict[str, list[float]]]:
    """Per strategy: mean, min and max over seeds of ``metric`` at each round."""
    out = {}
    for strategy in dict.fromkeys(r.strategy for r in runs):
        a = np.array([[q[metric] for q in r.quality] for r in runs if r.strategy == strategy])
        out[strategy] = {
            "mean": a.mean(0).tolist(),
            "min": a.min(0).tolist(),
            "max": a.max(0).tolist(),
            "seeds": len(a),
        }
    return out


def simulate(
    cache: Any,
    truth: Truth,
    config: SimulationConfig,
    out_dir: str | Path,
    head_config: Any = None,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Every strategy and seed of ``config``; returns a JSON-ready summary (runs, curves)."""
    runs = []
    for seed in config.seeds:
        for strategy in config.strategies:
            t0 = time.perf_counter()
            run = simulate_run(
                cache,
                truth,
                strategy,
                seed,
                config,
                Path(out_dir) / f"{strategy}_{seed}",
                head_config,
            )
            runs.append(run)
            if log:
                aucs = " ".join(f"{q['auc']:.3f}" for q in run.quality)
                log(
                    f"{strategy} seed {seed}: auc by round {aucs} ({time.perf_counter() - t0:.0f} s)"
                )
    metrics = ["auc"] + [m for m in ("auc_unpainted", "dice") if m in runs[0].quality[0]]
    return {
        "config": {**asdict(config), "seeds": list(config.seeds)},
        "curves": {m: summarise(runs, m) for m in metrics},
        "runs": [
            {
                "strategy": r.strategy,
                "seed": r.seed,
                "quality": r.quality,
                "refine_s": r.seconds,
                "strokes": [asdict(s) for s in r.strokes],
            }
            for r in runs
        ],
    }
