"""``wsi-ssl finetune``: fine-tune from a mask, GeoJSON, labelled patch folder or nuclei folder."""

from __future__ import annotations

import argparse
from typing import Any

from .. import recent
from ..errors import AnnotationError
from ..evaluation.data import find_nuclei_pairs, holdout_images
from ..geometry import Rect
from ..vocab import Mode, Preset, Task
from ._pixels import add_slide_mpp, checkpoint_mpp, require_pixel_size
from ._progress import drive
from .pretrain import add_budget, add_common, budget_of, drive_training

#: The task each kind of data fits.
DATA_TASK = {"slide": Task.SEGMENT, "patches": Task.CLASSIFY, "nuclei": Task.NUCLEI}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    start = parser.add_mutually_exclusive_group(required=True)
    start.add_argument("--init", metavar="CKPT", help="pretrained checkpoint")
    start.add_argument(
        "--scratch", action="store_true", help="random initialisation (the baseline)"
    )
    data = parser.add_mutually_exclusive_group(required=True)
    data.add_argument(
        "--slide",
        action="append",
        help="slide to sample patches from (with --mask); repeat --slide S --mask M for several",
    )
    data.add_argument("--patches", metavar="DIR", help="labelled patch folder: DIR/0, DIR/1 ...")
    data.add_argument(
        "--nuclei",
        metavar="DIR",
        help="DIR/images and DIR/masks_instance_png (the images' µm/px: --slide-mpp)",
    )
    parser.add_argument(
        "--mask",
        action="append",
        metavar="MASK_OR_GEOJSON",
        help="label mask (TIFF/PNG) or GeoJSON over the --slide before it",
    )
    parser.add_argument(
        "--region",
        type=int,
        nargs=4,
        metavar=("X", "Y", "W", "H"),
        help="level-0 rectangle (one slide only)",
    )
    parser.add_argument("-o", "--output", required=True, metavar="CKPT")
    parser.add_argument(
        "--task", choices=[t.value for t in DATA_TASK.values()], help="default: from the data"
    )
    parser.add_argument(
        "--mode",
        choices=[*Mode.values(), "fast"],
        default=None,
        help="fast: a light head on the slide's feature cache (--scratch: colour features only); "
        "-o is the head checkpoint, its map store and the cache go beside it",
    )
    parser.add_argument(
        "--preset",
        default=Preset.UNET_RESNET34.value,
        choices=Preset.values(),
        help="with --scratch",
    )
    parser.add_argument("--width", type=int, default=64, help="with --scratch")
    parser.add_argument(
        "--mpp", type=float, default=None, help="working resolution in µm/px (default: --init's)"
    )
    add_slide_mpp(parser)
    parser.add_argument(
        "--holdout",
        type=int,
        default=0,
        metavar="N",
        help="with --nuclei: keep N images out of training (score them: evaluate --holdout N)",
    )
    parser.add_argument("--patch-size", type=int, default=None)
    parser.add_argument("--label-fraction", type=float, default=1.0)
    parser.add_argument(
        "--num-patches", type=int, default=512, help="patches drawn from a slide mask"
    )
    parser.add_argument("--recon-weight", type=float, default=1.0)
    cluster = parser.add_mutually_exclusive_group()
    cluster.add_argument(
        "--cache-workers",
        type=int,
        default=None,
        metavar="N",
        help="with --mode fast: build the feature cache on a local dask cluster of N processes",
    )
    cluster.add_argument(
        "--scheduler",
        default=None,
        metavar="ADDRESS",
        help="with --mode fast: build the feature cache on this dask scheduler's workers",
    )
    parser.add_argument(
        "--tiles-per-task",
        type=int,
        default=None,
        metavar="N",
        help="with --cache-workers/--scheduler: feature cache tiles per task (default 16)",
    )
    add_budget(parser)
    add_common(parser)


