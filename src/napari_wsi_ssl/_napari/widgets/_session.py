"""What the docks of one viewer share: the last checkpoint of each kind, and where files go.

One :class:`Session` per viewer (``session_of(viewer)``): a viewer offers the checkpoints it made
itself first; when it has made none of a kind, the last one recorded by either front end (the
command line's ``wsi-ssl pretrain`` / ``finetune`` or another viewer, ``recent.json`` in the cache
folder). Checkpoints are named after the slide, the task and the time, so a run never overwrites
an earlier one. Exports go to a folder of their own per slide (the open project's, else the
cache's), never to the slide's folder, which is often read-only or shared.
"""

from __future__ import annotations

import time
import weakref
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ... import recent
from ...recent import KINDS, cache_dir

#: One thread writes ``recent.json`` for every viewer, in the order the checkpoints were made.
_WRITER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="wsi-ssl-recent")


@dataclass
class Session:
    """The docks' shared memory of one viewer."""

    checkpoint_dir: Path = field(default_factory=lambda: cache_dir() / "checkpoints")
    prediction_dir: Path = field(default_factory=lambda: cache_dir() / "predictions")
    checkpoints: dict[str, Path] = field(default_factory=dict)
    #: The open project's folder (exports go inside it), or None.
    project_dir: Path | None = None

    def remember(self, kind: str, path: Path) -> None:
        """Record ``path`` as the last checkpoint of ``kind`` (``pretrain``, ``finetune`` or
        ``nuclei``), for this viewer and for later sessions."""
        if kind not in KINDS:
            raise ValueError(f"unknown checkpoint kind {kind!r}")
        self.checkpoints[kind] = Path(path)
        # the atomic write syncs to disk (a live round stalled 136 ms on it): off the GUI thread,
        # in order, into the file this session uses now
        _WRITER.submit(recent.record, kind, path, "gui", recent.recent_file())

    def last(self, kind: str) -> Path | None:
        """The last checkpoint of ``kind`` made in this viewer, if it still exists; else the last
        one either front end recorded, if it is still the file recorded."""
        path = self.checkpoints.get(kind)
        if path is not None and path.is_file():
            return path
        return recent.last(kind)

    def export_dir(self, slide_path: str | Path | None) -> Path:
        """Where exports of a slide's layers go by default: ``exports/<slide stem>`` in the open
        project, else in the cache folder (``exports`` itself for a layer of no slide)."""
        root = (self.project_dir if self.project_dir is not None else cache_dir()) / "exports"
        name = Path(str(slide_path)).name.split(".")[0] if slide_path else ""
        stem = "".join(c if c.isalnum() or c in "-_" else "-" for c in name).strip("-")
        return root / stem if stem else root

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
