"""The settings of a slide feature cache and of the light head trained on it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from ..errors import WsiSslError

STAGES = (4, 8, 16, 32)
REDUCTIONS = ("pca", "random")
HEADS = ("linear", "mlp")


@dataclass(frozen=True)
class FeatureConfig:
    """What a slide feature cache holds and how it is computed.

    Attributes
    ----------
    mpp
        Working resolution (µm/px); ``None`` takes the encoder checkpoint's, or the slide's level 0.
    stride
        Working pixels per feature pixel (4, 8 or 16).
    stages
        Encoder stages (their strides) whose features are used; each is resampled to ``stride``
        (bilinear up, mean down) before the reduction.
    channels
        Encoder channels kept after the reduction (``reduce``); the colour channels come on top.
    reduce
        ``"pca"`` (fitted, whitened, on a fixed sample of tissue windows) or ``"random"`` (a
        fixed Gaussian projection of the standardised channels).
    colour
        Add training-free colour and texture channels: haematoxylin, eosin and grey level, their
        local mean and standard deviation at three scales (the stride, 1.5 and 3 feature pixels).
    tile
        Feature pixels per side of a computed tile (and of a zarr chunk); ``tile * stride``
        working pixels, a multiple of 32.
    margin
        Working pixels of context read on each side of a tile and cropped after the encoder, a
        multiple of 32, so that the features do not depend on where tiles fall.
    batch_size, read_workers, prefetch_batches
        Tiles per encoder pass, threads reading and colouring tiles, batches read ahead.
    fit_windows, fit_size
        Tissue windows (of ``fit_size`` working pixels) that the reduction and the channel
        statistics are fitted on; chosen by ``seed`` from the tissue mask, not from the tiling.
    tissue_only
        Compute only tiles holding tissue (the others stay 0 and are not marked done).
    slide_mpp
        Overrides (or supplies) the slide's own mpp.
    device
        ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"mps"``.
    """

    mpp: float | None = None
    stride: int = 8
    stages: tuple[int, ...] = (8, 16)
    channels: int = 32
    reduce: str = "pca"
    colour: bool = True
    tile: int = 128
    margin: int = 128
    batch_size: int = 1
    read_workers: int = 2
    prefetch_batches: int = 1
    fit_windows: int = 8
    fit_size: int = 512
    tissue_only: bool = True
    slide_mpp: float | None = None
    device: str = "auto"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.stride not in (4, 8, 16):
            raise WsiSslError(f"stride must be 4, 8 or 16, got {self.stride}")
        if not self.stages or any(s not in STAGES for s in self.stages):
            raise WsiSslError(f"stages must be among {STAGES}, got {self.stages}")
        if self.reduce not in REDUCTIONS:
            raise WsiSslError(f"reduce must be one of {REDUCTIONS}, got {self.reduce!r}")
        if self.channels < 1:
            raise WsiSslError(f"channels must be at least 1, got {self.channels}")
        if self.tile < 4 or (self.tile * self.stride) % 32:
            raise WsiSslError(
                f"tile * stride must be a multiple of 32 working pixels, got {self.tile} * {self.stride}"
            )
        for name in ("margin", "fit_size"):
            v = getattr(self, name)
            if v < 0 or v % 32:
                raise WsiSslError(f"{name} must be a non-negative multiple of 32, got {v}")
        if self.fit_size < 32 * self.stride // 8 or self.fit_windows < 1:
            raise WsiSslError("fit_windows must be at least 1 and fit_size at least 32")
        if self.batch_size < 1:
            raise WsiSslError(f"batch_size must be at least 1, got {self.batch_size}")

    def key(self) -> dict[str, Any]:
        """The fields that change the features (part of the cache key): not speed settings."""
        speed = {"batch_size", "read_workers", "prefetch_batches", "device"}
        return {k: v for k, v in asdict(self).items() if k not in speed}

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["stages"] = list(self.stages)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FeatureConfig:
        known = {f.name for f in fields(cls)}
        kw = {k: v for k, v in d.items() if k in known}
        if "stages" in kw:
            kw["stages"] = tuple(int(s) for s in kw["stages"])
        return cls(**kw)


@dataclass(frozen=True)
class HeadConfig:
    """How the light head is trained on cached features.

    The default is the regularised MLP: on real tissue (PCam mosaics, docs/fast_mode.md) it
    generalises from one mosaic's strokes to another mosaic at per-patch AUC 0.91 where the
    linear head (``kind="linear", steps=100, weight_decay=1e-4``, the first default) reached
    0.85, and on the synthetic slide's 150-step encoder Dice 0.88-0.90 against 0.71.

    Attributes
    ----------
    kind
        ``"linear"`` (multinomial logistic regression) or ``"mlp"`` (one hidden layer).
    hidden
        Hidden units of the MLP.
    steps
        Full-batch Adam steps (a budget in steps, so the result does not depend on machine load).
    lr, weight_decay
        Adam's learning rate and L2 penalty.
    val_fraction
        Share of the strokes (connected components, per class) held out for validation.
    max_samples
        At most this many labelled feature pixels per class are used (drawn by ``seed``).
    seed
        Initialisation, split and sampling.
    """

    kind: str = "mlp"
    hidden: int = 64
    steps: int = 300
    lr: float = 0.05
    weight_decay: float = 1e-2
    val_fraction: float = 0.2
    max_samples: int = 10_000
    seed: int = 0

    def __post_init__(self) -> None:
        if self.kind not in HEADS:
            raise WsiSslError(f"head kind must be one of {HEADS}, got {self.kind!r}")
        if self.steps < 1 or self.hidden < 1 or self.max_samples < 1:
            raise WsiSslError("steps, hidden and max_samples must be at least 1")
        if not 0 <= self.val_fraction < 1:
            raise WsiSslError(f"val_fraction must be in [0, 1), got {self.val_fraction}")


#: The first default head (logistic regression, light regularisation), which the PCam figures of
#: docs/fast_mode.md name "linear".
LINEAR_HEAD = HeadConfig(kind="linear", steps=100, weight_decay=1e-4)
