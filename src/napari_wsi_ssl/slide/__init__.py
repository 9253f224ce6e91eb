"""Open whole-slide images: OpenSlide, tifffile and zarr behind one ``Slide``; lazy dask pyramids;
tissue masks. No torch, no Qt.

>>> from napari_wsi_ssl.slide import open_slide, tissue_mask
>>> with open_slide("slide.svs") as slide:  # doctest: +SKIP
...     levels = slide.pyramid()
...     mask, downsample = tissue_mask(slide)
"""

from __future__ import annotations

from ._mpp import MppEstimate, estimate_mpp
from ._open import SLIDE_SUFFIXES, detect_format, looks_like_slide
from ._slide import Slide, open_slide
from ._tissue import tissue_mask

__all__ = [
    "SLIDE_SUFFIXES",
    "MppEstimate",
    "Slide",
    "detect_format",
    "estimate_mpp",
    "looks_like_slide",
    "open_slide",
    "tissue_mask",
]
