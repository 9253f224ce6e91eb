"""The interactive loop as one run: fine-tune on painted labels, then map the slide with the result.

The Fine-tune dock starts this one generator (one progress bar, one Cancel); the command line
may drain it the same way. Nothing here waits on a display: the front end shows the store as
its tiles arrive, at its own pace.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..events import CancelToken
from ..training import FinetuneConfig, FinetuneData, finetune
from .config import PredictConfig
from .predict import predict_slide
from .tiling import Box


@dataclass(frozen=True)
class MapPlan:
    """Where and how to predict a slide: everything ``predict_slide`` needs but the checkpoint.

    ``visible_first`` is ``(y0, x0, y1, x1)`` in level-0 pixels (computed first);
    ``region`` is ``(x, y, w, h)`` in level-0 pixels (the only part computed).
    """

    slide: Path
    out_dir: Path
    config: PredictConfig = PredictConfig()
    visible_first: Box | None = None
    region: tuple[int, int, int, int] | None = None

    def run(
        self, checkpoint: Path | None, cancel: CancelToken | None = None
    ) -> Generator[Any, None, Path]:
        """``predict_slide`` of this plan with ``checkpoint``; returns the store's path."""
        store: Path = yield from predict_slide(
            self.slide,
            checkpoint,
            self.out_dir,
            config=self.config,
            visible_first=self.visible_first,
            region=self.region,
            cancel=cancel,
        )
        return store


@dataclass(frozen=True)
class CheckpointSaved:
    """Event: fine-tuning has saved its checkpoint (the map of it follows, when planned)."""

    path: Path


@dataclass(frozen=True)
class FinetunedMap:
    """What :func:`finetune_then_predict` made: the checkpoint, and the store of its map."""

    checkpoint: Path
    store: Path | None


def finetune_then_predict(
    data: FinetuneData,
    config: FinetuneConfig,
    out: Path,
    init: Path | None = None,
    plan: MapPlan | None = None,
    cancel: CancelToken | None = None,
) -> Generator[Any, None, FinetunedMap]:
    """Fine-tune (``finetune``'s events), yield :class:`CheckpointSaved`, then, with a ``plan``,
    predict the slide with the new checkpoint (``predict_slide``'s events).

    A cancel during training ends the run with the checkpoint saved so far and no map; a
    cancel during the map keeps the checkpoint and the finished tiles (``CancelledError``
    is raised as by either step; the ``CheckpointSaved`` event already told where it is).
    """
    checkpoint: Path = yield from finetune(data, config, out, init=init, cancel=cancel)
    yield CheckpointSaved(Path(checkpoint))
    if plan is None or (cancel is not None and cancel.cancelled):
        # training stops at a cancel by saving its checkpoint: no map of a cancelled run
        return FinetunedMap(Path(checkpoint), None)
    store = yield from plan.run(Path(checkpoint), cancel)
    return FinetunedMap(Path(checkpoint), store)
