"""One self-describing ``.pt`` file per model.

The file holds only plain types (dicts, lists, strings, numbers, tensors), so that it loads with
``torch.load(weights_only=True)`` and never unpickles arbitrary objects. Layout::

    {"format": "napari-wsi-ssl", "format_version": 1, "version": package version,
     "preset", "task", "arch", "state_dict", "train_config", "mpp", "patch_size",
     "class_names", "normalisation": {"mean", "std"}, "history", "resume": {...} or None}

``resume`` carries what a run needs to continue exactly (optimizer state, step, epoch, RNG).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

import torch

from .. import __version__
from .._atomic import atomic_path
from .._digest import file_sha256
from ..errors import CheckpointError
from ..vocab import NUCLEI_CLASS_NAMES, Task, class_names_for
from .net import PRESETS, TASKS, WsiModel, build_from_arch

FORMAT = "napari-wsi-ssl"
FORMAT_VERSION = 1


@dataclass
class Checkpoint:
    """A loaded checkpoint; ``model`` is in eval mode on the requested device."""

    model: WsiModel
    preset: str
    task: str
    arch: dict[str, Any]
    mpp: float | None
    patch_size: int
    class_names: list[str]
    history: dict[str, Any]
    train_config: dict[str, Any]
    version: str
    path: Path
    sha256: str
    normalisation: dict[str, list[float]] = field(default_factory=dict)
    resume: dict[str, Any] | None = None


def default_class_names(task: str, num_classes: int) -> list[str]:
    if task == Task.NUCLEI:
        return list(NUCLEI_CLASS_NAMES)
    if task == Task.RECONSTRUCT:
        return []
    return class_names_for([num_classes - 1])


def save_checkpoint(
    path: str | Path,
    model: WsiModel | torch.nn.Module,
    *,
    mpp: float | None,
    patch_size: int,
    class_names: list[str] | None = None,
    train_config: dict[str, Any] | None = None,
    history: dict[str, Any] | None = None,
    resume: dict[str, Any] | None = None,
    state_dict: dict[str, torch.Tensor] | None = None,
) -> Path:
    """Write a checkpoint atomically and return its path.

    ``model`` may be wrapped (DDP); ``state_dict`` overrides the model's weights (e.g. the best
    epoch's weights while ``resume`` holds the latest state).
    """
    inner: Any = getattr(model, "module", model)
    arch = dict(inner.arch)
    names = (
        list(class_names)
        if class_names is not None
        else default_class_names(arch["task"], arch["num_classes"])
    )
    weights = state_dict if state_dict is not None else inner.state_dict()
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "version": __version__,
        "preset": arch["preset"],
        "task": arch["task"],
        "arch": arch,
        "state_dict": {k: v.detach().to("cpu").clone() for k, v in weights.items()},
        "train_config": _plain(train_config or {}),
        "mpp": None if mpp is None else float(mpp),
        "patch_size": int(patch_size),
        "class_names": names,
        "normalisation": {"mean": arch["mean"], "std": arch["std"]},
        "history": _plain(history or {}),
        "resume": resume,
    }
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return path


def _plain(value: Any) -> Any:
    """Turn tuples, Paths and numpy scalars into types that ``weights_only`` loading accepts."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Enum):  # a vocabulary name: stored as its plain string
        return _plain(value.value)
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, torch.Tensor):
        return value
    if hasattr(value, "item"):
        return value.item()
    return str(value)


def read_payload(path: str | Path) -> tuple[dict[str, Any], str]:
    """Read and minimally validate a checkpoint file; returns (payload, sha256).

    The tensors are memory-mapped, not copied: a pretrained checkpoint carries its optimizer
    state (twice the weights), which fine-tuning never reads, and a GUI thread beside the
    loading one stalls while hundreds of MB are copied.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError("no such checkpoint file", path, "check the path")
    digest = file_sha256(path)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as exc:  # truncated zip, pickled objects, not a torch file at all
        raise CheckpointError(
            f"cannot be read as a checkpoint ({type(exc).__name__}); the file is truncated, corrupt or unsafe",
            path,
            "train it again or pick another file",
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(
            "is not a napari-wsi-ssl checkpoint", path, "pick a file written by wsi-ssl"
        )
    fv = payload.get("format_version")
    if not isinstance(fv, int) or fv > FORMAT_VERSION:
        raise CheckpointError(
            f"was written by a newer napari-wsi-ssl (version {payload.get('version')}, format {fv})",
            path,
            "upgrade napari-wsi-ssl",
        )
    return payload, digest


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> Checkpoint:
    """Load a checkpoint and rebuild its model, in eval mode on ``device``.

    Raises
    ------
    CheckpointError
        Missing, truncated or unsafe file, unknown preset or task, a newer format, class names
        that do not fit the model, or weights that do not fit the architecture.
    """
    path = Path(path)
    payload, digest = read_payload(path)
    preset, task, arch = payload.get("preset"), payload.get("task"), payload.get("arch")
    if preset not in PRESETS:
        raise CheckpointError(
            f"unknown preset {preset!r}", path, f"known presets: {', '.join(sorted(PRESETS))}"
        )
    if task not in TASKS or not isinstance(arch, dict):
        raise CheckpointError(f"unknown task {task!r}", path, f"known tasks: {', '.join(TASKS)}")
    names = payload.get("class_names")
    n = int(arch.get("num_classes", -1))
    if not isinstance(names, list) or not all(isinstance(s, str) for s in names) or len(names) != n:
        raise CheckpointError(
            f"class names {names!r} do not fit a model with {n} classes",
            path,
            "the file is damaged",
        )
    try:
        model = build_from_arch(arch)
        model.load_state_dict(payload["state_dict"])
    except (ValueError, RuntimeError, KeyError, TypeError) as exc:
        raise CheckpointError(
            f"weights do not fit the architecture: {exc}".split("\n")[0], path
        ) from None
    model.eval().to(device)
    patch_size = payload.get("patch_size")
    if not isinstance(patch_size, int) or patch_size < 8:
        raise CheckpointError(f"bad patch size {patch_size!r}", path)
    return Checkpoint(
        model=model,
        preset=preset,
        task=task,
        arch=dict(model.arch),
        mpp=payload.get("mpp"),
        patch_size=patch_size,
        class_names=names,
        history=payload.get("history") or {},
        train_config=payload.get("train_config") or {},
        version=str(payload.get("version")),
        path=path,
        sha256=digest,
        normalisation=payload.get("normalisation") or {},
        resume=payload.get("resume"),
    )
