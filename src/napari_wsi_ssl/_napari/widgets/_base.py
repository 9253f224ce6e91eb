"""What every dock shares: the viewer, its session, a run controller, layer pickers, a status
line and a progress bar of its own."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from magicgui.widgets import Container, Label, ProgressBar, PushButton
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import QDockWidget, QMainWindow, QWidget

from ...errors import WsiSslError
from ..reader import claim_slide_suffixes
from ._session import Session, session_of
from ._worker import Outcome, RunController

T = TypeVar("T")


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


def camera_of(viewer: Any) -> Any:
    """The viewer's camera: ``viewer.scene.camera`` from napari 0.9 (``viewer.camera`` is
    deprecated there), ``viewer.camera`` before."""
    scene = getattr(viewer, "scene", None)
    return scene.camera if scene is not None else viewer.camera


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
#: The object name of every dock's widget, by which docks find each other in the window.
DOCK_NAME = "napari-wsi-ssl-dock"
#: While a run gives no news for this long, its status line counts the seconds (in ms).
QUIET_TICK_MS = 1000


@contextlib.contextmanager
def _deferred_paint(bar: Any) -> Iterator[Any]:
    """A QProgressBar changed without its synchronous ``repaint()`` (setValue repaints at once,
    which with the GL canvas beside it stalled the GUI 15-70 ms a call on a loaded machine);
    it is painted at the next turn of the event loop instead."""
    bar.setUpdatesEnabled(False)
    try:
        yield bar
    finally:
        bar.setUpdatesEnabled(True)  # schedules one ordinary update


class DockBase(Container):
    """A dock bound to a viewer, with a main button, a Cancel button, a status line and a
    progress bar.

    Subclasses add their fields, their main button, ``self._cancel_button``, ``self._progress``
    and ``self._status``. The status line always ends a run with what happened: done, cancelled
    or failed; a dock's ``on_done`` may then say more.
    """

    def __init__(self, napari_viewer: Any) -> None:
        super().__init__(labels=True)
        self.native.setObjectName(DOCK_NAME)
        self._viewer = napari_viewer
        claim_slide_suffixes()  # the plugin is in use: later drops of slides come to it
        self.session: Session = session_of(napari_viewer)
        self._runner = RunController(
            on_event=self._on_event,
            on_state=self._on_state,
            on_status=self.set_progress_status,
            on_bar=self._on_bar,
        )
        self._status = Label(value="")
        self._status.native.setWordWrap(True)
        self._progress = ProgressBar(value=0, min=0, max=1, label="progress")
        self._progress.native.setTextVisible(True)
        self._progress.visible = False
        self._quiet = QTimer()
        self._quiet.setInterval(QUIET_TICK_MS)
        self._quiet.timeout.connect(self._on_quiet)
        self._run_start = 0.0
        self._quiet_text = "running…"
        self._cancel_button = PushButton(text="Cancel", enabled=False)
        self._cancel_button.changed.connect(self._on_cancel)
        self._status_time = 0.0
        self._pending_status: str | None = None
        events = napari_viewer.layers.events
        for name in ("inserted", "removed", "moved"):
            getattr(events, name).connect(self._on_layers_changed)
        # once napari has put this dock in the window (the next turn of the event loop)
        QTimer.singleShot(0, self._tabify)

    @property
    def runner(self) -> RunController:
        """The controller of this dock's long runs (``runner.sync = True`` runs them inline)."""
        return self._runner

    def _tabify(self) -> None:
        """Stack this dock as a tab over the plugin's other docks in the same area."""
        with contextlib.suppress(RuntimeError):  # closed before the event loop turned
            tabify_with_siblings(self.native)

    # -- events ---------------------------------------------------------------------------
    def _on_layers_changed(self, *_: Any) -> None:
        # the Qt side may already be deleted when the viewer closes
        with contextlib.suppress(RuntimeError):
            self.reset_choices()

    def _on_cancel(self, *_: Any) -> None:
        self._runner.cancel()

    def _on_event(self, event: Any) -> None:  # overridden by docks with live displays
        pass

    @property
    def progress_bar(self) -> ProgressBar:
        """The dock's one progress bar (runs never use napari's activity dock)."""
        return self._progress

    def _on_state(self, running: bool) -> None:
        # the main button stays enabled: a second click is refused with a message
        self._cancel_button.enabled = running
        if running:
            self._run_start = time.monotonic()
            with _deferred_paint(self._progress.native) as bar:
                bar.setRange(0, 1)
                bar.setValue(0)
                bar.setFormat("starting")
            if self._progress.native.parent() is not None:  # in the dock's layout
                self._progress.visible = True
            self.set_status("running…")
            self._quiet.start()
            return
        self._quiet.stop()
        outcome = self._runner.last_outcome
        if outcome is not None:
            self.set_status(ended_status(outcome))

    def _on_bar(self, done: int, total: int | None, what: str) -> None:
        with _deferred_paint(self._progress.native) as bar:
            if total:
                bar.setRange(0, int(total))
                bar.setValue(min(int(done), int(total)))
                bar.setFormat(f"{what} %v/%m")
            else:  # bounded by time: a count, never the animated busy bar
                bar.setRange(0, 1)
                bar.setValue(0)
                bar.setFormat(f"{what} {done}")

    def _on_quiet(self) -> None:
        """Once a second without news, say for how long the run has gone (no silent phases)."""
        if not self._runner.running:
            self._quiet.stop()
            return
        if time.monotonic() - self._status_time >= QUIET_TICK_MS / 1000:
            seconds = time.monotonic() - self._run_start
            with contextlib.suppress(RuntimeError):  # the viewer closed while a run went
                self._status.value = f"{self._quiet_text} ({seconds:.0f} s)"

    def checked(self, make: Callable[[], T]) -> T | None:
        """``make()``, or None once its WsiSslError is shown (a notification and the status line)."""
        try:
            return make()
        except WsiSslError as exc:
            from napari.utils.notifications import show_error

            show_error(str(exc))
            self.set_status(str(exc))
            return None

    def set_status(self, text: str) -> None:
        self._pending_status = None
        self._status_time = time.monotonic()
        self._quiet_text = text.split(" (")[0] if self._runner.running else self._quiet_text
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
            with contextlib.suppress(RuntimeError):
                self.set_status(self._pending_status)


