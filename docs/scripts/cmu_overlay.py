"""The overlay figure of docs/inference.md: a real prediction on cmu_small_region.svs.

Usage, from the repository root (the checkpoint is made by the commands in docs/inference.md)::

    .venv/bin/python docs/scripts/cmu_overlay.py CLASSIFIER.pt OUT_DIR

It runs ``predict_slide`` with the classifier and classical nuclei on the CMU slide into
OUT_DIR, then draws the tumour probability over the whole slide and the nuclei over a zoomed
region, each placed by the store's own NGFF transforms, into docs/images/inference_cmu_overlay.png.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import zarr  # noqa: E402
from skimage.segmentation import find_boundaries  # noqa: E402

from napari_wsi_ssl.events import TilesDone, run_to_end  # noqa: E402
from napari_wsi_ssl.inference import PredictConfig, predict_slide  # noqa: E402
from napari_wsi_ssl.slide import open_slide  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
CMU = REPO.parent / "shared" / "data" / "slides" / "cmu_small_region.svs"
OUT = REPO / "docs" / "images" / "inference_cmu_overlay.png"
ZOOM = (750, 1950, 400, 300)  # x, y, w, h in level-0 pixels


def _transform(group: zarr.Group, level: int) -> tuple[np.ndarray, np.ndarray]:
    ds = group.attrs["multiscales"][0]["datasets"][level]["coordinateTransformations"]
    scale = np.asarray(next(t["scale"] for t in ds if t["type"] == "scale"))
    shift = np.asarray(next(t["translation"] for t in ds if t["type"] == "translation"))
    return scale, shift


def _extent(group: zarr.Group, level: int, shape: tuple[int, ...], mpp: float) -> list[float]:
    """matplotlib extent (left, right, bottom, top) in level-0 pixels of a stored level."""
    scale, shift = _transform(group, level)
    top_left = (shift - scale / 2) / mpp  # pixel centres -> pixel edges
    size = np.asarray(shape[:2]) * scale / mpp
    return [top_left[1], top_left[1] + size[1], top_left[0] + size[0], top_left[0]]


def main(ckpt: Path, out_dir: Path) -> None:
    start = time.perf_counter()
    finished: list[int] = [0]

    def count(event: object) -> None:
        if isinstance(event, TilesDone):
            finished.append(event.done)

    store = run_to_end(predict_slide(CMU, ckpt, out_dir, PredictConfig(nuclei=True)), count)
    tiles = finished[-1]
    seconds = time.perf_counter() - start
    root = zarr.open_group(str(store), mode="r")
    slide = open_slide(CMU)
    mpp = slide.mpp[0]
    w, h = slide.dimensions
    thumb_ds = 4.0
    thumb = slide.read_scaled((0, 0), (int(w / thumb_ds), int(h / thumb_ds)), thumb_ds)
    prob = root["tumour"]["0"][:].astype(np.float32) / 255
    nuclei_group = root["nuclei"]
    labels = nuclei_group["0"][:]
    n_nuclei = len(np.unique(labels)) - (1 if 0 in labels else 0)

    fig, axes = plt.subplots(1, 2, figsize=(11, 6.4), gridspec_kw={"width_ratios": [1, 1.25]})
    ax = axes[0]
    ax.imshow(thumb, extent=[0, w, h, 0])
    masked = np.ma.masked_less(prob, 0.05)
    im = ax.imshow(
        masked,
        cmap="inferno",
        vmin=0,
        vmax=1,
        alpha=0.6,
        interpolation="nearest",
        extent=_extent(root["tumour"], 0, prob.shape, mpp),
    )
    ax.set_xlim(0, w)
    ax.set_ylim(h, 0)
    ax.set_title("tumour probability (PCam classifier)", fontsize=10)
    ax.axis("off")
    fig.colorbar(im, ax=ax, fraction=0.035, pad=0.02)
    x, y, zw, zh = ZOOM
    ax.add_patch(plt.Rectangle((x, y), zw, zh, fill=False, edgecolor="cyan", linewidth=1.2))

    ax = axes[1]
    region = slide.read_region((x, y), 0, (zw, zh))
    # the nuclei map is at level 0 here: the zoom is a plain crop of it
    sy, sx = _transform(nuclei_group, 0)[0] / mpp
    crop = labels[int(y / sy) : int((y + zh) / sy), int(x / sx) : int((x + zw) / sx)]
    edges = find_boundaries(crop, mode="inner")
    shown = region.copy()
    shown[edges] = (0, 255, 0)
    ax.imshow(shown)
    ax.set_title(f"classical nuclei, region {zw} x {zh} px at {mpp:.2f} µm/px", fontsize=10)
    ax.axis("off")
    fig.tight_layout()
    fig.savefig(OUT, dpi=80)
    summary = {
        "store": str(store),
        "seconds": round(seconds, 1),
        "tiles": tiles,
        "nuclei": int(n_nuclei),
        "probability_max": float(prob.max()),
        "probability_mean_tissue": float(prob[prob > 0].mean()) if (prob > 0).any() else 0.0,
        "map_shape": list(prob.shape),
        "figure": str(OUT),
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
