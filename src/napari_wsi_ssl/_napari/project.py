"""Saved projects: a folder with ``project.json`` and the annotation layers as zarr.

Torch-free and napari-free: this module reads and writes the folder; the napari side
(``widgets/project.py``) turns a viewer into a :class:`Project` and back. Layout::

    PROJECT/
      project.json           format, versions, slides, annotations, overlays, checkpoints, docks
      annotations/<k>.zarr   each annotation layer's labels (uint8, zarr v2), written atomically

Paths (slides, prediction stores, checkpoints) are stored relative to the project folder when
they lie under the same root, and absolute as well: a moved project finds what moved with it
(relative), and what stayed where it was (absolute). A slide found by neither is asked for once
(``locate``); the folder chosen is then searched for the other missing slides by name.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from .._atomic import atomic_path
from ..errors import WsiSslError

PROJECT_FILE = "project.json"
FORMAT = "napari-wsi-ssl project"
FORMAT_VERSION = 1

#: Asked for a slide that is missing (its recorded path); returns where it is now, or None.
Locate = Callable[[Path], Path | None]


class ProjectError(WsiSslError):
    """A project folder cannot be read or written."""


@dataclass
class SlideEntry:
    """A slide layer: its file (see ``stored_path``), layer name, pixel size in µm (x, y) and
    place in the world."""

    name: str
    path: dict[str, str | None]
    mpp: list[float] | None = None
    translate: list[float] | None = None  # where the user placed it in the world (µm)
    visible: bool = True


@dataclass
class AnnotationEntry:
    """An annotation (Labels) layer over slide ``slide`` (a slide entry's name)."""

    name: str
    slide: str | None
    data: str  # relative to the project folder
    scale: list[float]
    translate: list[float]
    downsample: float | None = None
    classes: dict[str, str] = field(default_factory=dict)
    colours: dict[str, list[float]] = field(default_factory=dict)
    opacity: float = 0.6
    visible: bool = True


@dataclass
class OverlayEntry:
    """A prediction store shown over slide ``slide``."""

    slide: str | None
    store: dict[str, str | None]


@dataclass
class Project:
    """What a project folder holds; the paths in ``slides``/``overlays`` as ``stored_path``."""

    slides: list[SlideEntry] = field(default_factory=list)
    annotations: list[AnnotationEntry] = field(default_factory=list)
    overlays: list[OverlayEntry] = field(default_factory=list)
    checkpoints: dict[str, dict[str, str | None]] = field(default_factory=dict)
    docks: dict[str, dict[str, Any]] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)


def is_project(path: str | Path) -> bool:
    return (Path(path) / PROJECT_FILE).is_file()


def stored_path(path: str | Path, folder: str | Path) -> dict[str, str | None]:
    """``{"relative": ..., "absolute": ...}``: relative to ``folder`` where one exists."""
    absolute = Path(path).expanduser().resolve()
    try:
        relative: str | None = os.path.relpath(absolute, Path(folder).resolve())
    except ValueError:  # another drive
        relative = None
    return {"relative": relative, "absolute": str(absolute)}


def found_path(stored: dict[str, str | None], folder: str | Path) -> Path | None:
    """Where a ``stored_path`` is now: beside the project (relative), else where it was."""
    if stored.get("relative"):
        candidate = (Path(folder) / str(stored["relative"])).resolve()
        if candidate.exists():
            return candidate
    if stored.get("absolute") and Path(str(stored["absolute"])).exists():
        return Path(str(stored["absolute"]))
    return None


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"napari_wsi_ssl": __version__, "python": platform.python_version()}
    for package in ("napari", "zarr", "numpy"):
        try:
            out[package] = version(package)
        except PackageNotFoundError:
            continue
    return out


