"""The "Pretrain" dock: self-supervised pretraining on the open slides, with a live loss curve.

It also holds the "New annotation layer" button, since annotating is the step that follows.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from magicgui.types import FileDialogMode
from magicgui.widgets import (
    ComboBox,
    Container,
    FileEdit,
    FloatSpinBox,
    PushButton,
    Select,
    SpinBox,
)
from napari.utils.notifications import show_error, show_info

from ...errors import WsiSslError
from ...events import CancelToken, Preview, Progress
from ._annotations import is_slide_layer, new_annotation_layer, slide_layers
from ._base import DockBase, layer_choices, optional_path, preload_compute
from ._plot import CurveCanvas, ImageStrip, plot_progress
from ._worker import Outcome

PRESETS = ("resnet34-ae", "unet-resnet34")
BUDGET_UNITS = ("epochs", "minutes", "steps")
DEFAULT_DIR = Path.home() / ".cache" / "napari-wsi-ssl" / "checkpoints"
#: The most recent checkpoints, by kind ("pretrain", "finetune"), so other docks can offer them.
RECENT: dict[str, Path] = {}


@dataclass(frozen=True)
class PretrainSettings:
    """The dock's fields as plain values (what a worker may see)."""

    sources: tuple[Path, ...]
    preset: str
    mpp: float
    patch_size: int
    width: int
    budget: float
    budget_unit: str
    batch_size: int
    out: Path


def pretrain_run(settings: PretrainSettings, cancel: CancelToken) -> Generator[Any, None, Path]:
    """The training generator for ``settings`` (built on the GUI thread, run in the worker)."""
    from ...training import PretrainConfig, pretrain

    budget: dict[str, Any] = {"epochs": None, "steps": None, "minutes": None}
    if settings.budget_unit == "minutes":
        budget["minutes"] = float(settings.budget)
    elif settings.budget_unit == "steps":
        budget["steps"] = max(1, int(settings.budget))
    else:
        budget["epochs"] = max(1, int(settings.budget))
    config = PretrainConfig(
        preset=settings.preset,
        width=settings.width,
        mpp=settings.mpp,
        patch_size=settings.patch_size,
        batch_size=settings.batch_size,
        preview_every=10,
        **budget,
    )
    result: Path = yield from pretrain(list(settings.sources), config, settings.out, cancel=cancel)
    return result


