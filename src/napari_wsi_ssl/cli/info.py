"""``wsi-ssl info SLIDE``: format, levels, mpp, objective power and tissue fraction."""

from __future__ import annotations

import argparse
from typing import Any

from ..slide import estimate_mpp, open_slide, tissue_mask
from ._pixels import add_slide_mpp


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("slide", help="slide file or OME-Zarr folder")
    add_slide_mpp(parser)
    parser.add_argument("--no-tissue", action="store_true", help="skip the tissue fraction")


def run(args: argparse.Namespace) -> dict[str, Any]:
    with open_slide(args.slide, mpp=args.slide_mpp) as slide:
        result = slide.info()
        estimate = estimate_mpp(slide) if slide.mpp is None else None
        result["mpp_estimate"] = None if estimate is None else estimate.mpp
        result["mpp_estimate_source"] = None if estimate is None else estimate.source
        result["pyramid_downsamples"] = list(slide.pyramid_downsamples)
        result["properties_count"] = len(slide.properties)
        if args.no_tissue:
            result["tissue_fraction"] = None
        else:
            mask, ds = tissue_mask(slide)
            result["tissue_fraction"] = round(float(mask.mean()), 4)
            result["tissue_mask_downsample"] = ds
    if not args.json:
        mpp = result["mpp"]
        unknown = "unknown" if estimate is None else f"unknown ({estimate}; --slide-mpp sets it)"
        lines = [
            f"slide:            {result['path']}",
            f"format:           {result['vendor']} (read with {result['backend']})",
            f"dimensions:       {result['dimensions'][0]} x {result['dimensions'][1]} px",
            f"levels:           {result['level_count']}",
        ]
        for i, (dims, ds) in enumerate(
            zip(result["level_dimensions"], result["level_downsamples"], strict=True)
        ):
            lines.append(f"  level {i}:        {dims[0]} x {dims[1]} px, downsample {ds:g}")
        lines += [
            f"mpp:              {unknown if mpp is None else f'{mpp[0]:.4g} x {mpp[1]:.4g} µm/px'}",
            f"objective power:  {result['objective_power'] or 'unknown'}",
            f"tile size:        {result['tile_size'] or 'untiled'}",
        ]
        if result["tissue_fraction"] is not None:
            lines.append(f"tissue fraction:  {result['tissue_fraction']:.1%}")
        print("\n".join(lines))
    return result
