"""The Fine-tune dock's request, as plain values, and the one generator a click runs."""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import WsiSslError
from ...events import CancelToken
from ...inference.interactive import FinetunedMap, finetune_then_predict
from .predict import PredictRequest
from .pretrain import budget_fields

#: Patches drawn from the painted pixels by default (the fast mode's).
FAST_PATCHES = 64


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


def finetune_run(
    request: FinetuneRequest, cancel: CancelToken
) -> Generator[Any, None, FinetunedMap]:
    """The one generator of a fine-tuning run: training, then the map when ``then_map``."""
    from ...training import FinetuneConfig, FinetuneData

    if request.task == "segment":
        assert request.slide is not None and request.labels is not None
        data = FinetuneData.from_arrays(
            request.slide, request.labels, request.labels_downsample, region=request.region_xywh
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
        **budget_fields(request.budget, request.budget_unit),
    )
    plan = request.then_map.plan if request.then_map is not None else None
    result: FinetunedMap = yield from finetune_then_predict(
        data, config, request.out, init=request.init, plan=plan, cancel=cancel
    )
    return result
