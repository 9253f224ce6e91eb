"""The "Export" dock: write a mask, probability map or nuclei layer to a file.

Files go by default to a folder of their own per slide: ``exports/<slide stem>`` in the open
project, else in the cache folder (``Session.export_dir``), never beside the slide, whose folder
is often read-only or shared. The dock shows that folder and lets the user choose another.
"""

from __future__ import annotations

from collections.abc import Generator
from pathlib import Path
from typing import Any

from magicgui.types import FileDialogMode
from magicgui.widgets import CheckBox, ComboBox, FileEdit, FloatSpinBox, PushButton
from napari.layers import Image, Labels
from napari.utils.notifications import show_error, show_info, show_warning

from ...errors import ExportError
from ...events import CancelToken, Log
from ...export import DEFAULT_THRESHOLD, ExportResult, ExportSettings
from ..writers import FORMATS, export_layer, format_of, suffix_of
from ._annotations import is_slide_layer
from ._base import DockBase, layer_choices
from ._slide_mpp import SlideMppField
from ._worker import Outcome


def _exportable(layer: Any) -> bool:
    return isinstance(layer, Labels) or (isinstance(layer, Image) and not is_slide_layer(layer))


def layer_state(layer: Any) -> tuple[Any, dict[str, Any], str]:
    """A layer's data, its writer ``meta`` and its kind, as plain values for a worker."""
    meta = {
        "name": layer.name,
        "scale": tuple(float(s) for s in layer.scale),
        "translate": tuple(float(t) for t in layer.translate),
        "units": tuple(str(u) for u in layer.units),
        "metadata": dict(layer.metadata),
    }
    data = list(layer.data) if layer.multiscale else layer.data
    return data, meta, "labels" if isinstance(layer, Labels) else "image"


def _export_run(
    path: Path, data: Any, meta: dict[str, Any], kind: str, fmt: str, settings: ExportSettings
) -> Generator[Any, None, ExportResult]:
    yield Log(f"writing {path.name}")
    result = export_layer(path, data, meta, kind, fmt, settings)
    for message in result.warnings:
        yield Log(message, level="warning")
    return result


