"""Embedded matplotlib canvases for the docks: live curves, a preview strip, report plots.

This is the one place the docks use a raw ``QWidget``: magicgui has no plot widget.
Redraws are throttled, because a training loop may report a step every few milliseconds and a
full matplotlib draw on every one would stall the event loop.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure
from qtpy.QtCore import Qt
from qtpy.QtGui import QImage, QPixmap
from qtpy.QtWidgets import QLabel, QSizePolicy

#: Shortest interval between two redraws of a live plot, in seconds.
REDRAW_INTERVAL_S = 0.25


def _style_axes(ax: object) -> None:
    ax.tick_params(labelsize=7)  # type: ignore[attr-defined]
    ax.grid(True, alpha=0.3)  # type: ignore[attr-defined]


class CurveCanvas(FigureCanvasQTAgg):
    """Live curves (loss, validation metrics) on one or two axes.

    Each named series is appended point by point with :meth:`add_point`; the canvas redraws at
    most every :data:`REDRAW_INTERVAL_S` seconds, and always on :meth:`flush`.

    Parameters
    ----------
    axes_titles
        One title per axes, e.g. ``("loss", "validation")``.
    height
        Height of the figure in inches.
    """

    def __init__(self, axes_titles: Sequence[str] = ("loss",), height: float = 2.2) -> None:
        figure = Figure(figsize=(3.6, height), dpi=90, layout="constrained")
        super().__init__(figure)
        self.setMinimumHeight(int(height * 70))
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        self._axes = {}
        for i, title in enumerate(axes_titles):
            ax = figure.add_subplot(1, len(axes_titles), i + 1)
            ax.set_title(title, fontsize=8)
            _style_axes(ax)
            self._axes[title] = ax
        self._series: dict[tuple[str, str], tuple[list[float], list[float]]] = {}
        self._lines: dict[tuple[str, str], object] = {}
        self._last_draw = 0.0
        self._dirty = False

    @property
    def series(self) -> dict[tuple[str, str], tuple[list[float], list[float]]]:
        """The points drawn so far, keyed by (axes title, series name)."""
        return self._series

    def clear(self) -> None:
        """Forget every series (a new run starts)."""
        for line in self._lines.values():
            line.remove()  # type: ignore[attr-defined]
        self._lines.clear()
        self._series.clear()
        for ax in self._axes.values():
            legend = ax.get_legend()
            if legend is not None:
                legend.remove()
        self.flush()

    def add_point(self, axes: str, name: str, x: float, y: float) -> None:
        """Append one point to a series; redraw if the last redraw is old enough."""
        if axes not in self._axes or not np.isfinite(y):
            return
        key = (axes, name)
        xs, ys = self._series.setdefault(key, ([], []))
        xs.append(float(x))
        ys.append(float(y))
        self._dirty = True
        if time.monotonic() - self._last_draw >= REDRAW_INTERVAL_S:
            self.flush()

    def flush(self) -> None:
        """Redraw now if anything changed."""
        for key, (xs, ys) in self._series.items():
            line = self._lines.get(key)
            if line is None:
                ax = self._axes[key[0]]
                (line,) = ax.plot(xs, ys, lw=1.2, marker="o", markersize=2.5, label=key[1])
                self._lines[key] = line
                if sum(1 for k in self._series if k[0] == key[0]) > 1:
                    ax.legend(fontsize=7, loc="best")
            else:
                line.set_data(xs, ys)  # type: ignore[attr-defined]
        for ax in self._axes.values():
            ax.relim()
            ax.autoscale_view()
        self.draw_idle()
        self._last_draw = time.monotonic()
        self._dirty = False


def plot_progress(canvas: CurveCanvas, event: Any, metrics_axes: str = "loss") -> None:
    """Add a training ``Progress`` event to a curve canvas.

    A step's loss goes on the "loss" axes as "train"; validation metrics (an event carrying
    ``metrics``) go on ``metrics_axes``, except losses, which join the training loss.
    """
    if event.metrics:
        for name, value in event.metrics.items():
            axes = "loss" if "loss" in name else metrics_axes
            canvas.add_point(axes, name, event.step, value)
    elif event.loss is not None:
        canvas.add_point("loss", "train", event.step, event.loss)


class ReportCanvas(FigureCanvasQTAgg):
    """A confusion matrix and a ROC curve side by side, for the Evaluate dock."""

    def __init__(self, height: float = 2.6) -> None:
        figure = Figure(figsize=(3.8, height), dpi=90, layout="constrained")
        super().__init__(figure)
        self.setMinimumHeight(int(height * 70))
        self.ax_confusion = figure.add_subplot(1, 2, 1)
        self.ax_roc = figure.add_subplot(1, 2, 2)
        self.show_report(None, None, None)

    def show_report(
        self,
        confusion: np.ndarray | None,
        class_names: Sequence[str] | None,
        roc: tuple[np.ndarray, np.ndarray, float] | None,
    ) -> None:
        """Draw a confusion matrix (rows: truth) and a ROC curve ``(fpr, tpr, auc)``."""
        ax = self.ax_confusion
        ax.clear()
        ax.set_title("confusion matrix", fontsize=8)
        if confusion is not None:
            confusion = np.asarray(confusion)
            ax.imshow(confusion, cmap="Blues")
            names = list(class_names or [str(i) for i in range(len(confusion))])
            ax.set_xticks(range(len(names)), names, fontsize=7, rotation=30)
            ax.set_yticks(range(len(names)), names, fontsize=7)
            ax.set_xlabel("predicted", fontsize=7)
            ax.set_ylabel("truth", fontsize=7)
            vmax = confusion.max() if confusion.size else 0
            for (i, j), v in np.ndenumerate(confusion):
                colour = "white" if vmax and v > vmax / 2 else "black"
                ax.text(j, i, f"{v:g}", ha="center", va="center", fontsize=7, color=colour)
        else:
            ax.set_axis_off()
        ax = self.ax_roc
        ax.clear()
        ax.set_title("ROC", fontsize=8)
        _style_axes(ax)
        if roc is not None:
            fpr, tpr, auc = roc
            ax.plot(fpr, tpr, lw=1.2, label=f"AUC {auc:.3f}")
            ax.plot([0, 1], [0, 1], "k--", lw=0.6)
            ax.set_xlim(0, 1)
            ax.set_ylim(0, 1)
            ax.set_xlabel("false positive rate", fontsize=7)
            ax.set_ylabel("true positive rate", fontsize=7)
            ax.legend(fontsize=7, loc="lower right")
        self.draw_idle()


class ImageStrip(QLabel):
    """A small strip of RGB images side by side (a patch and its reconstruction)."""

    def __init__(self, height: int = 96) -> None:
        super().__init__()
        self._height = height
        self.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.setMinimumHeight(height)
        self.setText("preview appears while training")
        self.last_images: dict[str, np.ndarray] = {}

    def show_images(self, images: dict[str, np.ndarray]) -> None:
        """Show the images left to right, each scaled to the strip's height."""
        arrays = [_to_rgb_uint8(a) for a in images.values()]
        if not arrays:
            return
        self.last_images = dict(images)
        h = max(a.shape[0] for a in arrays)
        gap = np.full((h, 4, 3), 255, np.uint8)
        padded = []
        for a in arrays:
            if a.shape[0] < h:
                a = np.pad(a, ((0, h - a.shape[0]), (0, 0), (0, 0)), constant_values=255)
            padded += [a, gap]
        strip = np.ascontiguousarray(np.concatenate(padded[:-1], axis=1))
        qimage = QImage(
            strip.tobytes(),
            strip.shape[1],
            strip.shape[0],
            strip.strides[0],
            QImage.Format.Format_RGB888,
        ).copy()
        pixmap = QPixmap.fromImage(qimage).scaledToHeight(self._height)
        self.setPixmap(pixmap)
        self.setToolTip(" | ".join(images))


def _to_rgb_uint8(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a)
    if a.ndim == 3 and a.shape[0] in (1, 3) and a.shape[-1] not in (1, 3):
        a = np.moveaxis(a, 0, -1)
    if a.dtype != np.uint8:
        a = np.clip(a.astype(np.float32) * (255.0 if a.max(initial=0) <= 1.0 else 1.0), 0, 255)
        a = a.astype(np.uint8)
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=-1)
    if a.shape[-1] == 1:
        a = np.repeat(a, 3, axis=-1)
    return a[..., :3]
