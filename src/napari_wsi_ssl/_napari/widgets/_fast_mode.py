"""The Fine-tune dock's fast mode: the feature cache and light head, live refinement after each
stroke, and suggestions of where to paint next (the methods the dock mixes in)."""

from __future__ import annotations

from collections.abc import Generator
from pathlib import Path
from typing import Any

import numpy as np
from magicgui.widgets import CheckBox, PushButton
from napari.layers import Labels
from napari.utils.notifications import show_error, show_info, show_warning

from ...classes import unify_classes
from ...errors import AnnotationError, WsiSslError
from ._annotations import (
    PaintedAnnotation,
    SlideGeometry,
    is_slide_layer,
    read_painted,
    require_slide_path,
    slide_geometry,
)
from ._base import optional_path
from ._finetune_run import FastRequest, LiveRefiner, OtherSlide, chance_warning, fast_run
from ._live import LiveLoop, MapSwap, SuggestionTour, remove_unread
from ._slide_mpp import check_pixel_size
from ._worker import Outcome
from .predict import PredictionDisplay, predict_request


class FastModeMixin:
    """Fast mode, live and Suggest for :class:`~.finetune.FinetuneWidget` (which has the fields)."""

    _image: Any
    _annotations: Any
    _several: Any
    _viewer: Any
    _checkpoint: Any
    _region: Any
    _curves: Any
    _runner: Any
    _val_acc: float | None
    display: PredictionDisplay
    cache_dir: Path
    # methods of the dock
    _checkpoint_out: Any
    _remember: Any
    set_status: Any

    def _init_fast_mode(self, viewer: Any) -> None:
        self._live_box = CheckBox(
            text="live: refine the map after each stroke (fast mode)", value=False
        )
        self._suggest_button = PushButton(text="Suggest where to paint next")
        self._suggest_button.changed.connect(self._on_suggest)
        self.refiner: LiveRefiner | None = None
        self._fast: FastRequest | None = None
        self.live = LiveLoop(self._start_refine, lambda: bool(self._runner.running))
        self.tour = SuggestionTour(viewer, self._canvas_size)
        self.swap = MapSwap()
        self._live_box.changed.connect(self._on_live)
        self._annotations.changed.connect(self._on_live)

    def _canvas_size(self) -> tuple[int, int]:
        """About the size of the viewer's canvas (its window's central widget), in pixels."""
        native = getattr(self, "native", None)
        central = native.window().centralWidget() if native is not None else None
        if central is None:
            return (600, 800)
        return (max(1, central.height()), max(1, central.width()))

    @property
    def suggest_button(self) -> PushButton:
        return self._suggest_button

    def painted(self, min_classes: int = 2) -> tuple[SlideGeometry, PaintedAnnotation]:
        """The chosen slide and the labels painted on the chosen annotation layer."""
        slide_layer = self._image.value
        labels_layer = self._annotations.value
        if slide_layer is None:
            raise WsiSslError("open a slide first")
        if labels_layer is None:
            raise AnnotationError(
                "no annotation layer", hint="click New annotation layer above, then paint"
            )
        slide = slide_geometry(slide_layer)
        return slide, read_painted(labels_layer, slide, min_classes)

    def other_slides(
        self, slide: SlideGeometry, painted: PaintedAnnotation
    ) -> tuple[OtherSlide, ...]:
        """With "all annotated slides" on: every other open slide whose annotation layer has
        painted pixels (the first such layer of each slide), as plain data. Their class names
        must agree with the chosen slide's (``slide``, ``painted``): AnnotationError, now."""
        if not bool(self._several.value):
            return ()
        chosen = self._image.value
        out = []
        for layer in self._viewer.layers:
            if not is_slide_layer(layer) or layer is chosen:
                continue
            geometry = slide_geometry(layer)
            for labels_layer in self._viewer.layers:
                meta = labels_layer.metadata
                if (
                    not isinstance(labels_layer, Labels)
                    or meta.get("store")
                    or labels_layer is self._annotations.value
                    or (
                        meta.get("slide_layer") != layer.name
                        and meta.get("slide_path") != str(geometry.slide_path)
                    )
                ):
                    continue
                try:
                    theirs = read_painted(labels_layer, geometry, min_classes=1)
                except AnnotationError:  # nothing painted on this one
                    continue
                out.append(
                    OtherSlide(
                        require_slide_path(geometry),
                        np.array(theirs.labels, copy=True),
                        theirs.downsample,
                        {k: v for k, v in theirs.class_names.items() if k != 0},
                    )
                )
                break
        if not out:
            raise AnnotationError(
                "no other open slide has a painted annotation layer",
                hint="paint one on another slide, or untick 'all annotated slides'",
            )
        unify_classes(
            [(require_slide_path(slide), painted.labels, painted.class_names)]
            + [(o.slide, o.labels, o.class_names) for o in out]
        )
        return tuple(out)

    def fast_request(self) -> FastRequest:
        """The fast mode's request: the painted labels, the encoder (``None``: colour features
        only) and where the head, the map store and the cache go."""
        slide, painted = self.painted()
        names = {k: v for k, v in painted.class_names.items() if k != 0}
        encoder = optional_path(self._checkpoint)
        return FastRequest(
            slide=require_slide_path(slide),
            labels=np.array(painted.labels, copy=True),
            labels_downsample=painted.downsample,
            encoder=encoder,
            out_dir=Path(self.cache_dir),
            head_path=self._checkpoint_out("segment"),
            class_names=names,
            others=self.other_slides(slide, painted),
            slide_mpp=check_pixel_size(self._image.value, checkpoint=encoder),
        )

    # -- the fast mode, live refinement, suggestions -------------------------------------------

    def _begin_display(self) -> None:
        slide_layer = self._image.value
        self.display.begin(predict_request(slide_layer, None, self.cache_dir, self._region.value))

    def _start_fast(self) -> None:
        try:
            request = self.fast_request()
            self._begin_display()
        except WsiSslError as exc:
            show_error(str(exc))
            self.set_status(str(exc))
            return
        self._curves.clear()
        self._val_acc = None
        self._runner.start(
            lambda token: fast_run(request, token),
            "Fast fine-tuning",
            on_done=lambda outcome: self._on_fast_done(request, outcome),
        )

    def _on_fast_done(self, request: FastRequest, outcome: Outcome, live: bool = False) -> None:
        self._curves.flush()
        result = outcome.value
        swapped = self.swap.apply(self.display.viewer, result.store) if outcome.ok else None
        weak = None
        if swapped:  # a live round on the same grid: the layers now read the new store
            self.display.store, self.display.layers = result.store, swapped
        else:
            weak = self.display.finish(outcome)
        if outcome.ok:
            if self.refiner is not None:  # the layers read the new store: drop the older ones
                remove_unread(self.display.viewer, self.refiner, retired=not live)
            if not live:
                self._fast = request
                self.refiner = LiveRefiner(result, request)
            self._remember(result.head)
            acc = result.metrics.get("val_balanced_accuracy")
            quality = f", held-out strokes balanced accuracy {acc:.2f}" if acc is not None else ""
            seconds = sum(result.seconds.values())
            shown = request.class_names.get(1, "tumour")
            classes = int(result.metrics.get("val_classes", 2))
            warnings = [w for w in (chance_warning(acc, classes), weak) if w is not None]
            self.set_status(
                f"{'refined' if live else 'done'} in {outcome.seconds:.1f} s "
                f"(head and map {seconds:.1f} s){quality}; the map is the probability of "
                f"{shown!r}; head: {result.head.name}"
                + _other_maps(result.maps)
                + "".join(f". {w}" for w in warnings)
            )
            if warnings and not live:
                show_warning(" ".join(warnings))
            elif not live:
                show_info(f"Fast fine-tuning finished: {result.head}; the map is shown")
        self.live.round_ended()

    def _start_refine(self) -> bool:
        """One live round on the strokes so far (after a fast run built the cache)."""
        if self.refiner is None or self._fast is None:
            self.set_status("live: click Fine-tune once (fast mode) to build the feature cache")
            return False
        previous = self.display.store
        try:
            _, painted = self.painted()
            self._begin_display()
        except WsiSslError as exc:
            self.set_status(f"live: {exc}")
            return False
        labels = np.array(painted.labels, copy=True)
        refiner, request, swap = self.refiner, self._fast, self.swap

        def live_round(token: Any) -> Generator[Any, None, Any]:
            result = yield from refiner.run(labels, painted.downsample, token)
            swap.prepare(result.store, previous)  # opened here, not on the GUI thread
            return result

        return self._runner.start(
            live_round,
            "Live refinement",
            on_done=lambda outcome: self._on_fast_done(request, outcome, live=True),
        )

    def _on_live(self, *_: Any) -> None:
        self.live.enabled = bool(self._live_box.value)
        self.live.watch(self._annotations.value if self.live.enabled else None)

    def _on_suggest(self, *_: Any) -> None:
        store = self.display.store
        if store is None or self.refiner is None:
            show_warning("Fine-tune in fast mode first: suggestions rank the map's uncertainty.")
            return
        if self.tour.stale(store):
            try:
                slide, painted = self.painted(min_classes=1)
            except WsiSslError as exc:
                show_error(str(exc))
                return
            n = self.tour.rank(store, painted.labels, painted.downsample, slide)
            self.set_status(f"{n} regions to paint next, the most uncertain first")
            if not n:
                return
        self.tour.visit_next()


def _other_maps(maps: dict[Path, Path]) -> str:
    """The status line's word on the other slides' maps of a several-slide run."""
    if len(maps) < 2:
        return ""
    others = list(maps.items())[1:]
    listed = "; ".join(f"{slide.name}: {store}" for slide, store in others)
    return f"; trained on {len(maps)} slides, the other maps (open them in Predict): {listed}"
