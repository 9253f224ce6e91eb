"""The Fine-tune dock's requests, as plain values, and the generators its clicks and strokes run:
fine-tuning then the map (full, frozen encoder, from scratch), the fast mode (feature cache and
light head), and the rounds of live refinement."""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ...classes import unify_classes
from ...errors import CancelledError, WsiSslError
from ...events import CancelToken, Progress, StoreReady
from ...features import (
    FastResult,
    FeatureConfig,
    Refiner,
    SlideStrokes,
    fast_finetune,
    fast_finetune_many,
    load_head,
)
from ...inference.interactive import FinetunedMap, finetune_then_predict
from ...training import FinetuneConfig, FinetuneData
from ...vocab import Budget
from .predict import PredictRequest

#: Patches drawn from the painted pixels by default (the fast mode's).
FAST_PATCHES = 64


@dataclass(frozen=True)
class OtherSlide:
    """Another open slide's painted annotation, fine-tuned on with the chosen one."""

    slide: Path
    labels: np.ndarray
    labels_downsample: float
    class_names: dict[int, str]


@dataclass(frozen=True)
class FinetuneRequest:
    """Everything a fine-tuning run needs, as plain values."""

    task: str
    mode: str
    init: Path | None
    out: Path
    budget: float
    budget_unit: str
    patch_size: int | None
    batch_size: int
    num_patches: int = FAST_PATCHES
    slide: Path | None = None
    labels: np.ndarray | None = None
    labels_downsample: float = 1.0
    region_xywh: tuple[int, int, int, int] | None = None
    folder: Path | None = None
    then_map: PredictRequest | None = None
    class_names: dict[int, str] | None = None
    others: tuple[OtherSlide, ...] = ()
    slide_mpp: float | None = None  # the slide's µm/px given in the dock (None: the file's)


def finetune_run(
    request: FinetuneRequest, cancel: CancelToken
) -> Generator[Any, None, FinetunedMap]:
    """The one generator of a fine-tuning run: training, then the map when ``then_map``."""
    if request.task == "segment":
        assert request.slide is not None and request.labels is not None
        data = FinetuneData.from_arrays(
            request.slide,
            request.labels,
            request.labels_downsample,
            region=request.region_xywh,
            class_names=request.class_names,
            slide_mpp=request.slide_mpp,
        )
        if request.others:
            data = FinetuneData.several(
                [data]
                + [
                    FinetuneData.from_arrays(
                        o.slide, o.labels, o.labels_downsample, class_names=o.class_names
                    )
                    for o in request.others
                ]
            )
    elif request.folder is None:
        raise WsiSslError(
            f"task {request.task!r} learns from a folder",
            hint="choose the folder of labelled images",
        )
    elif request.task == "classify":
        data = FinetuneData.from_patches(request.folder)
    else:
        data = FinetuneData.from_nuclei(request.folder)
    config = FinetuneConfig(
        task=request.task,
        mode=request.mode,
        patch_size=request.patch_size,
        batch_size=request.batch_size,
        num_patches=request.num_patches,
        preview_every=10,
        budget=Budget.parse(request.budget, request.budget_unit),
    )
    plan = request.then_map.plan if request.then_map is not None else None
    result: FinetunedMap = yield from finetune_then_predict(
        data, config, request.out, init=request.init, plan=plan, cancel=cancel
    )
    return result


@dataclass(frozen=True)
class FastRequest:
    """A fast-mode round as plain values: the slide's feature cache (``encoder`` ``None``:
    colour features only), a head trained on the painted ``labels``, its maps in ``out_dir``."""

    slide: Path
    labels: np.ndarray
    labels_downsample: float
    encoder: Path | None
    out_dir: Path
    head_path: Path
    class_names: dict[int, str]
    others: tuple[OtherSlide, ...] = ()
    slide_mpp: float | None = None  # the slide's µm/px given in the dock (None: the file's)


def fast_run(request: FastRequest, cancel: CancelToken) -> Generator[Any, None, FastResult]:
    """The generator of a fast-mode click: cache (built once per slide and encoder), head, map;
    with ``others``, one head on the strokes of every slide and a map of each."""
    if request.others:
        parts = [(request.slide, request.labels, request.class_names)] + [
            (o.slide, o.labels, o.class_names) for o in request.others
        ]
        labels, names = unify_classes(parts)
        downsamples = [request.labels_downsample] + [o.labels_downsample for o in request.others]
        many: FastResult = yield from fast_finetune_many(
            [
                SlideStrokes(path, lab, ds)
                for (path, _, _), lab, ds in zip(parts, labels, downsamples, strict=True)
            ],
            request.encoder,
            request.out_dir,
            cancel=cancel,
            class_names=names,
            head_path=request.head_path,
        )
        return many
    result: FastResult = yield from fast_finetune(
        request.slide,
        request.labels,
        request.labels_downsample,
        request.encoder,
        request.out_dir,
        FeatureConfig(slide_mpp=request.slide_mpp),
        cancel=cancel,
        class_names=request.class_names,
        head_path=request.head_path,
    )
    return result


class LiveRefiner:
    """The rounds of live refinement over one feature cache, each warm-started from the last head.

    The :class:`~napari_wsi_ssl.features.Refiner` (the cache held in memory) is made in the
    worker on the first round, warm-started from the head of the fast run that built the cache.
    """

    def __init__(self, fast: FastResult, request: FastRequest) -> None:
        self.cache = fast.cache
        self.head = fast.head
        self.first_store = fast.store
        self.out_dir = request.out_dir
        self.class_names = request.class_names
        self._refiner: Any = None

    def run(
        self, labels: np.ndarray, labels_downsample: float, cancel: CancelToken
    ) -> Generator[Any, None, FastResult]:
        """One round: the head retrained on all ``labels`` so far, its maps in a new store."""
        yield Progress(0, 1, message="refining the head on the strokes so far")
        if self._refiner is None:
            self._refiner = Refiner(self.cache)
            self._refiner.stores.append(Path(self.first_store))  # round 0: the fast run's map
            if self.head.is_file():
                self._refiner.last = load_head(self.head).head
        if cancel.cancelled:
            raise CancelledError("live refinement cancelled")
        result: FastResult = self._refiner.refine(
            labels, labels_downsample, self.out_dir, self.class_names, self.head
        )
        metrics = {k: v for k, v in result.metrics.items() if isinstance(v, float)}
        yield Progress(1, 1, metrics=metrics)
        yield StoreReady(result.store)
        return result

    def release(self, read: set[str], keep_last: bool = True) -> list[Path]:
        """The stores of earlier rounds that nothing in ``read`` reads (``Refiner.release``)."""
        return [] if self._refiner is None else self._refiner.release(read, keep_last)


#: How far above guessing (1 / classes) validation must end for the model to be called better
#: than chance: 0.6 for two classes.
CHANCE_MARGIN = 0.1


def chance_warning(acc: float | None, classes: int = 2) -> str | None:
    """A plain word when validation (accuracy, or the fast mode's balanced accuracy) ended no
    better than guessing between ``classes`` classes."""
    if acc is None or acc >= 1.0 / max(classes, 2) + CHANCE_MARGIN:
        return None
    return (
        f"Validation accuracy {acc:.2f} is at chance: the model has not learnt to tell the "
        "classes apart yet. Train longer, paint more of both classes, or use a GPU."
    )
