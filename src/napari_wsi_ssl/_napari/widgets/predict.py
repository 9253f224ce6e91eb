"""The "Predict" dock: a class probability map (tumour, or the class painted) and nuclei,
computed tile by tile.

The map is cached in an OME-Zarr store on disk; the layers read that store, so they fill in as
tiles finish (the visible part of the slide first) and panning never recomputes.
:func:`predict_request` is the one place a prediction is planned from the viewer, for this dock
and for the map that ends a fine-tuning run.
"""

from __future__ import annotations

import time
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from magicgui.types import FileDialogMode
from magicgui.widgets import ComboBox, FileEdit, Label, PushButton
from napari.layers import Shapes
from napari.utils.notifications import show_info, show_warning

from ...errors import WsiSslError
from ...events import CancelToken, StoreReady, TilesDone
from ...inference import PredictConfig
from ...inference.interactive import MapPlan
from ...inference.nuclei_choice import best_nuclei
from ...inference.store import ProbabilityView
from ._annotations import (
    SlideGeometry,
    is_slide_layer,
    region_xywh,
    require_slide_path,
    slide_geometry,
)
from ._base import DockBase, layer_choices, optional_path, preload_compute
from ._layers import HIDDEN_MAPS, ROLE, map_layer, refresh_layers, show_store, visible_box_level0
from ._predict_folder import FolderMixin
from ._slide_mpp import SlideMppField, check_pixel_size, given_mpp
from ._worker import Outcome, RunController

#: "best": the learned nuclei model where it beat the classical watershed (``best_nuclei``).
NUCLEI_CHOICES = ("none", "best", "classical", "model")
#: Shortest interval between two layer refreshes while tiles come in, in seconds.
REFRESH_INTERVAL_S = 0.5
#: The probability a map must reach somewhere for its display and its export to show anything.
THRESHOLD = 0.5
#: Largest level (pixels) read to find a finished map's highest probability on the GUI thread.
PEAK_LEVEL_PIXELS = 1 << 20
#: Pause between adding the map layers hidden and showing them, so that the event loop runs
#: (input, repaints) in between, in milliseconds.
REVEAL_DELAY_MS = 50
#: The docks' maps are not compiled (``PredictConfig.compile``); the command line's are.
GUI_COMPILE = "off"


@dataclass(frozen=True)
class PredictRequest:
    """Everything a prediction needs, as plain values: where the layers go (``slide``), the
    checkpoint (``None`` while a fine-tuning run has yet to make it) and the compute plan."""

    slide: SlideGeometry
    checkpoint: Path | None
    plan: MapPlan


def predict_request(
    slide_layer: Any,
    checkpoint: Path | None,
    out_dir: Path,
    region_layer: Any = None,
    nuclei: str = "none",
    nuclei_checkpoint: Path | None = None,
    tile_size: int | None = None,
) -> PredictRequest:
    """The request to map ``slide_layer``: the part of it on screen first, only inside
    ``region_layer``'s rectangles when given (raises WsiSslError for a region off the slide)."""
    slide = slide_geometry(slide_layer)
    region = region_xywh(region_layer, slide)
    if nuclei == "best":
        nuclei_checkpoint = best_nuclei().checkpoint
        nuclei = "classical" if nuclei_checkpoint is None else "model"
    config = PredictConfig(
        tile_size=tile_size,
        nuclei=nuclei != "none",
        nuclei_checkpoint=str(nuclei_checkpoint) if nuclei == "model" else None,
        # never torch.compile in the GUI: compiling takes 25-60 s before the first tile, cannot
        # be cancelled, and gains 1.13-1.17x only on slides of ~1,000 tiles (docs/inference.md)
        compile=GUI_COMPILE,
        slide_mpp=given_mpp(slide_layer),
    )
    plan = MapPlan(
        slide=require_slide_path(slide),
        out_dir=Path(out_dir),
        config=config,
        visible_first=visible_box_level0(slide_layer),
        region=region,
    )
    return PredictRequest(slide=slide, checkpoint=checkpoint, plan=plan)


def predict_run(request: PredictRequest, cancel: CancelToken) -> Generator[Any, None, Path]:
    """The whole-slide prediction generator of ``request``."""
    result: Path = yield from request.plan.run(request.checkpoint, cancel)
    return result


