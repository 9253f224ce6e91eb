"""The held-out PCam mosaic's fast-mode maps side by side (a figure for docs), and the untrained
encoder those maps are compared with.

``untrained CKPT --width 16`` writes a randomly initialised ``resnet34-ae`` encoder (seed 0) of
the study's size, to run as ``pcam_mosaic.py --runs pretrained:CKPT`` beside a pretrained one of
the same preset and width. ``figure OUT_DIR RUN ... -o PNG`` draws, for the runs of a
``pcam_mosaic.py OUT_DIR`` folder, the test mosaic, its known labels (centres: red tumour, green
normal) and each run's tumour map, titled with its per-patch AUC from ``results.json``.

Usage, from the repository root:
    .venv/bin/python docs/scripts/mosaic_maps.py untrained untrained16.pt --width 16
    .venv/bin/python docs/scripts/mosaic_maps.py figure OUT_DIR RUN [RUN ...] -o maps.png \
        [--names NAME ...]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from napari_wsi_ssl.evaluation.mosaic import MPP


def untrained(path: Path, width: int) -> None:
    import torch

    from napari_wsi_ssl.models import build_model, save_checkpoint

    torch.manual_seed(0)
    model = build_model("resnet34-ae", "reconstruct", width=width)
    save_checkpoint(path, model, mpp=MPP, patch_size=64)


def _map(work: Path) -> np.ndarray:
    import zarr

    (store,) = sorted((work / "test").glob("*.ome.zarr"))
    root = zarr.open_group(str(store), mode="r")
    return np.asarray(root["tumour"]["0"][:], np.float32) / 255.0


def figure(out: Path, runs: list[str], png: Path, side: int, names: list[str] | None) -> None:
    import tifffile
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from napari_wsi_ssl.evaluation.mosaic import centre_mask

    results = json.loads((out / "results.json").read_text())
    with tifffile.TiffFile(out / "mosaic_test.tif") as tif:
        level = tif.series[0].levels[min(3, len(tif.series[0].levels) - 1)]
        image = level.asarray()
    labels = _labels(out, side)
    truth = np.zeros((*centre_mask(labels).shape, 3), np.uint8)
    mask = centre_mask(labels)
    truth[mask == 1] = (220, 40, 40)
    truth[mask == 2] = (40, 190, 80)
    panels = [("test mosaic (held out)", image, None), ("known centres", truth, None)]
    for k, run in enumerate(runs):
        work = out / run.replace(":", "_").replace("/", "_").replace("@", "_")
        auc = results[run]["auc_test"]
        lo, hi = results[run]["auc_test_95"]
        name = names[k] if names else run.split(":", 1)[-1].rsplit("/", 1)[-1]
        panels.append((f"{name}: AUC {auc:.3f} ({lo:.3f}-{hi:.3f})", _map(work), "magma"))
    fig = Figure(figsize=(3.2 * len(panels), 3.6))
    FigureCanvasAgg(fig)
    for k, (title, data, cmap) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), k + 1)
        ax.imshow(data, cmap=cmap, vmin=0, vmax=1) if cmap else ax.imshow(data)
        ax.set_title(title, fontsize=8)
        ax.set_axis_off()
    fig.tight_layout()
    fig.savefig(png, dpi=110)


def _labels(out: Path, side: int) -> np.ndarray:
    from napari_wsi_ssl.evaluation.mosaic import mosaic_files

    pcam = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "pcam" / "valid"
    files = mosaic_files(pcam, side, count=2, seed=0)[1]
    return np.array([label for _, label in files[: side * side]], np.uint8).reshape(side, side)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    u = sub.add_parser("untrained")
    u.add_argument("path", type=Path)
    u.add_argument("--width", type=int, default=16)
    f = sub.add_parser("figure")
    f.add_argument("out", type=Path)
    f.add_argument("runs", nargs="+")
    f.add_argument("-o", "--png", type=Path, required=True)
    f.add_argument("--side", type=int, default=36)
    f.add_argument("--names", nargs="+", help="a title for each run")
    args = ap.parse_args()
    if args.cmd == "untrained":
        untrained(args.path, args.width)
    else:
        figure(args.out, args.runs, args.png, args.side, args.names)


if __name__ == "__main__":
    main()
