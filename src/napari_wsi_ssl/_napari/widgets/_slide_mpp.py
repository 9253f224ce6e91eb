"""The slide's own pixel size in the docks: the "slide µm/px" field, setting it on the layers,
and the check that stops a run needing it.

Two words, as on the command line: the *slide's* µm/px (level 0 of the file, here a field every
dock with a slide shows) and the *working* resolution a model trains or predicts at. The field is
prefilled from the slide layer; where the file states none it shows 0 in a warning colour, its
tooltip carrying the estimate (objective power, else nucleus size). Setting it rescales the
slide layer and every layer laid over it (annotations, maps, nuclei) to micrometres and records
the value in the slide layer's metadata (``mpp``, and ``slide_mpp`` for what the user gave), where
the docks, the writers and the runs read it. Nothing runs on the estimate itself.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from magicgui.widgets import FloatSpinBox
from napari.layers import Image

from ...errors import SlideError
from ...slide import MppEstimate, estimate_mpp, open_slide
from ._annotations import is_slide_layer, slide_layers
from ._base import camera_of

#: Metadata key of the pixel size the user gave (the runs get it as their ``slide_mpp``).
GIVEN = "slide_mpp"
#: Metadata key of the estimate's text, computed once per slide layer.
ESTIMATE = "mpp_estimate"
WARNING_STYLE = "QDoubleSpinBox { border: 2px solid #e8a33d; color: #e8a33d; }"
LABEL = "slide µm/px"


def layer_mpp(layer: Any) -> float | None:
    """The pixel size a slide layer works with (the user's, else the file's), or None."""
    mpp = layer.metadata.get("mpp")
    if isinstance(mpp, (list, tuple)):
        mpp = mpp[0] if mpp else None
    return float(mpp) if mpp else None


def given_mpp(layer: Any) -> float | None:
    """The pixel size the user gave a slide layer (a run's ``slide_mpp``), or None."""
    if layer is None:
        return None
    value = layer.metadata.get(GIVEN)
    return float(value) if value else None


def no_pixel_size_message(estimate: MppEstimate | None) -> str:
    """The dock's words for a slide without pixel size, with the estimate when there is one."""
    if estimate is None:
        return (
            "no pixel size in the file, and none could be estimated (no objective power, too "
            f"few nuclei); set '{LABEL}' in the dock to the slide's µm/px"
        )
    return (
        f"no pixel size in the file; it looks like {estimate}; set '{LABEL}' to "
        f"{estimate.mpp:.2g} in the dock to use it"
    )


def estimate_text(layer: Any) -> str:
    """:func:`no_pixel_size_message` for a slide layer, estimated once and kept in its metadata
    (here, on the calling thread, when no background estimate has finished yet)."""
    text = layer.metadata.get(ESTIMATE)
    if text is None:
        text = layer.metadata[ESTIMATE] = estimate_message(layer.metadata.get("slide_path"))
    return str(text)


def estimate_message(slide_path: str | None) -> str:
    """The message with the estimate of the slide at ``slide_path`` (its own file handle: the
    estimate reads tiles, so it may run beside the viewer's reads)."""
    estimate = None
    if slide_path:
        # a damaged slide: the message goes without an estimate
        with contextlib.suppress(SlideError), open_slide(slide_path) as slide:
            estimate = estimate_mpp(slide)
    return no_pixel_size_message(estimate)


#: Background estimates running, by slide path (the docks' fields share one).
_ESTIMATING: dict[str, Any] = {}


def estimate_later(layer: Any, done: Callable[[], None]) -> None:
    """Estimate ``layer``'s pixel size in a thread (reading tiles and finding nuclei takes
    seconds), keep the message in its metadata, then call ``done`` on the GUI thread."""
    path = str(layer.metadata.get("slide_path"))
    worker = _ESTIMATING.get(path)
    if worker is None:
        from napari.qt.threading import create_worker

        worker = _ESTIMATING[path] = create_worker(estimate_message, path, _start_thread=False)

        def keep(text: str) -> None:
            layer.metadata[ESTIMATE] = text
            _ESTIMATING.pop(path, None)

        worker.returned.connect(keep)
        worker.errored.connect(lambda _: keep(no_pixel_size_message(None)))
        worker.start()
    worker.finished.connect(done)


def check_pixel_size(
    layer: Any, *, working_mpp: float | None = None, checkpoint: Path | None = None
) -> float | None:
    """The ``slide_mpp`` a run on ``layer`` gets (None: the file's), or SlideError with the estimate
    when the run works in µm (a working resolution, or a checkpoint trained at one) and the
    slide has no pixel size."""
    if layer is None or layer_mpp(layer) is not None:
        return given_mpp(layer)
    if working_mpp is None and checkpoint_mpp(checkpoint) is None:
        return None  # at the slide's native resolution: no pixel size needed
    raise SlideError(estimate_text(layer), layer.metadata.get("slide_path"))


def checkpoint_mpp(path: Path | None) -> float | None:
    """The working resolution a checkpoint (network or fast-mode head) was trained at, or None.

    An unreadable file gives None: the run then says what is wrong with it.
    """
    if path is None or not Path(path).is_file():
        return None
    import torch  # the docks that ask have loaded torch already

    try:
        payload = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:
        return None
    if not isinstance(payload, dict):
        return None
    mpp = payload.get("mpp")
    if mpp is None and isinstance(payload.get("feature_config"), dict):
        mpp = payload["feature_config"].get("mpp")
    return float(mpp) if mpp else None


def slide_of(viewer: Any, layer: Any) -> Image | None:
    """The open slide layer under ``layer`` (itself for a slide), or None."""
    if layer is None:
        return None
    if is_slide_layer(layer):
        return layer  # type: ignore[no-any-return]
    name = layer.metadata.get("slide_layer")
    slides = slide_layers(viewer)
    for slide in slides:
        if slide.name == name:
            return slide
    path = layer.metadata.get("slide_path")
    return next((s for s in slides if path and s.metadata.get("slide_path") == path), None)


def set_slide_mpp(viewer: Any, slide_layer: Image, mpp: float) -> None:
    """Give ``slide_layer`` the pixel size ``mpp`` (µm/px at level 0), and every layer laid over it.

    Each layer keeps its place on the slide: its scale and its offset from the slide's origin
    are multiplied by the change (layers tied to no slide, such as a drawn region, too when
    one slide is open); the camera follows, so the view shows the same part.
    """
    mpp = float(mpp)
    old = np.asarray(slide_layer.scale[-2:], dtype=float)
    ratio = np.array([mpp, mpp]) / old
    origin = np.asarray(slide_layer.translate[-2:], dtype=float)
    alone = len(slide_layers(viewer)) == 1
    followers = [
        la
        for la in viewer.layers
        if la != slide_layer  # != and ==: a plugin dock's viewer hands out proxies of layers
        and (slide_of(viewer, la) == slide_layer or (alone and _unplaced(la)))
    ]
    # the metadata first: the scale events tell the docks' fields to read it
    slide_layer.metadata["mpp"] = [mpp, mpp]
    slide_layer.metadata[GIVEN] = mpp
    for layer in [slide_layer, *followers]:
        scale = np.asarray(layer.scale, dtype=float)
        translate = np.asarray(layer.translate, dtype=float)
        scale[-2:] *= ratio
        translate[-2:] = origin + (translate[-2:] - origin) * ratio
        layer.scale = tuple(scale)
        layer.translate = tuple(translate)
        layer.units = ("um",) * layer.ndim
        if layer != slide_layer and "mpp" in layer.metadata:
            layer.metadata["mpp"] = mpp
    camera = camera_of(viewer)
    centre = np.asarray(camera.center, dtype=float)
    centre[-2:] = origin + (centre[-2:] - origin) * ratio
    camera.center = tuple(centre)
    camera.zoom = camera.zoom / float(ratio[-1])
    # the docks' fields follow through the slide layer's scale event


def _unplaced(layer: Any) -> bool:
    """A layer tied to no slide (a region drawn, suggestions): it lies on the one slide open."""
    return not layer.metadata.get("slide_path") and not layer.metadata.get("slide_layer")


class SlideMppField:
    """A dock's "slide µm/px" field, bound to the slide layer that ``current`` returns.

    Call :meth:`refresh` when the dock's slide choice changes (and on layer changes).
    """

    def __init__(self, viewer: Any, current: Callable[[], Any]) -> None:
        self._viewer = viewer
        self._current = current
        self._layer: Any = None
        self.widget = FloatSpinBox(
            label=LABEL, value=0.0, min=0.0, max=1000.0, step=0.05, tooltip=self._plain_tip()
        )
        self.widget.native.setDecimals(4)
        self.widget.native.setKeyboardTracking(False)  # the value counts once typed, not per key
        self.widget.changed.connect(self._on_value)
        self._updating = False

    @staticmethod
    def _plain_tip() -> str:
        return (
            "the slide's own pixel size at level 0 (from the file); set it where the file has "
            "none, or to correct it: every layer, run and export of the slide then uses it"
        )

    def refresh(self, *_: Any) -> None:
        """Show the current slide layer's pixel size (0 and the warning when it has none)."""
        with contextlib.suppress(RuntimeError):  # the dock's Qt side is gone (viewer closed)
            layer = slide_of(self._viewer, self._current())
            if layer != self._layer:
                self._watch(layer)
            mpp = layer_mpp(layer) if layer is not None else None
            self._updating = True
            try:
                self.widget.value = mpp or 0.0
            finally:
                self._updating = False
            missing = layer is not None and mpp is None
            self.widget.native.setStyleSheet(WARNING_STYLE if missing else "")
            if layer is None or not missing:
                self.widget.tooltip = self._plain_tip()
            elif layer.metadata.get(ESTIMATE) is not None:
                self.widget.tooltip = str(layer.metadata[ESTIMATE])
            else:
                self.widget.tooltip = "no pixel size in the file; estimating it…"
                estimate_later(layer, self.refresh)

    def _watch(self, layer: Any) -> None:
        if self._layer is not None:
            with contextlib.suppress(TypeError, ValueError, RuntimeError):
                self._layer.events.scale.disconnect(self.refresh)
        self._layer = layer
        if layer is not None:
            layer.events.scale.connect(self.refresh)

    def _on_value(self, value: float) -> None:
        if self._updating:
            return
        layer = slide_of(self._viewer, self._current())
        if layer is None or not value or value == layer_mpp(layer):
            self.refresh()
            return
        set_slide_mpp(self._viewer, layer, float(value))
        self.refresh()

    @property
    def warning(self) -> bool:
        """Whether the field shows the warning (a slide without pixel size)."""
        return bool(self.widget.native.styleSheet())


__all__ = [
    "SlideMppField",
    "check_pixel_size",
    "given_mpp",
    "layer_mpp",
    "set_slide_mpp",
    "slide_of",
]
