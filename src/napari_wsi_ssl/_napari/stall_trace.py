"""The event-loop probe of the GUI figures and what it needs to name the cause of each stall.

:class:`Probe` is a 10 ms QTimer that records every gap between its ticks (a stall of the
event loop) and the CPU time the GUI thread spent in it (``time.thread_time``): a long gap with
little CPU is the GUI thread waiting (for the interpreter lock, or for a core on a loaded
machine), a long gap with as much CPU is work done on the GUI thread; on Linux the time the
GUI thread was ready to run but had no core (``/proc/thread-self/schedstat``) tells the two
waits apart, and what is left of a gap is the thread blocked (on the lock, or on the display
server). With ``trace=True`` a
watchdog thread samples the GUI thread's Python stack (``sys._current_frames``) every few
milliseconds while a tick is overdue, so that each stall gets the callback that owned it (the
outermost frame the event loop entered) and where it was (the innermost frame).
"""

from __future__ import annotations

import sys
import threading
import time
from collections import Counter
from typing import Any

import numpy as np

#: A tick this late (seconds) starts the sampling of the GUI thread's stack.
OVERDUE_S = 0.03
#: Interval between two samples of the GUI thread's stack while a tick is overdue, in seconds.
SAMPLE_S = 0.003
#: Frames that run the event loop for the probe's harness (the benches' loops, pytest-qt's
#: waits): the frame below the innermost of them is the callback that owns a stall.
_LOOP_FILES = ("pytestqt",)
_LOOP_FUNCTIONS = {("gui_bench.py", "_run_loop"), ("stall_probe.py", "_wait")}
#: What a sample without a Python frame below the harness means.
QT_ONLY = "Qt (no Python below the event loop: painting, window-system events)"


def _run_queue_s() -> float:
    """Seconds this thread has waited for a core since it started (0.0 where unknown)."""
    try:
        with open("/proc/thread-self/schedstat", "rb") as f:
            return int(f.read().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return 0.0


def _frame_name(frame: Any) -> str:
    code = frame.f_code
    module = frame.f_globals.get("__name__", code.co_filename)
    return f"{module}.{code.co_name}:{frame.f_lineno}"


def _runs_loop(frame: Any) -> bool:
    name = frame.f_code.co_filename
    if any(h in name for h in _LOOP_FILES):
        return True
    return any(name.endswith(f) and frame.f_code.co_name == fn for f, fn in _LOOP_FUNCTIONS)


def _attribute(frame: Any) -> tuple[str, str]:
    """(owner, where) of a GUI-thread stack: the frame the event loop entered (the one below the
    innermost frame that runs the loop; else the outermost) and the innermost frame."""
    where = _frame_name(frame) if frame is not None else "?"
    owner = None
    while frame is not None and not _runs_loop(frame):
        owner, frame = frame, frame.f_back
    return (QT_ONLY if owner is None else _frame_name(owner)), where


class Probe:
    """A 10 ms QTimer that records the event loop's gaps, and their causes with ``trace``."""

    def __init__(self, trace: bool = False) -> None:
        from qtpy.QtCore import QTimer

        self.timer = QTimer()
        self.timer.setInterval(10)
        self.timer.timeout.connect(self._tick)
        self.last = 0.0
        self.t0 = 0.0
        self._cpu = 0.0
        self._queued = 0.0
        self.gaps: list[float] = []
        self.cpus: list[float] = []
        self.queued: list[float] = []
        self.ends: list[float] = []
        #: stack samples per gap (the index of the gap they fell in): (owner, where)
        self.samples: dict[int, list[tuple[str, str]]] = {}
        self._watch: threading.Thread | None = None
        self._stop = threading.Event()
        self.trace = trace

    def _tick(self) -> None:
        now, cpu, queued = time.perf_counter(), time.thread_time(), _run_queue_s()
        if self.last:
            self.gaps.append(now - self.last)
            self.cpus.append(cpu - self._cpu)
            self.queued.append(queued - self._queued)
            self.ends.append(now - self.t0)
        self.last, self._cpu, self._queued = now, cpu, queued

    def _sample(self) -> None:
        main = threading.main_thread().ident or 0
        delay = SAMPLE_S
        while not self._stop.wait(delay):
            # asleep until the next tick would be overdue: a thread that wakes every few ms
            # would take the interpreter lock from the GUI and the computation as often
            due = self.last + OVERDUE_S - time.perf_counter() if self.last else OVERDUE_S
            delay = max(due, SAMPLE_S)
            if due > 0:
                continue
            frame = sys._current_frames().get(main)
            if frame is not None:
                self.samples.setdefault(len(self.gaps), []).append(_attribute(frame))
            del frame

    def start(self) -> None:
        self.gaps, self.cpus, self.queued, self.ends = [], [], [], []
        self.samples, self.last = {}, 0.0
        self.t0 = time.perf_counter()
        self.timer.start()
        if self.trace and self._watch is None:
            self._stop.clear()
            self._watch = threading.Thread(target=self._sample, daemon=True)
            self._watch.start()

    def stop(self) -> dict[str, float]:
        self.timer.stop()
        if self._watch is not None:
            self._stop.set()
            self._watch.join()
            self._watch = None
        g = np.asarray(self.gaps or [0.0]) * 1000
        return {"longest_ms": float(g.max()), "p99_ms": float(np.percentile(g, 99))}

    def worst(self, n: int = 5) -> list[tuple[float, float]]:
        """The ``n`` longest gaps as (ms, seconds after start at which each ended)."""
        order = np.argsort(self.gaps)[::-1][:n]
        return [(round(self.gaps[i] * 1000, 1), round(self.ends[i], 2)) for i in order]

    def stalls(self, over_ms: float = 50.0, n: int = 10) -> list[dict[str, Any]]:
        """The ``n`` longest gaps over ``over_ms``, each with the GUI thread's CPU time in it, its
        wait for a core and, when traced, the owner and place most of its stack samples show."""
        order = [i for i in np.argsort(self.gaps)[::-1][:n] if self.gaps[i] * 1000 > over_ms]
        out = []
        for i in order:
            entry: dict[str, Any] = {
                "ms": round(self.gaps[i] * 1000, 1),
                "cpu_ms": round(self.cpus[i] * 1000, 1),
                "queued_ms": round(self.queued[i] * 1000, 1),
                "at_s": round(self.ends[i], 2),
            }
            seen = Counter(self.samples.get(i, []))
            if seen:
                (owner, where), count = seen.most_common(1)[0]
                entry.update(owner=owner, where=where, samples=sum(seen.values()), share=count)
                owners = Counter(o for o, _ in self.samples[i]).most_common(3)
                entry["owners"] = [f"{o} ({c})" for o, c in owners]
            out.append(entry)
        return out

    def cpu_ms(self) -> dict[str, float]:
        """The GUI thread's CPU time per gap (ms): the longest, and the total over the run, a
        measure of the GUI thread's own work that other jobs on the machine do not stretch."""
        c = np.asarray(self.cpus or [0.0]) * 1000
        return {"longest_cpu_ms": round(float(c.max()), 1), "total_cpu_ms": round(float(c.sum()))}
