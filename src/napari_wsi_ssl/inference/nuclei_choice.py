"""Which nuclei method to offer by default: the learned model where it has shown that it beats
the classical watershed on images it never trained on, else the classical watershed.

A learned model is a build artefact (``docs/scripts/monuseg_nuclei.py`` makes it): the
checkpoint ``NUCLEI_MODEL`` and beside it ``<name>.json``, its held-out comparison
(``{"learned": {"aji": ...}, "classical": {"aji": ...}, ...}``). Nothing here imports torch.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._atomic import atomic_write_text

#: Where the documented build puts the learned nuclei model (its scores: the same name, .json).
NUCLEI_MODEL = Path.home() / ".cache" / "napari-wsi-ssl" / "models" / "nuclei.pt"
CLASSICAL = "classical watershed"


@dataclass(frozen=True)
class NucleiChoice:
    """The default nuclei method: a learned checkpoint, or ``None`` for the classical watershed."""

    checkpoint: Path | None
    label: str


def scores_path(checkpoint: str | Path) -> Path:
    """The held-out comparison beside a nuclei checkpoint."""
    return Path(checkpoint).with_suffix(".json")


def write_scores(checkpoint: str | Path, scores: dict[str, Any]) -> Path:
    """Record a checkpoint's held-out comparison (atomically)."""
    return atomic_write_text(scores_path(checkpoint), json.dumps(scores, indent=2) + "\n")


def best_nuclei(checkpoint: str | Path | None = None) -> NucleiChoice:
    """The learned ``checkpoint`` (default ``NUCLEI_MODEL``) when its recorded held-out AJI beats
    the classical watershed's, else the classical watershed."""
    path = Path(checkpoint) if checkpoint is not None else NUCLEI_MODEL
    try:
        scores = json.loads(scores_path(path).read_text())
        learned, classical = float(scores["learned"]["aji"]), float(scores["classical"]["aji"])
    except (OSError, ValueError, KeyError, TypeError):
        return NucleiChoice(None, CLASSICAL)
    if not path.is_file() or not learned > classical:
        return NucleiChoice(None, CLASSICAL)
    return NucleiChoice(path, f"learned ({path.name}): AJI {learned:.2f} vs {classical:.2f}")


__all__ = [
    "CLASSICAL",
    "NUCLEI_MODEL",
    "NucleiChoice",
    "best_nuclei",
    "scores_path",
    "write_scores",
]
