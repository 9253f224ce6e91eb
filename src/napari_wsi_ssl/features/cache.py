"""The slide feature cache: encoder and colour features of a slide's tissue, computed once.

Layout of ``<slide>.<key>.features.zarr`` (zarr v2, one per slide, encoder checkpoint and
feature settings)::

    .zattrs     {"napari_wsi_ssl": {slide, checkpoint, checkpoint_sha256, key, config, grid,
                 channel_names, mpp, complete}}
    features    float16 (H, W, C) at ``stride`` working pixels per feature pixel, chunk = tile
    done        bool (ny, nx): tile finished (set after its chunk is written)
    basis/      the reduction and standardisation (fitted once, before the first tile)

Each tile is computed from a window with ``margin`` working pixels of context on every side,
cropped after the encoder, so a feature does not depend on where tiles fall. Chunks are
replaced atomically by zarr's DirectoryStore and a tile is marked done after its chunk: a
killed or cancelled build resumes at the first unfinished tile.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from .._digest import file_sha256
from ..errors import CheckpointError, WsiSslError
from ..events import CancelToken, Log, TilesDone
from ..geometry import Rect
from ..inference.runner import run_tiles
from ..inference.store import ATTR, hash_key, slide_fingerprint
from ..inference.tiling import Box, TileGrid, make_grid, order_tiles, tissue_tiles
from ..models.checkpoint import read_payload
from ..models.device import choose_device
from ..slide import Slide, open_slide, tissue_mask
from .config import FeatureConfig
from .extract import Basis, Extractor, colour_names, fit_basis

FORMAT = 1
Tile = tuple[int, int]


def working_mpp(slide: Slide, checkpoint: str | Path | None, config: FeatureConfig) -> float | None:
    """The working resolution: the config's, else the encoder checkpoint's, else level 0's."""
    if config.mpp is not None:
        return float(config.mpp)
    if checkpoint is not None:
        mpp = read_payload(checkpoint)[0].get("mpp")
        if mpp is not None:
            return float(mpp)
    return None if slide.mpp is None else float(slide.mpp[0])


def cache_key(
    fingerprint: dict[str, Any],
    ck_sha: str | None,
    mpp: float | None,
    config: FeatureConfig,
    basis: str = "fit",
) -> str:
    """The cache's identity; ``basis`` is ``"fit"`` (fitted on this slide) or a given basis' digest."""
    return hash_key(
        {
            "format": FORMAT,
            "slide": fingerprint,
            "checkpoint": ck_sha,
            "mpp": mpp,
            "basis": basis,
            **config.key(),
        }
    )


