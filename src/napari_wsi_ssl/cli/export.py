"""``wsi-ssl export``: a prediction store or a mask image to OME-TIFF, OME-Zarr, GeoJSON, PNG or CSV."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..errors import ExportError
from ..export import (
    DEFAULT_THRESHOLD,
    FORMATS,
    ExportSettings,
    Placement,
    export_arrays,
    export_store,
    format_of,
)
from ..inference.store import PredictionStore
from ._pixels import add_slide_mpp


def add_arguments(parser: argparse.ArgumentParser) -> None:
    suffixes = ", ".join(s for ss in FORMATS.values() for s in ss)
    parser.add_argument(
        "source", metavar="ZARR_OR_MASK", help="prediction store or mask/label image"
    )
    parser.add_argument("-o", "--out", required=True, metavar="FILE", help=f"one of {suffixes}")
    parser.add_argument("--layer", choices=["tumour", "nuclei"], default="tumour")
    parser.add_argument(
        "--threshold",
        type=float,
        default=DEFAULT_THRESHOLD,
        help=f"tumour probability of the mask and the polygons (default {DEFAULT_THRESHOLD})",
    )
    parser.add_argument(
        "--probability",
        action="store_true",
        help="export probabilities (uint8, p x 255), not a mask",
    )
    parser.add_argument(
        "--float32",
        action="store_true",
        help="with --probability: float32 values in [0, 1] (OpenSlide cannot read them)",
    )
    add_slide_mpp(parser)


def run(args: argparse.Namespace) -> dict[str, Any]:
    import numpy as np

    source, out = Path(args.source), Path(args.out)
    format_of(out)
    if not source.exists():
        raise ExportError("no such file or folder", source)
    settings = ExportSettings(
        threshold=args.threshold, values=args.probability, float32=args.float32
    )
    if PredictionStore.is_store(source):
        result = export_store(source, out, args.layer, settings=settings, mpp=args.slide_mpp)
    else:
        import tifffile

        try:
            arr = tifffile.imread(source)
        except Exception as exc:  # noqa: BLE001 - any unreadable input is a user error
            raise ExportError(f"cannot read the mask ({exc})", source) from exc
        labels = args.layer == "nuclei"
        result = export_arrays(
            out,
            arr if not labels else arr.astype(np.int32, copy=False),
            "labels" if labels else "mask",
            Placement(mpp=None if args.slide_mpp is None else (args.slide_mpp, args.slide_mpp)),
            name=args.layer,
            settings=settings,
            instances=labels,
        )
    summary: dict[str, Any] = {
        "source": str(source),
        "output": str(out),
        "format": result.format,
        "layer": args.layer,
        "features": result.features,
        "warnings": list(result.warnings),
    }
    if result.nuclei is not None:
        summary["nuclei"] = result.nuclei
    for w in result.warnings:
        print(f"warning: {w}", file=sys.stderr)
    if not args.json:
        print(f"wrote {out}")
    return summary
