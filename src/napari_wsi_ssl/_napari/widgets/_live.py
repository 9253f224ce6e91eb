"""Live refinement and "paint here next" for the Fine-tune dock.

- :class:`LiveLoop` watches the annotation layer: when a paint stroke ends (napari's
  ``Labels.events.paint``, emitted once per stroke), it waits ``DEBOUNCE_MS`` on the GUI thread
  for more strokes, then asks the dock for one refinement round; a stroke during a round queues
  exactly one more round, run when the current one ends.
- :class:`MapSwap` shows a round's new map store without a new layer or a data swap: the worker
  opens the store's levels, and on the GUI thread each level's array is replaced under the
  layer's own lazy views, then the visible map is refreshed once (napari's data, scale and
  translate setters each redraw and update the layer list: 200-400 ms on a loaded machine).
- :func:`remove_unread` deletes the stores of earlier rounds once no layer reads them, so a
  live session leaves one map store in the cache folder, not one per round.
- :class:`SuggestionTour` ranks regions of the last map where painting teaches the head most
  (:func:`~napari_wsi_ssl.features.suggest_from_store`: unpainted clusters of the cached
  features, uncertain and representative cells), shows them as a Shapes layer of rectangles and
  moves the camera to the next one on each click.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ...features import suggest_from_store
from ...features.fast import remove_stores
from ._annotations import SlideGeometry
from ._base import camera_of
from ._layers import PROBABILITY, UNCERTAINTY, can_swap, swap_levels

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


#: The map layers a live round retargets, and their maps in the store.
LIVE_MAPS = {PROBABILITY: "tumour", UNCERTAINTY: "uncertainty"}


def _levels(store: Path) -> dict[str, tuple[list[Any], Any]]:
    """The zarr levels of the live maps of ``store`` and their placement (multiscales metadata)."""
    import zarr

    root = zarr.open_group(zarr.DirectoryStore(str(store)), mode="r")
    out = {}
    for layer, name in LIVE_MAPS.items():
        if name in root and "multiscales" in root[name].attrs:
            ms = root[name].attrs["multiscales"][0]
            placement = [d["coordinateTransformations"] for d in ms["datasets"]]
            out[layer] = ([root[name][d["path"]] for d in ms["datasets"]], placement)
    return out


class MapSwap:
    """A live round's map store shown in place of the last one, with no work the GUI can avoid.

    ``prepare`` runs in the worker; ``apply`` on the GUI thread swaps the arrays under the map
    layers' :class:`~napari_wsi_ssl.inference.store.ProbabilityView` levels and refreshes the
    visible ones. Anything else (a first map, another grid, a layer replaced by the user) is
    left to the ordinary display (``apply`` returns ``False``).
    """

    def __init__(self) -> None:
        self._ready: tuple[Path, dict[str, list[Any]]] | None = None

    def prepare(self, store: Path, previous: Path | None) -> None:
        """Open ``store``'s levels when they have the shapes, types and placement of
        ``previous``'s (a store of the same feature grid)."""
        self._ready = None
        if previous is None or not Path(previous).is_dir():
            return
        new, old = _levels(Path(store)), _levels(Path(previous))
        if PROBABILITY not in new or set(new) != set(old):
            return
        for name, (levels, placement) in new.items():
            old_levels, old_placement = old[name]
            same = placement == old_placement and [(a.shape, a.dtype) for a in levels] == [
                (a.shape, a.dtype) for a in old_levels
            ]
            if not same:
                return
        self._ready = (Path(store), {name: levels for name, (levels, _) in new.items()})

    def apply(self, viewer: Any, store: Path) -> dict[str, Any] | None:
        """Point the map layers at ``store`` in place; returns them, or ``None`` when it cannot."""
        ready, self._ready = self._ready, None
        if ready is None or ready[0] != Path(store):
            return None
        layers = {}
        for name, levels in ready[1].items():
            if name not in viewer.layers or not can_swap(viewer.layers[name], levels):
                return None
            layers[name] = viewer.layers[name]
        for name, layer in layers.items():
            swap_levels(layer, ready[1][name], {"store": str(store)})
            if layer.visible:
                layer.refresh()
        return layers


def remove_unread(viewer: Any, refiner: Any, retired: bool = False) -> threading.Thread | None:
    """Delete, in a background thread, the map stores of earlier rounds of ``refiner`` (a
    ``LiveRefiner``; ``retired``: replaced by a new one, its last round too) that no layer of
    ``viewer`` reads; called once the layers read the new one. A store of a big slide holds
    thousands of chunk files: never on the GUI thread."""
    read = {str(layer.metadata.get("store")) for layer in viewer.layers}
    old = refiner.release(read, keep_last=not retired)
    if not old:
        return None
    thread = threading.Thread(
        target=remove_stores, args=(old,), name="old live map stores", daemon=True
    )
    thread.start()
    return thread


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
        self._tissue: dict[str, tuple[np.ndarray, float]] = {}

    def rank(
        self,
        store: Path,
        labels: np.ndarray,
        labels_downsample: float,
        slide: SlideGeometry,
        k: int = SUGGEST_K,
    ) -> int:
        """Rank the regions of ``store``'s uncertainty map and show them; returns how many."""
        found = suggest_from_store(store, labels, labels_downsample, tissue=self.tissue(slide), k=k)
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

    def tissue(self, slide: SlideGeometry) -> tuple[np.ndarray, float] | None:
        """The slide's tissue mask and its downsample (kept per file): without it, glass beside
        the tissue forms a cluster of its own, and a region of glass would be suggested."""
        if slide.slide_path is None:
            return None
        key = str(slide.slide_path)
        if key not in self._tissue:
            from ...slide import open_slide, tissue_mask

            with open_slide(slide.slide_path, mpp=slide.mpp) as opened:
                self._tissue[key] = tissue_mask(opened)
        return self._tissue[key]

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
        camera_of(self.viewer).center = (float(centre[0]), float(centre[1]))
        if side > 0:
            camera_of(self.viewer).zoom = FILL * min(canvas) / side
        return float(centre[0]), float(centre[1])
