"""The "Evaluate" dock: metrics of a probability map against painted labels, or of a checkpoint
on a folder of labelled patches, shown as a table with confusion-matrix and ROC plots."""

from __future__ import annotations

from collections.abc import Generator
from pathlib import Path
from typing import Any

import numpy as np
from magicgui.types import FileDialogMode
from magicgui.widgets import ComboBox, FileEdit, PushButton, SpinBox, Table
from napari.layers import Image, Labels
from napari.utils.notifications import show_error, show_info

from ... import metrics
from ...errors import AnnotationError, WsiSslError
from ...evaluation.masks import map_on_mask_grid, segmentation_report
from ...evaluation.report import iter_evaluate_patches
from ...events import CancelToken, Log, Progress
from ._annotations import annotation_downsample, slide_geometry, slide_layers
from ._base import DockBase, layer_choices, optional_path
from ._plot import ReportCanvas
from ._worker import Outcome

SOURCES = ("annotation layer", "patch folder")
IGNORE = 255
#: Rows of the table, in order, with their labels.
ROWS = {
    "accuracy": "accuracy",
    "balanced_accuracy": "balanced accuracy",
    "precision": "precision",
    "recall": "recall",
    "f1": "F1",
    "auc": "ROC AUC",
    "miou": "mIoU",
    "pixel_precision": "pixel precision",
    "pixel_recall": "pixel recall",
    "pixel_f1": "pixel F1",
    "dice": "Dice",
    "pixel_accuracy": "pixel accuracy",
    "n": "patches",
    "n_pixels": "pixels",
}


def truth_from_annotation(labels: np.ndarray, painted: bool) -> np.ndarray:
    """Tumour truth (1 tumour, 0 other, IGNORE unlabelled) from a Labels array.

    With ``painted`` (an annotation layer: 1 tumour, 2 normal, 0 unlabelled), unpainted pixels are
    left out; otherwise the layer is a full mask and every non-tumour pixel counts as 0.
    """
    labels = np.asarray(labels)
    truth = (labels == 1).astype(np.uint8)
    if painted:
        truth[labels == 0] = IGNORE
    return truth


