"""``wsi-ssl finetune``: fine-tune from a mask, GeoJSON, labelled patch folder or nuclei folder."""

from __future__ import annotations

import argparse
from typing import Any

from .pretrain import add_budget, add_common, drive_training


def add_arguments(parser: argparse.ArgumentParser) -> None:
    start = parser.add_mutually_exclusive_group(required=True)
    start.add_argument("--init", metavar="CKPT", help="pretrained checkpoint")
    start.add_argument(
        "--scratch", action="store_true", help="random initialisation (the baseline)"
    )
    data = parser.add_mutually_exclusive_group(required=True)
    data.add_argument("--slide", help="slide to sample patches from (with --mask)")
    data.add_argument("--patches", metavar="DIR", help="labelled patch folder: DIR/0, DIR/1 ...")
    data.add_argument("--nuclei", metavar="DIR", help="DIR/images and DIR/masks_instance_png")
    parser.add_argument(
        "--mask", metavar="MASK_OR_GEOJSON", help="label mask (TIFF/PNG) or GeoJSON over --slide"
    )
    parser.add_argument(
        "--region", type=int, nargs=4, metavar=("X", "Y", "W", "H"), help="level-0 rectangle"
    )
    parser.add_argument("-o", "--output", required=True, metavar="CKPT")
    parser.add_argument(
        "--task", choices=["segment", "classify", "nuclei"], help="default: from the data"
    )
    parser.add_argument("--mode", choices=["full", "frozen-encoder", "scratch"], default=None)
    parser.add_argument(
        "--preset",
        default="unet-resnet34",
        choices=["resnet34-ae", "unet-resnet34"],
        help="with --scratch",
    )
    parser.add_argument("--width", type=int, default=64, help="with --scratch")
    parser.add_argument("--mpp", type=float, default=None)
    parser.add_argument("--patch-size", type=int, default=None)
    parser.add_argument("--label-fraction", type=float, default=1.0)
    parser.add_argument(
        "--num-patches", type=int, default=512, help="patches drawn from a slide mask"
    )
    parser.add_argument("--recon-weight", type=float, default=1.0)
    add_budget(parser)
    add_common(parser)


def run(args: argparse.Namespace) -> dict[str, Any]:
    from ..errors import AnnotationError
    from ..training import FinetuneConfig, FinetuneData, finetune

    if args.slide:
        if not args.mask:
            raise AnnotationError("--slide needs --mask MASK_OR_GEOJSON", args.slide)
        data = FinetuneData.from_mask_file(
            args.slide, args.mask, tuple(args.region) if args.region else None
        )
    elif args.patches:
        data = FinetuneData.from_patches(args.patches)
    else:
        data = FinetuneData.from_nuclei(args.nuclei)
    task = args.task or {"slide": "segment", "patches": "classify", "nuclei": "nuclei"}[data.kind]
    mode = args.mode or ("scratch" if args.scratch else "full")
    cfg = FinetuneConfig(
        task=task,
        mode=mode,
        preset=args.preset,
        width=args.width,
        mpp=args.mpp,
        patch_size=args.patch_size,
        batch_size=args.batch_size,
        lr=args.lr,
        epochs=args.epochs,
        steps=args.steps,
        minutes=args.minutes,
        label_fraction=args.label_fraction,
        num_patches=args.num_patches,
        recon_weight=args.recon_weight,
        device=args.device,
        precision=args.precision,
        num_workers=args.workers,
        seed=args.seed,
        resume=args.resume,
    )
    init = None if args.scratch else args.init
    path, summary = drive_training(finetune(data, cfg, args.output, init=init), "finetune")
    from ..models import load_checkpoint

    ck = load_checkpoint(path)
    last = [e for e in ck.history.get("epoch", []) if "val_loss" in e]
    summary.update(
        {
            "task": task,
            "mode": mode,
            "classes": ck.class_names,
            "validation": last[-1] if last else None,
        }
    )
    return summary
