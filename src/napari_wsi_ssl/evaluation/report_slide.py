"""A one-slide report of a prediction store: tissue, tumour and nuclei in numbers and one page.

``write_slide_report(store)`` writes ``<store name>.report.json`` and ``<store name>.report.png``
beside the store (``wsi-ssl predict --report``): the tissue area, the tumour area and its share
of the tissue, the nuclei count and density inside and outside the tumour, the model and its
checkpoint hash, and the settings. Areas are in mm² when the slide's pixel size is known and in
level-0 px² otherwise (the keys say which). Figures are drawn on matplotlib's Agg canvas.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from .._atomic import atomic_write_text
from ..errors import ExportError
from ..inference.store import PredictionStore, StoredMap
from ..slide import open_slide, tissue_mask
from .plots import _figure, _save

#: Tumour probability from which a pixel (and a nucleus at it) counts as tumour.
THRESHOLD = 0.5
#: The finest tumour level read whole for the report has at most this many pixels.
MAX_MAP_PIXELS = 4096 * 4096
#: Level-0 side of the report's picture, at most this many pixels.
PICTURE_SIDE = 1024


def slide_report(
    store: str | Path, settings: dict[str, Any] | None = None, threshold: float = THRESHOLD
) -> dict[str, Any]:
    """The numbers of the report (see the module docstring); torch-free."""
    reader = PredictionStore(store)
    mpp = reader.mpp
    unit = "mm2" if mpp is not None else "px2"
    per_px2 = mpp[0] * mpp[1] / 1e6 if mpp is not None else 1.0  # mm² (or px²) per level-0 px²
    if reader.slide is None:
        raise ExportError("the store names no slide, so tissue cannot be measured", store)
    with open_slide(reader.slide, mpp=None if mpp is None else mpp[0]) as slide:
        w0, h0 = slide.dimensions
        x0, y0, w, h = reader.attrs.get("region") or (0, 0, w0, h0)
        tissue, tds = tissue_mask(slide)
    r0, c0 = int(y0 // tds), int(x0 // tds)
    tissue = tissue[r0 : int(np.ceil((y0 + h) / tds)), c0 : int(np.ceil((x0 + w) / tds))]
    origin = (c0 * tds, r0 * tds)
    tumour = None
    if "tumour" in reader.maps:
        tumour = sample_on_grid(reader["tumour"], tissue.shape, tds, origin) >= threshold
    cell = tds * tds * per_px2
    tissue_area = float(tissue.sum()) * cell
    report: dict[str, Any] = {
        "slide": str(reader.slide),
        "store": str(Path(store)),
        "mpp": None if mpp is None else list(mpp),
        "region": [x0, y0, w, h],
        "model": reader.checkpoint,
        "checkpoint_sha256": reader.attrs.get("checkpoint_sha256"),
        "threshold": threshold,
        f"tissue_area_{unit}": round(tissue_area, 6),
    }
    tumour_area = None
    if tumour is not None:
        tumour_area = float((tumour & tissue).sum()) * cell
        report[f"tumour_area_{unit}"] = round(tumour_area, 6)
        report["tumour_percent_of_tissue"] = (
            round(100.0 * tumour_area / tissue_area, 2) if tissue_area else None
        )
    if "nuclei" in reader.maps:
        xs, ys = nucleus_centroids(reader["nuclei"])
        report["nuclei_count"] = int(xs.size)
        if tumour is not None:
            rows = np.clip(((ys - origin[1]) / tds).astype(np.int64), 0, tumour.shape[0] - 1)
            cols = np.clip(((xs - origin[0]) / tds).astype(np.int64), 0, tumour.shape[1] - 1)
            inside = int(tumour[rows, cols].sum()) if xs.size else 0
            outside = int(xs.size) - inside
            assert tumour_area is not None
            per = "per_mm2" if mpp is not None else "per_px2"
            report["nuclei_inside_tumour"] = inside
            report["nuclei_outside_tumour"] = outside
            report[f"nuclei_density_inside_{per}"] = _ratio(inside, tumour_area)
            report[f"nuclei_density_outside_{per}"] = _ratio(outside, tissue_area - tumour_area)
    report["settings"] = dict(settings or {})
    return report


def _ratio(count: int, area: float) -> float | None:
    return round(count / area, 6 if area > 1e4 else 3) if area > 0 else None


def sample_on_grid(
    stored: StoredMap, shape: tuple[int, int], ds: float, origin: tuple[float, float]
) -> np.ndarray:
    """A probability map's values at the pixel centres of a grid of downsample ``ds`` whose
    corner is level-0 ``origin`` (nearest neighbour, from the finest level small enough)."""
    level = 0
    while level + 1 < len(stored.levels) and (
        stored.downsamples[level] < ds / 2 or stored.levels[level].size > MAX_MAP_PIXELS
    ):
        level += 1
    prob = np.asarray(stored.probability(level)[...])
    lds = stored.downsamples[level]
    ys = (np.arange(shape[0]) + 0.5) * ds + origin[1]
    xs = (np.arange(shape[1]) + 0.5) * ds + origin[0]
    rows = np.floor((ys - stored.origin[1]) / lds).astype(np.int64)
    cols = np.floor((xs - stored.origin[0]) / lds).astype(np.int64)
    inside = (rows[:, None] >= 0) & (rows[:, None] < prob.shape[0])
    inside = inside & (cols[None, :] >= 0) & (cols[None, :] < prob.shape[1])
    out = prob[np.clip(rows, 0, prob.shape[0] - 1)][:, np.clip(cols, 0, prob.shape[1] - 1)]
    return np.where(inside, out, 0.0).astype(np.float32)


def nucleus_centroids(stored: StoredMap) -> tuple[np.ndarray, np.ndarray]:
    """Level-0 ``(x, y)`` centroids of every nucleus of a labels map, read chunk by chunk (a
    nucleus across chunks is gathered by its identifier)."""
    arr = stored.levels[0]
    ch, cw = arr.chunks[-2:]
    ds, (ox, oy) = stored.downsample, stored.origin
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
    for r in range(0, arr.shape[0], ch):
        for c in range(0, arr.shape[1], cw):
            block = np.asarray(arr[r : r + ch, c : c + cw])
            rr, cc = np.nonzero(block)
            if rr.size == 0:
                continue
            ids, inv = np.unique(block[rr, cc], return_inverse=True)
            n = np.bincount(inv).astype(np.float64)
            parts.append(
                (ids, n, np.bincount(inv, weights=cc + c), np.bincount(inv, weights=rr + r))
            )
    if not parts:
        return np.zeros(0), np.zeros(0)
    ids, n, sx, sy = (np.concatenate(p) for p in zip(*parts, strict=True))
    uniq, inv = np.unique(ids, return_inverse=True)
    count = np.bincount(inv, weights=n)
    cx = np.bincount(inv, weights=sx) / count
    cy = np.bincount(inv, weights=sy) / count
    return (cx + 0.5) * ds + ox, (cy + 0.5) * ds + oy


def write_slide_report(
    store: str | Path,
    settings: dict[str, Any] | None = None,
    threshold: float = THRESHOLD,
) -> dict[str, Any]:
    """Write the report's JSON and one-page PNG beside ``store``; return their paths and it."""
    store = Path(store)
    report = slide_report(store, settings, threshold)
    stem = store.name.removesuffix(".ome.zarr").removesuffix(".zarr")
    json_path = store.parent / f"{stem}.report.json"
    png_path = store.parent / f"{stem}.report.png"
    atomic_write_text(json_path, json.dumps(report, indent=2, default=str))
    draw_report(store, report, png_path)
    return {"json": json_path, "png": png_path, "report": report}


