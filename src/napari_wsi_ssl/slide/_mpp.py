"""An estimate of a slide's pixel size, for slides whose file does not state it.

From the objective power when the file has one (20x is about 0.5 µm/px), otherwise from the
size of nuclei: haematoxylin blobs on a few tissue tiles at level 0, whose typical diameter in
micrometres varies little between tissues. It is a guess to put in a message, never a value to
proceed on silently.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ._tissue import tissue_mask

if TYPE_CHECKING:
    from ._slide import Slide

#: µm at 1x: the pixel size is about 10 / objective power (20x: 0.5 µm/px, 40x: 0.25 µm/px).
UM_AT_1X = 10.0
#: The typical nucleus diameter that ``nucleus_diameter_px`` measures, in µm: the CMU SVS at
#: 0.499 µm/px gives 5.4; MoNuSeg's 13 images at 0.25 µm/px 5.4 to 9.2 (median 6.6); the
#: NCT-CRC tiles at 0.5 µm/px 4.2 (lymphocytes) to 7.8 (stroma). So an estimate is within a
#: factor of about 1.5 of the truth on H&E.
NUCLEUS_DIAMETER_UM = 6.2
MIN_NUCLEI = 30  # fewer blobs than this over all tiles give no estimate
TILE = 512  # level-0 px a side of each sampled tile


@dataclass(frozen=True)
class MppEstimate:
    """An estimated pixel size and what it was estimated from."""

    mpp: float
    source: str  # "objective power" or "nucleus size"

    @property
    def magnification(self) -> float:
        return UM_AT_1X / self.mpp

    def __str__(self) -> str:
        return f"about {self.mpp:.2g} µm/px ({self.magnification:.0f}x) from {self.source}"


def estimate_mpp(slide: Slide, tiles: int = 8, seed: int = 0) -> MppEstimate | None:
    """The slide's pixel size at level 0 as the file's objective power or its nuclei suggest.

    Returns None when the file has no objective power and too few nuclei are found (no tissue,
    or not an H&E stain).
    """
    if slide.objective_power:
        return MppEstimate(UM_AT_1X / slide.objective_power, "objective power")
    diameter = nucleus_diameter_px(tissue_tiles(slide, tiles, seed))
    if diameter is None:
        return None
    return MppEstimate(NUCLEUS_DIAMETER_UM / diameter, "nucleus size")


def tissue_tiles(slide: Slide, n: int, seed: int = 0) -> list[np.ndarray]:
    """Up to ``n`` level-0 tiles of TILE px centred on tissue, chosen at random (reproducibly)."""
    mask, ds = tissue_mask(slide)
    ys, xs = np.nonzero(mask)
    if ys.size == 0:
        return []
    rng = np.random.default_rng(seed)
    picks = rng.choice(ys.size, size=min(n, ys.size), replace=False)
    w, h = slide.dimensions
    out = []
    for i in picks:
        cx, cy = int((xs[i] + 0.5) * ds), int((ys[i] + 0.5) * ds)
        x = min(max(cx - TILE // 2, 0), max(w - TILE, 0))
        y = min(max(cy - TILE // 2, 0), max(h - TILE, 0))
        out.append(slide.read_region((x, y), 0, (TILE, TILE)))
    return out


def nucleus_diameter_px(images: list[np.ndarray]) -> float | None:
    """The area-weighted median diameter, in pixels, of the nuclei in RGB ``images``.

    Nuclei are the compact blobs of the haematoxylin channel (colour deconvolution) above Otsu's
    threshold. Weighting by area keeps the many small fragments of a noisy threshold from
    deciding the result. None when fewer than ``MIN_NUCLEI`` are found.
    """
    from scipy import ndimage as ndi
    from skimage.color import rgb2hed
    from skimage.filters import gaussian, threshold_otsu
    from skimage.measure import label, regionprops

    diameters: list[float] = []
    areas: list[float] = []
    for rgb in images:
        hema = gaussian(rgb2hed(rgb[..., :3])[..., 0], 1.0)
        if float(hema.max()) <= float(hema.min()):
            continue
        blobs = ndi.binary_fill_holes(ndi.binary_opening(hema > threshold_otsu(hema)))
        for region in regionprops(label(blobs)):
            if region.area >= 12 and region.solidity > 0.85 and region.eccentricity < 0.95:
                diameters.append(float(region.equivalent_diameter_area))
                areas.append(float(region.area))
    if len(diameters) < MIN_NUCLEI:
        return None
    order = np.argsort(diameters)
    cumulative = np.cumsum(np.asarray(areas)[order])
    middle = int(np.searchsorted(cumulative, cumulative[-1] / 2))
    return float(np.asarray(diameters)[order][middle])
