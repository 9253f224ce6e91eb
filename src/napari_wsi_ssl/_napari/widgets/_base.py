"""What every dock shares: the viewer, a run controller, layer pickers, a status line."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from magicgui.widgets import Container, Label, PushButton
from qtpy.QtCore import QTimer

from ._worker import RunController


def layer_choices(
    viewer: Any, predicate: Callable[[Any], bool], optional: str | None = None
) -> Callable[[Any], list[tuple[str, Any]]]:
    """A magicgui ``choices`` callable listing the viewer's layers that satisfy ``predicate``.

    With ``optional``, a first entry of that text standing for ``None`` is added.
    """

    def choices(_widget: Any = None) -> list[tuple[str, Any]]:
        items: list[tuple[str, Any]] = [(optional, None)] if optional is not None else []
        items += [(layer.name, layer) for layer in viewer.layers if predicate(layer)]
        return items

    return choices


def optional_path(edit: Any) -> Path | None:
    """The path typed in a magicgui FileEdit, or ``None`` when it is empty."""
    text = str(edit.line_edit.value).strip()
    return Path(text).expanduser() if text else None


def preload_compute() -> None:
    """Import the compute layers (and torch) now, on opening a dock.

    An import holds the interpreter lock for seconds; done in a worker at the first click, it
    would freeze the viewer then. Opening the dock is where a wait is expected.
    """
    import napari_wsi_ssl.inference  # noqa: F401
    import napari_wsi_ssl.training  # noqa: F401


#: Shortest interval between two updates of a dock's running status line, in seconds.
STATUS_INTERVAL_S = 0.25


class DockBase(Container):
    """A dock bound to a viewer, with a main button, a Cancel button and a status line.

    Subclasses add their fields, their main button, ``self._cancel_button`` and ``self._status``.
    """

    def __init__(self, napari_viewer: Any) -> None:
        super().__init__(labels=True)
        self._viewer = napari_viewer
        self._runner = RunController(
            on_event=self._on_event, on_state=self._on_state, on_status=self.set_progress_status
        )
        self._status = Label(value="")
        self._status.native.setWordWrap(True)
        self._cancel_button = PushButton(text="Cancel", enabled=False)
        self._cancel_button.changed.connect(self._on_cancel)
        self._status_time = 0.0
        self._pending_status: str | None = None
        events = napari_viewer.layers.events
        for name in ("inserted", "removed", "moved"):
            getattr(events, name).connect(self._on_layers_changed)

    @property
    def runner(self) -> RunController:
        """The controller of this dock's long runs (``runner.sync = True`` runs them inline)."""
        return self._runner

    # -- events ---------------------------------------------------------------------------
    def _on_layers_changed(self, *_: Any) -> None:
        # the Qt side may already be deleted when the viewer closes
        with contextlib.suppress(RuntimeError):
            self.reset_choices()

    def _on_cancel(self, *_: Any) -> None:
        self._runner.cancel()

    def _on_event(self, event: Any) -> None:  # overridden by docks with live displays
        pass

    def _on_state(self, running: bool) -> None:
        # the main button stays enabled: a second click is refused with a message
        self._cancel_button.enabled = running
        if running:
            self._status.value = "running…"

    def set_status(self, text: str) -> None:
        self._pending_status = None
        self._status.value = text

    def set_progress_status(self, text: str) -> None:
        """Show a running count, at most every STATUS_INTERVAL_S (a relayout of the dock each time
        would add up over hundreds of steps); the last text always shows."""
        now = time.monotonic()
        if now - self._status_time >= STATUS_INTERVAL_S:
            self._status_time = now
            self.set_status(text)
            return
        if self._pending_status is None:
            QTimer.singleShot(int(STATUS_INTERVAL_S * 1000), self._show_pending_status)
        self._pending_status = text

    def _show_pending_status(self) -> None:
        if self._pending_status is not None:
            self._status_time = time.monotonic()
            with contextlib.suppress(RuntimeError):
                self.set_status(self._pending_status)
