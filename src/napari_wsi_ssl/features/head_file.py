"""Head checkpoints: one file per trained head (``save_head``/``load_head``), with the feature
cache's basis and settings it needs, and a cheap test of whether a file is one."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import torch

from .. import __version__
from .._atomic import atomic_path
from ..errors import CheckpointError
from ..models.checkpoint import FORMAT, FORMAT_VERSION, _plain, read_payload
from .cache import FeatureCache
from .config import FeatureConfig
from .extract import Basis
from .head import TASK, TrainedHead, in_channels, make_head


def save_head(path: str | Path, head: TrainedHead, cache: FeatureCache) -> Path:
    """Write a head checkpoint (one file, ``torch.load(weights_only=True)``-loadable)."""
    meta = cache.meta
    basis = cache.basis()
    if basis is None:
        raise CheckpointError("the feature cache has no basis yet", cache.path)
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "version": __version__,
        "task": TASK,
        "head": {
            "kind": head.kind,
            "in_channels": in_channels(head.model),
            "hidden": head.hidden,
            "classes": len(head.label_values),
        },
        "state_dict": {k: v.detach().cpu().clone() for k, v in head.model.state_dict().items()},
        "label_values": list(head.label_values),
        "class_names": list(head.class_names),
        "encoder_checkpoint": meta["checkpoint"],
        "encoder_sha256": meta["checkpoint_sha256"],
        "feature_config": meta["config"],
        "basis": {k: torch.from_numpy(v.copy()) for k, v in basis.arrays.items()},
        "channel_names": meta["channel_names"],
        "mpp": meta["mpp"],
        "metrics": _plain(head.metrics),
        "history": _plain(head.history),
    }
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return path


@dataclass
class HeadCheckpoint:
    """A loaded head checkpoint and the feature cache it needs."""

    head: TrainedHead
    encoder_checkpoint: str | None
    encoder_sha256: str | None
    feature_config: FeatureConfig
    basis: Basis
    mpp: float | None
    path: Path
    sha256: str


def is_head_checkpoint(path: str | Path) -> bool:
    """Whether ``path`` is a head checkpoint (``False`` for model checkpoints and non-files).

    Cheap: the file is memory-mapped and not hashed; the answer is kept per file, size and
    modification time, since unpickling a big model's keys holds the interpreter lock (and so
    the viewer) for up to 100 ms at the start of every run.
    """
    try:
        st = Path(path).stat()
    except OSError:
        return False
    return _is_head(str(Path(path).resolve()), st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=64)
def _is_head(path: str, size: int, mtime_ns: int) -> bool:
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # noqa: BLE001 - not a file, not a torch file: not a head
        return False
    return isinstance(payload, dict) and payload.get("task") == TASK


def load_head(path: str | Path) -> HeadCheckpoint:
    payload, sha = read_payload(path)
    if payload.get("task") != TASK:
        raise CheckpointError("is not a head checkpoint", path, "train one with the fast mode")
    h = payload["head"]
    try:
        model = make_head(h["kind"], h["in_channels"], h["classes"], h["hidden"])
        model.load_state_dict(payload["state_dict"])
    except (KeyError, RuntimeError, TypeError) as exc:
        raise CheckpointError(f"head weights do not fit ({exc})".split("\n")[0], path) from None
    model.eval()
    head = TrainedHead(
        model,
        h["kind"],
        h["hidden"],
        [int(v) for v in payload["label_values"]],
        list(payload["class_names"]),
        dict(payload.get("metrics") or {}),
        list(payload.get("history") or []),
    )
    enc = payload.get("encoder_checkpoint")
    return HeadCheckpoint(
        head,
        enc,
        payload.get("encoder_sha256"),
        FeatureConfig.from_dict(payload["feature_config"]),
        Basis({k: v.numpy() for k, v in payload["basis"].items()}),
        payload.get("mpp"),
        Path(path),
        sha,
    )
