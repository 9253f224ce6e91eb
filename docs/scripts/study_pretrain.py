"""Pretrain one objective's encoder exactly as ``wsi-ssl study`` does, to run them in parallel.

The study pretrains its objectives one after the other. On a shared machine, this script runs
one objective per process with the study's own pool folder and pretraining call, writing the
checkpoint under the name the study looks for (``pretrained.pt`` for ``l1``,
``pretrained-<objective>.pt`` otherwise); link it into a study's output folder and the study
reuses it.

Usage, from the repository root:
    PYTHONPATH=src .venv/bin/python docs/scripts/study_pretrain.py OBJECTIVE OUT_DIR \
        [--steps 50] [--width 16] [--patch-size 64] [--batch-size 32]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from napari_wsi_ssl.evaluation._finetune import pretrain_patches
from napari_wsi_ssl.evaluation.data import read_patch_folder
from napari_wsi_ssl.evaluation.study import StudyConfig, _link_folder, pretrained_path
from napari_wsi_ssl.events import run_to_end
from napari_wsi_ssl.vocab import Budget

POOL = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "pcam" / "train"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("objective")
    ap.add_argument("out", type=Path)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--width", type=int, default=16)
    ap.add_argument("--patch-size", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=32)
    args = ap.parse_args()
    cfg = StudyConfig(
        objectives=(args.objective,),
        width=args.width,
        patch_size=args.patch_size,
        batch_size=args.batch_size,
        pretrain_budget=Budget(args.steps, "steps"),
        device="cpu",
    )
    patches = read_patch_folder(POOL)
    pool = np.arange(patches.labels.size)  # with --test, every patch is the pool
    pool_dir = _link_folder(args.out / f"work-{args.objective}" / "pool", patches, pool, False)
    path = pretrained_path(args.out, args.objective, cfg)
    assert path is not None, "objective none has nothing to pretrain"
    run_to_end(pretrain_patches(pool_dir, path, cfg, None, args.objective))
    print(path)


if __name__ == "__main__":
    main()
