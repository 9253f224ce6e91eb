"""The "Nuclei table" dock: per-nucleus measurements of a Nuclei layer, sortable; a row click
centres the view on its nucleus.

The measurements are the export's (:func:`napari_wsi_ssl.export.api.measure_nuclei`: centroid in
level-0 px and µm, area, perimeter, eccentricity, mean haematoxylin, and the tumour probability
at the centroid with its call when the store has a map). A slide holds far more nuclei than any
table should wait for, so they are measured by region: the part of the Nuclei layer on screen
(at most ``MAX_SIDE`` map pixels a side around its centre), when the dock opens on a layer and at
each click of "Measure the nuclei in view". Each region's rows join the layer's ``features``
(one row per nucleus id, the latest measurement kept), which the table lists. A nucleus cut by
the region's edge is measured on its part inside.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from magicgui.widgets import ComboBox, PushButton
from napari.layers import Labels
from qtpy.QtCore import QAbstractTableModel, QModelIndex, Qt
from qtpy.QtWidgets import QAbstractItemView, QHeaderView, QTableView

from ...errors import WsiSslError
from ...events import CancelToken, Log
from ...export import Placement
from ...export.api import measure_nuclei
from ...inference.store import PredictionStore
from ..writers import placement_of
from ._base import DockBase, camera_of, layer_choices
from ._layers import visible_box_level0
from ._worker import Outcome

#: Largest side, in pixels of the nuclei map, of one measured region (about 4 M pixels).
MAX_SIDE = 2048
#: Metadata key of the store the layer's features were measured on.
MEASURED = "measured_store"


def is_nuclei_layer(layer: Any) -> bool:
    """A Labels layer read from a prediction store's nuclei map."""
    store = layer.metadata.get("store") if isinstance(layer, Labels) else None
    if not store or not PredictionStore.is_store(store):
        return False
    return "nuclei" in PredictionStore(store)


@dataclass(frozen=True)
class MeasureRequest:
    """A region of a store's nuclei map to measure: ``box`` (y0, x0, y1, x1) in map pixels;
    ``place`` the map's placement on its slide (its pixel size the slide layer's)."""

    store: Path
    place: Placement
    box: tuple[int, int, int, int]


def measure_run(request: MeasureRequest, cancel: CancelToken) -> Generator[Any, None, pd.DataFrame]:
    """The measurements of the nuclei in ``request.box``, one row per nucleus."""
    y0, x0, y1, x1 = request.box
    yield Log(f"measuring the nuclei in {y1 - y0} x {x1 - x0} map pixels")
    reader = PredictionStore(request.store)
    labels = np.asarray(reader["nuclei"].levels[0][y0:y1, x0:x1])
    tumour = None
    if "tumour" in reader:
        t = reader["tumour"]
        tumour = (t.probability(0), t.downsample, t.origin)
    d = request.place.downsample
    ox, oy = request.place.offset_level0
    place = replace(request.place, offset_level0=(ox + x0 * d, oy + y0 * d))
    rows = measure_nuclei(None, labels, place, tumour=tumour)
    return pd.DataFrame(rows)


def merge_features(old: pd.DataFrame | None, new: pd.DataFrame) -> pd.DataFrame:
    """``old`` and ``new`` rows by nucleus id (the ``index`` napari matches labels by), ``new``
    winning; sorted by id."""
    new = new.assign(index=new["id"]) if "id" in new else new
    if old is None or old.empty or "id" not in old:
        return new.reset_index(drop=True)
    both = pd.concat([old, new], ignore_index=True)
    return both.drop_duplicates("id", keep="last").sort_values("id").reset_index(drop=True)