def tabify_with_siblings(widget: QWidget) -> None:
    """Put the dock holding ``widget`` in a tab with the plugin's docks in its area, and show it.

    napari stacks docks one under the other; five of them make the window taller than most
    screens. As tabs, the window keeps its size and each dock is one click away.
    """
    dock = widget.parentWidget()
    while dock is not None and not isinstance(dock, QDockWidget):
        dock = dock.parentWidget()
    main = dock.parentWidget() if dock is not None else None
    if dock is None or not isinstance(main, QMainWindow) or dock.isFloating():
        return
    area = main.dockWidgetArea(dock)
    for other in main.findChildren(QDockWidget):
        if (
            other is not dock
            and not other.isFloating()
            and not other.isHidden()
            and main.dockWidgetArea(other) == area
            and other.findChild(QWidget, DOCK_NAME) is not None
        ):
            main.tabifyDockWidget(other, dock)
            dock.show()
            dock.raise_()
            return


def ended_status(outcome: Outcome) -> str:
    """The status line of a run that has ended: cancelled, failed or done, and after how long."""
    seconds = f"{outcome.seconds:.0f} s"
    if outcome.cancelled:
        return f"cancelled after {seconds}; finished work was kept"
    if outcome.error is not None:
        first = str(outcome.error).strip().splitlines()[0] if str(outcome.error).strip() else ""
        return f"failed: {first or type(outcome.error).__name__}"
    return f"done in {seconds}"
