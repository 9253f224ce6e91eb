"""Small event objects that long computations yield, and the token that cancels them.

Compute code (training, inference) is written as generators of these events. The command line
maps them onto a terminal progress bar; the napari docks map them onto ``napari.utils.progress``
and live plots. Nothing here imports torch or Qt.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Progress:
    """One step of a long run.

    ``total`` is ``None`` when the run is bounded by time rather than steps.
    """

    step: int
    total: int | None
    loss: float | None = None
    epoch: int | None = None
    lr: float | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    message: str = ""


@dataclass(frozen=True)
class Preview:
    """An image worth showing while a run goes on, e.g. a patch and its reconstruction (H, W, 3 uint8)."""

    step: int
    images: dict[str, np.ndarray]


@dataclass(frozen=True)
class TilesDone:
    """Tiles of a whole-slide prediction that are now written to the store.

    ``boxes`` are (y0, x0, y1, x1) in the output level-0 pixels of the store.
    """

    done: int
    total: int
    boxes: tuple[tuple[int, int, int, int], ...] = ()


@dataclass(frozen=True)
class Log:
    """A line for the log, e.g. a batch size halved after running out of memory."""

    message: str
    level: str = "info"


@dataclass(frozen=True)
class StoreReady:
    """The output store of a prediction exists and can be shown while its tiles fill in."""

    path: Path


Event = Progress | Preview | TilesDone | Log | StoreReady


class CancelToken:
    """A flag that a GUI or a signal handler sets and a compute loop checks at every step."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def __bool__(self) -> bool:  # pragma: no cover - guard against `if token:` mistakes
        raise TypeError("use token.cancelled")


def run_to_end(gen: Any, on_event: Callable[[Any], None] | None = None) -> Any:
    """Drain a generator of events and return its return value (for tests and scripts);
    ``on_event`` sees every event on the way."""
    while True:
        try:
            event = next(gen)
        except StopIteration as stop:
            return stop.value
        if on_event is not None:
            on_event(event)


__all__ = [
    "CancelToken",
    "Event",
    "Log",
    "Preview",
    "Progress",
    "StoreReady",
    "TilesDone",
    "run_to_end",
]