class ExportWidget(DockBase):
    """Export a layer as OME-TIFF, OME-Zarr, GeoJSON, PNG or CSV (nuclei measurements)."""

    def __init__(self, napari_viewer: Any) -> None:
        super().__init__(napari_viewer)
        self._layer = ComboBox(
            label="layer",
            choices=layer_choices(napari_viewer, _exportable),
            tooltip="the mask, probability map or nuclei layer to write",
        )
        self._slide_mpp = SlideMppField(napari_viewer, lambda: self._layer.value)
        self._format = ComboBox(label="format", choices=list(FORMATS), value="OME-TIFF")
        self._threshold = FloatSpinBox(
            label="threshold",
            value=DEFAULT_THRESHOLD,
            min=0.0,
            max=1.0,
            step=0.05,
            tooltip="a map's probability from which a pixel is tumour (GeoJSON and masks)",
        )
        self._values = CheckBox(
            text="probabilities, not the mask",
            value=True,
            tooltip="maps as OME-TIFF, OME-Zarr or PNG: the probability (uint8, p x 255), or "
            "the mask at the threshold",
        )
        self._folder = FileEdit(
            label="folder",
            mode=FileDialogMode.EXISTING_DIRECTORY,
            tooltip="where exports go: by default exports/<slide> in the open project or the "
            "cache folder (made when first written); choose another folder here",
        )
        self._path = FileEdit(
            label="path",
            mode=FileDialogMode.OPTIONAL_FILE,
            tooltip="the file (or .ome.zarr folder) to write",
        )
        #: The folder follows the chosen layer's slide until the user picks one.
        self._folder_follows_slide = True
        self._auto_path: Path | None = None
        self._setting_folder = False
        self._export_button = PushButton(text="Export")
        self._export_button.changed.connect(self._on_export)
        self._format.changed.connect(self._on_format)
        self._layer.changed.connect(self._on_layer)
        self._folder.changed.connect(self._on_folder)
        self.extend(
            [
                self._layer,
                self._slide_mpp.widget,
                self._format,
                self._threshold,
                self._values,
                self._folder,
                self._path,
                self._export_button,
                self._cancel_button,
                self._status,
            ]
        )
        self.last_written: Path | None = None
        self.last_warnings: tuple[str, ...] = ()
        self._on_layer()

    # exposed for tests and scripts, like a user's clicks
    @property
    def layer_combo(self) -> ComboBox:
        return self._layer

    @property
    def format_combo(self) -> ComboBox:
        return self._format

    @property
    def path_edit(self) -> FileEdit:
        return self._path

    @property
    def folder_edit(self) -> FileEdit:
        return self._folder

    @property
    def export_button(self) -> PushButton:
        return self._export_button

    def set_fields(self, **values: Any) -> None:
        """Set fields by name: layer, format, threshold, values (probabilities), folder, path."""
        fields = {
            "layer": self._layer,
            "format": self._format,
            "threshold": self._threshold,
            "values": self._values,
            "folder": self._folder,
            "path": self._path,
        }
        for name, value in values.items():
            fields[name].value = value

    def settings(self) -> ExportSettings:
        return ExportSettings(threshold=float(self._threshold.value), values=self._values.value)

    def _on_layer(self, *_: Any) -> None:
        self._slide_mpp.refresh()
        layer = self._layer.value
        if layer is None:
            return
        if self._folder_follows_slide:
            self._setting_folder = True
            try:
                self._folder.value = self.session.export_dir(layer.metadata.get("slide_path"))
            finally:
                self._setting_folder = False
        if isinstance(layer, Image) and self._format.value == "CSV":
            self._format.value = "OME-TIFF"  # renames the path through _on_format
        self._on_format(rename=True)

    def _on_folder(self, *_: Any) -> None:
        """A folder the user chose: kept for later layers, and the path moves into it."""
        if self._setting_folder:
            return
        self._folder_follows_slide = False
        current = self._current_path()
        if current is not None and not current.is_dir():
            self._path.value = self._auto_path = self._folder_path() / current.name
            return
        self._on_format()

    def _folder_path(self) -> Path:
        return Path(str(self._folder.value)).expanduser()

    def _current_path(self) -> Path | None:
        text = str(self._path.value)
        return Path(text).expanduser() if text not in ("", ".") else None

    def _on_format(self, *_: Any, rename: bool = False) -> None:
        """Give the path the format's suffix; a path the dock made itself (not typed by the user)
        is renamed after a newly chosen layer, in the export folder."""
        suffix = suffix_of(self._format.value)
        current = self._current_path()
        layer = self._layer.value
        if current is None or current.is_dir() or (rename and current == self._auto_path):
            stem = (layer.name if layer is not None else "export").replace(" ", "_").lower()
            folder = current if current is not None and current.is_dir() else self._folder_path()
            self._path.value = self._auto_path = folder / f"{stem}{suffix}"
            return
        name = current.name
        for old in sorted((x for xs in FORMATS.values() for x in xs), key=len, reverse=True):
            if name.lower().endswith(old):
                name = name[: -len(old)]
                break
        renamed = current.with_name(name + suffix)
        if current == self._auto_path:
            self._auto_path = renamed
        self._path.value = renamed

    def _on_export(self, *_: Any) -> None:
        layer = self._layer.value
        if layer is None:
            show_error("Choose a layer to export: a mask, a probability map or nuclei.")
            return
        path = Path(str(self._path.value)).expanduser()
        fmt = self._format.value
        try:
            if format_of(path) != fmt:
                raise ExportError(f"the name does not end in {suffix_of(fmt)} for {fmt}", path)
            if fmt == "CSV" and not isinstance(layer, Labels):
                raise ExportError(
                    f"CSV export is for nuclei labels; {layer.name!r} is an image", path
                )
        except ExportError as exc:
            show_error(str(exc))
            return
        data, meta, kind = layer_state(layer)
        settings = self.settings()

        def factory(token: CancelToken) -> Generator[Any, None, ExportResult]:
            return _export_run(path, data, meta, kind, fmt, settings)

        self._runner.start(factory, f"Export {layer.name}", on_done=self._on_done)

    def _on_done(self, outcome: Outcome) -> None:
        if outcome.ok:
            result: ExportResult = outcome.value
            self.last_written = result.path
            self.last_warnings = result.warnings
            if result.warnings:
                self.set_status(f"wrote {result.path}; " + "; ".join(result.warnings))
                show_warning("; ".join(result.warnings))
            else:
                self.set_status(f"wrote {result.path}")
                show_info(f"Exported {result.path}")
