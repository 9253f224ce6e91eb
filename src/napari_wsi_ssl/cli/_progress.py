"""Terminal rendering of progress events for the command line."""

from __future__ import annotations

import sys
import time
from collections.abc import Generator
from typing import Any, TextIO

from ..events import Log, Progress, TilesDone


def drive(gen: Generator[Any, None, Any], label: str, stream: TextIO | None = None) -> Any:
    """Run a generator of events to its end, drawing a one-line progress bar on a terminal.

    Returns the generator's return value. When the stream is not a terminal, a line is printed
    every few seconds instead, so that logs stay readable.
    """
    stream = stream or sys.stderr
    tty = stream.isatty()
    last_print = 0.0
    start = time.monotonic()
    while True:
        try:
            event = next(gen)
        except StopIteration as stop:
            if tty:
                stream.write("\n")
            return stop.value
        now = time.monotonic()
        if isinstance(event, Log):
            stream.write(("\n" if tty else "") + f"{label}: {event.message}\n")
            continue
        if isinstance(event, Progress):
            done, total = event.step, event.total
            extra = f" loss {event.loss:.4f}" if event.loss is not None else ""
            extra += "".join(f" {k} {v:.3f}" for k, v in event.metrics.items())
        elif isinstance(event, TilesDone):
            done, total, extra = event.done, event.total, ""
        else:
            continue
        if not tty and now - last_print < 5.0 and done != total:
            continue
        last_print = now
        frac = f"{done}/{total}" if total else f"{done}"
        bar = ""
        if total:
            filled = int(30 * done / max(total, 1))
            bar = "[" + "#" * filled + "." * (30 - filled) + "] "
        line = f"{label} {bar}{frac}{extra} ({now - start:.0f}s)"
        stream.write(("\r" + line) if tty else line + "\n")
        stream.flush()
