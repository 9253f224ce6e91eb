"""The "Project" dock: save the viewer's slides, annotations, overlays and dock settings to a
folder, and open such a folder again (also by ``wsi-ssl view PROJECT_DIR`` and by dropping the
folder on napari).

The folder format is :mod:`napari_wsi_ssl._napari.project`; this module turns the viewer into a
``Project`` and back. Dock settings are read generically from each of the plugin's open docks
(every field by its label, layer choices by layer name, paths stored relative to the project),
so a dock's new fields are saved without a change here.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from magicgui.types import FileDialogMode
from magicgui.widgets import (
    Container,
    FileEdit,
    Label,
    ProgressBar,
    PushButton,
)
from magicgui.widgets.bases import BaseValueWidget
from napari.layers import Labels, Layer
from napari.utils.colormaps import DirectLabelColormap
from napari.utils.notifications import show_error, show_info, show_warning
from qtpy.QtCore import QTimer

from ...errors import WsiSslError
from ..project import (
    AnnotationEntry,
    Locate,
    OverlayEntry,
    Project,
    SlideEntry,
    found_path,
    locate_slides,
    read_annotation,
    read_project,
    save_project,
    stored_path,
)
from ._annotations import is_slide_layer, slide_geometry
from ._base import DOCK_NAME, tabify_with_siblings
from ._session import session_of

PLUGIN = "napari-wsi-ssl"
#: The plugin's docks whose settings a project keeps, in the order they are opened again.
DOCKS = ("Pretrain", "Fine-tune", "Predict", "Evaluate", "Export")


# -- dock settings ---------------------------------------------------------------------------


def _fields(container: Container, prefix: str = "") -> list[tuple[str, BaseValueWidget | FileEdit]]:
    """The value fields of a dock by a key made of their labels (``row/field`` in rows)."""
    out: list[tuple[str, BaseValueWidget | FileEdit]] = []
    seen: dict[str, int] = {}
    for widget in container:
        label = str(getattr(widget, "label", "") or getattr(widget, "text", "") or "").strip()
        key = f"{prefix}{label or type(widget).__name__}"
        seen[key] = seen.get(key, 0) + 1
        if seen[key] > 1:
            key = f"{key}#{seen[key]}"
        if isinstance(widget, FileEdit):
            out.append((key, widget))
        elif isinstance(widget, Container):
            out += _fields(widget, key + "/")
        elif isinstance(widget, BaseValueWidget) and not isinstance(
            widget, (PushButton, Label, ProgressBar)
        ):
            out.append((key, widget))
    return out


def dock_values(dock: Container, folder: Path) -> dict[str, Any]:
    """A dock's current values, JSON-ready: layers by name, paths as ``stored_path``."""
    values: dict[str, Any] = {}
    for key, widget in _fields(dock):
        value = widget.value
        if isinstance(widget, FileEdit):
            text = str(widget.line_edit.value).strip()
            values[key] = {"path": stored_path(text, folder) if text else None}
        elif isinstance(value, Layer):
            values[key] = {"layer": value.name}
        elif value is None or isinstance(value, (bool, int, float, str)):
            values[key] = value
        elif hasattr(value, "value") and isinstance(value.value, (int, float, str)):
            values[key] = value.value  # an enum
    return values


def apply_dock_values(dock: Container, values: dict[str, Any], folder: Path) -> list[str]:
    """Set a dock's fields from ``dock_values``; returns the keys that could not be set."""
    if hasattr(dock, "reset_choices"):
        dock.reset_choices()
    fields = dict(_fields(dock))
    missed = []
    for key, saved in values.items():
        widget = fields.get(key)
        try:
            if widget is None:
                raise ValueError(key)
            if isinstance(saved, dict) and "path" in saved and isinstance(widget, FileEdit):
                found = found_path(saved["path"], folder) if saved["path"] else None
                if saved["path"] and found is None:
                    found = Path(str(saved["path"].get("absolute")))
                widget.line_edit.value = "" if found is None else str(found)
            elif isinstance(saved, dict) and "layer" in saved:
                choices = getattr(widget, "choices", ())
                layer = next(
                    (c for c in choices if isinstance(c, Layer) and c.name == saved["layer"]),
                    None,
                )
                if layer is None:
                    raise ValueError(saved["layer"])
                widget.value = layer
            else:
                widget.value = saved
        except (ValueError, TypeError, KeyError):
            missed.append(key)
    return missed


def plugin_docks(viewer: Any) -> dict[str, Container]:
    """The plugin's docks open in ``viewer``'s window, by title (``Fine-tune``...)."""
    out = {}
    with contextlib.suppress(AttributeError):
        for name, widget in viewer.window.dock_widgets.items():
            title, _, plugin = name.rpartition(" (")
            if plugin.rstrip(")") == PLUGIN and isinstance(widget, Container):
                out[title] = widget
    return out


# -- the viewer as a project, and back --------------------------------------------------------