class PredictionDisplay:
    """Runs a prediction on a controller and keeps the viewer's layers in step with its store."""

    def __init__(self, viewer: Any, runner: RunController) -> None:
        self.viewer = viewer
        self.runner = runner
        self.store: Path | None = None
        self.layers: dict[str, Any] = {}
        self._request: PredictRequest | None = None
        self._last_refresh = 0.0
        self.last_warning: str | None = None
        #: Whether layers are still to be added or shown in later turns of the event loop.
        self.staging = False
        self._selected: tuple[Any, set[Any]] = (None, set())

    def begin(self, request: PredictRequest) -> None:
        """Follow the prediction of ``request`` (its events go to :meth:`handle`)."""
        self._request = request
        self.store = None
        self.layers = {}

    def start(self, request: PredictRequest, on_done: Any = None) -> bool:
        """Run the prediction of ``request`` on the controller, following it."""
        self.begin(request)

        def done(outcome: Outcome) -> None:
            self.last_warning = self.finish(outcome)
            if on_done is not None:
                on_done(outcome)

        return self.runner.start(
            lambda token: predict_run(request, token), "Predicting", on_done=done
        )

    def finish(self, outcome: Outcome) -> str | None:
        """At the end of the run: show the store (complete now), unless nothing was computed.

        Returns a plain warning when the map never reaches ``THRESHOLD`` (its display is then
        stretched to its own range, so that it is visible at all), else ``None``.
        """
        value = outcome.value
        store = getattr(value, "store", value)
        if store is not None:
            self.store = Path(store)
        if outcome.ok or self.layers:
            self._attach_staged()
        return self._weak_map_warning() if outcome.ok else None

    def _weak_map_warning(self) -> str | None:
        layer = map_layer(self.layers, "tumour")
        if layer is None:
            return None
        levels = layer.data if layer.multiscale else [layer.data]
        level = next((a for a in levels if a.size <= PEAK_LEVEL_PIXELS), levels[-1])
        if isinstance(level, ProbabilityView):  # the stored values: no float copy of the level
            peak = float(np.max(level.array[...])) * level.factor
        else:
            peak = float(np.max(np.asarray(level)))
        if peak >= THRESHOLD:
            return None
        layer.contrast_limits = (0.0, max(peak, 1.0 / 255.0))
        return (
            f"no pixel of the map reaches {THRESHOLD} (highest {peak:.2f}): the model is not "
            "sure of any tumour here; the display is stretched to 0-"
            f"{max(peak, 1.0 / 255.0):.2f}. Train longer, paint more (both classes), or use a "
            "bigger budget or a GPU."
        )

    def handle(self, event: Any) -> None:
        """Show the store once its first tiles are written; refresh its layers as more finish."""
        if isinstance(event, StoreReady):
            self.store = Path(event.path)
            return
        if self.store is None or not isinstance(event, TilesDone) or event.done <= 0:
            return
        if not self.layers:
            self._attach_staged()
            self._last_refresh = time.monotonic()
        elif time.monotonic() - self._last_refresh > REFRESH_INTERVAL_S:
            refresh_layers(self.viewer, self.store)
            self._last_refresh = time.monotonic()

    def _attach_staged(self, first: bool = True) -> None:
        """Add the store's layers hidden, one per turn of the event loop, then show them.

        Adding a layer costs 100 ms or more of the GUI thread on a software-GL display, and its
        first read and draw much of that again: each new layer is added in its own turn,
        ``REVEAL_DELAY_MS`` apart, and they are shown together in the turn after the last
        (existing layers are pointed at the store at once). napari selects each new layer: the
        user's (the one being painted) is selected again in the same turn. The computation does
        not wait for this. Inline runs (tests, ``sync``) add and show them at once.
        """
        if self.runner.inline:
            self._attach()
            return
        if first and not self.staging:
            selection = self.viewer.layers.selection
            self._selected = (selection.active, set(selection))
        store = self.store
        pending: list[str] = []
        self._attach(visible=False, pending=pending)
        self._restore_selection()
        if not self.layers:
            self.staging = False
            return
        from qtpy.QtCore import QTimer

        def next_turn() -> None:
            if self.store == store:  # not a later run's store
                self._attach_staged(first=False)
            else:
                self.staging = False

        self.staging = True
        QTimer.singleShot(REVEAL_DELAY_MS, next_turn if pending else self._reveal)

    def _restore_selection(self) -> None:
        active, selected = self._selected
        selection = self.viewer.layers.selection
        if active in self.viewer.layers and selection.active is not active:
            selection.active = active
            selection.update(layer for layer in selected if layer in self.viewer.layers)

    def _reveal(self) -> None:
        self.staging = False
        for layer in self.layers.values():
            hidden_map = layer.metadata.get(ROLE) in HIDDEN_MAPS
            if not hidden_map and not layer.visible and layer in self.viewer.layers:
                layer.visible = True

    def _attach(self, visible: bool = True, pending: list[str] | None = None) -> None:
        if self.store is None or self._request is None or not self.store.exists():
            return
        # a layer already showing this store is refreshed, a new one reads what it shows; with
        # ``pending``, one new layer is added and the maps left are listed there
        self.layers = show_store(
            self.viewer,
            self.store,
            self._request.slide,
            visible=visible,
            new_layers=None if pending is None else 1,
            pending=pending,
        )


