"""Plots for the docks: live curves, a preview strip, report plots.

This is the one place the docks use raw ``QWidget``s: magicgui has no plot widget.
The live curves are painted with QPainter and their repaints are throttled, because a training
loop may report a step every few milliseconds and a matplotlib figure redrawn while a run
competes for the CPU stalls the event loop for tenths of a second. The report plots (drawn once,
after a run) use matplotlib.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure
from qtpy.QtCore import QPointF, QRectF, Qt
from qtpy.QtGui import (
    QColor,
    QFont,
    QFontMetrics,
    QImage,
    QPainter,
    QPen,
    QPixmap,
    QPolygonF,
)
from qtpy.QtWidgets import QLabel, QSizePolicy, QWidget

#: Shortest interval between two repaints of a live plot, in seconds.
REDRAW_INTERVAL_S = 0.25

#: Line colours of the series of one axes, in the order they appear.
SERIES_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b")


def _style_axes(ax: object) -> None:
    ax.tick_params(labelsize=7)  # type: ignore[attr-defined]
    ax.grid(True, alpha=0.3)  # type: ignore[attr-defined]


def nice_ticks(lo: float, hi: float, count: int = 4) -> list[float]:
    """About ``count`` round values (1, 2 or 5 times a power of ten) spanning ``lo .. hi``."""
    if not (np.isfinite(lo) and np.isfinite(hi)) or hi <= lo:
        return [float(lo)] if np.isfinite(lo) else []
    raw = (hi - lo) / max(count - 1, 1)
    power = 10.0 ** np.floor(np.log10(raw))
    step = next(m * power for m in (1.0, 2.0, 5.0, 10.0) if m * power >= raw)
    first = np.ceil(lo / step - 1e-9) * step
    return [float(v) for v in np.arange(first, hi + step * 1e-6, step)]


def _tick_text(value: float, step: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 1e4 or abs(value) < 1e-3:
        return f"{value:.1e}"
    decimals = max(0, int(-np.floor(np.log10(step)))) if step > 0 else 2
    return f"{value:.{min(decimals, 4)}f}"


class CurveCanvas(QWidget):
    """Live curves (loss, validation metrics) on one or more axes, painted with QPainter.

    Each named series is appended point by point with :meth:`add_point`; the widget repaints
    at most every :data:`REDRAW_INTERVAL_S` seconds, and always on :meth:`flush`. A repaint
    draws a few polylines and labels (about a millisecond), where a matplotlib figure took
    tenths of a second of the GUI thread while a run competes for the CPU.

    Parameters
    ----------
    axes_titles
        One title per axes, e.g. ``("loss", "validation")``.
    height
        Height of the plot in inches (at 70 px per inch).
    """

    def __init__(self, axes_titles: Sequence[str] = ("loss",), height: float = 2.2) -> None:
        super().__init__()
        self.setMinimumHeight(int(height * 70))
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        self._titles = tuple(axes_titles)
        self._series: dict[tuple[str, str], tuple[list[float], list[float]]] = {}
        self._last_draw = 0.0
        self._dirty = False
        self.paints = 0

    @property
    def series(self) -> dict[tuple[str, str], tuple[list[float], list[float]]]:
        """The points drawn so far, keyed by (axes title, series name)."""
        return self._series

    def clear(self) -> None:
        """Forget every series (a new run starts)."""
        self._series.clear()
        self.flush()

    def add_point(self, axes: str, name: str, x: float, y: float) -> None:
        """Append one point to a series; repaint if the last repaint is old enough."""
        if axes not in self._titles or not np.isfinite(y):
            return
        xs, ys = self._series.setdefault((axes, name), ([], []))
        xs.append(float(x))
        ys.append(float(y))
        self._dirty = True
        if time.monotonic() - self._last_draw >= REDRAW_INTERVAL_S:
            self.flush()

    def flush(self) -> None:
        """Schedule a repaint now (Qt merges repeated requests into one paint)."""
        self.update()
        self._last_draw = time.monotonic()
        self._dirty = False

    # -- painting -------------------------------------------------------------------------
    def paintEvent(self, _event: Any) -> None:  # noqa: N802 - Qt's name
        painter = QPainter(self)
        try:
            painter.setRenderHint(QPainter.RenderHint.Antialiasing)
            painter.fillRect(self.rect(), QColor("white"))
            font = QFont(painter.font())
            font.setPointSizeF(7.0)
            painter.setFont(font)
            n = max(len(self._titles), 1)
            width = self.width() / n
            for i, title in enumerate(self._titles):
                self._paint_axes(painter, title, QRectF(i * width, 0, width, self.height()))
        finally:
            painter.end()
        self.paints += 1

    def _paint_axes(self, painter: QPainter, title: str, box: QRectF) -> None:
        metrics = QFontMetrics(painter.font())
        line_h = metrics.height()
        series = [(k[1], v) for k, v in self._series.items() if k[0] == title and v[0]]
        xs = [x for _, (sx, _) in series for x in sx]
        ys = [y for _, (_, sy) in series for y in sy]
        x_lo, x_hi = (min(xs), max(xs)) if xs else (0.0, 1.0)
        y_lo, y_hi = (min(ys), max(ys)) if ys else (0.0, 1.0)
        if x_hi <= x_lo:
            x_lo, x_hi = x_lo - 0.5, x_hi + 0.5
        if y_hi <= y_lo:
            pad = abs(y_lo) * 0.05 or 0.5
            y_lo, y_hi = y_lo - pad, y_hi + pad
        else:
            pad = (y_hi - y_lo) * 0.05
            y_lo, y_hi = y_lo - pad, y_hi + pad
        y_ticks = nice_ticks(y_lo, y_hi)
        x_ticks = nice_ticks(x_lo, x_hi)
        y_step = y_ticks[1] - y_ticks[0] if len(y_ticks) > 1 else 0.0
        x_step = x_ticks[1] - x_ticks[0] if len(x_ticks) > 1 else 1.0
        y_labels = [_tick_text(v, y_step) for v in y_ticks]
        left = box.left() + 6 + max((metrics.horizontalAdvance(t) for t in y_labels), default=0)
        plot = QRectF(
            left, box.top() + line_h + 4, box.right() - left - 8, box.height() - 2 * line_h - 10
        )
        if plot.width() < 10 or plot.height() < 10:
            return
        painter.setPen(QColor("black"))
        painter.drawText(
            QRectF(box.left(), box.top() + 2, box.width(), line_h),
            int(Qt.AlignmentFlag.AlignHCenter),
            title,
        )

        def px(x: float) -> float:
            return plot.left() + (x - x_lo) / (x_hi - x_lo) * plot.width()

        def py(y: float) -> float:
            return plot.bottom() - (y - y_lo) / (y_hi - y_lo) * plot.height()

        grid = QPen(QColor(0, 0, 0, 40))
        for value, text in zip(y_ticks, y_labels, strict=True):
            y = py(value)
            painter.setPen(grid)
            painter.drawLine(QPointF(plot.left(), y), QPointF(plot.right(), y))
            painter.setPen(QColor("black"))
            painter.drawText(
                QRectF(box.left(), y - line_h / 2, left - box.left() - 3, line_h),
                int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter),
                text,
            )
        for value in x_ticks:
            x = px(value)
            painter.setPen(grid)
            painter.drawLine(QPointF(x, plot.top()), QPointF(x, plot.bottom()))
            painter.setPen(QColor("black"))
            painter.drawText(
                QRectF(x - 30, plot.bottom() + 2, 60, line_h),
                int(Qt.AlignmentFlag.AlignHCenter),
                _tick_text(value, x_step if x_step >= 1 else x_step),
            )
        painter.setPen(QPen(QColor("black"), 0.8))
        painter.drawRect(plot)
        for i, (name, (sx, sy)) in enumerate(series):
            colour = QColor(SERIES_COLOURS[i % len(SERIES_COLOURS)])
            painter.setPen(QPen(colour, 1.4))
            points = [QPointF(px(x), py(y)) for x, y in zip(sx, sy, strict=True)]
            if len(points) > 1:
                painter.drawPolyline(QPolygonF(points))
            if len(points) <= 40:
                painter.setBrush(colour)
                for p in points:
                    painter.drawEllipse(p, 1.6, 1.6)
                painter.setBrush(Qt.BrushStyle.NoBrush)
            if len(series) > 1:
                y = plot.top() + 3 + i * line_h
                painter.drawLine(
                    QPointF(plot.right() - 70, y + line_h / 2),
                    QPointF(plot.right() - 58, y + line_h / 2),
                )
                painter.setPen(QColor("black"))
                painter.drawText(QRectF(plot.right() - 55, y, 53, line_h), 0, name)


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
        data = strip.tobytes()  # alive until the copy below is made
        qimage = QImage(
            data,
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