def evaluate_annotation(
    truth: np.ndarray,
    store: Path,
    downsample: float,
    slide_mpp: tuple[float, float] | None,
    out_dir: Path | None,
) -> Generator[Any, None, dict[str, Any]]:
    """Score the store's tumour map against ``truth`` (on the annotation's grid)."""
    labelled = truth != IGNORE
    if not labelled.any():
        raise AnnotationError("the truth layer has no labelled pixel", hint="paint some first")
    yield Log(f"scoring {int(labelled.sum())} labelled pixels")
    prob = map_on_mask_grid(store, truth.shape, downsample, slide_mpp)
    yield Progress(1, 2, message="metrics")
    report = segmentation_report(truth, prob, out_dir, ignore_label=IGNORE, n_boot=200)
    fpr, tpr, _ = metrics.roc_curve(truth[labelled] == 1, prob[labelled])
    step = max(1, len(fpr) // 256)
    report["roc"] = {"fpr": fpr[::step].tolist() + [1.0], "tpr": tpr[::step].tolist() + [1.0]}
    report["class_names"] = ["other", "tumour"]
    yield Progress(2, 2)
    return report


def evaluate_folder(
    checkpoint: Path, folder: Path, out_dir: Path | None, limit: int | None, cancel: CancelToken
) -> Generator[Any, None, dict[str, Any]]:
    report = yield from iter_evaluate_patches(
        checkpoint, folder, out_dir, limit=limit, n_boot=200, cancel=cancel
    )
    return report  # type: ignore[no-any-return]


def _format(value: Any, ci: Any) -> tuple[str, str]:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "n/a", ""
    text = f"{value:.4f}" if isinstance(value, float) else str(value)
    interval = f"{ci[0]:.3f} – {ci[1]:.3f}" if ci and None not in ci else ""
    return text, interval


class EvaluateWidget(DockBase):
    """Evaluate predictions against annotations, or a checkpoint on labelled patches."""

    def __init__(self, napari_viewer: Any) -> None:
        super().__init__(napari_viewer)
        self._source = ComboBox(label="evaluate on", choices=list(SOURCES), value=SOURCES[0])
        self._truth = ComboBox(
            label="truth",
            choices=layer_choices(napari_viewer, lambda la: isinstance(la, Labels)),
            tooltip="painted annotations (1 tumour, 2 normal) or a full tumour mask",
        )
        self._prediction = ComboBox(
            label="prediction",
            choices=layer_choices(
                napari_viewer, lambda la: isinstance(la, Image) and bool(la.metadata.get("store"))
            ),
            tooltip="the probability map computed by Predict",
        )
        self._checkpoint = FileEdit(
            label="checkpoint", mode=FileDialogMode.EXISTING_FILE, filter="*.pt"
        )
        self._folder = FileEdit(label="patch folder", mode=FileDialogMode.EXISTING_DIRECTORY)
        self._limit = SpinBox(label="max patches", value=0, min=0, max=1_000_000, tooltip="0: all")
        self._out = FileEdit(
            label="report folder",
            mode=FileDialogMode.EXISTING_DIRECTORY,
            tooltip="optional: write report.json and PNG plots here",
        )
        self._evaluate_button = PushButton(text="Evaluate")
        self._evaluate_button.changed.connect(self._on_evaluate)
        self._table = Table(value={"metric": [], "value": [], "95% CI": []})
        self._table.min_height = 180
        self._plots = ReportCanvas()
        self._source.changed.connect(self._on_source)
        self.extend(
            [
                self._source,
                self._truth,
                self._prediction,
                self._checkpoint,
                self._folder,
                self._limit,
                self._out,
                self._evaluate_button,
                self._cancel_button,
                self._progress,
                self._status,
                self._table,
            ]
        )
        self.native.layout().addWidget(self._plots)
        self.report: dict[str, Any] | None = None
        self.reset_choices()
        self._on_source()

    @property
    def evaluate_button(self) -> PushButton:
        return self._evaluate_button

    @property
    def table(self) -> Table:
        return self._table

    def set_fields(self, **values: Any) -> None:
        """Set fields by name: source, truth, prediction, checkpoint, folder, limit, out."""
        fields = {
            "source": self._source,
            "truth": self._truth,
            "prediction": self._prediction,
            "checkpoint": self._checkpoint,
            "folder": self._folder,
            "limit": self._limit,
            "out": self._out,
        }
        for name, value in values.items():
            fields[name].value = value

    def _on_source(self, *_: Any) -> None:
        on_layers = self._source.value == SOURCES[0]
        self._truth.visible = self._prediction.visible = on_layers
        self._checkpoint.visible = self._folder.visible = self._limit.visible = not on_layers

    def _on_evaluate(self, *_: Any) -> None:
        if self._runner.busy():
            return
        out_dir = optional_path(self._out)
        try:
            if self._source.value == SOURCES[0]:
                factory = self._annotation_factory(out_dir)
            else:
                factory = self._folder_factory(out_dir)
        except WsiSslError as exc:
            show_error(str(exc))
            return
        self._runner.start(factory, "Evaluating", on_done=self._on_done)

    def _annotation_factory(self, out_dir: Path | None) -> Any:
        truth_layer = self._truth.value
        prediction = self._prediction.value
        if truth_layer is None:
            raise AnnotationError("choose the truth layer (painted annotations or a mask)")
        if prediction is None:
            raise WsiSslError("no probability map to evaluate", hint="run Predict first")
        slides = [
            s
            for s in slide_layers(self._viewer)
            if str(s.metadata.get("slide_path")) == str(prediction.metadata.get("slide_path"))
        ]
        if not slides:
            raise WsiSslError("the slide of the probability map is not open")
        slide = slide_geometry(slides[0])
        data = truth_layer.data[0] if truth_layer.multiscale else truth_layer.data
        painted = bool(truth_layer.metadata.get("class_names"))
        truth = truth_from_annotation(np.asarray(data), painted)
        downsample = annotation_downsample(truth_layer, slide)
        store = Path(prediction.metadata["store"])
        mpp = None
        if slide.mpp is not None:
            mpp = (slide.scale[1], slide.scale[0])
        return lambda token: evaluate_annotation(truth, store, downsample, mpp, out_dir)

    def _folder_factory(self, out_dir: Path | None) -> Any:
        checkpoint = optional_path(self._checkpoint)
        folder = optional_path(self._folder)
        if checkpoint is None or folder is None:
            raise WsiSslError("choose a checkpoint and a folder of labelled patches")
        limit = int(self._limit.value) or None
        return lambda token: evaluate_folder(checkpoint, folder, out_dir, limit, token)

    def _on_done(self, outcome: Outcome) -> None:
        if not outcome.ok or not isinstance(outcome.value, dict):
            return
        self.report = report = outcome.value
        self.show_report(report)
        where = f"; written to {report['report']}" if report.get("report") else ""
        self.set_status(f"evaluated in {outcome.seconds:.1f} s{where}")
        show_info("Evaluation finished")

    def show_report(self, report: dict[str, Any]) -> None:
        """Fill the table and plots from a report dict."""
        ci = report.get("ci", {})
        rows = {"metric": [], "value": [], "95% CI": []}  # type: dict[str, list[str]]
        for key, label in ROWS.items():
            if key in report:
                value, interval = _format(report[key], ci.get(key))
                rows["metric"].append(label)
                rows["value"].append(value)
                rows["95% CI"].append(interval)
        self._table.value = rows
        roc = report.get("roc")
        auc = report.get("auc")
        curve = None
        if roc and auc is not None and np.isfinite(auc):
            curve = (np.asarray(roc["fpr"]), np.asarray(roc["tpr"]), float(auc))
        confusion = np.asarray(report["confusion"]) if "confusion" in report else None
        self._plots.show_report(confusion, report.get("class_names"), curve)