class FeatureCache:
    """An opened feature cache: its grid, basis, and features by tile, point or in full."""

    def __init__(self, path: Path, root: Any) -> None:
        self.path = path
        self.root = root
        self.meta: dict[str, Any] = dict(root.attrs[ATTR])
        self.features = root["features"]
        self.done = root["done"]
        g = self.meta["grid"]
        self.grid = TileGrid(
            **{**g, **{k: tuple(g[k]) for k in ("shape", "origin", "extent")}}  # JSON lists
        )
        self.config = FeatureConfig.from_dict(self.meta["config"])
        self._loaded: np.ndarray | None = None

    @classmethod
    def open(cls, path: str | Path) -> FeatureCache:
        import zarr

        path = Path(path)
        if not (path / ".zattrs").is_file():
            raise WsiSslError("is not a feature cache", path, "build it with build_cache")
        return cls(path, zarr.open_group(zarr.DirectoryStore(str(path)), mode="a"))

    @property
    def key(self) -> str:
        return str(self.meta["key"])

    @property
    def channels(self) -> int:
        return int(self.features.shape[-1])

    @property
    def complete(self) -> bool:
        return bool(self.root.attrs[ATTR].get("complete", False))

    def basis(self) -> Basis | None:
        if "basis" not in self.root:
            return None
        g = self.root["basis"]
        return Basis({k: g[k][:] for k in g.array_keys()})

    def done_tiles(self) -> set[tuple[int, int]]:
        ys, xs = np.nonzero(self.done[:])
        return set(zip(ys.tolist(), xs.tolist(), strict=True))

    def done_pixels(self) -> np.ndarray:
        """(H, W) bool: feature pixels of finished tiles."""
        t = self.grid.tile
        full = np.repeat(np.repeat(self.done[:], t, axis=0), t, axis=1)
        return full[: self.grid.shape[0], : self.grid.shape[1]]

    def load(self) -> np.ndarray:
        """All features as one (H, W, C) float16 array, read once and kept (for live refinement)."""
        if self._loaded is None:
            self._loaded = self.features[:]
        return self._loaded

    def at(self, fy: np.ndarray, fx: np.ndarray) -> np.ndarray:
        """(N, C) float32 features at feature pixels ``(fy, fx)``."""
        if self._loaded is not None:
            return self._loaded[fy, fx].astype(np.float32)
        channels = np.arange(self.channels)[None, :]  # zarr wants an index array per axis
        return np.asarray(self.features.vindex[fy[:, None], fx[:, None], channels], np.float32)

    def tiles_of_level0(self, box: Box) -> set[tuple[int, int]]:
        """Tiles whose core meets the level-0 box ``(y0, x0, y1, x1)``."""
        y0, x0, y1, x1 = box
        out = set()
        for t in self.grid.tiles():
            ty0, tx0, ty1, tx1 = self.grid.level0_box(*t)
            if ty0 < y1 and ty1 > y0 and tx0 < x1 and tx1 > x0:
                out.add(t)
        return out

    def mark_complete(self) -> None:
        self.root.attrs[ATTR] = {**self.root.attrs[ATTR], "complete": True}


def open_cache(
    slide: Slide,
    checkpoint: str | Path | None,
    cache_dir: str | Path,
    config: FeatureConfig,
    fingerprint: dict[str, Any],
    basis: Basis | None = None,
) -> FeatureCache:
    """Open the cache of (slide, checkpoint, settings) in ``cache_dir``, created when absent.

    With ``basis`` (the reduction a head was trained with, e.g. on another slide), the slide's
    own cache is used when its basis is that one, else a cache keyed by the basis.
    """
    import zarr

    if checkpoint is not None and not Path(checkpoint).is_file():
        raise CheckpointError("no such checkpoint file", checkpoint)
    ck_sha = file_sha256(checkpoint) if checkpoint is not None else None
    mpp = working_mpp(slide, checkpoint, config)
    name = Path(fingerprint["path"]).name.split(".")[0]
    key = cache_key(fingerprint, ck_sha, mpp, config)
    path = Path(cache_dir) / f"{name}.{key[:16]}.features.zarr"
    if basis is not None:
        own = _existing(path, key)
        if own is not None and own.meta.get("basis_digest") == basis.digest:
            return own
        key = cache_key(fingerprint, ck_sha, mpp, config, basis.digest)
        path = Path(cache_dir) / f"{name}.{key[:16]}.features.zarr"
    existing = _existing(path, key)
    if existing is not None:
        return existing
    path.parent.mkdir(parents=True, exist_ok=True)
    root = zarr.open_group(zarr.DirectoryStore(str(path)), mode="a")
    d = 1.0 if mpp is None else float(slide.downsample_for_mpp(mpp))
    grid = make_grid(slide.dimensions, d, config.tile, config.margin, None, cell=config.stride)
    n_enc = config.channels if checkpoint is not None else 0
    names = [f"encoder_{i}" for i in range(n_enc)] + (colour_names() if config.colour else [])
    if not names:
        raise WsiSslError("a feature cache needs an encoder checkpoint or colour features")
    root.create_dataset(
        "features",
        shape=(*grid.shape, len(names)),
        chunks=(grid.tile, grid.tile, len(names)),
        dtype="float16",
        fill_value=0,
        overwrite=True,
        dimension_separator="/",
        write_empty_chunks=False,
    )
    root.create_dataset("done", shape=grid.grid, dtype=bool, fill_value=False, overwrite=True)
    root.attrs[ATTR] = {
        "slide": fingerprint["path"],
        "checkpoint": None if checkpoint is None else str(Path(checkpoint).resolve()),
        "checkpoint_sha256": ck_sha,
        "key": key,
        "format": FORMAT,
        "config": config.to_dict(),
        "grid": {**asdict(grid), "shape": list(grid.shape)},
        "channel_names": names,
        "mpp": mpp,
        "slide_mpp": None if slide.mpp is None else list(slide.mpp),
        "complete": False,
    }
    return FeatureCache(path, root)