def collect_project(viewer: Any, folder: Path) -> tuple[Project, dict[str, np.ndarray]]:
    """The viewer's slides, annotation layers, overlays, checkpoints and dock settings."""
    project = Project()
    slides = [layer for layer in viewer.layers if is_slide_layer(layer)]
    if not slides:
        raise WsiSslError("open a slide first: a project is the slides and what lies on them")
    by_path = {}
    for layer in slides:
        g = slide_geometry(layer)
        assert g.slide_path is not None  # a slide layer
        mpp = layer.metadata.get("mpp")
        project.slides.append(
            SlideEntry(
                layer.name,
                stored_path(g.slide_path, folder),
                None if mpp is None else [float(m) for m in mpp],
                [float(t) for t in layer.translate],
                bool(layer.visible),
            )
        )
        by_path[str(g.slide_path)] = layer.name
    arrays = {}
    for k, layer in enumerate(viewer.layers):
        if isinstance(layer, Labels) and not layer.metadata.get("store"):
            meta = layer.metadata
            slide = meta.get("slide_layer") or by_path.get(str(meta.get("slide_path")))
            colours = {}
            if isinstance(layer.colormap, DirectLabelColormap):
                colours = {
                    str(int(v)): [float(c) for c in rgba]
                    for v, rgba in layer.colormap.color_dict.items()
                    if v is not None
                }
            project.annotations.append(
                AnnotationEntry(
                    name=layer.name,
                    slide=slide,
                    data=f"annotations/{k}.zarr",
                    scale=[float(s) for s in layer.scale],
                    translate=[float(t) for t in layer.translate],
                    downsample=meta.get("downsample"),
                    classes={str(v): str(n) for v, n in (meta.get("class_names") or {}).items()},
                    colours=colours,
                    opacity=float(layer.opacity),
                    visible=bool(layer.visible),
                )
            )
            data = layer.data[0] if layer.multiscale else layer.data
            arrays[layer.name] = np.asarray(data)
    stores: dict[str, str | None] = {}
    for layer in viewer.layers:
        store = layer.metadata.get("store")
        if store and str(store) not in stores:
            stores[str(store)] = by_path.get(str(layer.metadata.get("slide_path")))
    project.overlays = [OverlayEntry(s, stored_path(p, folder)) for p, s in stores.items()]
    session = session_of(viewer)
    project.checkpoints = {k: stored_path(p, folder) for k, p in session.checkpoints.items()}
    project.docks = {
        t: dock_values(d, folder) for t, d in plugin_docks(viewer).items() if t != "Project"
    }
    return project, arrays


def save_viewer(viewer: Any, folder: str | Path) -> Path:
    folder = Path(folder)
    project, arrays = collect_project(viewer, folder)
    saved = save_project(folder, project, arrays)
    session_of(viewer).project_dir = folder  # exports now default to the project's folder
    return saved


def restore_project(
    viewer: Any, folder: str | Path, locate: Locate | None = None
) -> dict[str, Any]:
    """Open a project folder in ``viewer``: slides, annotations, overlays, then the docks it
    had open, with their settings. Raises ``WsiSslError`` (one line) when it cannot."""
    from ...slide import open_slide
    from ..reader import slide_layer_data
    from ._layers import show_store

    folder = Path(folder)
    project = read_project(folder)
    paths = locate_slides(project, folder, locate)
    annotations = [(e, read_annotation(folder, e)) for e in project.annotations]
    slides: dict[str, Any] = {}
    for entry in project.slides:
        slide = open_slide(paths[entry.name])
        if entry.mpp is not None and (slide.mpp is None or list(slide.mpp) != entry.mpp):
            slide.close()  # the pixel size the user gave it
            slide = open_slide(paths[entry.name], mpp=entry.mpp[0])
        data, kwargs, _ = slide_layer_data(slide, name=entry.name)
        kwargs["visible"] = entry.visible
        if entry.translate is not None:
            kwargs["translate"] = entry.translate
        slides[entry.name] = viewer.add_image(data, **kwargs)
    for ann, labels in annotations:
        slide_layer = slides.get(ann.slide or "")
        classes = {int(v): n for v, n in ann.classes.items()}
        colours: dict[int | None, Any] = {int(v): np.asarray(c) for v, c in ann.colours.items()}
        viewer.add_labels(
            labels,
            name=ann.name,
            scale=ann.scale,
            translate=ann.translate,
            opacity=ann.opacity,
            visible=ann.visible,
            colormap=DirectLabelColormap(color_dict={**colours, None: np.zeros(4)})
            if colours
            else None,
            metadata={
                "slide_path": str(paths[ann.slide]) if ann.slide in paths else None,
                "downsample": ann.downsample,
                "slide_layer": slide_layer.name if slide_layer is not None else ann.slide,
                "class_names": classes,
            },
            units=slide_layer.units if slide_layer is not None else None,
            # the class names napari shows under the cursor, as on a new annotation layer
            features=pd.DataFrame(
                {"index": list(classes), "class": pd.Categorical(list(classes.values()))}
            )
            if classes
            else None,
        )
    missing = []
    for overlay in project.overlays:
        store = found_path(overlay.store, folder)
        slide_layer = slides.get(overlay.slide or "") or next(iter(slides.values()), None)
        if store is None or slide_layer is None:
            missing.append(str(overlay.store.get("absolute")))
            continue
        show_store(viewer, store, slide_geometry(slide_layer))
    session = session_of(viewer)
    session.project_dir = folder  # exports default to the project's folder
    for kind, stored in project.checkpoints.items():
        path = found_path(stored, folder)
        if path is not None:
            session.remember(kind, path)
    unset = {}
    for title in sorted(project.docks, key=lambda t: DOCKS.index(t) if t in DOCKS else 99):
        _, dock = viewer.window.add_plugin_dock_widget(PLUGIN, title, tabify=True)
        if isinstance(dock, Container):
            unset[title] = apply_dock_values(dock, project.docks[title], folder)
    if slides:
        viewer.layers.selection.active = next(iter(slides.values()))
    return {
        "project": str(folder),
        "slides": {n: str(p) for n, p in paths.items()},
        "annotations": [e.name for e, _ in annotations],
        "overlays_missing": missing,
        "docks": list(project.docks),
        "unset": {t: k for t, k in unset.items() if k},
    }