class PredictWidget(FolderMixin, DockBase):
    """Predict the probability map of a class (and nuclei) of a slide, or of a folder of them."""

    def __init__(self, napari_viewer: Any) -> None:
        super().__init__(napari_viewer)
        preload_compute()
        self._slide = ComboBox(label="slide", choices=layer_choices(napari_viewer, is_slide_layer))
        self._slide_mpp = SlideMppField(napari_viewer, lambda: self._slide.value)
        self._slide.changed.connect(self._slide_mpp.refresh)
        self._checkpoint = FileEdit(
            label="checkpoint",
            mode=FileDialogMode.EXISTING_FILE,
            filter="*.pt",
            tooltip="a fine-tuned segmentation or classification checkpoint",
        )
        self._nuclei = ComboBox(
            label="nuclei",
            choices=list(NUCLEI_CHOICES),
            value="none",
            tooltip="best: the learned model where it beat the classical one on held-out "
            "images; classical: haematoxylin watershed; model: a nuclei checkpoint",
        )
        best = best_nuclei()
        self._nuclei_checkpoint = FileEdit(
            label="nuclei model", mode=FileDialogMode.EXISTING_FILE, filter="*.pt"
        )
        if best.checkpoint is not None:
            self._nuclei_checkpoint.value = best.checkpoint
        self._nuclei_best = Label(label="best nuclei", value=best.label)
        self._region = ComboBox(
            label="region",
            choices=layer_choices(
                napari_viewer, lambda layer: isinstance(layer, Shapes), "whole slide"
            ),
        )
        self._tile = ComboBox(
            label="tile size",
            choices=[("auto", 0), ("128", 128), ("256", 256), ("512", 512), ("1024", 1024)],
            value=0,
            tooltip="'auto': 512 px for a UNet whose map does not depend on the window (trained on"
            " patches of 128 px or more), else windows the size of the training patches",
        )
        self._cache = FileEdit(label="cache folder", mode=FileDialogMode.EXISTING_DIRECTORY)
        self._cache.value = self.session.prediction_dir
        self._predict_button = PushButton(text="Predict")
        self._predict_button.changed.connect(self._on_predict)
        self.display = PredictionDisplay(napari_viewer, self._runner)
        self.extend(
            [
                self._slide,
                self._slide_mpp.widget,
                self._checkpoint,
                self._nuclei,
                self._nuclei_checkpoint,
                self._nuclei_best,
                self._region,
                self._tile,
                self._cache,
                self._predict_button,
                *self._init_folder(),
                self._cancel_button,
                self._progress,
                self._status,
            ]
        )
        self.reset_choices()

    def reset_choices(self, *args: Any) -> None:
        super().reset_choices(*args)
        if hasattr(self, "_slide_mpp"):
            self._slide_mpp.refresh()
        # prefilled with the last checkpoints of their kinds (this viewer's, else recent.json's)
        if not hasattr(self, "_nuclei_checkpoint"):
            return
        for edit, kind in ((self._checkpoint, "finetune"), (self._nuclei_checkpoint, "nuclei")):
            last = self.session.last(kind) if optional_path(edit) is None else None
            if last is not None:
                edit.value = last

    @property
    def predict_button(self) -> PushButton:
        return self._predict_button

    def set_fields(self, **values: Any) -> None:
        """Set fields by name: slide, checkpoint, nuclei, nuclei_checkpoint, region, tile, cache,
        folder (of slides, for Predict folder)."""
        fields = {
            "slide": self._slide,
            "checkpoint": self._checkpoint,
            "nuclei": self._nuclei,
            "nuclei_checkpoint": self._nuclei_checkpoint,
            "region": self._region,
            "tile": self._tile,
            "cache": self._cache,
            "folder": self._folder,
        }
        for name, value in values.items():
            fields[name].value = value

    def request(self) -> PredictRequest:
        """The fields as a plain request (raises WsiSslError for what is missing)."""
        layer = self._slide.value
        if layer is None:
            raise WsiSslError("open a slide first: predictions are computed on a slide")
        checkpoint = optional_path(self._checkpoint)
        nuclei = str(self._nuclei.value)
        nuclei_ckpt = optional_path(self._nuclei_checkpoint)
        if checkpoint is None and nuclei == "none":
            raise WsiSslError("choose a checkpoint, or ask for nuclei")
        if nuclei == "model" and nuclei_ckpt is None:
            raise WsiSslError("choose a nuclei checkpoint, or the classical nuclei")
        check_pixel_size(layer, checkpoint=checkpoint)
        return predict_request(
            layer,
            checkpoint,
            Path(str(self._cache.value)).expanduser(),
            region_layer=self._region.value,
            nuclei=nuclei,
            nuclei_checkpoint=nuclei_ckpt,
            tile_size=int(self._tile.value) or None,
        )

    def _on_predict(self, *_: Any) -> None:
        if self._runner.busy():
            return
        request = self.checked(self.request)
        if request is None:
            return
        self.display.start(request, on_done=self._on_done)

    def _on_event(self, event: Any) -> None:
        if self.folder_event(event):
            return
        self.display.handle(event)
        if isinstance(event, TilesDone) and event.total:
            self.set_progress_status(f"predicting: {event.done}/{event.total} tiles")

    def _on_done(self, outcome: Outcome) -> None:
        weak = self.display.last_warning
        if outcome.ok and self.display.store is not None:
            self.set_status(f"done in {outcome.seconds:.0f} s; cached in {self.display.store}")
            if weak is not None:
                self.set_status(f"done in {outcome.seconds:.0f} s; {weak}")
                show_warning(weak)
                return
            show_info(f"Prediction finished: {', '.join(self.display.layers)}")