def _existing(path: Path, key: str) -> FeatureCache | None:
    import zarr

    if not (path / ".zattrs").is_file():
        return None
    root = zarr.open_group(zarr.DirectoryStore(str(path)), mode="a")
    if root.attrs.get(ATTR, {}).get("key") == key and "features" in root:
        return FeatureCache(path, root)
    return None


def plan_cache(
    slide: Slide,
    checkpoint: str | Path | None,
    cache_dir: str | Path,
    config: FeatureConfig,
    fingerprint: dict[str, Any],
    *,
    region: Rect | tuple[int, int, int, int] | None = None,
    mask: tuple[np.ndarray, float] | None = None,
    basis: Basis | None = None,
) -> Generator[Log, None, tuple[FeatureCache, set[Tile], Extractor | None]]:
    """Open the cache, work out the tissue tiles still to compute, and store its basis (fitted
    here when neither the cache nor ``basis`` has one) before any tile is computed.

    Returns the cache, the tiles to compute (none: the cache is complete, or the ``region`` is
    done) and the extractor when one was loaded to fit the basis.
    """
    cache = open_cache(slide, checkpoint, cache_dir, config, fingerprint, basis)
    if cache.complete:
        yield Log(f"{cache.path.name}: feature cache complete, nothing to compute")
        return cache, set(), None
    if mask is None and config.tissue_only:
        mask = tissue_mask(slide)
    wanted = tissue_tiles(cache.grid, *(mask if mask is not None else (None, 1.0)))
    if region is not None:
        rect = Rect.coerce(region)
        assert rect is not None
        wanted &= cache.tiles_of_level0(rect.yx_box)
    todo = wanted - cache.done_tiles()
    if not todo:
        if region is None:
            cache.mark_complete()
        return cache, set(), None
    extractor = None
    if cache.basis() is None:
        if basis is None:
            yield Log(f"{cache.path.name}: fitting the basis on {config.fit_windows} windows")
            extractor = Extractor(checkpoint, config, choose_device(config.device))
            basis = fit_basis(slide, extractor, cache.grid.downsample, mask)
        group = cache.root.require_group("basis")
        for k, v in basis.arrays.items():
            group.array(k, v, overwrite=True)
        cache.root.attrs[ATTR] = {**cache.root.attrs[ATTR], "basis_digest": basis.digest}
        cache.meta["basis_digest"] = basis.digest
    return cache, todo, extractor


