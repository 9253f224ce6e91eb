"""Fast-mode quality on real tissue: PCam mosaics, strokes on one, per-patch AUC on another.

Two mosaics of disjoint, class-balanced patches from ../shared/data/pcam/valid (seed 0) are
written as tiled pyramidal TIFFs at 0.97 um/px; each patch's centre 32 x 32 px carries its label
(1 tumour, 2 normal) in a mask, 0 elsewhere. The fast mode trains a head on mosaic A's centres
(the "strokes") and predicts mosaic B; a patch's score is the mean tumour probability over its
centre, and the AUC is taken against its label.

Usage, from the repository root:
    .venv/bin/python docs/scripts/pcam_mosaic.py OUT_DIR [--side 36] [--runs colour untrained ...]
Runs: ``colour`` (colour and texture only), ``untrained`` (a full-width ResNet34 with random
weights, seed 0, plus colour), ``pretrained:CKPT`` (any checkpoint's encoder, plus colour);
``@pca64``/``@random32`` suffixes change the reduction (e.g. ``untrained@pca64``).
``OUT_DIR/results.json`` keeps the runs of every call on that folder. ``--compare A B [C D ...]``
only prints the held-out AUC differences of runs already made (A minus B ...), each with a
paired bootstrap interval.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from napari_wsi_ssl.evaluation.mosaic import (
    CENTRE,
    MPP,
    PATCH,
    centre_mask,
    mosaic_files,
    write_mosaic,
)

PCAM = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "pcam" / "valid"


def patch_scores(store: Path, side: int) -> np.ndarray:
    """Mean tumour probability over each patch's centre (the map is at ``out_downsample``)."""
    import zarr

    root = zarr.open_group(str(store), mode="r")
    ds = root.attrs["napari_wsi_ssl"]["feature_grid"]["out_downsample"]
    prob = root["tumour"]["0"][:].astype(np.float32) / 255.0
    o = (PATCH - CENTRE) // 2
    scores = np.zeros((side, side), np.float32)
    for r in range(side):
        for c in range(side):
            y0, x0 = int((r * PATCH + o) / ds), int((c * PATCH + o) / ds)
            n = max(1, int(CENTRE / ds))
            scores[r, c] = prob[y0 : y0 + n, x0 : x0 + n].mean()
    return scores


def interval(truth: np.ndarray, a: np.ndarray, b: np.ndarray | None = None) -> list[float]:
    """95 % bootstrap interval over the test patches of the AUC of scores ``a``, or of the AUC
    difference ``a`` minus ``b`` (paired: the same resamples; 1,000 of them, seed 1, skipping
    those holding one class only)."""
    from sklearn.metrics import roc_auc_score

    boot, values = np.random.default_rng(1), []
    for _ in range(1000):
        i = boot.integers(0, len(truth), len(truth))
        if 0 < truth[i].sum() < len(i):
            v = roc_auc_score(truth[i], a[i])
            values.append(v if b is None else v - roc_auc_score(truth[i], b[i]))
    return [float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))]


def work_dir(out: Path, run: str) -> Path:
    return out / run.replace(":", "_").replace("/", "_").replace("@", "_")


def compare(out: Path, side: int, pairs: list[str]) -> None:
    """AUC differences on the held-out mosaic, each with a paired 95 % bootstrap interval over
    its patches (the same resamples for both runs); ``pairs`` alternate run A, run B."""
    from sklearn.metrics import roc_auc_score

    files = mosaic_files(PCAM, side, count=2, seed=0)[1]
    truth = np.array([label for _, label in files[: side * side]])
    for a, b in zip(pairs[::2], pairs[1::2], strict=True):
        sa, sb = (
            patch_scores(next((work_dir(out, r) / "test").glob("*.ome.zarr")), side).ravel()
            for r in (a, b)
        )
        d = roc_auc_score(truth, sa) - roc_auc_score(truth, sb)
        lo, hi = interval(truth, sa, sb)
        print(f"{a} - {b}: {d:+.3f} ({lo:+.3f} to {hi:+.3f})", flush=True)