def draw_report(store: Path, report: dict[str, Any], path: Path) -> Path:
    """One page: the slide with the tumour outline and the nuclei, and the numbers beside it."""
    reader = PredictionStore(store)
    x0, y0, w, h = report["region"]
    ds = max(1.0, max(w, h) / PICTURE_SIDE)
    size = (max(1, int(w / ds)), max(1, int(h / ds)))
    mpp = report["mpp"]
    with open_slide(report["slide"], mpp=None if mpp is None else mpp[0]) as slide:
        picture = slide.read_scaled((int(x0), int(y0)), size, ds)
    fig = _figure(11.69, 8.27)
    grid = fig.add_gridspec(1, 2, width_ratios=(1.4, 1))
    ax = fig.add_subplot(grid[0])
    ax.imshow(picture[..., :3])
    if "tumour" in reader.maps:
        prob = sample_on_grid(reader["tumour"], (size[1], size[0]), ds, (x0, y0))
        ax.contour(prob, levels=[report["threshold"]], colors=["#e00000"], linewidths=1.2)
    if "nuclei" in reader.maps and report.get("nuclei_count", 0) <= 200_000:
        xs, ys = nucleus_centroids(reader["nuclei"])
        ax.scatter((xs - x0) / ds, (ys - y0) / ds, s=1.5, c="#00b4ff", alpha=0.8, linewidths=0)
    ax.set_axis_off()
    ax.set_title(Path(report["slide"]).name, fontsize=10)
    text = fig.add_subplot(grid[1])
    text.set_axis_off()
    text.text(0, 1, _table(report), va="top", ha="left", family="monospace", fontsize=8.5)
    return _save(fig, path)


def _table(report: dict[str, Any]) -> str:
    """The report as aligned lines, settings last."""
    lines = ["Slide report", ""]
    for key, value in report.items():
        if key in ("settings", "slide", "store"):
            continue
        if key == "checkpoint_sha256" and value:
            value = str(value)[:16] + "…"
        if key == "model" and value:
            value = Path(str(value)).name
        lines.append(f"{key:32s} {value}")
    settings = report.get("settings") or {}
    if settings:
        lines += ["", "settings"]
        lines += [f"  {k:30s} {v}" for k, v in settings.items() if v not in (None, False)]
    return "\n".join(lines)
