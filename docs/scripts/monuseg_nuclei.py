"""Build the learned nuclei model on MoNuSeg and compare it with the classical watershed.

Trains ``wsi-ssl finetune --task nuclei`` on the MoNuSeg images that ``--holdout`` leaves in
(the images are 0.25 µm/px; the model works at ``--mpp``), scores the model and the classical
watershed with ``wsi-ssl evaluate --holdout`` on the held-out images only (AJI, PQ, Dice, 95%
bootstrap intervals), and writes the comparison beside the checkpoint (``<ckpt>.json``), where
the Predict dock reads which nuclei method is the better default.

Usage, from the repository root (defaults: the documented build, CPU):

    .venv/bin/python docs/scripts/monuseg_nuclei.py [-o ~/.cache/napari-wsi-ssl/models/nuclei.pt]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
from pathlib import Path
from typing import Any

from napari_wsi_ssl.cli import main as wsi_ssl
from napari_wsi_ssl.inference.nuclei_choice import NUCLEI_MODEL, write_scores

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "nuclei"
MONUSEG = DATA / "monuseg_train_partial"
KEYS = ("aji", "pq", "dice")


def _run(argv: list[str]) -> dict[str, Any]:
    """One ``wsi-ssl`` command with ``--json``; its last stdout line, parsed."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rc = wsi_ssl([*argv, "--json"])
    if rc != 0:
        raise SystemExit(f"wsi-ssl {argv[0]} failed ({rc})")
    return dict(json.loads(out.getvalue().strip().splitlines()[-1]))


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", type=Path, default=MONUSEG, help="images/ and masks_instance_png/")
    p.add_argument("-o", "--output", type=Path, default=NUCLEI_MODEL, help="the checkpoint")
    p.add_argument("--image-mpp", type=float, default=0.25, help="the images' µm/px")
    p.add_argument("--mpp", type=float, default=0.5, help="the model's µm/px")
    p.add_argument("--holdout", type=int, default=4, help="images kept out and scored")
    p.add_argument("--steps", type=int, default=1200)
    p.add_argument("--width", type=int, default=16)
    p.add_argument("--patch-size", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--num-patches", type=int, default=512, help="crops per epoch")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--no-train", action="store_true", help="score an existing -o checkpoint")
    return p.parse_args(argv)


def build(args: argparse.Namespace) -> dict[str, Any]:
    """Train, score both methods on the held-out images, record the comparison."""
    data, ckpt = str(args.data), str(args.output)
    # fmt: off
    train = [
        "finetune", "--scratch", "--nuclei", data, "--slide-mpp", str(args.image_mpp),
        "--mpp", str(args.mpp), "--holdout", str(args.holdout), "--width", str(args.width),
        "--patch-size", str(args.patch_size), "--batch-size", str(args.batch_size),
        "--lr", str(args.lr), "--steps", str(args.steps), "--num-patches", str(args.num_patches),
        "--recon-weight", "0", "--seed", str(args.seed), "--device", args.device, "-o", ckpt,
    ]
    scored = ["evaluate", "--nuclei", data, "--mpp", str(args.image_mpp), "--holdout",
              str(args.holdout), "--device", args.device]
    # fmt: on
    if not args.no_train:
        _run(train)
    out = Path(ckpt).with_suffix("")
    learned = _run([*scored, "--model", ckpt, "-o", f"{out}_learned"])
    classical = _run([*scored, "-o", f"{out}_classical"])
    scores = {
        "data": data,
        "held_out_images": learned["n_images"],
        "image_mpp": args.image_mpp,
        "model_mpp": args.mpp,
        "learned": {k: learned[k] for k in KEYS} | {"ci": {k: learned["ci"][k] for k in KEYS}},
        "classical": {k: classical[k] for k in KEYS}
        | {"ci": {k: classical["ci"][k] for k in KEYS}},
        "settings": {k: str(v) for k, v in vars(args).items()},
    }
    write_scores(ckpt, scores)
    for name in ("learned", "classical"):
        row = scores[name]
        cells = [f"{row[k]:.3f} [{row['ci'][k][0]:.3f}, {row['ci'][k][1]:.3f}]" for k in KEYS]
        print(f"| {name} | " + " | ".join(cells) + " |")
    return scores


if __name__ == "__main__":
    build(parse(sys.argv[1:]))
