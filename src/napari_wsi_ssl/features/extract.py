"""Per-window features: encoder stages resampled to one stride, and training-free colour/texture.

``Extractor`` turns uint8 windows (the tile plus its margins) into raw per-pixel vectors at the
cache's stride; ``Basis`` reduces and standardises them. Colour channels are computed with numpy
and scikit-image in the reading threads; the encoder runs in the compute step.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..inference.tiling import make_grid, tissue_tiles
from ..models import load_checkpoint
from ..models.device import autocast_for
from ..slide import Slide
from .config import FeatureConfig

#: Feature vectors (drawn from the fit windows) that the basis is fitted on.
FIT_VECTORS = 20_000
COLOUR_SOURCES = ("haematoxylin", "eosin", "grey")
#: Gaussian scales (feature pixels) of the local mean and standard deviation, beside the stride itself.
COLOUR_SIGMAS = (1.5, 3.0)


def colour_names() -> list[str]:
    names = []
    for src in COLOUR_SOURCES:
        for scale in ("block", *(f"s{s:g}" for s in COLOUR_SIGMAS)):
            names += [f"{src}_mean_{scale}", f"{src}_std_{scale}"]
    return names


def colour_features(window: np.ndarray, stride: int) -> np.ndarray:
    """(h, w, 18) float32 colour and texture features of an (s, s, 3) uint8 window, s / stride per side.

    Haematoxylin and eosin come from ``skimage.color.rgb2hed``; each source's mean and standard
    deviation are taken within each ``stride`` block, then over Gaussian neighbourhoods of the
    block grid (``COLOUR_SIGMAS``), which reach at most 9 feature pixels: within a 96 px margin
    at stride 8, so tiles stitch without seams.
    """
    from scipy.ndimage import gaussian_filter
    from skimage.color import rgb2hed

    hed = rgb2hed(window).astype(np.float32)
    grey = window.astype(np.float32).mean(axis=-1) / 255.0
    srcs = np.stack([hed[..., 0], hed[..., 1], grey], axis=-1)
    s = window.shape[0] // stride
    blocks = srcs[: s * stride, : s * stride].reshape(s, stride, s, stride, 3)
    m1 = blocks.mean(axis=(1, 3))
    m2 = (blocks**2).mean(axis=(1, 3))
    out = []
    for c in range(3):
        out += [m1[..., c], np.sqrt(np.maximum(m2[..., c] - m1[..., c] ** 2, 0))]
        for sigma in COLOUR_SIGMAS:
            g1 = gaussian_filter(m1[..., c], sigma, mode="nearest", truncate=3.0)
            g2 = gaussian_filter(m2[..., c], sigma, mode="nearest", truncate=3.0)
            out += [g1, np.sqrt(np.maximum(g2 - g1**2, 0))]
    return np.stack(out, axis=-1)


def encode(encoder: Any, x: torch.Tensor, deepest: int) -> dict[int, torch.Tensor]:
    """Encoder features by stride, stopping at stage ``deepest`` (stages beyond it are skipped)."""
    out: dict[int, torch.Tensor] = {}
    s2 = encoder.relu(encoder.bn1(encoder.conv1(x)))
    out[4] = encoder.layer1(encoder.maxpool(s2))
    for stride, layer in ((8, encoder.layer2), (16, encoder.layer3), (32, encoder.layer4)):
        if stride > deepest:
            break
        out[stride] = layer(out[stride // 2])
    return out


class Extractor:
    """Raw features of windows: encoder stages (``None`` checkpoint: colour only) and colour."""

    def __init__(self, checkpoint: str | Path | None, config: FeatureConfig, device: Any) -> None:
        self.config = config
        self.device = device
        self.encoder: Any = None
        self.in_channels = 0
        if checkpoint is not None:
            model = load_checkpoint(checkpoint, device=device).model
            self.encoder = model.encoder.eval().to(memory_format=torch.channels_last)  # type: ignore[call-overload]
            self.mean, self.std = model.mean, model.std
            chans = dict(zip((2, 4, 8, 16, 32), self.encoder.channels, strict=True))
            self.in_channels = sum(chans[s] for s in config.stages)

    def encoder_raw(self, windows: np.ndarray) -> torch.Tensor:
        """(B, Cin, s, s) float32 encoder features of (B, S, S, 3) uint8 windows, s = S / stride."""
        cfg = self.config
        x = torch.from_numpy(np.ascontiguousarray(windows)).to(self.device)
        x = x.permute(0, 3, 1, 2).float().div_(255.0)
        x = ((x - self.mean) / self.std).contiguous(memory_format=torch.channels_last)
        size = windows.shape[1] // cfg.stride
        with torch.inference_mode(), autocast_for(self.device):
            feats = encode(self.encoder, x, max(cfg.stages))
            parts = []
            for s in cfg.stages:
                f = feats[s].float()
                if s > cfg.stride:
                    f = F.interpolate(f, size=(size, size), mode="bilinear", align_corners=False)
                elif s < cfg.stride:
                    f = F.avg_pool2d(f, cfg.stride // s)
                parts.append(f)
            return torch.cat(parts, dim=1)

    def colour(self, window: np.ndarray) -> np.ndarray:
        return colour_features(window, self.config.stride)


class Basis:
    """Reduction and standardisation: ``((enc - enc_mean) / enc_std) @ proj``, then the colour
    channels appended and every channel standardised by ``out_mean`` and ``out_std``."""

    def __init__(self, arrays: dict[str, np.ndarray]) -> None:
        self.arrays = {k: np.asarray(v, np.float32) for k, v in arrays.items()}
        a = self.arrays
        self.has_encoder = "proj" in a
        if self.has_encoder:
            self.t_mean = torch.from_numpy(a["enc_mean"]).view(1, -1, 1, 1)
            self.t_std = torch.from_numpy(a["enc_std"]).view(1, -1, 1, 1)
            self.t_proj = torch.from_numpy(a["proj"])

    @property
    def channels(self) -> int:
        return int(self.arrays["out_mean"].shape[0])

    @property
    def digest(self) -> str:
        """sha256 of the arrays: a cache built with a given basis is keyed by it."""
        import hashlib

        h = hashlib.sha256()
        for k in sorted(self.arrays):
            h.update(k.encode())
            h.update(np.ascontiguousarray(self.arrays[k]).tobytes())
        return h.hexdigest()

    @classmethod
    def fit(cls, enc: np.ndarray | None, colour: np.ndarray | None, config: FeatureConfig) -> Basis:
        """Fit on sample vectors: ``enc`` (N, Cin) raw encoder features, ``colour`` (N, Cc)."""
        rng = np.random.default_rng(config.seed)
        arrays: dict[str, np.ndarray] = {}
        parts = []
        if enc is not None:
            mean = enc.mean(axis=0)
            std = enc.std(axis=0) + 1e-6
            z = (enc - mean) / std
            k = min(config.channels, z.shape[1])
            if config.reduce == "pca":
                _, vecs = np.linalg.eigh(np.cov(z, rowvar=False))
                proj = vecs[:, ::-1][:, :k]
            else:
                proj = rng.normal(size=(z.shape[1], k)) / np.sqrt(z.shape[1])
            arrays.update(enc_mean=mean, enc_std=std, proj=proj)
            parts.append(z @ proj)
        if colour is not None:
            parts.append(colour)
        out = np.concatenate(parts, axis=1)
        arrays.update(out_mean=out.mean(axis=0), out_std=out.std(axis=0) + 1e-6)
        return cls(arrays)

    def reduce_encoder(self, raw: torch.Tensor) -> torch.Tensor:
        """(B, Cin, h, w) raw -> (B, k, h, w) projected (before the output standardisation)."""
        z = (raw - self.t_mean.to(raw.device)) / self.t_std.to(raw.device)
        return torch.einsum("bchw,ck->bkhw", z, self.t_proj.to(raw.device))

    def finish(self, enc: np.ndarray | None, colour: np.ndarray | None) -> np.ndarray:
        """(h, w, C) float16 standardised features from (h, w, k) projected and (h, w, Cc) colour."""
        parts = [p for p in (enc, colour) if p is not None]
        out = np.concatenate(parts, axis=-1)
        a = self.arrays
        return ((out - a["out_mean"]) / a["out_std"]).astype(np.float16)


def fit_basis(
    slide: Slide,
    extractor: Extractor,
    downsample: float,
    mask: tuple[np.ndarray, float] | None,
) -> Basis:
    """Fit the basis on ``fit_windows`` tissue windows drawn by the seed (not by the tiling)."""
    cfg = extractor.config
    fit_grid = make_grid(
        slide.dimensions, downsample, cfg.fit_size // cfg.stride, 0, None, cell=cfg.stride
    )
    cands = sorted(tissue_tiles(fit_grid, *(mask if mask is not None else (None, 1.0))))
    if not cands:
        cands = fit_grid.tiles()
    rng = np.random.default_rng(cfg.seed)
    picks = [cands[i] for i in rng.permutation(len(cands))[: cfg.fit_windows]]
    enc, col = [], []
    for ty, tx in picks:
        window = fit_grid.read_window(slide, ty, tx)
        if extractor.encoder is not None:
            raw = extractor.encoder_raw(window[None])[0].numpy()
            enc.append(raw.reshape(raw.shape[0], -1).T)
        if cfg.colour:
            c = extractor.colour(window)
            col.append(c.reshape(-1, c.shape[-1]))
    n = sum(len(e) for e in (enc or col))
    keep = np.sort(rng.permutation(n)[:FIT_VECTORS])
    return Basis.fit(
        np.concatenate(enc)[keep] if enc else None,
        np.concatenate(col)[keep] if col else None,
        cfg,
    )