class PretrainWidget(DockBase):
    """Pretrain an autoencoder or UNet on slide patches, without labels."""

    def __init__(self, napari_viewer: Any) -> None:
        super().__init__(napari_viewer)
        preload_compute()
        self._slides = Select(
            label="slides",
            choices=layer_choices(napari_viewer, is_slide_layer),
            tooltip="slide layers to learn from (none selected: all open slides)",
        )
        self._folder = FileEdit(
            label="or folder",
            mode=FileDialogMode.EXISTING_DIRECTORY,
            tooltip="a folder of slides or patches",
        )
        self._preset = ComboBox(
            label="preset",
            choices=list(PRESETS),
            value="resnet34-ae",
            tooltip="ResNet34 autoencoder (transfer to any task) or UNet (segmentation)",
        )
        self._mpp = FloatSpinBox(label="mpp (µm/px)", value=1.0, min=0.1, max=32.0, step=0.25)
        self._patch = SpinBox(label="patch size", value=128, min=32, max=1024, step=32)
        self._width = ComboBox(
            label="width",
            choices=[8, 16, 32, 64],
            value=16,
            tooltip="channels of the first stage; 64 is the full ResNet34 (use it on a GPU)",
        )
        self._budget = FloatSpinBox(label="budget", value=2, min=0.1, max=100_000, step=1)
        self._unit = ComboBox(label="unit", choices=list(BUDGET_UNITS), value="epochs")
        self._batch = SpinBox(label="batch size", value=8, min=1, max=512)
        self._out = FileEdit(label="checkpoint", mode=FileDialogMode.OPTIONAL_FILE, filter="*.pt")
        self._out.value = DEFAULT_DIR / "pretrained.pt"
        self._pretrain_button = PushButton(text="Pretrain")
        self._pretrain_button.changed.connect(self._on_pretrain)
        self._loss = CurveCanvas(("loss",))
        self._preview = ImageStrip()
        self._annotate_slide = ComboBox(
            label="slide", choices=layer_choices(napari_viewer, is_slide_layer)
        )
        self._annotate_downsample = ComboBox(
            label="downsample",
            choices=[("auto", 0), ("1", 1), ("2", 2), ("4", 4), ("8", 8), ("16", 16), ("32", 32)],
            value=0,
        )
        self._annotate_button = PushButton(text="New annotation layer")
        self._annotate_button.changed.connect(self._on_new_annotation)
        budget_row = Container(
            widgets=[self._budget, self._unit], layout="horizontal", labels=False
        )
        budget_row.label = "budget"
        self.extend(
            [
                self._slides,
                self._folder,
                self._preset,
                self._mpp,
                self._patch,
                self._width,
                budget_row,
                self._batch,
                self._out,
                self._pretrain_button,
                self._cancel_button,
                self._status,
            ]
        )
        self.native.layout().addWidget(self._loss)
        self.native.layout().addWidget(self._preview)
        annotate = Container(
            widgets=[self._annotate_slide, self._annotate_downsample, self._annotate_button],
            label="annotate",
        )
        self.append(annotate)
        self.last_checkpoint: Path | None = None
        self.reset_choices()

    # -- exposed for tests and scripts ---------------------------------------------------
    @property
    def pretrain_button(self) -> PushButton:
        return self._pretrain_button

    @property
    def cancel_button(self) -> PushButton:
        return self._cancel_button

    @property
    def annotation_button(self) -> PushButton:
        return self._annotate_button

    @property
    def loss_canvas(self) -> CurveCanvas:
        return self._loss

    @property
    def preview(self) -> ImageStrip:
        return self._preview

    def set_fields(self, **values: Any) -> None:
        """Set fields by name: preset, mpp, patch_size, width, budget, unit, batch_size, out, folder, slides."""
        fields = {
            "preset": self._preset,
            "mpp": self._mpp,
            "patch_size": self._patch,
            "width": self._width,
            "budget": self._budget,
            "unit": self._unit,
            "batch_size": self._batch,
            "out": self._out,
            "folder": self._folder,
            "slides": self._slides,
        }
        for name, value in values.items():
            fields[name].value = value

    # -- handlers ---------------------------------------------------------------------------
    def _sources(self) -> tuple[Path, ...]:
        folder = optional_path(self._folder)
        if folder is not None:
            return (folder,)
        layers = list(self._slides.value) or slide_layers(self._viewer)
        return tuple(Path(layer.metadata["slide_path"]) for layer in layers)

    def settings(self) -> PretrainSettings:
        """The fields as plain values."""
        return PretrainSettings(
            sources=self._sources(),
            preset=str(self._preset.value),
            mpp=float(self._mpp.value),
            patch_size=int(self._patch.value),
            width=int(self._width.value),
            budget=float(self._budget.value),
            budget_unit=str(self._unit.value),
            batch_size=int(self._batch.value),
            out=Path(str(self._out.value)).expanduser(),
        )

    def _on_pretrain(self, *_: Any) -> None:
        if self._runner.busy():
            return
        settings = self.settings()
        if not settings.sources:
            show_error("Open a slide (or choose a folder of slides or patches) to pretrain on.")
            return
        self._loss.clear()
        self._runner.start(
            lambda token: pretrain_run(settings, token), "Pretraining", on_done=self._on_done
        )

    def _on_event(self, event: Any) -> None:
        if isinstance(event, Progress):
            plot_progress(self._loss, event)
            total = f"/{event.total}" if event.total else ""
            epoch = f", epoch {event.epoch}" if event.epoch is not None else ""
            loss = f", loss {event.loss:.4f}" if event.loss is not None else ""
            self.set_progress_status(f"step {event.step}{total}{epoch}{loss}")
        elif isinstance(event, Preview):
            self._preview.show_images(event.images)

    def _on_done(self, outcome: Outcome) -> None:
        self._loss.flush()
        if outcome.value is not None or outcome.cancelled:
            path = Path(outcome.value) if outcome.value is not None else self.settings().out
            if path.exists():
                self.last_checkpoint = path
                RECENT["pretrain"] = path
                self.set_status(f"checkpoint: {path}")
                if outcome.ok:
                    show_info(f"Pretraining finished: {path}")
                return
        if outcome.error is not None:
            self.set_status(f"stopped: {outcome.error}")

    def _on_new_annotation(self, *_: Any) -> None:
        slide = self._annotate_slide.value
        if slide is None:
            layers = slide_layers(self._viewer)
            slide = layers[0] if layers else None
        if slide is None:
            show_error("Open a slide first: the annotation layer is laid over it.")
            return
        try:
            layer = new_annotation_layer(
                self._viewer, slide, downsample=int(self._annotate_downsample.value) or None
            )
        except WsiSslError as exc:
            show_error(str(exc))
            return
        show_info(
            f"Paint tumour (label 1) and normal tissue (label 2) on {layer.name!r}, then Fine-tune."
        )
