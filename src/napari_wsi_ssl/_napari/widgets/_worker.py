"""Glue between the compute generators and the docks.

A :class:`RunController` runs one generator of events (:mod:`napari_wsi_ssl.events`) at a time:
in a ``napari.qt.threading`` worker, or inline when the synchronous switch is on (the environment
variable ``NAPARI_WSI_SSL_SYNC=1`` or ``controller.sync = True``, for tests). Either way the same
generator runs and the same handlers see its events on the GUI thread:

- ``Progress`` and ``TilesDone`` move the dock's own progress bar (``on_bar``), a few times a
  second at most. Runs stay off napari's activity dock: its animated indicator repaints the
  whole window about 30 times a second, which under software OpenGL starves the computation;
- a warning ``Log`` becomes a notification, an informative one a line in the log and in the
  dock's status;
- every event is then passed to the dock's own handler (curves, preview, layer refresh);
- a :class:`~napari_wsi_ssl.errors.WsiSslError` becomes ``show_error(message)``; a cancelled run
  a short info; the dock stays usable.

Exceptions are caught inside the worker and handed back as a value, so that napari's own error
relay never turns a user's mistake into a traceback.
"""

from __future__ import annotations

import gc
import logging
import os
import sys
import time
import traceback
from collections.abc import Callable, Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from napari.utils.notifications import show_error, show_info, show_warning

from ...errors import CancelledError, WsiSslError
from ...events import CancelToken, Log, Progress, TilesDone

logger = logging.getLogger(__name__)

SYNC_ENV = "NAPARI_WSI_SSL_SYNC"

EventGenerator = Generator[Any, None, Any]

#: Shortest interval between two updates of a dock's progress bar, in seconds.
BAR_INTERVAL_S = 0.25


