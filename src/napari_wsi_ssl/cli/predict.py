"""``wsi-ssl predict``: tumour probability (and nuclei) of whole slides, to cached OME-Zarr."""

from __future__ import annotations

import argparse
from typing import Any

from ..errors import WsiSslError
from ..evaluation.report_slide import write_slide_report
from ..geometry import Rect
from ..inference import PredictConfig, predict_slide
from ..inference.distributed import predict_many
from ._pixels import add_slide_mpp, checkpoint_mpp, require_pixel_size
from ._progress import drive
from ._settings import with_flags


def _region(text: str) -> Rect:
    try:
        return Rect.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"expected x,y,w,h in level-0 pixels, got {text!r}"
        ) from exc


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("slides", nargs="+", metavar="SLIDE", help="slide files")
    parser.add_argument(
        "--model", required=True, metavar="CKPT", help="segment or classify checkpoint"
    )
    parser.add_argument(
        "-o", "--out", required=True, metavar="OUT_DIR", help="folder of the stores"
    )
    parser.add_argument(
        "--nuclei",
        nargs="?",
        const="classical",
        default=None,
        metavar="NUCLEI_CKPT",
        help="also segment nuclei: with a nuclei checkpoint, or classically when none is given",
    )
    parser.add_argument(
        "--region", type=_region, default=None, metavar="x,y,w,h", help="level-0 px"
    )
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--workers", type=int, default=None, metavar="N", help="local dask cluster")
    group.add_argument(
        "--scheduler", default=None, metavar="ADDRESS", help="dask scheduler address"
    )
    parser.add_argument(
        "--tiles-per-task",
        type=int,
        default=None,
        metavar="N",
        help="with --workers/--scheduler, a slide with more tiles to compute than N (default "
        "256) is split into tasks of at most N tiles, spread over the workers; with a fast-mode "
        "head, the feature cache's tiles (default 16 a task)",
    )
    parser.add_argument(
        "--mpp", type=float, default=None, help="working resolution in µm/px (default: --model's)"
    )
    add_slide_mpp(parser)
    parser.add_argument(
        "--report",
        action="store_true",
        help="also write report.json and report.png (tissue, tumour, nuclei) beside each store",
    )
    parser.add_argument(
        "--tile-size",
        type=int,
        default=None,
        help=(
            "core tile in working pixels (default: 512 for a UNet trained on patches of 128 px "
            "or more, whose map does not depend on the window; otherwise windows the size of "
            "the training patches)"
        ),
    )
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"])
    parser.add_argument("--float16", action="store_true", help="store float16 instead of uint8")
    parser.add_argument(
        "--compile",
        choices=("auto", "on", "off"),
        default="auto",
        help="torch.compile the model (auto: on a CPU with at least 1000 tiles to compute)",
    )


def run(args: argparse.Namespace) -> dict[str, Any]:
    config = PredictConfig(
        tile_size=args.tile_size,
        batch_size=args.batch_size,
        device=args.device,
        dtype="float16" if args.float16 else "uint8",
        compile=args.compile,
        mpp=args.mpp,
        slide_mpp=args.slide_mpp,
        nuclei=args.nuclei is not None,
        nuclei_checkpoint=None if args.nuclei in (None, "classical") else args.nuclei,
    )
    working = args.mpp if args.mpp is not None else checkpoint_mpp(args.model)
    needed = working is not None or args.nuclei is not None
    refused: list[dict[str, Any]] = []
    slides: list[str] = []
    for path in args.slides:
        try:
            require_pixel_size([path], args.slide_mpp, needed)
            slides.append(path)
        except WsiSslError as exc:
            refused.append({"slide": path, "store": None, "error": str(exc)})
    distributed = args.workers is not None or args.scheduler is not None
    results: list[dict[str, Any]]
    if not slides:
        results = []
    elif len(slides) == 1 and not distributed:
        try:
            store = drive(
                predict_slide(slides[0], args.model, args.out, config, region=args.region),
                "predict",
            )
            results = [{"slide": slides[0], "store": str(store), "error": None}]
        except WsiSslError as exc:
            results = [{"slide": slides[0], "store": None, "error": with_flags(str(exc))}]
    else:
        from dataclasses import asdict

        cluster = {
            "region": args.region,
            "workers": args.workers,
            "scheduler": args.scheduler,
            "tiles_per_task": args.tiles_per_task,
        }
        if distributed and _is_head(args.model):  # the feature cache over the cluster
            from ..features import predict_heads_distributed  # torch: imported when run

            gen = predict_heads_distributed(slides, args.model, args.out, config, **cluster)
            outcomes = drive(gen, "predict")
        else:
            outcomes = predict_many(slides, args.model, args.out, config, **cluster)
        results = [asdict(r) for r in outcomes]
    results = refused + results
    if args.report:
        _reports(results, args)
    failed = [r for r in results if r["error"]]
    if not args.json:
        for r in results:
            print(f"{r['slide']}: {r['store'] or 'FAILED: ' + str(r['error'])}")
    summary = {"slides": results, "succeeded": len(results) - len(failed), "failed": len(failed)}
    if failed and len(results) == 1:
        raise WsiSslError(str(failed[0]["error"]))
    if failed and len(failed) == len(results):
        raise WsiSslError(f"every slide failed; first: {failed[0]['error']}")
    return summary


def _is_head(path: str) -> bool:
    from ..features import is_head_checkpoint  # torch: the CLI's parser imports every cli module

    return is_head_checkpoint(path)


#: Options of the command line itself, not of the prediction: left out of the report
FRONT = ("json", "debug", "command", "report")


def _reports(results: list[dict[str, Any]], args: argparse.Namespace) -> None:
    """Write the slide report beside each store that was written."""
    for r in results:
        if r["store"] and not r["error"]:
            settings = {
                k: v for k, v in vars(args).items() if not k.startswith("_") and k not in FRONT
            }
            r["report"] = str(write_slide_report(r["store"], settings=settings)["json"])