def run(args: argparse.Namespace) -> dict[str, Any]:
    # torch: the CLI's parser imports every cli module
    from ..training import FinetuneConfig, FinetuneData, finetune

    if args.slide:
        data = _slide_data(args)
    elif args.patches:
        data = FinetuneData.from_patches(args.patches)
    else:
        stems = [image.stem for image, _ in find_nuclei_pairs(args.nuclei)]
        held = holdout_images(stems, args.holdout, args.nuclei) if args.holdout else []
        data = FinetuneData.from_nuclei(args.nuclei, mpp=args.slide_mpp, exclude=held)
    if args.mode == "fast":
        return _fast(args, data)
    task = args.task or DATA_TASK[data.kind].value
    mode = args.mode or (Mode.SCRATCH if args.scratch else Mode.FULL).value
    cfg = FinetuneConfig(
        task=task,
        mode=mode,
        preset=args.preset,
        width=args.width,
        mpp=args.mpp,
        patch_size=args.patch_size,
        batch_size=args.batch_size,
        lr=args.lr,
        budget=budget_of(args) or FinetuneConfig.budget,
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
    from ..models import load_checkpoint  # torch: the CLI's parser imports every cli module

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


def _slide_data(args: argparse.Namespace) -> Any:
    """The ``--slide S --mask M`` pairs as one ``FinetuneData`` (classes unified by name)."""
    from ..training import FinetuneData  # torch: the CLI's parser imports every cli module

    slides, masks = list(args.slide), list(args.mask or [])
    if len(masks) != len(slides):
        raise AnnotationError(
            f"{len(slides)} --slide but {len(masks)} --mask: give each slide its mask, "
            "--slide S --mask M",
            slides[len(masks)] if len(masks) < len(slides) else masks[-1],
        )
    if args.region and len(slides) > 1:
        raise AnnotationError("--region limits one slide; leave it out with several", slides[1])
    region = Rect.from_xywh(*args.region) if args.region else None
    working = args.mpp if args.mpp is not None else checkpoint_mpp(args.init)
    require_pixel_size(slides, args.slide_mpp, needed=working is not None)
    return FinetuneData.several(
        [
            FinetuneData.from_mask_file(s, m, region, slide_mpp=args.slide_mpp)
            for s, m in zip(slides, masks, strict=True)
        ]
    )


def _fast(args: argparse.Namespace, data: Any) -> dict[str, Any]:
    """``--mode fast``: the slide's feature cache, a head on the painted pixels and its map."""
    from pathlib import Path

    # torch: the CLI's parser imports every cli module
    from ..features import FeatureConfig, HeadConfig, SlideStrokes, fast_finetune_many

    if data.kind != "slide" or data.labels is None:
        raise AnnotationError("--mode fast needs --slide and --mask", args.output)
    steps = args.steps or HeadConfig().steps
    parts = data.slides()
    encoder = None if args.scratch else args.init
    config = FeatureConfig(mpp=args.mpp, slide_mpp=data.slide_mpp, device=args.device)
    if args.cache_workers is not None or args.scheduler is not None:
        from ..features import build_caches_distributed

        cache = build_caches_distributed(
            [(p.slide, p.slide_mpp) for p in parts],
            encoder,
            Path(args.output).parent,
            config,
            workers=args.cache_workers,
            scheduler=args.scheduler,
            tiles_per_task=args.tiles_per_task,
        )
        drive(cache, "feature cache")
    gen = fast_finetune_many(
        [SlideStrokes(p.slide, p.labels, p.labels_downsample, p.slide_mpp) for p in parts],
        encoder,
        Path(args.output).parent,
        config,
        head_config=HeadConfig(steps=steps, seed=args.seed),
        class_names=dict(data.class_names) if data.class_names else None,
        head_path=args.output,
    )
    result = drive(gen, "finetune")
    recent.record("finetune", result.head, source="cli", task="fast")
    return {
        "mode": "fast",
        "checkpoint": str(result.head),
        "map": str(result.store),
        "maps": {str(k): str(v) for k, v in result.maps.items()},
        "cache": str(result.cache),
        "validation": result.metrics,
        "seconds": result.seconds,
    }
