"""Shared pieces of the evaluation reports: JSON cleaning, atomic report writing, cancel checks."""

from __future__ import annotations

import json
import math
from collections.abc import Generator
from pathlib import Path
from typing import Any

import numpy as np

from .._atomic import atomic_write_text
from ..errors import CancelledError
from ..events import CancelToken

Events = Generator[Any, None, dict[str, Any]]


def clean(value: Any) -> Any:
    """A JSON-safe copy: numpy to Python, NaN/inf to ``None``, paths to strings."""
    if isinstance(value, dict):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean(v) for v in value]
    if isinstance(value, np.ndarray):
        return clean(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


def write_report(report: dict[str, Any], out_dir: str | Path) -> Path:
    """Write ``report`` as ``out_dir/report.json`` (atomically) and return its path."""
    path = Path(out_dir) / "report.json"
    report["report"] = str(path)
    atomic_write_text(path, json.dumps(clean(report), indent=2) + "\n")
    return path


def _check(cancel: CancelToken | None) -> None:
    if cancel is not None and cancel.cancelled:
        raise CancelledError("evaluation cancelled; no report was written")


def _thin_curve(
    fpr: np.ndarray, tpr: np.ndarray, points: int = 256
) -> tuple[list[float], list[float]]:
    if fpr.size <= points:
        return fpr.tolist(), tpr.tolist()
    idx = np.unique(np.linspace(0, fpr.size - 1, points).round().astype(int))
    return fpr[idx].tolist(), tpr[idx].tolist()
