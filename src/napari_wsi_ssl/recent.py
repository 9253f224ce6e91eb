"""The last checkpoint of each kind, shared by the command line and the docks.

``wsi-ssl pretrain`` and ``wsi-ssl finetune`` (and the docks) record what they wrote in a small
JSON file in the cache folder, so that a dock opened later, in a new viewer or a new session, is
prefilled with it. Kinds: ``pretrain`` (an encoder for fine-tuning), ``finetune`` (a segmentation
or classification model, or a fast-mode head, for the Predict dock) and ``nuclei`` (a nuclei
model). An entry is offered only while its file is the one recorded (same size and
modification time): a deleted or overwritten checkpoint is never prefilled.

``NAPARI_WSI_SSL_CACHE`` moves the cache folder; ``NAPARI_WSI_SSL_RECENT`` names the file itself
(tests give each test its own).
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path
from typing import Any

from ._atomic import atomic_write_text
from .errors import ExportError

KINDS = ("pretrain", "finetune", "nuclei")
#: What each fine-tuning task makes, as a kind of checkpoint.
TASK_KIND = {"segment": "finetune", "classify": "finetune", "fast": "finetune", "nuclei": "nuclei"}


def cache_dir() -> Path:
    """The plugin's cache folder: ``NAPARI_WSI_SSL_CACHE``, else ~/.cache/napari-wsi-ssl."""
    root = os.environ.get("NAPARI_WSI_SSL_CACHE")
    return Path(root).expanduser() if root else Path.home() / ".cache" / "napari-wsi-ssl"


def recent_file() -> Path:
    """The JSON file of the last checkpoints (``NAPARI_WSI_SSL_RECENT`` overrides it)."""
    named = os.environ.get("NAPARI_WSI_SSL_RECENT")
    return Path(named).expanduser() if named else cache_dir() / "recent.json"


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):  # none yet, or damaged: nothing to offer
        return {}
    return data if isinstance(data, dict) else {}


def record(
    kind: str, path: str | Path, source: str, target: Path | None = None, **info: Any
) -> None:
    """Remember ``path`` as the last checkpoint of ``kind``, made by ``source`` (cli, gui), in
    ``target`` (default: ``recent_file()``).

    Never fails the run that made the checkpoint: an unwritable cache folder only means no
    prefill later.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown checkpoint kind {kind!r}")
    path = Path(path).resolve()
    try:
        st = path.stat()
    except OSError:
        return
    target = recent_file() if target is None else target
    data = _read(target)
    data[kind] = {
        "path": str(path),
        "size": st.st_size,
        "mtime_ns": st.st_mtime_ns,
        "source": source,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
        **info,
    }
    with contextlib.suppress(ExportError, OSError):
        atomic_write_text(target, json.dumps(data, indent=1, sort_keys=True))


def last(kind: str) -> Path | None:
    """The last checkpoint of ``kind`` recorded by either front end, while it is unchanged."""
    entry = _read(recent_file()).get(kind)
    if not isinstance(entry, dict) or "path" not in entry:
        return None
    path = Path(str(entry["path"]))
    try:
        st = path.stat()
    except OSError:
        return None
    if st.st_size != entry.get("size") or st.st_mtime_ns != entry.get("mtime_ns"):
        return None  # overwritten since: perhaps not the same kind of checkpoint any more
    return path