def save_project(folder: str | Path, project: Project, arrays: dict[str, np.ndarray]) -> Path:
    """Write ``project`` and its annotation ``arrays`` (by annotation name) into ``folder``.

    Each zarr array and ``project.json`` are written atomically (beside, then renamed), the
    JSON last, so a failed save leaves the previous project readable; arrays of an earlier
    save that the new one does not name are removed after it.
    """
    import zarr

    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ProjectError("is a file, not a project folder", folder)
    project.versions = versions()
    for entry in project.annotations:
        target = folder / entry.data
        labels = np.asarray(arrays[entry.name])
        with atomic_path(target, is_dir=True) as tmp:
            store = zarr.DirectoryStore(str(tmp))
            chunks = tuple(min(1024, s) for s in labels.shape)
            zarr.array(labels, chunks=chunks, store=store, overwrite=True)
    text = json.dumps(
        {"format": FORMAT, "format_version": FORMAT_VERSION, **asdict(project)}, indent=2
    )
    target = folder / PROJECT_FILE
    with atomic_path(target) as tmp:
        tmp.write_text(text + "\n")
    kept = {(folder / a.data).resolve() for a in project.annotations}
    for old in (folder / "annotations").glob("*.zarr"):
        if old.resolve() not in kept:  # a layer of an earlier save, gone since
            shutil.rmtree(old, ignore_errors=True)
    return target


def read_project(folder: str | Path) -> Project:
    """The ``Project`` in ``folder`` as saved (paths not yet resolved); one-line errors."""
    folder = Path(folder)
    path = folder / PROJECT_FILE
    if not path.is_file():
        raise ProjectError(f"no {PROJECT_FILE} here: not a saved project", folder)
    try:
        raw = json.loads(path.read_text())
    except OSError as exc:
        raise ProjectError(f"cannot read it ({(exc.strerror or 'error').lower()})", path) from None
    except ValueError:
        raise ProjectError("is damaged: not valid JSON", path) from None
    if raw.get("format") != FORMAT:
        raise ProjectError("is not a napari-wsi-ssl project file", path)
    if int(raw.get("format_version", 0)) > FORMAT_VERSION:
        raise ProjectError(
            f"was saved by a newer version (format {raw['format_version']})",
            path,
            "update napari-wsi-ssl",
        )
    try:
        return Project(
            slides=[SlideEntry(**s) for s in raw.get("slides", [])],
            annotations=[AnnotationEntry(**a) for a in raw.get("annotations", [])],
            overlays=[OverlayEntry(**o) for o in raw.get("overlays", [])],
            checkpoints=dict(raw.get("checkpoints", {})),
            docks=dict(raw.get("docks", {})),
            versions=dict(raw.get("versions", {})),
        )
    except TypeError as exc:
        raise ProjectError(f"has an unexpected entry ({exc})".split("\n")[0], path) from None


def locate_slides(
    project: Project, folder: str | Path, locate: Locate | None = None
) -> dict[str, Path]:
    """Each slide entry's file now, by entry name.

    A slide missing both beside the project and where it was is looked up by name in the
    folders the user pointed at so far, then asked for with ``locate`` (once per slide not
    found that way). Without ``locate``, or when it gives nothing, ``ProjectError`` names the
    slide and what to do.
    """
    out: dict[str, Path] = {}
    pointed: list[Path] = []
    for entry in project.slides:
        path = found_path(entry.path, folder)
        if path is None:
            recorded = Path(str(entry.path.get("absolute") or entry.path.get("relative")))
            path = next((d / recorded.name for d in pointed if (d / recorded.name).exists()), None)
            if path is None and locate is not None:
                path = locate(recorded)
                if path is not None:
                    pointed.append(Path(path).parent)
            if path is None or not Path(path).exists():
                raise ProjectError(
                    "the slide of this project is missing",
                    recorded,
                    "put it back, or open the project in napari and point to it",
                )
        out[entry.name] = Path(path)
    return out


def read_annotation(folder: str | Path, entry: AnnotationEntry) -> np.ndarray:
    import zarr

    path = Path(folder) / entry.data
    try:
        return np.asarray(zarr.open_array(zarr.DirectoryStore(str(path)), mode="r")[:])
    except Exception:  # noqa: BLE001 - any zarr failure is a damaged project
        raise ProjectError(
            "the annotation layer's zarr array is missing or damaged", path
        ) from None
