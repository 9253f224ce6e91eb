"""``wsi-ssl export``: a prediction store or a mask image to OME-TIFF, OME-Zarr, GeoJSON, PNG or CSV."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..errors import ExportError

SUFFIXES = (".ome.tif", ".ome.tiff", ".ome.zarr", ".geojson", ".png", ".csv")
#: GeoJSON, PNG and CSV read the whole chosen level; pick the finest level under this many pixels
MAX_VECTOR_PIXELS = 8192 * 8192


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "source", metavar="ZARR_OR_MASK", help="prediction store or mask/label image"
    )
    parser.add_argument(
        "-o", "--out", required=True, metavar="FILE", help=f"one of {', '.join(SUFFIXES)}"
    )
    parser.add_argument("--layer", choices=["tumour", "nuclei"], default="tumour")
    parser.add_argument(
        "--threshold", type=float, default=0.5, help="tumour probability of the mask"
    )
    parser.add_argument(
        "--probability", action="store_true", help="export probabilities, not a mask"
    )
    parser.add_argument("--mpp", type=float, default=None, help="µm/px of a mask image without one")


def _suffix(path: Path) -> str:
    name = path.name.lower()
    for s in SUFFIXES:
        if name.endswith(s):
            return s
    raise ExportError(
        "unknown output format", path, hint=f"use a name ending in {', '.join(SUFFIXES)}"
    )


def _from_store(
    source: Path, layer: str
) -> tuple[list[Any], dict[str, Any], float, tuple[float, float]]:
    """Levels (dask), provenance, level-0 downsample and region origin of a store's layer."""
    import dask.array as da
    import zarr

    root = zarr.open_group(str(source), mode="r")
    if layer not in root:
        hint = "predict with --nuclei first" if layer == "nuclei" else "predict with --model first"
        raise ExportError(f"the store holds no {layer} layer", source, hint=hint)
    group = root[layer]
    ms = group.attrs["multiscales"][0]
    levels = [da.from_zarr(group[d["path"]]) for d in ms["datasets"]]
    info = dict(root.attrs.get("napari_wsi_ssl", {}))
    mpp = info.get("mpp")
    scale, translate = (
        t[k]
        for t, k in zip(
            ms["datasets"][0]["coordinateTransformations"], ("scale", "translation"), strict=True
        )
    )
    mx = mpp[0] if mpp else 1.0
    downsample = scale[1] / mx
    origin = (translate[1] / mx - (downsample - 1) / 2, translate[0] / mx - (downsample - 1) / 2)
    return levels, info, downsample, origin


def run(args: argparse.Namespace) -> dict[str, Any]:
    import numpy as np

    from .. import export

    source, out = Path(args.source), Path(args.out)
    fmt = _suffix(out)
    if not source.exists():
        raise ExportError("no such file or folder", source)
    if (source / ".zgroup").exists():
        levels, info, downsample, origin = _from_store(source, args.layer)
        mpp = info.get("mpp") if args.mpp is None else args.mpp
        slide_path = info.get("slide")
    else:
        import dask.array as da
        import tifffile

        try:
            arr = tifffile.imread(source)
        except Exception as exc:  # noqa: BLE001 - any unreadable input is a user error
            raise ExportError(f"cannot read the mask ({exc})", source) from exc
        levels, mpp, downsample, origin, slide_path = (
            [da.from_array(arr)],
            args.mpp,
            1.0,
            (0.0, 0.0),
            None,
        )
    labels = args.layer == "nuclei"
    data = levels[0]
    if not labels and not args.probability:
        scale = (
            255.0
            if data.dtype == np.uint8 and len(levels) and (source / ".zgroup").exists()
            else 1.0
        )
        data = (data.astype(np.float32) >= args.threshold * scale).astype(np.uint8)
    summary: dict[str, Any] = {
        "source": str(source),
        "output": str(out),
        "format": fmt,
        "layer": args.layer,
    }
    if fmt in (".ome.tif", ".ome.tiff"):
        export.write_ome_tiff(out, data, mpp, downsample=downsample, name=args.layer)
    elif fmt == ".ome.zarr":
        export.write_ome_zarr(
            out, data, mpp, downsample=downsample, origin_level0=origin, name=args.layer
        )
    else:
        # vector and preview formats read one whole level: the finest that is small enough
        k = 0
        while k + 1 < len(levels) and levels[k].size > MAX_VECTOR_PIXELS:
            k += 1
        f = 2**k
        small = data[::f, ::f] if k else data
        arr = np.asarray(small)
        if fmt == ".geojson":
            export.write_geojson(out, arr, downsample * f, offset=origin, labels=labels)
            summary["features"] = int(len(np.unique(arr)) - 1) if labels else None
        elif fmt == ".png":
            export.write_png(out, arr)
        else:
            if not labels:
                raise ExportError("a CSV lists nuclei", out, hint="add --layer nuclei")
            if slide_path is None:
                raise ExportError(
                    "the CSV needs the slide's pixels; export it from a prediction store", out
                )
            from ..slide import open_slide

            with open_slide(slide_path) as slide:
                d = downsample * f
                size = (arr.shape[1], arr.shape[0])
                loc = (int(origin[0]), int(origin[1]))
                rgb = slide.read_region(loc, 0, size) if d == 1 else slide.read_scaled(loc, size, d)
            export.write_nuclei_csv(out, arr, rgb, mpp, downsample=d, offset=origin)
            summary["nuclei"] = int(len(np.unique(arr)) - 1)
    if not args.json:
        print(f"wrote {out}")
    return summary
