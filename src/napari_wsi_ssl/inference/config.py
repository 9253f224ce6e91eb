"""The configuration of a whole-slide prediction."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from ..errors import WsiSslError


@dataclass(frozen=True)
class PredictConfig:
    """How ``predict_slide`` tiles, computes and stores a slide.

    Attributes
    ----------
    tile_size
        Core tile (and zarr chunk) size in pixels of the working resolution; a power of 2 >= 32,
        so tile origins stay aligned with the network's stride and every pyramid level.
        ``None`` (the default): ``WINDOW_FREE_TILE`` for a UNet segmentation checkpoint trained
        on patches of at least ``training.config.WINDOW_FREE_PATCH`` px (its map does not
        depend on the window, see :func:`window_free`), and otherwise windows sized like the
        checkpoint's training patches (see :func:`window_for_patch`): a network trained on
        small patches judges a much larger window differently.
    margin
        Context added on each side of a tile and cropped away after the forward pass, so tiles
        stitch without seams; a multiple of 32. ``None``: chosen with ``tile_size``.
    batch_size
        Tiles per forward pass.
    read_workers, prefetch_batches
        Threads reading (and, for classical nuclei, segmenting) tiles, and how many batches
        they run ahead of the model.
    dtype
        ``"uint8"`` (probability * 255) or ``"float16"``.
    device
        ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"mps"``.
    mpp
        Working resolution (µm/px); ``None`` takes the checkpoint's.
    slide_mpp
        Overrides (or supplies) the slide's own mpp.
    tissue_only
        Compute only tiles that hold tissue (the rest stays 0).
    classify_tiles
        For a classification checkpoint: patches per side of one stored chunk (one output pixel
        per patch).
    nuclei
        Also compute nuclei instances (``nuclei_checkpoint`` or the classical watershed).
    nuclei_checkpoint
        A ``task="nuclei"`` checkpoint; ``None`` uses ``nuclei_classical``.
    nuclei_mpp
        Working resolution of nuclei; ``None`` is the checkpoint's, or level 0 for the classical path.
    nuclei_tile_size
        Core tile of the nuclei map (power of 2).
    nuclei_diameter_um, nuclei_min_area_um2, nuclei_marker_distance_um
        Physical nuclei parameters (marker distance ``None``: 0.45 * diameter).
    compile
        ``torch.compile`` the tumour model (inductor, with weights frozen into the graph):
        ``"on"``, ``"off"``, or ``"auto"``: on a CPU, when there are at least
        ``COMPILE_MIN_TILES`` tiles to compute, so that the compilation (about 25 s on 2 cores)
        pays for itself. A failed compilation falls back to the plain model with a warning.
    """

    tile_size: int | None = None
    margin: int | None = None
    batch_size: int = 4
    read_workers: int = 2
    prefetch_batches: int = 2
    dtype: str = "uint8"
    device: str = "auto"
    mpp: float | None = None
    slide_mpp: float | None = None
    tissue_only: bool = True
    classify_tiles: int = 8
    nuclei: bool = False
    nuclei_checkpoint: str | None = None
    nuclei_mpp: float | None = None
    nuclei_tile_size: int = 512
    nuclei_diameter_um: float = 7.0
    nuclei_min_area_um2: float = 8.0
    nuclei_marker_distance_um: float | None = None
    compile: str = "auto"

    def __post_init__(self) -> None:
        if self.compile not in ("auto", "on", "off"):
            raise WsiSslError(f"compile must be 'auto', 'on' or 'off', got {self.compile!r}")
        for name in ("tile_size", "nuclei_tile_size"):
            v = getattr(self, name)
            if v is None:
                continue
            if v < 32 or v & (v - 1):
                raise WsiSslError(f"{name} must be a power of 2 of at least 32, got {v}")
        if self.margin is not None and (self.margin < 0 or self.margin % 32):
            raise WsiSslError(f"margin must be a non-negative multiple of 32, got {self.margin}")
        if self.dtype not in ("uint8", "float16"):
            raise WsiSslError(f"dtype must be 'uint8' or 'float16', got {self.dtype!r}")
        if self.batch_size < 1:
            raise WsiSslError(f"batch_size must be at least 1, got {self.batch_size}")

    def window(self, patch_size: int, free: bool = False) -> tuple[int, int]:
        """(tile, margin) for a checkpoint trained on ``patch_size`` patches (``free``: its map
        does not depend on the window, so the window is large, see :func:`window_free`)."""
        tile, margin = window_free(patch_size) if free else window_for_patch(patch_size)
        return (
            self.tile_size if self.tile_size is not None else tile,
            self.margin if self.margin is not None else margin,
        )

    def tumour_key(self) -> dict[str, Any]:
        """The fields that change the tumour map (part of the cache key)."""
        d = asdict(self)
        keep = ("tile_size", "margin", "dtype", "mpp", "slide_mpp", "tissue_only", "classify_tiles")
        return {k: d[k] for k in keep}

    def nuclei_key(self) -> dict[str, Any]:
        """The fields that change the nuclei labels."""
        d = asdict(self)
        return {k: v for k, v in d.items() if k.startswith("nuclei") or k == "slide_mpp"}


#: With ``compile="auto"``, the fewest tiles to compute for which a CPU run compiles the model.
#: Measured on 2 cores (``wsi-ssl bench --only infer_compiled``, ResNet34-UNet, 384 px windows):
#: 25 s of compilation, then 3.78 instead of 3.34 tiles/s, which breaks even at about 720 tiles.
COMPILE_MIN_TILES = 1000


#: Core tile (working px) of a window-free checkpoint's default window: 512 + 2 x 32 px windows
#: compute 1.27 working pixels per map pixel, the 64 + 2 x 32 px windows of 128 px patches 4.
WINDOW_FREE_TILE = 512


def window_free(patch_size: int) -> tuple[int, int]:
    """The (tile, margin) of a checkpoint whose map does not depend on the window: a core of
    ``WINDOW_FREE_TILE`` px (more where the patch is larger) and a margin of a quarter patch,
    a multiple of 32: 128 -> (512, 32), 256 -> (512, 64), 2048 -> (1024, 512)."""
    margin = 32 * max(1, math.ceil(patch_size / 4 / 32))
    tile = WINDOW_FREE_TILE
    while tile + 2 * margin < patch_size:
        tile *= 2
    return tile, margin


def window_for_patch(patch_size: int) -> tuple[int, int]:
    """The (tile, margin) whose window, tile + 2 * margin, is about a training patch.

    The core is the largest power of 2 up to half the patch, and the margin the multiple of 32
    that fills the rest: 128 -> (64, 32), 256 -> (128, 64), 96 -> (32, 32), 300 -> (128, 96).
    """
    tile = 32
    while tile * 4 <= patch_size:
        tile *= 2
    margin = 32 * math.ceil(max(patch_size - tile, 0) / 2 / 32)
    return tile, margin
