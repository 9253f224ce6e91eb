"""Linear-probe comparison of the pretraining objectives on PatchCamelyon.

For each objective: pretrain a small ``resnet34-ae`` on every patch of ``pcam/train`` (no
labels) for the same number of steps, then fit a logistic regression on the pooled encoder
features of a labelled fraction of ``pcam/train`` (class-balanced, one draw per seed) and score
its AUC on ``pcam/valid`` with a bootstrap interval. "none" is the same encoder at random
initialisation (no pretraining), its batch-norm statistics set by forward passes over pool
patches (without them a random encoder's activations are badly scaled, which is not what
pretraining is being compared with). Writes a JSON of the figures and prints a markdown table.

Usage, from the repository root (the checkpoints are reused when present):

    PYTHONPATH=src .venv/bin/python docs/scripts/objectives_probe.py OUT_DIR \
        [--steps 300] [--width 16] [--fraction 0.1] [--seeds 3]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "pcam"
OBJECTIVES = ("none", "l1", "mim", "stain", "cross-stain")


def pretrain_one(objective: str, args: argparse.Namespace, out: Path) -> tuple[Path, float]:
    from napari_wsi_ssl.events import run_to_end
    from napari_wsi_ssl.training import PretrainConfig, pretrain

    ckpt = out / f"{objective}.pt"
    cfg = PretrainConfig(
        preset="resnet34-ae",
        objective=objective,
        width=args.width,
        mpp=None,
        patch_size=96,
        batch_size=args.batch_size,
        lr=args.lr,
        steps=args.steps,
        device="cpu",
        precision="fp32",
        seed=0,
        preview_every=0,
    )
    t0 = time.monotonic()
    if not ckpt.is_file():
        run_to_end(pretrain([DATA / "train"], cfg, ckpt))
    return ckpt, time.monotonic() - t0


@torch.no_grad()
def calibrate_batch_norm(model: torch.nn.Module, paths: list[Path], batches: int = 30) -> None:
    """Set a random model's batch-norm running statistics from forward passes over ``paths``."""
    model.train()
    for k in range(batches):
        model.forward_features(load(paths[k * 32 : (k + 1) * 32]))  # type: ignore[operator]
    model.eval()


def load(paths: list[Path]) -> torch.Tensor:
    from PIL import Image

    arrays = [np.asarray(Image.open(p).convert("RGB")) for p in paths]
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float() / 255.0


def read_split(split: str) -> tuple[list[Path], np.ndarray]:
    rows = (DATA / split / "labels.csv").read_text().splitlines()[1:]
    paths = [DATA / split / r.split(",")[0] for r in rows]
    return paths, np.array([int(r.split(",")[2]) for r in rows])


@torch.no_grad()
def features(model: torch.nn.Module, paths: list[Path], batch: int = 128) -> np.ndarray:
    """Global-average-pooled encoder features of stages at strides 8, 16 and 32, concatenated."""
    model.eval()
    out = []
    for s in range(0, len(paths), batch):
        feats = model.forward_features(load(paths[s : s + batch]))  # type: ignore[operator]
        out.append(torch.cat([f.mean(dim=(2, 3)) for f in feats[2:]], 1).numpy())
    return np.concatenate(out)


def probe(
    f_train: np.ndarray, y_train: np.ndarray, f_valid: np.ndarray, y_valid: np.ndarray
) -> np.ndarray:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    clf = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000))
    clf.fit(f_train, y_train)
    return clf.predict_proba(f_valid)[:, 1]


def compare(out: Path, valid_y: np.ndarray) -> None:
    """Paired bootstrap of each objective's AUC minus the ``l1`` one, per labelled draw.

    Both probes score the same validation patches, so resampling them together gives the
    interval of the difference (tighter than comparing two separate intervals).
    """
    from napari_wsi_ssl.metrics import bootstrap_ci, roc_auc

    if not (out / "scores-l1.npy").is_file():
        return
    base = np.load(out / "scores-l1.npy")

    def gap(y: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
        return roc_auc(y, a) - roc_auc(y, b)

    print("\n| objective | AUC minus l1's, per draw (paired 95 % CI) |\n|---|---|")
    for path in sorted(out.glob("scores-*.npy")):
        name = path.stem[len("scores-") :]
        if name == "l1":
            continue
        other = np.load(path)
        cells = []
        for seed in range(min(len(base), len(other))):
            lo, hi = bootstrap_ci(gap, valid_y, other[seed], base[seed], n=1000, seed=seed)
            cells.append(f"{gap(valid_y, other[seed], base[seed]):+.3f} ({lo:+.3f} to {hi:+.3f})")
        print(f"| {name} | {', '.join(cells)} |")


def main() -> None:
    from napari_wsi_ssl.metrics import bootstrap_ci, roc_auc
    from napari_wsi_ssl.models import build_model, load_checkpoint

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--width", type=int, default=16)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--fraction", type=float, default=0.1)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--objectives", nargs="*", default=list(OBJECTIVES))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)

    train_paths, train_y = read_split("train")
    valid_paths, valid_y = read_split("valid")
    per_class = int(round(args.fraction * len(train_y) / 2))
    draws = []
    for seed in range(args.seeds):
        rng = np.random.default_rng(seed)
        draws.append(
            np.concatenate(
                [rng.choice(np.flatnonzero(train_y == c), per_class, replace=False) for c in (0, 1)]
            )
        )
    used = np.unique(np.concatenate(draws))
    where = {int(k): i for i, k in enumerate(used)}

    results = {}
    for objective in args.objectives:
        if objective == "none":
            torch.manual_seed(0)
            model, seconds = build_model("resnet34-ae", width=args.width), 0.0
            rng = np.random.default_rng(0)
            calibrate_batch_norm(model, [train_paths[k] for k in rng.permutation(len(train_paths))])
        else:
            ckpt, seconds = pretrain_one(objective, args, args.out)
            model = load_checkpoint(ckpt).model
        f_used = features(model, [train_paths[k] for k in used])
        f_valid = features(model, valid_paths)
        aucs, cis, scores = [], [], []
        for seed, draw in enumerate(draws):
            rows = [where[int(k)] for k in draw]
            score = probe(f_used[rows], train_y[draw], f_valid, valid_y)
            scores.append(score)
            aucs.append(roc_auc(valid_y, score))
            cis.append(bootstrap_ci(roc_auc, valid_y, score, n=1000, seed=seed))
        np.save(args.out / f"scores-{objective}.npy", np.stack(scores))
        results[objective] = {
            "auc": aucs,
            "ci": cis,
            "mean_auc": float(np.mean(aucs)),
            "pretrain_s": round(seconds, 1),
        }
        print(objective, json.dumps(results[objective]), flush=True)
    compare(args.out, valid_y)
    if not results:  # only the comparison of earlier runs was asked for
        return
    meta = {k: v for k, v in vars(args).items() if k != "out"}
    (args.out / f"probe-{'-'.join(args.objectives)}.json").write_text(
        json.dumps({"args": meta, "results": results}, indent=1)
    )
    print("\n| objective | probe AUC per seed (95 % CI) | mean AUC | pretraining s |")
    print("|---|---|---|---|")
    for objective, r in results.items():
        cells = ", ".join(
            f"{a:.3f} ({lo:.3f}-{hi:.3f})" for a, (lo, hi) in zip(r["auc"], r["ci"], strict=True)
        )
        print(f"| {objective} | {cells} | {r['mean_auc']:.3f} | {r['pretrain_s']:.0f} |")


if __name__ == "__main__":
    main()
