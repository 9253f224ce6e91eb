"""Live refinement and "paint here next" for the Fine-tune dock.

- :class:`LiveLoop` watches the annotation layer: when a paint stroke ends (napari's
  ``Labels.events.paint``, emitted once per stroke), it waits ``DEBOUNCE_MS`` on the GUI thread
  for more strokes, then asks the dock for one refinement round; a stroke during a round queues
  exactly one more round, run when the current one ends.
- :class:`SuggestionTour` ranks regions of the last map by the head's uncertainty, tissue and
  distance from the strokes (:func:`~napari_wsi_ssl.features.suggest_from_store`), shows them as a
  Shapes layer of rectangles and moves the camera to the next one on each click.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ...features import suggest_from_store
from ._annotations import SlideGeometry

#: Quiet time after a stroke before a refinement round starts, in milliseconds.
DEBOUNCE_MS = 300
#: Name of the Shapes layer of suggested regions.
SUGGESTIONS = "suggestions"
#: Regions suggested per ranking.
SUGGEST_K = 5
#: Part of the canvas a suggested region fills when the camera moves to it.
FILL = 0.5


class LiveLoop:
    """Debounced refinement rounds after strokes on one annotation layer.

    Parameters
    ----------
    start_round
        Starts a round (returns whether it started); called on the GUI thread.
    busy
        Whether a run is going on the dock (a stroke then queues one more round).
    """

    def __init__(self, start_round: Callable[[], bool], busy: Callable[[], bool]) -> None:
        from qtpy.QtCore import QTimer

        self.enabled = False
        self.pending = False
        self.layer: Any = None
        self._start_round = start_round
        self._busy = busy
        self.timer = QTimer()
        self.timer.setSingleShot(True)
        self.timer.setInterval(DEBOUNCE_MS)
        self.timer.timeout.connect(self._fire)

    def watch(self, layer: Any) -> None:
        """Follow the strokes on ``layer`` (an annotation Labels layer, or ``None``)."""
        if layer is self.layer:
            return
        if self.layer is not None:
            self.layer.events.paint.disconnect(self._on_paint)
        self.layer = layer
        if layer is not None:
            layer.events.paint.connect(self._on_paint)

    def _on_paint(self, _event: Any = None) -> None:
        if self.enabled:
            self.timer.start()  # restarts: rounds wait for a pause in the painting

    def _fire(self) -> None:
        if not self.enabled:
            return
        if self._busy():
            self.pending = True
            return
        self.pending = False
        self._start_round()

    def round_ended(self) -> None:
        """Called when a run of the dock ends: run the round queued meanwhile."""
        if self.pending and self.enabled:
            self.pending = False
            self.timer.start()


def box_to_world(slide: SlideGeometry, box: tuple[int, int, int, int]) -> np.ndarray:
    """A level-0 ``(y0, x0, y1, x1)`` box as the 4 corners (y, x) of a rectangle in world units."""
    y0, x0, y1, x1 = box
    sy, sx = slide.scale
    ty, tx = slide.translate
    # pixel i's centre is at translate + i * scale: a box's edges lie half a pixel outside
    top, left = ty + (y0 - 0.5) * sy, tx + (x0 - 0.5) * sx
    bottom, right = ty + (y1 - 0.5) * sy, tx + (x1 - 0.5) * sx
    return np.array([[top, left], [top, right], [bottom, right], [bottom, left]])


class SuggestionTour:
    """The suggested regions of one map store, visited one per click."""

    def __init__(self, viewer: Any, canvas_size: Callable[[], tuple[int, int]]) -> None:
        self.viewer = viewer
        self.canvas_size = canvas_size
        self.store: Path | None = None
        self.boxes: list[tuple[int, int, int, int]] = []
        self.next = 0
        self.slide: SlideGeometry | None = None

    def rank(
        self,
        store: Path,
        labels: np.ndarray,
        labels_downsample: float,
        slide: SlideGeometry,
        k: int = SUGGEST_K,
    ) -> int:
        """Rank the regions of ``store``'s uncertainty map and show them; returns how many."""
        found = suggest_from_store(store, labels, labels_downsample, k=k)
        self.store, self.slide, self.next = Path(store), slide, 0
        self.boxes = [s.box for s in found]
        rects = [box_to_world(slide, b) for b in self.boxes]
        if SUGGESTIONS in self.viewer.layers:
            self.viewer.layers.remove(SUGGESTIONS)
        if rects:
            self.viewer.add_shapes(
                rects,
                shape_type="rectangle",
                name=SUGGESTIONS,
                edge_color="cyan",
                face_color="transparent",
                edge_width=max(slide.scale) * 1.5 * labels_downsample,
                metadata={"store": str(store), "scores": [round(s.score, 4) for s in found]},
                units=slide.units,
            )
        return len(self.boxes)

    def stale(self, store: Path | None) -> bool:
        """Whether the regions need ranking again (a new map, or none shown)."""
        return (
            not self.boxes
            or store is None
            or Path(store) != self.store
            or (SUGGESTIONS not in self.viewer.layers)
        )

    def visit_next(self) -> tuple[float, float] | None:
        """Move the camera to the next region (in turn, round again after the last); returns the
        world centre it moved to."""
        if not self.boxes or self.slide is None:
            return None
        box = self.boxes[self.next % len(self.boxes)]
        self.next += 1
        corners = box_to_world(self.slide, box)
        centre = corners.mean(axis=0)
        side = float(max(np.ptp(corners[:, 0]), np.ptp(corners[:, 1])))
        canvas = self.canvas_size()
        self.viewer.camera.center = (float(centre[0]), float(centre[1]))
        if side > 0:
            self.viewer.camera.zoom = FILL * min(canvas) / side
        return float(centre[0]), float(centre[1])