def encoder_for(run: str, out: Path) -> Path | None:
    import torch

    from napari_wsi_ssl.models import build_model, save_checkpoint

    kind = run.partition("@")[0].split(":")[0]
    if kind == "colour":
        return None
    if kind == "untrained":
        path = out / "untrained_resnet34.pt"
        if not path.is_file():
            torch.manual_seed(0)
            model = build_model("unet-resnet34", "reconstruct", width=64)
            save_checkpoint(path, model, mpp=MPP, patch_size=256)
        return path
    return Path(run.partition("@")[0].split(":", 1)[1])


def main() -> None:
    from sklearn.metrics import roc_auc_score

    from napari_wsi_ssl.events import run_to_end
    from napari_wsi_ssl.features import FeatureConfig, HeadConfig, fast_finetune, predict_head
    from napari_wsi_ssl.features.config import LINEAR_HEAD

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--side", type=int, default=36, help="patches per mosaic side")
    ap.add_argument("--runs", nargs="+", default=["colour", "untrained"])
    ap.add_argument(
        "--head",
        default="mlp",
        choices=["mlp", "linear"],
        help="mlp: the fast mode's default head; linear: the first default (LINEAR_HEAD)",
    )
    ap.add_argument("--stride", type=int, default=8)
    ap.add_argument("--no-colour", action="store_true", help="encoder channels only")
    ap.add_argument(
        "--compare",
        nargs="+",
        metavar="RUN",
        help="RUN_A RUN_B ...: only print the held-out AUC differences of runs already made",
    )
    args = ap.parse_args()
    out: Path = args.out
    if args.compare:
        compare(out, args.side, args.compare)
        return
    out.mkdir(parents=True, exist_ok=True)
    mosaics = {}
    for name, files in zip(
        ("paint", "test"), mosaic_files(PCAM, args.side, count=2, seed=0), strict=True
    ):
        path = out / f"mosaic_{name}.tif"
        mosaics[name] = (path, write_mosaic(files, args.side, path))
    strokes = centre_mask(mosaics["paint"][1])
    saved = out / "results.json"  # runs of earlier calls on the same OUT_DIR are kept
    results = json.loads(saved.read_text()) if saved.is_file() else {}
    for run in args.runs:
        enc = encoder_for(run, out)
        cfg = FeatureConfig(
            mpp=MPP, stride=args.stride, tissue_only=False, colour=not args.no_colour
        )
        opt = run.partition("@")[2]
        if opt:
            kind = "pca" if opt.startswith("pca") else "random"
            cfg = replace(cfg, reduce=kind, channels=int(opt[len(kind) :]))
        work = work_dir(out, run)
        t0 = time.perf_counter()
        res = run_to_end(
            fast_finetune(
                mosaics["paint"][0],
                strokes,
                1.0,
                enc,
                work,
                cfg,
                head_config=LINEAR_HEAD if args.head == "linear" else HeadConfig(),
            )
        )
        t1 = time.perf_counter()
        store = run_to_end(predict_head(mosaics["test"][0], res.head, work / "test"))
        t2 = time.perf_counter()
        truth = mosaics["test"][1].ravel()
        scores = patch_scores(store, args.side).ravel()
        auc = float(roc_auc_score(truth, scores))
        paint_auc = float(
            roc_auc_score(mosaics["paint"][1].ravel(), patch_scores(res.store, args.side).ravel())
        )
        results[run] = {
            "auc_test": auc,
            "auc_test_95": interval(truth, scores),
            "auc_paint": paint_auc,
            "val_balanced_accuracy": res.metrics.get("val_balanced_accuracy"),
            "cache_paint_s": res.seconds["cache_s"],
            "head_s": res.seconds["train_s"],
            "map_s": res.seconds["map_s"],
            "paint_total_s": t1 - t0,
            "test_cache_and_map_s": t2 - t1,
            "channels": cfg.channels,
            "reduce": cfg.reduce,
            "stride": cfg.stride,
            "colour": cfg.colour,
            "head": args.head,
        }
        print(run, json.dumps(results[run]), flush=True)
        saved.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
