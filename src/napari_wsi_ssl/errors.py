"""Errors a user reads.

Every user-facing failure raises one of these with a one-line message that names the file,
the problem and what to do. The command line prints the message and exits with code 2; the
napari docks show it as a notification. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

from pathlib import Path


class WsiSslError(Exception):
    """Base class of the errors meant for the user, not the developer."""

    exit_code = 2

    def __init__(self, message: str, path: str | Path | None = None, hint: str | None = None):
        self.path = None if path is None else Path(path)
        self.problem = message
        self.hint = hint
        parts = [f"{self.path}: {message}" if self.path is not None else message]
        if hint:
            parts.append(hint)
        # one line, always: a newline would split the message in a terminal or a notification
        super().__init__(". ".join(p.rstrip(". ") for p in parts).replace("\n", " ") + ".")


class SlideError(WsiSslError):
    """A slide cannot be opened or read: unsupported, corrupt, missing mpp where needed."""


class AnnotationError(WsiSslError):
    """Annotations cannot be used: empty, one class where two are needed, mismatched shape."""


class CheckpointError(WsiSslError):
    """A checkpoint cannot be loaded or does not fit the task."""


class ExportError(WsiSslError):
    """An export cannot be written: bad suffix, read-only folder, full disk."""


class TrainingError(WsiSslError):
    """Training stopped for a reason the user can act on, such as a NaN loss."""


class CancelledError(WsiSslError):
    """The user cancelled a run; what was finished has been kept."""

    exit_code = 130


__all__ = [
    "AnnotationError",
    "CancelledError",
    "CheckpointError",
    "ExportError",
    "SlideError",
    "TrainingError",
    "WsiSslError",
]