class FrameModel(QAbstractTableModel):
    """A read-only, sortable Qt model over a DataFrame (cells are made only when drawn)."""

    def __init__(self, frame: pd.DataFrame | None = None) -> None:
        super().__init__()
        self.frame = pd.DataFrame() if frame is None else frame

    def set_frame(self, frame: pd.DataFrame) -> None:
        self.beginResetModel()
        self.frame = frame.drop(columns=["index"], errors="ignore").reset_index(drop=True)
        self.endResetModel()

    def rowCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: B008, N802
        return 0 if parent.isValid() else len(self.frame)

    def columnCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: B008, N802
        return 0 if parent.isValid() else len(self.frame.columns)

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or role != Qt.ItemDataRole.DisplayRole:
            return None
        value = self.frame.iat[index.row(), index.column()]
        if isinstance(value, (bool, np.bool_)):
            return "yes" if value else "no"
        return str(value)

    def headerData(  # noqa: N802
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if role != Qt.ItemDataRole.DisplayRole:
            return None
        if orientation == Qt.Orientation.Horizontal:
            return str(self.frame.columns[section])
        return str(section + 1)

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        if self.frame.empty:
            return
        self.layoutAboutToBeChanged.emit()
        ascending = order == Qt.SortOrder.AscendingOrder
        name = self.frame.columns[column]
        self.frame = self.frame.sort_values(name, ascending=ascending, kind="stable")
        self.frame = self.frame.reset_index(drop=True)
        self.layoutChanged.emit()


class NucleiTableWidget(DockBase):
    """List the nuclei of a Nuclei layer with their measurements; a row click goes to one."""

    def __init__(self, napari_viewer: Any) -> None:
        super().__init__(napari_viewer)
        self._layer = ComboBox(
            label="nuclei", choices=layer_choices(napari_viewer, is_nuclei_layer)
        )
        self._measure_button = PushButton(text="Measure the nuclei in view")
        self._measure_button.changed.connect(self._on_measure)
        self._layer.changed.connect(self._on_layer)
        self.extend(
            [self._layer, self._measure_button, self._cancel_button, self._progress, self._status]
        )
        self.model = FrameModel()
        self.view = QTableView()
        self.view.setModel(self.model)
        self.view.setSortingEnabled(True)
        self.view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        header = self.view.horizontalHeader()
        assert header is not None
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.view.setMinimumHeight(240)
        selection = self.view.selectionModel()
        assert selection is not None
        selection.currentRowChanged.connect(self._on_row)
        self.native.layout().addWidget(self.view)
        self._shown: Any = None
        self.reset_choices()
        self._on_layer()

    @property
    def measure_button(self) -> PushButton:
        return self._measure_button

    def _on_layer(self, *_: Any) -> None:
        """Show the chosen layer's features; measure its view when it has none yet."""
        layer = self._layer.value
        if layer == self._shown and layer is not None:
            return
        self._shown = layer
        if layer is None:
            self.model.set_frame(pd.DataFrame())
            return
        if "id" in layer.features and layer.metadata.get(MEASURED) == layer.metadata["store"]:
            self.model.set_frame(layer.features)
        else:
            self._on_measure()

    def request(self) -> MeasureRequest:
        layer = self._layer.value
        if layer is None:
            raise WsiSslError("no Nuclei layer", hint="predict with nuclei first (Predict dock)")
        meta = {"metadata": dict(layer.metadata), "scale": layer.scale, "units": layer.units}
        place = placement_of(meta, "labels")
        shape = layer.data[0].shape[:2] if layer.multiscale else layer.data.shape[:2]
        box = visible_box_level0(layer) or (0, 0, int(shape[0]), int(shape[1]))
        return MeasureRequest(Path(layer.metadata["store"]), place, _capped(box))

    def _on_measure(self, *_: Any) -> None:
        if self._runner.busy():
            return
        request = self.checked(self.request)
        if request is None:
            return
        layer = self._layer.value
        self._runner.start(
            lambda token: measure_run(request, token),
            "Measuring nuclei",
            on_done=lambda outcome: self._on_done(layer, request, outcome),
        )

    def _on_done(self, layer: Any, request: MeasureRequest, outcome: Outcome) -> None:
        if not outcome.ok or layer not in self._viewer.layers:  # the status says why
            return
        self._progress.visible = False  # one step: nothing left to count
        frame: pd.DataFrame = outcome.value
        # a layer pointed at a new store (a new prediction) starts its measurements again
        same = layer.metadata.get(MEASURED) == str(request.store)
        layer.features = merge_features(layer.features if same else None, frame)
        layer.metadata[MEASURED] = str(request.store)
        self.model.set_frame(layer.features)
        y0, x0, y1, x1 = request.box
        self.set_status(
            f"{len(frame)} nuclei measured in view ({y1 - y0} x {x1 - x0} map px), "
            f"{len(layer.features)} in the table; click a row to go to its nucleus"
        )

    def _on_row(self, current: QModelIndex, _previous: QModelIndex) -> None:
        if current.isValid():
            self.go_to(current.row())

    def go_to(self, row: int) -> None:
        """Centre the camera on the nucleus of table row ``row`` and select its label."""
        layer = self._layer.value
        frame = self.model.frame
        if layer is None or not 0 <= row < len(frame) or layer not in self._viewer.layers:
            return
        record = frame.iloc[row]
        store = PredictionStore(layer.metadata["store"])["nuclei"]
        d, (ox, oy) = store.downsample, store.origin
        # level-0 coordinates count from pixels' corners; map pixel j is centred at (j + 0.5) d
        map_yx = np.array(
            [(record["centroid_y_px"] - oy) / d - 0.5, (record["centroid_x_px"] - ox) / d - 0.5]
        )
        world = np.asarray(layer.data_to_world(map_yx), dtype=float)
        centre = np.asarray(camera_of(self._viewer).center, dtype=float)
        centre[-2:] = world[-2:]
        camera_of(self._viewer).center = tuple(centre)
        layer.selected_label = int(record["id"])


def _capped(box: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    """``box`` (y0, x0, y1, x1) cut to at most MAX_SIDE a side around its centre."""
    y0, x0, y1, x1 = box
    cy, cx = (y0 + y1) // 2, (x0 + x1) // 2
    half = MAX_SIDE // 2
    if y1 - y0 > MAX_SIDE:
        y0, y1 = cy - half, cy + half
    if x1 - x0 > MAX_SIDE:
        x0, x1 = cx - half, cx + half
    return (max(0, y0), max(0, x0), y1, x1)
