"""A head over the whole feature cache: probability and uncertainty maps in a prediction store.

The store is the one ``predict_slide`` writes (``inference.store``): an OME-Zarr group per map,
tile by tile with its pyramid, so the GUI and the exporters read it unchanged. Maps:
``tumour`` (probability of label 1, uint8 0-255), ``uncertainty`` (normalised entropy of the
head's output, uint8 0-255) and, with more than two classes, ``classes`` (the most probable
painted label, int32).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..inference.store import ATTR, MapWriter, hash_key, open_root
from .cache import FeatureCache
from .head import TrainedHead

FORMAT = 1


def map_store_path(out_dir: str | Path, cache: FeatureCache, head_sha: str) -> tuple[Path, str]:
    """The store of a head's maps over a cache, and its key (both change with either)."""
    key = hash_key({"format": FORMAT, "cache": cache.key, "head": head_sha})
    name = Path(cache.meta["slide"]).name.split(".")[0]
    return Path(out_dir) / f"{name}.{key[:16]}.ome.zarr", key


def tumour_index(head: TrainedHead) -> int:
    """The output shown as the ``tumour`` map: label 1 when painted, else the first label."""
    return head.label_values.index(1) if 1 in head.label_values else 0


def write_head_maps(
    cache: FeatureCache,
    head: TrainedHead,
    path: str | Path,
    key: str,
    provenance: dict[str, Any] | None = None,
) -> Path:
    """Apply ``head`` to every computed tile of ``cache`` and write the maps into ``path``.

    A store whose maps are complete under ``key`` is left as it is. Uses the cache's in-memory
    copy when ``cache.load()`` has been called (live refinement), else reads tile by tile.
    """
    path = Path(path)
    root = open_root(path, {})
    grid = cache.grid
    slide_mpp = cache.meta.get("slide_mpp")
    mpp = None if slide_mpp is None else (float(slide_mpp[0]), float(slide_mpp[1]))
    k = len(head.label_values)
    names = ["tumour", "uncertainty"] + (["classes"] if k > 2 else [])
    writers = {
        n: MapWriter.create(root, n, grid, "int32" if n == "classes" else "uint8", mpp, key)
        for n in names
    }
    if all(w.complete for w in writers.values()):
        return path
    root.attrs[ATTR] = {
        "slide": cache.meta["slide"],
        "checkpoint": None,
        "checkpoint_sha256": None,
        "region": None,
        "mpp": mpp,
        "format": FORMAT,
        "feature_cache": str(cache.path),
        "feature_grid": {"out_downsample": grid.out_downsample, "origin": list(grid.origin)},
        "class_names": head.class_names,
        "label_values": head.label_values,
        **(provenance or {}),
    }
    feats = cache._loaded if cache._loaded is not None else cache.features
    ti = tumour_index(head)
    values = np.asarray(head.label_values, np.int32)
    tiles = sorted(cache.done_tiles())
    for ty, tx in tiles:
        y0, x0, y1, x1 = grid.core_box(ty, tx)
        block = np.asarray(feats[y0:y1, x0:x1])
        p = head.probabilities(block.reshape(-1, block.shape[-1])).reshape(y1 - y0, x1 - x0, k)
        writers["tumour"].write_tile(ty, tx, _u8(p[..., ti]))
        ent = -(p * np.log(np.clip(p, 1e-12, 1))).sum(-1) / np.log(k)
        writers["uncertainty"].write_tile(ty, tx, _u8(ent))
        if "classes" in writers:
            writers["classes"].write_tile(ty, tx, values[p.argmax(-1)])
    for w in writers.values():
        w.mark_complete(len(tiles))
    return path


def _u8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x * 255), 0, 255).astype(np.uint8)
