"""``wsi-ssl synth OUT_DIR``: write the procedural synthetic slide and its ground truth."""

from __future__ import annotations

import argparse
import time
from typing import Any

from ..synthetic import write_synthetic_slide


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out_dir", help="folder to write slide.tif and the ground truth into")
    parser.add_argument(
        "--size", type=int, default=4096, help="width and height in pixels (default 4096)"
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of the procedural tissue (default 0)"
    )
    parser.add_argument(
        "--slide-mpp",
        dest="mpp",
        type=float,
        default=0.5,
        metavar="UM",
        help="the written slide's µm/px at level 0 (default 0.5)",
    )
    # the earlier spelling, kept working but not shown: --mpp is the working resolution elsewhere
    parser.add_argument("--mpp", dest="mpp", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--tile-size", type=int, default=256, help="TIFF tile size (default 256)")


def run(args: argparse.Namespace) -> dict[str, Any]:
    start = time.perf_counter()
    syn = write_synthetic_slide(
        args.out_dir, size=args.size, seed=args.seed, mpp=args.mpp, tile_size=args.tile_size
    )
    seconds = time.perf_counter() - start
    result = {
        "slide": str(syn.slide),
        "tumour_mask": str(syn.tumour_mask),
        "nuclei_labels": str(syn.nuclei_labels),
        "tissue_mask": str(syn.tissue_mask),
        "gt_downsample": syn.gt_downsample,
        "mpp": syn.mpp,
        "size": syn.size,
        "seed": syn.seed,
        "seconds": round(seconds, 2),
    }
    if not args.json:
        print(f"wrote a {syn.size} x {syn.size} px synthetic slide in {seconds:.1f} s")
        for key in ("slide", "tumour_mask", "nuclei_labels", "tissue_mask"):
            print(f"  {key + ':':15} {result[key]}")
        print(f"open it with: napari {syn.slide}")
    return result
