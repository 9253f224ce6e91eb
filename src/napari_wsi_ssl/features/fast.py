"""The fast mode's front-end generators: cache, head, map.

- ``Refiner``: one opened cache in memory and the last head; ``refine(labels)`` trains the head
  (warm-started) and writes the map store, well under a second on a cached slide. A GUI calls it
  in a worker thread after each stroke, and ``release``/``prune`` the stores of earlier rounds
  once its layers read the new one.
- ``fast_finetune_many``: builds each slide's cache if needed (painted tiles first; the second
  and later slides with the first slide's basis and working resolution), one head on the
  strokes of all of them, and a map of each slide; ``fast_finetune`` is its one-slide case.
- ``predict_head``: a head checkpoint over any slide, through that slide's cache (built when
  absent, with the basis the head was trained on).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Generator, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from .._digest import file_sha256
from ..errors import CheckpointError
from ..events import CancelToken, Log, Progress, StoreReady, TilesDone
from ..geometry import Rect
from ..inference.store import slide_fingerprint
from ..slide import open_slide
from .cache import FeatureCache, build_cache
from .config import FeatureConfig, HeadConfig
from .head import TrainedHead, train_head, train_head_many
from .head_file import load_head, save_head
from .maps import map_store_path, write_head_maps

#: Caches up to this size (bytes) are held in memory between rounds. H x W x C x 2 bytes: 50
#: channels at stride 8 over 25,000 working pixels a side are 1 GB, over 50,000 are 3.9 GB.
MAX_IN_MEMORY = 2 * 2**30
Events = Generator[TilesDone | Log | Progress | StoreReady, None, Any]


@dataclass
class FastResult:
    """What a fast-mode round wrote, and how it did."""

    head: Path
    store: Path
    cache: Path
    metrics: dict[str, Any] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    #: With several slides: each slide's map store (the first is ``store``).
    maps: dict[Path, Path] = field(default_factory=dict)


class Refiner:
    """Train-and-map rounds over one feature cache, each warm-started from the last."""

    def __init__(
        self, cache: FeatureCache | str | Path, head_config: HeadConfig = HeadConfig()
    ) -> None:
        self.cache = cache if isinstance(cache, FeatureCache) else FeatureCache.open(cache)
        if self.cache.features.nbytes <= MAX_IN_MEMORY:
            self.cache.load()  # else every round reads the chunks again
        self.head_config = head_config
        import torch

        # the first optimizer of a process imports torch._dynamo (seconds): pay it here, once
        torch.optim.Adam([torch.zeros(1, requires_grad=True)])
        self.last: TrainedHead | None = None
        #: The map stores of the rounds so far, oldest first (each round writes a new one).
        self.stores: list[Path] = []

    def refine(
        self,
        labels: np.ndarray,
        labels_downsample: float,
        out_dir: str | Path,
        class_names: dict[int, str] | None = None,
        head_path: str | Path | None = None,
    ) -> FastResult:
        """Train the head on all ``labels`` so far and write its maps; returns the paths."""
        t0 = time.perf_counter()
        head = train_head(
            self.cache, labels, labels_downsample, self.head_config, class_names, self.last
        )
        t1 = time.perf_counter()
        out_dir = Path(out_dir)
        name = Path(self.cache.meta["slide"]).name.split(".")[0]
        head_path = Path(head_path) if head_path else out_dir / f"{name}.head.pt"
        save_head(head_path, head, self.cache)
        store, key = map_store_path(out_dir, self.cache, file_sha256(head_path))
        write_head_maps(self.cache, head, store, key, {"checkpoint": str(head_path)})
        t2 = time.perf_counter()
        self.last = head
        self.stores = [p for p in self.stores if p != store] + [store]
        return FastResult(
            head_path,
            store,
            self.cache.path,
            dict(head.metrics),
            {"train_s": t1 - t0, "map_s": t2 - t1},
        )

    def release(self, read: Iterable[str | Path] = (), keep_last: bool = True) -> list[Path]:
        """Forget the stores of earlier rounds that are not in ``read`` (the stores something
        still reads, such as the viewer's layers) and return them, for the caller to delete;
        the last round's store is kept unless ``keep_last`` is false."""
        keep = {Path(p).resolve() for p in read}
        rounds = self.stores[:-1] if keep_last else self.stores
        old = [p for p in rounds if p.resolve() not in keep]
        self.stores = [p for p in self.stores if p not in old]
        return old

    def prune(self, read: Iterable[str | Path] = ()) -> list[Path]:
        """Delete the stores that ``release`` gives up (a live session would otherwise leave
        one store per round in the cache folder); returns them."""
        old = self.release(read)
        remove_stores(old)
        return old


def remove_stores(paths: Iterable[Path]) -> None:
    """Delete map stores (folders of zarr chunks; a missing one is no error)."""
    for path in paths:
        shutil.rmtree(path, ignore_errors=True)


def _painted_box(labels: np.ndarray, ds: float) -> tuple[int, int, int, int] | None:
    ys, xs = np.nonzero(labels)
    if len(ys) == 0:
        return None
    return (
        int(ys.min() * ds),
        int(xs.min() * ds),
        int((ys.max() + 1) * ds),
        int((xs.max() + 1) * ds),
    )


def fast_finetune(
    slide_path: str | Path,
    labels: np.ndarray,
    labels_downsample: float,
    encoder_ckpt: str | Path | None,
    out: str | Path,
    config: FeatureConfig = FeatureConfig(),
    cancel: CancelToken | None = None,
    **options: Any,
) -> Events:
    """Fast-mode fine-tuning: the slide's feature cache (built when absent, the tiles under the
    strokes first), a head trained on the painted ``labels``, and its whole-slide map.

    ``encoder_ckpt`` ``None`` uses colour features only. The head checkpoint and the map store go
    to ``out`` (a folder); the cache to ``cache_dir`` (default: ``out``). Returns a ``FastResult``.
    ``options`` are ``fast_finetune_many``'s: ``head_config``, ``cache_dir``, ``class_names``,
    ``head_path``; this is its one-slide case.
    """
    strokes = SlideStrokes(Path(slide_path), labels, labels_downsample, config.slide_mpp)
    result: FastResult = yield from fast_finetune_many(
        [strokes], encoder_ckpt, out, config, cancel, **options
    )
    return result


@dataclass(frozen=True)
class SlideStrokes:
    """One slide's painted labels for ``fast_finetune_many`` (values as unified across slides)."""

    slide: Path
    labels: np.ndarray
    labels_downsample: float
    slide_mpp: float | None = None


def fast_finetune_many(
    slides: Sequence[SlideStrokes],
    encoder_ckpt: str | Path | None,
    out: str | Path,
    config: FeatureConfig = FeatureConfig(),
    cancel: CancelToken | None = None,
    *,
    head_config: HeadConfig = HeadConfig(),
    cache_dir: str | Path | None = None,
    class_names: dict[int, str] | None = None,
    head_path: str | Path | None = None,
) -> Events:
    """Fast-mode fine-tuning on several slides: a feature cache per slide, one head trained on
    the strokes of all of them (balanced across slides and classes), and a map of each slide.

    The first slide's cache fits the basis; the others are built with that basis and at its
    working resolution, so one head reads them all. Returns a ``FastResult`` whose ``maps``
    holds every slide's store (``store`` and ``cache`` are the first slide's).
    """
    out = Path(out)
    t0 = time.perf_counter()
    caches: list[FeatureCache] = []
    for k, part in enumerate(slides):
        if len(slides) > 1:
            yield Log(f"slide {k + 1}/{len(slides)}: {Path(part.slide).name}")
        cfg = replace(config, slide_mpp=part.slide_mpp)
        basis = None
        if caches:
            basis = caches[0].basis()
            cfg = replace(cfg, mpp=caches[0].meta["mpp"])
        with open_slide(part.slide, mpp=part.slide_mpp) as slide:
            cache = yield from build_cache(
                slide,
                encoder_ckpt,
                cache_dir or out,
                cfg,
                slide_fingerprint(part.slide),
                visible_first=_painted_box(part.labels, part.labels_downsample),
                basis=basis,
                cancel=cancel,
            )
        if cache.features.nbytes <= MAX_IN_MEMORY:
            cache.load()  # the head's points and the map read it all
        caches.append(cache)
    t1 = time.perf_counter()
    on = f" of {len(slides)} slides" if len(slides) > 1 else ""
    yield Progress(0, 1, message=f"training the head on the cached features{on}")
    head = train_head_many(
        [(c, p.labels, p.labels_downsample) for c, p in zip(caches, slides, strict=True)],
        head_config,
        class_names,
    )
    t2 = time.perf_counter()
    first = caches[0]
    name = Path(first.meta["slide"]).name.split(".")[0]
    head_file = Path(head_path) if head_path else out / f"{name}.head.pt"
    save_head(head_file, head, first)
    sha = file_sha256(head_file)
    maps: dict[Path, Path] = {}
    for part, cache in zip(slides, caches, strict=True):
        store, key = map_store_path(out, cache, sha)
        write_head_maps(cache, head, store, key, {"checkpoint": str(head_file)})
        maps[Path(part.slide)] = store
    yield StoreReady(maps[Path(slides[0].slide)])  # the others are in the result's ``maps``
    t3 = time.perf_counter()
    yield Progress(1, 1, metrics={k: v for k, v in head.metrics.items() if isinstance(v, float)})
    return FastResult(
        head_file,
        maps[Path(slides[0].slide)],
        first.path,
        dict(head.metrics),
        {"cache_s": t1 - t0, "train_s": t2 - t1, "map_s": t3 - t2},
        maps,
    )


def predict_head(
    slide_path: str | Path,
    head_ckpt: str | Path,
    out_dir: str | Path,
    *,
    cache_dir: str | Path | None = None,
    visible_first: tuple[int, int, int, int] | None = None,
    region: Rect | tuple[int, int, int, int] | None = None,
    cancel: CancelToken | None = None,
    device: str | None = None,
    slide_mpp: float | None = None,
) -> Generator[TilesDone | Log | StoreReady, None, Path]:
    """A head checkpoint's maps of a slide; returns the store's path (like ``predict_slide``).

    Yields the cache's events while it is built, then ``StoreReady`` and one ``TilesDone`` of
    all the map's tiles once the maps are written (in well under a second on a cached slide).

    The slide's feature cache (in ``cache_dir``, default ``out_dir``) is built where it is
    missing, with the encoder and basis the head was trained with; ``region`` is a ``Rect``
    or ``(x, y, w, h)`` level-0 px.
    """
    from dataclasses import replace

    ck = load_head(head_ckpt)
    enc = ck.encoder_checkpoint
    if enc is not None:
        if not Path(enc).is_file():
            raise CheckpointError(
                f"needs its encoder checkpoint {enc}, which is missing", head_ckpt
            )
        if file_sha256(enc) != ck.encoder_sha256:
            raise CheckpointError(
                f"was trained on another version of its encoder {enc}",
                head_ckpt,
                "train the head again on this encoder",
            )
    fcfg = ck.feature_config
    if device is not None:
        fcfg = replace(fcfg, device=device)
    if slide_mpp is not None:
        fcfg = replace(fcfg, slide_mpp=slide_mpp)
    slide_path = Path(slide_path)
    with open_slide(slide_path, mpp=fcfg.slide_mpp) as slide:
        cache = yield from build_cache(
            slide,
            enc,
            cache_dir or out_dir,
            fcfg,
            slide_fingerprint(slide_path),
            visible_first=visible_first,
            region=region,
            basis=ck.basis,
            cancel=cancel,
        )
    store, key = map_store_path(out_dir, cache, ck.sha256)
    write_head_maps(cache, ck.head, store, key, {"checkpoint": str(head_ckpt)})
    yield StoreReady(store)
    n = len(cache.done_tiles())
    yield TilesDone(n, n)  # the map is whole: a display shows it (nuclei may follow)
    return store
