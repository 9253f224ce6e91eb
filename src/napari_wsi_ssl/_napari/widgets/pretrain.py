"""The "Pretrain" dock: self-supervised pretraining on the open slides, with a live loss curve."""

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

from ...errors import SlideError
from ...events import CancelToken, Preview, Progress
from ...vocab import DEFAULT_OBJECTIVE, Budget, BudgetUnit, Objective, Preset
from ._annotations import is_slide_layer, slide_layers
from ._base import DockBase, layer_choices, optional_path, preload_compute
from ._plot import CurveCanvas, ImageStrip, plot_progress
from ._slide_mpp import SlideMppField, check_pixel_size
from ._worker import Outcome


@dataclass(frozen=True)
class PretrainSettings:
    """The dock's fields as plain values (what a worker may see)."""

    sources: tuple[Path, ...]
    preset: str
    objective: str
    mpp: float
    patch_size: int
    width: int
    budget: float
    budget_unit: str
    batch_size: int
    out: Path
    slide_mpp: float | None = None  # the slides' µm/px given in the dock (None: the files')


def pretrain_run(settings: PretrainSettings, cancel: CancelToken) -> Generator[Any, None, Path]:
    """The training generator for ``settings`` (built on the GUI thread, run in the worker)."""
    # torch at the first run: napari's plugin menu stays fast
    from ...training import PretrainConfig, pretrain

    config = PretrainConfig(
        preset=settings.preset,
        objective=settings.objective,
        width=settings.width,
        mpp=settings.mpp,
        patch_size=settings.patch_size,
        batch_size=settings.batch_size,
        preview_every=10,
        budget=Budget.parse(settings.budget, settings.budget_unit),
        slide_mpp=settings.slide_mpp,
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
        self._slide_mpp = SlideMppField(napari_viewer, self._first_slide)
        self._slides.changed.connect(self._slide_mpp.refresh)
        self._folder = FileEdit(
            label="or folder",
            mode=FileDialogMode.EXISTING_DIRECTORY,
            tooltip="a folder of slides or patches",
        )
        self._preset = ComboBox(
            label="preset",
            choices=list(Preset.values()),
            value=Preset.RESNET34_AE.value,
            tooltip="ResNet34 autoencoder (transfer to any task) or UNet (segmentation)",
        )
        self._objective = ComboBox(
            label="objective",
            choices=list(Objective.values()),
            value=DEFAULT_OBJECTIVE,
            tooltip="l1: the papers' pixel reconstruction; mim: masked-image modelling (the default); "
            "stain, cross-stain: stain-aware (docs/training.md)",
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
        self._unit = ComboBox(label="unit", choices=list(BudgetUnit.values()), value="epochs")
        self._batch = SpinBox(label="batch size", value=8, min=1, max=512)
        self._out = FileEdit(
            label="checkpoint",
            mode=FileDialogMode.OPTIONAL_FILE,
            filter="*.pt",
            tooltip="empty: a new file named after the slide and the time",
        )
        self._pretrain_button = PushButton(text="Pretrain")
        self._pretrain_button.changed.connect(self._on_pretrain)
        self._loss = CurveCanvas(("loss",))
        self._preview = ImageStrip()
        budget_row = Container(
            widgets=[self._budget, self._unit], layout="horizontal", labels=False
        )
        budget_row.label = "budget"
        self.extend(
            [
                self._slides,
                self._slide_mpp.widget,
                self._folder,
                self._preset,
                self._objective,
                self._mpp,
                self._patch,
                self._width,
                budget_row,
                self._batch,
                self._out,
                self._pretrain_button,
                self._cancel_button,
                self._progress,
                self._status,
            ]
        )
        self.native.layout().addWidget(self._loss)
        self.native.layout().addWidget(self._preview)
        self.last_checkpoint: Path | None = None
        self.reset_choices()

    # -- exposed for tests and scripts ---------------------------------------------------
    @property
    def pretrain_button(self) -> PushButton:
        return self._pretrain_button

    @property
    def loss_canvas(self) -> CurveCanvas:
        return self._loss

    @property
    def preview(self) -> ImageStrip:
        return self._preview

    def set_fields(self, **values: Any) -> None:
        """Set fields by name: preset, objective, mpp, patch_size, width, budget, unit, batch_size, out, folder, slides."""
        fields = {
            "preset": self._preset,
            "objective": self._objective,
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

    def reset_choices(self, *args: Any) -> None:
        super().reset_choices(*args)
        if hasattr(self, "_slide_mpp"):
            self._slide_mpp.refresh()

    # -- handlers ---------------------------------------------------------------------------
    def _first_slide(self) -> Any:
        """The slide the "slide µm/px" field shows: the first chosen, else the first open."""
        layers = list(self._slides.value) or slide_layers(self._viewer)
        return layers[0] if layers else None

    def _slide_mpp_given(self) -> float | None:
        """The ``slide_mpp`` of the run (one for all its slides), or SlideError with the estimate
        for a slide without pixel size."""
        if optional_path(self._folder) is not None:
            return None
        layers = list(self._slides.value) or slide_layers(self._viewer)
        given = {check_pixel_size(la, working_mpp=float(self._mpp.value)) for la in layers}
        if len(given) > 1:
            raise SlideError(
                "the slides were given different pixel sizes in the dock",
                hint="pretrain them one at a time, or give them the same µm/px",
            )
        return given.pop() if given else None

    def _sources(self) -> tuple[Path, ...]:
        folder = optional_path(self._folder)
        if folder is not None:
            return (folder,)
        layers = list(self._slides.value) or slide_layers(self._viewer)
        return tuple(Path(layer.metadata["slide_path"]) for layer in layers)

    def _checkpoint_out(self, sources: tuple[Path, ...]) -> Path:
        chosen = optional_path(self._out)
        if chosen is not None:
            return chosen
        stem = sources[0].name if len(sources) == 1 else f"{len(sources)}-slides"
        return self.session.new_checkpoint("pretrain", stem if sources else "slides")

    def settings(self) -> PretrainSettings:
        """The fields as plain values (an empty checkpoint field: a new, dated file)."""
        sources = self._sources()
        return PretrainSettings(
            sources=sources,
            preset=str(self._preset.value),
            objective=str(self._objective.value),
            mpp=float(self._mpp.value),
            patch_size=int(self._patch.value),
            width=int(self._width.value),
            budget=float(self._budget.value),
            budget_unit=str(self._unit.value),
            batch_size=int(self._batch.value),
            out=self._checkpoint_out(sources),
            slide_mpp=self._slide_mpp_given(),
        )

    def _on_pretrain(self, *_: Any) -> None:
        if self._runner.busy():
            return
        settings = self.checked(self.settings)
        if settings is None:
            return
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
        path = Path(outcome.value) if outcome.value is not None else None
        if path is None or not path.exists():
            return  # the status line says failed (or cancelled before anything was saved)
        self.last_checkpoint = path
        self.session.remember("pretrain", path)
        if outcome.cancelled:
            self.set_status(f"cancelled after {outcome.seconds:.0f} s; checkpoint so far: {path}")
            return
        self.set_status(f"done in {outcome.seconds:.0f} s; checkpoint: {path}")
        show_info(f"Pretraining finished: {path}")
