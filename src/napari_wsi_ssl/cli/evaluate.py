"""``wsi-ssl evaluate``: metrics and plots of a model on labelled patches, a slide mask or nuclei.

Writes ``report.json`` and PNG plots to ``-o OUT_DIR``; with ``--json`` the last stdout line is
the metrics object (``accuracy, precision, recall, f1, auc, confusion`` for patches; ``miou,
pixel_f1`` for masks; ``dice, aji, pq`` for nuclei), with ``ci`` the bootstrap 95% intervals.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..errors import WsiSslError
from ..evaluation import report
from ..evaluation.data import find_nuclei_pairs, holdout_images
from ..inference import PredictConfig
from ._pixels import add_slide_mpp, checkpoint_mpp, require_pixel_size
from ._progress import drive

# bulky entries that stay in report.json but not on the terminal
_REPORT_ONLY = ("roc", "per_image")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model", type=Path, help="checkpoint (.pt); optional with --nuclei (classical watershed)"
    )
    data = parser.add_mutually_exclusive_group(required=True)
    data.add_argument(
        "--patches", type=Path, metavar="DIR", help="labelled patch folder (class sub-folders)"
    )
    data.add_argument("--slide", type=Path, metavar="S", help="a slide, evaluated against --mask")
    data.add_argument(
        "--nuclei", type=Path, metavar="DIR", help="folder with images/ and instance masks"
    )
    parser.add_argument(
        "--mask", type=Path, metavar="M", help="ground-truth tumour mask of --slide (1 = tumour)"
    )
    parser.add_argument(
        "-o", "--out", type=Path, required=True, metavar="OUT_DIR", help="report folder"
    )
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or mps (default auto)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--split", help="with a labels.csv: evaluate only rows of this split")
    parser.add_argument(
        "--limit", type=int, help="evaluate a class-stratified subset of this many items"
    )
    parser.add_argument(
        "--mpp",
        type=float,
        help="µm per pixel of nuclei images (default: the model's, or estimated)",
    )
    parser.add_argument(
        "--holdout",
        type=int,
        default=0,
        metavar="N",
        help="with --nuclei: score only the N images that 'finetune --holdout N' kept out",
    )
    parser.add_argument(
        "--tta",
        action="store_true",
        help="with --nuclei --model: average over the 8 rotations and flips (8 times slower)",
    )
    add_slide_mpp(parser)
    parser.add_argument(
        "--ignore-label",
        type=int,
        help="mask value of unlabelled pixels (e.g. 0 for annotation layers)",
    )
    parser.add_argument(
        "--threshold", type=float, default=0.5, help="tumour probability threshold of masks"
    )
    parser.add_argument(
        "--bootstrap", type=int, default=1000, help="bootstrap resamples for the 95%% intervals"
    )
    parser.add_argument("--seed", type=int, default=0)


def run(args: argparse.Namespace) -> dict[str, Any]:
    common = {"out_dir": args.out, "n_boot": args.bootstrap, "seed": args.seed}
    if args.patches is not None:
        if args.model is None:
            raise WsiSslError(
                "--patches needs --model", hint="give a fine-tuned classification checkpoint"
            )
        gen = report.iter_evaluate_patches(
            args.model,
            args.patches,
            device=args.device,
            batch_size=args.batch_size,
            split=args.split,
            limit=args.limit,
            **common,
        )
    elif args.slide is not None:
        if args.model is None or args.mask is None:
            raise WsiSslError(
                "--slide needs --model and --mask", hint="give the checkpoint and the tumour mask"
            )

        needed = checkpoint_mpp(args.model) is not None
        require_pixel_size([args.slide], args.slide_mpp, needed)
        gen = report.iter_evaluate_slide_mask(
            args.model,
            args.slide,
            args.mask,
            config=PredictConfig(device=args.device, slide_mpp=args.slide_mpp),
            ignore_label=args.ignore_label,
            threshold=args.threshold,
            **common,
        )
    else:
        images = None
        if args.holdout:
            stems = [image.stem for image, _ in find_nuclei_pairs(args.nuclei)]
            images = holdout_images(stems, args.holdout, args.nuclei)
        gen = report.iter_evaluate_nuclei(
            args.nuclei,
            args.model,
            device=args.device,
            mpp=args.mpp,
            limit=args.limit,
            images=images,
            tta=args.tta,
            **common,
        )
    result = drive(gen, "evaluate")
    summary = {k: v for k, v in report.clean(result).items() if k not in _REPORT_ONLY}
    _print_table(summary)
    return summary


def _print_table(summary: dict[str, Any]) -> None:
    ci = summary.get("ci", {})
    print(f"{summary.get('kind', 'report')}: {summary.get('report')}")
    for key, (low, high) in ci.items():
        value = summary.get(key)
        if value is None:
            print(f"  {key:18s}     n/a")
            continue
        interval = f"[{low:.3f}, {high:.3f}]" if low is not None and high is not None else ""
        print(f"  {key:18s} {value:7.3f}  {interval}")
