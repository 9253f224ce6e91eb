"""What the docks of one viewer share: the last checkpoint of each kind, and where files go.

One :class:`Session` per viewer (``session_of(viewer)``), so two viewers in one process do not
offer each other's checkpoints. Checkpoints are named after the slide, the task and the time, so
a run never overwrites an earlier one.
"""

from __future__ import annotations

import time
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CACHE = Path.home() / ".cache" / "napari-wsi-ssl"
#: The kinds of checkpoint the docks hand on: a pretrained encoder, a fine-tuned model.
KINDS = ("pretrain", "finetune")


@dataclass
class Session:
    """The docks' shared memory of one viewer."""

    checkpoint_dir: Path = CACHE / "checkpoints"
    prediction_dir: Path = CACHE / "predictions"
    checkpoints: dict[str, Path] = field(default_factory=dict)

    def remember(self, kind: str, path: Path) -> None:
        """Record ``path`` as the last checkpoint of ``kind`` (``pretrain`` or ``finetune``)."""
        if kind not in KINDS:
            raise ValueError(f"unknown checkpoint kind {kind!r}")
        self.checkpoints[kind] = Path(path)

    def last(self, kind: str) -> Path | None:
        """The last checkpoint of ``kind`` made in this viewer, if it still exists."""
        path = self.checkpoints.get(kind)
        return path if path is not None and path.is_file() else None

    def new_checkpoint(self, kind: str, stem: str, task: str = "") -> Path:
        """A fresh path in ``checkpoint_dir`` named after ``stem`` (a slide), ``task`` and the time."""
        stamp = time.strftime("%Y%m%d-%H%M%S")
        parts = [p for p in (_safe(stem), kind, task, stamp) if p]
        path = self.checkpoint_dir / ("_".join(parts) + ".pt")
        n = 2
        while path.exists():
            path = self.checkpoint_dir / ("_".join(parts) + f"-{n}.pt")
            n += 1
        return path


_SESSIONS: weakref.WeakKeyDictionary[Any, Session] = weakref.WeakKeyDictionary()


def session_of(viewer: Any) -> Session:
    """The session of ``viewer`` (made on first use, gone with the viewer)."""
    session = _SESSIONS.get(viewer)
    if session is None:
        session = _SESSIONS[viewer] = Session()
    return session


def _safe(text: str) -> str:
    keep = "".join(c if c.isalnum() or c in "-." else "-" for c in Path(text).stem)
    return keep.strip("-.")[:40]