def compute_tiles(
    slide: Slide,
    checkpoint: str | Path | None,
    cache: FeatureCache,
    tiles: list[Tile],
    config: FeatureConfig,
    *,
    extractor: Extractor | None = None,
    mark_done: bool = True,
    cancel: CancelToken | None = None,
) -> Generator[TilesDone, None, int]:
    """Compute ``tiles`` (in this order) into the cache's features with its stored basis;
    ``config`` is the cache's, its speed settings (batch, threads, device) as wanted now.

    Each tile is one chunk of ``features``; with ``mark_done`` its ``done`` flag is set after
    it (``done`` is one chunk: only one process may write it, see ``features.distributed``).
    """
    basis = cache.basis()
    assert basis is not None, "plan_cache stores the basis first"
    if extractor is None:
        extractor = Extractor(checkpoint, config, choose_device(config.device))
    grid, m = cache.grid, config.margin // config.stride
    t = grid.tile

    def prepare(ty: int, tx: int) -> tuple[np.ndarray, np.ndarray | None]:
        window = grid.read_window(slide, ty, tx)
        colour = extractor.colour(window)[m : m + t, m : m + t] if config.colour else None
        return window, colour

    def compute(items: list[tuple[np.ndarray, np.ndarray | None]]) -> list[np.ndarray]:
        enc: list[np.ndarray | None] = [None] * len(items)
        if extractor.encoder is not None:
            raw = extractor.encoder_raw(np.stack([w for w, _ in items]))
            red = basis.reduce_encoder(raw[:, :, m : m + t, m : m + t])
            enc = list(red.permute(0, 2, 3, 1).cpu().numpy())
        return [basis.finish(e, c) for e, (_, c) in zip(enc, items, strict=True)]

    def finish(ty: int, tx: int, block: np.ndarray) -> None:
        y0, x0, y1, x1 = grid.core_box(ty, tx)
        cache.features[y0:y1, x0:x1] = block[: y1 - y0, : x1 - x0]
        if mark_done:
            cache.done[ty, tx] = True

    return (
        yield from run_tiles(
            tiles,
            prepare,
            compute,
            finish,
            batch_size=config.batch_size,
            read_workers=config.read_workers,
            prefetch_batches=config.prefetch_batches,
            box_of=grid.level0_box,
            done_before=0,
            total=len(tiles),
            cancel=cancel,
        )
    )


def build_cache(
    slide: Slide,
    checkpoint: str | Path | None,
    cache_dir: str | Path,
    config: FeatureConfig,
    fingerprint: dict[str, Any],
    *,
    visible_first: Box | None = None,
    region: Rect | tuple[int, int, int, int] | None = None,
    mask: tuple[np.ndarray, float] | None = None,
    basis: Basis | None = None,
    cancel: CancelToken | None = None,
) -> Generator[TilesDone | Log, None, FeatureCache]:
    """Compute the missing tissue tiles of a slide's feature cache; return the opened cache.

    ``visible_first`` is a level-0 box ``(y0, x0, y1, x1)`` whose tiles come first. With
    ``region`` (a ``Rect`` or ``(x, y, w, h)`` level-0 px, as ``predict_slide`` takes it) only
    the tiles meeting it are computed now (the cache is complete only when every tissue tile
    is). ``basis``: see ``open_cache``. On cancel, the finished tiles stay and
    ``CancelledError`` is raised. ``features.distributed`` spreads the tiles over a cluster.
    """
    cache, todo, extractor = yield from plan_cache(
        slide, checkpoint, cache_dir, config, fingerprint, region=region, mask=mask, basis=basis
    )
    if not todo:
        return cache
    tiles = order_tiles(cache.grid, todo, visible_first)
    yield Log(
        f"{cache.path.name}: {len(tiles)} tiles of {cache.grid.tile * config.stride} px at "
        f"{cache.grid.downsample:g}x downsample on {choose_device(config.device)}"
    )
    yield from compute_tiles(
        slide, checkpoint, cache, tiles, config, extractor=extractor, cancel=cancel
    )
    if region is None:
        cache.mark_complete()
    return cache


def build_cache_for(
    slide_path: str | Path,
    checkpoint: str | Path | None,
    cache_dir: str | Path,
    config: FeatureConfig = FeatureConfig(),
    **kw: Any,
) -> Generator[TilesDone | Log, None, Path]:
    """``build_cache`` on a slide file; returns the cache's path."""
    slide_path = Path(slide_path)
    with open_slide(slide_path, mpp=config.slide_mpp) as slide:
        cache = yield from build_cache(
            slide, checkpoint, cache_dir, config, slide_fingerprint(slide_path), **kw
        )
    return cache.path
