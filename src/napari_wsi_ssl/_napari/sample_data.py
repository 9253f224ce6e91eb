"""Sample data: the procedural synthetic H&E slide with its tumour and nuclei ground truth."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..recent import cache_dir as _plugin_cache
from ..slide import open_slide
from ..synthetic import (
    load_synthetic_slide,
    read_nuclei_labels,
    read_tumour_mask,
    write_synthetic_slide,
)
from .reader import claim_slide_suffixes, slide_layer_data

SAMPLE_SIZE = 4096
SAMPLE_SEED = 0


def cache_dir() -> Path:
    """Where the sample slide is written once (``NAPARI_WSI_SSL_CACHE`` or ~/.cache/napari-wsi-ssl)."""
    return _plugin_cache()


def synthetic_slide(
    size: int = SAMPLE_SIZE, seed: int = SAMPLE_SEED
) -> list[tuple[Any, dict[str, Any], str]]:
    """The synthetic slide (multiscale RGB) plus its tumour mask and nuclei labels, all in µm."""
    import numpy as np

    claim_slide_suffixes()
    folder = cache_dir() / f"synthetic-{size}-seed{seed}"
    syn = load_synthetic_slide(folder)
    if syn is None or syn.size != size or syn.seed != seed:
        syn = write_synthetic_slide(folder, size=size, seed=seed)
    slide = open_slide(syn.slide)
    image = slide_layer_data(slide, name="synthetic slide")
    mpp = syn.mpp
    d = syn.gt_downsample
    tumour = (
        read_tumour_mask(syn),
        {
            "name": "tumour (ground truth)",
            "scale": (d * mpp, d * mpp),
            "translate": ((d - 1) / 2 * mpp, (d - 1) / 2 * mpp),
            "opacity": 0.4,
            "metadata": {"slide_path": str(syn.slide), "downsample": d},
        },
        "labels",
    )
    labels = read_nuclei_labels(syn).astype(np.int32)
    nuclei = (
        labels,
        {
            "name": "nuclei (ground truth)",
            "scale": (mpp, mpp),
            "opacity": 0.5,
            "metadata": {"slide_path": str(syn.slide), "downsample": 1},
        },
        "labels",
    )
    return [image, tumour, nuclei]