def ask_for_slide(recorded: Path) -> Path | None:
    """A file dialog asking where a project's missing slide is now."""
    from qtpy.QtWidgets import QFileDialog

    chosen, _ = QFileDialog.getOpenFileName(
        None, f"Where is {recorded.name} now? (it is not at {recorded.parent})", str(Path.home())
    )
    return Path(chosen) if chosen else None


def read_project_folder(path: str | list[str]) -> list[Any]:
    """The reader of a dropped project folder: restores it into the current viewer (layers and
    docks), and gives napari no layers of its own to add."""
    import napari

    folder = Path(path[0] if isinstance(path, list) else path)
    viewer = napari.current_viewer()
    try:
        if viewer is None:
            raise WsiSslError("no napari window to open the project in", folder)
        restore_project(viewer, folder, ask_for_slide)
    except WsiSslError as exc:
        show_error(str(exc))
    return [(None,)]


class ProjectWidget(Container):
    """Save project / Open project: a folder keeps the slides, annotations, overlays and the
    docks' settings. ``locate`` is asked where a missing slide is (a file dialog by default)."""

    def __init__(self, napari_viewer: Any) -> None:
        super().__init__(labels=True)
        self.native.setObjectName(DOCK_NAME)  # a tab with the plugin's other docks
        self._viewer = napari_viewer
        self.locate: Locate = ask_for_slide
        self._folder = FileEdit(
            label="project",
            mode=FileDialogMode.EXISTING_DIRECTORY,
            tooltip="the project folder (a new one is made on saving)",
        )
        self._save = PushButton(text="Save project")
        self._open = PushButton(text="Open project")
        self._save.changed.connect(self._on_save)
        self._open.changed.connect(self._on_open)
        self._status = Label(value="")
        self._status.native.setWordWrap(True)
        self.extend([self._folder, self._save, self._open, self._status])
        QTimer.singleShot(0, self._tabify)

    def _tabify(self) -> None:
        with contextlib.suppress(RuntimeError):  # closed before the event loop turned
            tabify_with_siblings(self.native)

    @property
    def save_button(self) -> PushButton:
        return self._save

    @property
    def open_button(self) -> PushButton:
        return self._open

    @property
    def status(self) -> str:
        return str(self._status.value)

    def set_folder(self, folder: str | Path) -> None:
        self._folder.line_edit.value = str(folder)

    def _chosen(self) -> Path | None:
        text = str(self._folder.line_edit.value).strip()
        return Path(text).expanduser() if text else None

    def _on_save(self, *_: Any) -> None:
        folder = self._chosen()
        try:
            if folder is None:
                raise WsiSslError("choose the project folder first")
            path = save_viewer(self._viewer, folder)
        except WsiSslError as exc:
            self._fail(exc)
            return
        self._status.value = f"saved: {path}"
        show_info(f"Project saved in {folder}")

    def _on_open(self, *_: Any) -> None:
        folder = self._chosen()
        try:
            if folder is None:
                raise WsiSslError("choose the project folder first")
            info = restore_project(self._viewer, folder, self.locate)
        except WsiSslError as exc:
            self._fail(exc)
            return
        gone = info["overlays_missing"]
        self._status.value = f"opened {folder.name}: {len(info['slides'])} slides, " + (
            f"{len(info['annotations'])} annotation layers"
            + (f"; {len(gone)} overlays missing" if gone else "")
        )
        if gone:
            show_warning(f"prediction stores missing, not shown: {', '.join(gone)}")

    def _fail(self, exc: Exception) -> None:
        self._status.value = f"failed: {exc}"
        show_error(str(exc))