def sync_default() -> bool:
    """Whether runs go inline by default (``NAPARI_WSI_SSL_SYNC`` set to 1/true/yes)."""
    return os.environ.get(SYNC_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


@dataclass
class Outcome:
    """How a run ended: ``value`` on success, else ``error`` (``cancelled`` when the user stopped it)."""

    value: Any = None
    error: BaseException | None = None
    cancelled: bool = False
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None and not self.cancelled


#: Niceness of the compute threads in the GUI (Linux), above the GUI thread's.
COMPUTE_NICENESS = 10


def yield_cpu_to_gui(niceness: int = COMPUTE_NICENESS) -> int:
    """Run this thread, and the compute threads it will start or that torch already started,
    at a lower CPU priority than the GUI thread; return how many threads were changed.

    Training and inference use every core; at the same priority the GUI thread waits its turn
    behind them and the viewer stutters. With a higher niceness the compute threads still get
    every cycle the GUI leaves idle. Linux only (per-thread niceness); elsewhere nothing
    happens. Threads a niced thread starts inherit its niceness; torch's OpenMP threads, which
    may have been started earlier from the GUI thread, are found by name. Qt's own threads
    (the X event queue among them) and the GUI thread keep theirs.
    """
    import threading

    if not sys.platform.startswith("linux"):
        return 0
    me, gui = threading.get_native_id(), threading.main_thread().native_id
    tasks = Path("/proc/self/task")
    try:
        main_name = (tasks / str(gui) / "comm").read_text().strip()
        tids = [int(t.name) for t in tasks.iterdir()]
    except OSError:
        tids, main_name = [me], ""
    changed = 0
    for tid in tids:
        if tid == gui:
            continue
        if tid != me:
            try:
                if (tasks / str(tid) / "comm").read_text().strip() != main_name:
                    continue  # a named thread: Qt's, napari's, a reader pool's
            except OSError:
                continue
        try:
            if os.getpriority(os.PRIO_PROCESS, tid) < niceness:
                os.setpriority(os.PRIO_PROCESS, tid, niceness)
                changed += 1
        except OSError:  # the thread is gone, or the system forbids it
            continue
    return changed


#: The interpreter's thread switch interval while a run goes, in seconds (Python's default is
#: 0.005). Every Qt event enters Python (napari's window filters them), so the GUI thread takes
#: the GIL dozens of times per repaint; each time the worker is running Python (unpickling a
#: checkpoint, building a model), it waits up to one interval.
RUN_SWITCH_INTERVAL_S = 0.0005


class _RunPacing:
    """Interpreter settings that keep the GUI thread responsive while runs go, set when the
    first run starts and restored when the last one ends.

    - The objects that exist when a run starts are kept out of the cyclic garbage collector's
      passes (``gc.freeze``). A viewer holds about 600,000 Python objects; a full collection
      walks all of them, holding the interpreter lock for about 250 ms, and the allocations of
      a starting run (loading a checkpoint, building a model) trigger one. While frozen,
      collections look only at objects made since; at the end they go back to the collector,
      and any garbage among them is collected as usual.
    - The thread switch interval is shortened to ``RUN_SWITCH_INTERVAL_S``.
    """

    def __init__(self) -> None:
        self.runs = 0
        self._interval = sys.getswitchinterval()

    def enter(self) -> None:
        if self.runs == 0:
            gc.freeze()
            self._interval = sys.getswitchinterval()
            sys.setswitchinterval(min(self._interval, RUN_SWITCH_INTERVAL_S))
        self.runs += 1

    def leave(self) -> None:
        self.runs = max(0, self.runs - 1)
        if self.runs == 0:
            gc.unfreeze()
            sys.setswitchinterval(self._interval)


PACING = _RunPacing()


def _guarded(gen: EventGenerator, nice: bool = False) -> Generator[Any, None, Outcome]:
    """Run ``gen`` to its end, yielding its events and returning an :class:`Outcome`.

    ``nice``: first lower this thread's CPU priority below the GUI's (see :func:`yield_cpu_to_gui`).
    """
    if nice:
        yield_cpu_to_gui()
    start = time.monotonic()
    try:
        value = yield from gen
    except CancelledError as exc:
        return Outcome(error=exc, cancelled=True, seconds=time.monotonic() - start)
    except WsiSslError as exc:
        return Outcome(error=exc, seconds=time.monotonic() - start)
    except Exception as exc:  # a bug: keep the traceback in the log, tell the user briefly
        logger.error("run failed:\n%s", traceback.format_exc())
        return Outcome(error=exc, seconds=time.monotonic() - start)
    return Outcome(value=value, seconds=time.monotonic() - start)


class RunController:
    """Runs one long computation at a time for a dock.

    Parameters
    ----------
    on_event
        Called on the GUI thread with every event the generator yields.
    on_state
        Called with ``True`` when a run starts and ``False`` when it ends (to enable buttons).
    on_status
        Called with the text of informative ``Log`` events (warnings become notifications).
    on_bar
        Called with ``(done, total, what)`` as ``Progress`` (``what`` "steps") and ``TilesDone``
        (``what`` "tiles") events arrive, at most every ``BAR_INTERVAL_S`` (the last always).
    """

    def __init__(
        self,
        on_event: Callable[[Any], None] | None = None,
        on_state: Callable[[bool], None] | None = None,
        on_status: Callable[[str], None] | None = None,
        on_bar: Callable[[int, int | None, str], None] | None = None,
    ) -> None:
        self.on_event = on_event
        self.on_state = on_state
        self.on_status = on_status
        self.on_bar = on_bar
        self.sync: bool | None = None
        self.token: CancelToken | None = None
        self.worker: Any = None
        self.last_outcome: Outcome | None = None
        self._bar_time = 0.0
        self._bar_what = ""
        self._running = False
        self._label = ""
        self._on_done: Callable[[Outcome], None] | None = None

    @property
    def running(self) -> bool:
        """Whether a run is going."""
        return self._running

    @property
    def inline(self) -> bool:
        """Whether runs go inline on the GUI thread (``sync``, else ``NAPARI_WSI_SSL_SYNC``)."""
        return self.sync if self.sync is not None else sync_default()

    def busy(self) -> bool:
        """Whether a run is going; if so, say so to the user (a second run is refused)."""
        if self._running:
            show_warning(f"{self._label} is still running: wait for it or cancel it first.")
        return self._running

    def start(
        self,
        factory: Callable[[CancelToken], EventGenerator],
        label: str,
        on_done: Callable[[Outcome], None] | None = None,
    ) -> bool:
        """Start ``factory(token)`` unless a run is already going (then refuse with a message).

        ``factory`` must build the generator from plain data only (arrays, paths, configs): it
        runs on the GUI thread, and the generator then runs in the worker thread.
        Returns whether the run was started.
        """
        if self.busy():
            return False
        token = CancelToken()
        try:
            gen = factory(token)
        except WsiSslError as exc:
            show_error(str(exc))
            return False
        self.token = token
        self._label = label
        self._on_done = on_done
        self._running = True
        self.last_outcome = None
        self._bar_time, self._bar_what = 0.0, ""
        PACING.enter()
        if self.on_state is not None:
            self.on_state(True)
        if self.inline:
            guarded = _guarded(gen)
            while True:
                try:
                    event = next(guarded)
                except StopIteration as stop:
                    self._finish(stop.value)
                    break
                self._handle(event)
            return True
        from napari.qt.threading import create_worker

        worker = create_worker(_guarded, gen, nice=True, _start_thread=False)
        worker.yielded.connect(self._handle)
        worker.returned.connect(self._finish)
        # an error here would be a failure of the thread machinery itself, not of the run
        worker.errored.connect(lambda exc: self._finish(Outcome(error=exc)))
        self.worker = worker
        worker.start()
        return True

    def cancel(self) -> None:
        """Ask the run to stop at its next step; the compute code keeps what was finished."""
        if self._running and self.token is not None:
            self.token.cancel()
            show_info(f"{self._label}: cancelling at the next step")

    def _handle(self, event: Any) -> None:
        try:
            self._update_bar(event)
            if isinstance(event, Log):
                if event.level in ("warning", "error"):
                    show_warning(event.message)
                else:
                    # a notification per line would pile up toasts (each one a burst of widget
                    # work on the GUI thread): info goes to the log and the dock's status line
                    logger.info("%s: %s", self._label, event.message)
                    if self.on_status is not None:
                        self.on_status(event.message)
            if self.on_event is not None:
                self.on_event(event)
        except Exception:  # a display glitch must not end the run
            logger.exception("event handler failed")

    def _update_bar(self, event: Any) -> None:
        if self.on_bar is None:
            return
        if isinstance(event, Progress):
            step, total, what = event.step, event.total, "steps"
        elif isinstance(event, TilesDone):
            step, total, what = event.done, event.total, "tiles"
        else:
            return
        now = time.monotonic()
        last = bool(total and step >= total)
        if now - self._bar_time < BAR_INTERVAL_S and what == self._bar_what and not last:
            return
        self._bar_time, self._bar_what = now, what
        self.on_bar(step, total, what)

    def _finish(self, outcome: Outcome) -> None:
        if not self._running:
            return
        self._running = False
        PACING.leave()
        self.worker = None
        if self.token is not None and self.token.cancelled and not outcome.cancelled:
            # training stops at a cancel by saving and returning: still a cancelled run
            outcome.cancelled = True
        self.last_outcome = outcome
        if outcome.cancelled:
            show_info(f"{self._label} cancelled; finished work was kept.")
        elif isinstance(outcome.error, WsiSslError):
            show_error(str(outcome.error))
        elif outcome.error is not None:
            show_error(f"{self._label} failed: {type(outcome.error).__name__}: {outcome.error}")
        if self.on_state is not None:
            self.on_state(False)
        try:
            if self._on_done is not None:
                self._on_done(outcome)
        except WsiSslError as exc:
            show_error(str(exc))
        except Exception as exc:
            logger.error("finishing %s failed:\n%s", self._label, traceback.format_exc())
            show_error(f"{self._label} failed: {type(exc).__name__}: {exc}")
