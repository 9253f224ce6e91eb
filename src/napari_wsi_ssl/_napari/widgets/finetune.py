"""The "Fine-tune" dock: paint tumour and normal tissue, learn from the strokes, see the map.

"New annotation layer" lays an empty annotation layer over the slide. The painted pixels are
read from it into a numpy array on the GUI thread; the worker gets that array, the slide path
and the config.

- **fast** (the default): the slide's feature cache (built once per slide and encoder; colour
  features only when no pretrained checkpoint is given), a light head trained on the strokes in
  seconds, and its whole-slide map (:func:`~napari_wsi_ssl.features.fast_finetune`). With
  **live** on, every stroke starts a refinement round (warm-started head, new map store) and the
  map layers follow it; **Suggest** shows where to paint next (see ``_live``).
- **frozen encoder**, **full**, **from scratch**: fine-tuning and the map of the slide with the
  new checkpoint are one run
  (:func:`~napari_wsi_ssl.inference.interactive.finetune_then_predict`): one progress bar, one
  Cancel, the part of the slide on screen mapped first.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from magicgui.types import FileDialogMode
from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FileEdit,
    FloatSpinBox,
    PushButton,
    SpinBox,
)
from napari.layers import Labels, Shapes
from napari.utils.notifications import show_error, show_info, show_warning

from ...errors import WsiSslError
from ...events import Preview, Progress, StoreReady, TilesDone
from ...inference.interactive import CheckpointSaved, FinetunedMap
from ...recent import TASK_KIND
from ...vocab import BudgetUnit
from ._annotate import AnnotateMixin
from ._annotations import (
    ask_geojson,
    is_slide_layer,
    region_xywh,
    require_slide_path,
)
from ._base import DockBase, layer_choices, optional_path, preload_compute
from ._fast_mode import FastModeMixin
from ._finetune_run import (
    FAST_PATCHES,
    FinetuneRequest,
    chance_warning,
    finetune_run,
)
from ._plot import CurveCanvas, ImageStrip, plot_progress
from ._slide_mpp import SlideMppField, check_pixel_size
from ._worker import Outcome
from .predict import PredictionDisplay, predict_request

TASKS = ("segment", "classify", "nuclei")
FAST = "fast"
MODES = {
    "fast": FAST,
    "frozen encoder": "frozen-encoder",
    "full": "full",
    "from scratch": "scratch",
}
#: Defaults of the frozen-encoder mode: 64 patches of 64 px, 3 epochs, about a minute for
#: training and map on a 2-core CPU.
FAST_PATCH_SIZE = 64
FAST_EPOCHS = 3
FAST_BATCH = 8


class FinetuneWidget(AnnotateMixin, FastModeMixin, DockBase):
    """Paint annotations, fine-tune a pretrained model on them (or on a labelled folder), and
    map the slide with the result, in one run."""

    def __init__(self, napari_viewer: Any) -> None:
        super().__init__(napari_viewer)
        preload_compute()
        self._image = ComboBox(label="slide", choices=layer_choices(napari_viewer, is_slide_layer))
        self._slide_mpp = SlideMppField(napari_viewer, lambda: self._image.value)
        self._image.changed.connect(self._slide_mpp.refresh)
        self._annotate_downsample = ComboBox(
            label="downsample",
            choices=[("auto", 0), ("1", 1), ("2", 2), ("4", 4), ("8", 8), ("16", 16), ("32", 32)],
            value=0,
            tooltip="level-0 pixels per annotation pixel of a new annotation layer",
        )
        self._annotate_button = PushButton(text="New annotation layer")
        self._annotate_button.changed.connect(self._on_new_annotation)
        self._import_button = PushButton(text="Import GeoJSON…")
        self._import_button.tooltip = (
            "QuPath annotations as an annotation layer, with their classes"
        )
        self._import_button.changed.connect(
            lambda *_: self.import_geojson(ask_geojson(self.native))
        )
        self._annotations = ComboBox(
            label="annotations",
            choices=layer_choices(
                napari_viewer, lambda la: isinstance(la, Labels) and not la.metadata.get("store")
            ),
            tooltip="painted labels: 1 tumour, 2 normal, 0 unlabelled",
        )
        self._several = CheckBox(
            text="all annotated slides",
            value=False,
            tooltip="also learn from the painted annotation layers of the other open slides "
            "(the same class name is the same class on every slide)",
        )
        self._region = ComboBox(
            label="region",
            choices=layer_choices(napari_viewer, lambda la: isinstance(la, Shapes), "whole slide"),
            tooltip="optional: a rectangle limiting where patches are drawn",
        )
        self._checkpoint = FileEdit(
            label="pretrained",
            mode=FileDialogMode.EXISTING_FILE,
            filter="*.pt",
            tooltip="the pretrained checkpoint (not needed from scratch)",
        )
        self._task = ComboBox(label="task", choices=list(TASKS), value="segment")
        self._folder = FileEdit(
            label="folder",
            mode=FileDialogMode.EXISTING_DIRECTORY,
            tooltip="classify: class sub-folders of patches; nuclei: image/mask pairs",
        )
        self._mode = ComboBox(
            label="mode",
            choices=list(MODES),
            value=FAST,
            tooltip="fast: feature cache and light head (seconds); the others train the network",
        )
        self._budget = FloatSpinBox(label="budget", value=FAST_EPOCHS, min=0.1, max=100_000, step=1)
        self._unit = ComboBox(label="unit", choices=list(BudgetUnit.values()), value="epochs")
        self._patch = SpinBox(
            label="patch size",
            value=FAST_PATCH_SIZE,
            min=0,
            max=1024,
            step=32,
            tooltip="pixels at the checkpoint's resolution; 0: the checkpoint's own",
        )
        self._batch = SpinBox(label="batch size", value=FAST_BATCH, min=1, max=512)
        self._patches = SpinBox(
            label="patches",
            value=FAST_PATCHES,
            min=8,
            max=1_000_000,
            step=32,
            tooltip="patches drawn from the painted pixels (tumour and normal balanced)",
        )
        self._out = FileEdit(
            label="checkpoint out",
            mode=FileDialogMode.OPTIONAL_FILE,
            filter="*.pt",
            tooltip="empty: a new file named after the slide, the task and the time",
        )
        self._predict_after = CheckBox(text="predict the slide when done", value=True)
        self._finetune_button = PushButton(text="Fine-tune")
        self._finetune_button.changed.connect(self._on_finetune)
        self._init_fast_mode(napari_viewer)
        self._curves = CurveCanvas(("loss", "validation"))
        self._preview = ImageStrip()
        budget_row = Container(
            widgets=[self._budget, self._unit], layout="horizontal", labels=False
        )
        budget_row.label = "budget"
        self._trained = (budget_row, self._patch, self._batch, self._patches, self._predict_after)
        annotate_row = Container(
            widgets=[self._annotate_downsample, self._annotate_button, self._import_button],
            layout="horizontal",
            labels=False,
        )
        annotate_row.label = "annotate"
        self._task.changed.connect(self._on_task)
        self._mode.changed.connect(self._on_task)
        self.extend(
            [
                self._image,
                self._slide_mpp.widget,
                annotate_row,
                self._annotations,
                self._several,
                self._region,
                self._checkpoint,
                self._task,
                self._folder,
                self._mode,
                budget_row,
                self._patch,
                self._batch,
                self._patches,
                self._out,
                self._predict_after,
                self._finetune_button,
                self._live_box,
                self._suggest_button,
                self._cancel_button,
                self._progress,
                self._status,
            ]
        )
        self.native.layout().addWidget(self._curves)
        self.native.layout().addWidget(self._preview)
        self.display = PredictionDisplay(napari_viewer, self._runner)
        self.last_checkpoint: Path | None = None
        self.cache_dir = self.session.prediction_dir
        self._val_acc: float | None = None
        self.reset_choices()
        self._on_task()

    @property
    def finetune_button(self) -> PushButton:
        return self._finetune_button

    @property
    def annotation_button(self) -> PushButton:
        return self._annotate_button

    @property
    def curves(self) -> CurveCanvas:
        return self._curves

    def set_fields(self, **values: Any) -> None:
        """Set fields by name: slide, annotations, region, checkpoint, task, folder, mode,
        budget, unit, patch_size, batch_size, num_patches, out, predict_after, downsample, live,
        several (all annotated slides)."""
        fields = {
            "slide": self._image,
            "annotations": self._annotations,
            "region": self._region,
            "checkpoint": self._checkpoint,
            "task": self._task,
            "folder": self._folder,
            "mode": self._mode,
            "budget": self._budget,
            "unit": self._unit,
            "patch_size": self._patch,
            "batch_size": self._batch,
            "num_patches": self._patches,
            "out": self._out,
            "predict_after": self._predict_after,
            "downsample": self._annotate_downsample,
            "live": self._live_box,
            "several": self._several,
        }
        for name, value in values.items():
            fields[name].value = value

    def reset_choices(self, *args: Any) -> None:
        super().reset_choices(*args)
        if not hasattr(self, "_checkpoint"):
            return
        self._slide_mpp.refresh()
        last = self.session.last("pretrain")
        if optional_path(self._checkpoint) is None and last is not None:
            self._checkpoint.value = last

    def _on_task(self, *_: Any) -> None:
        on_slide = self._task.value == "segment"
        self._image.visible = self._annotations.visible = self._region.visible = on_slide
        self._several.visible = on_slide
        self._slide_mpp.widget.visible = on_slide
        self._annotate_button.visible = self._annotate_downsample.visible = on_slide
        self._import_button.visible = on_slide
        self._folder.visible = not on_slide
        fast = self.fast_mode
        for widget in self._trained:
            widget.visible = not fast
        self._predict_after.visible = on_slide and not fast
        self._live_box.visible = self._suggest_button.visible = fast
        # the curves and previews are those of network training; the status line has the head's
        self._curves.setVisible(not fast)
        self._preview.setVisible(not fast)

    @property
    def fast_mode(self) -> bool:
        """Whether the fast mode (feature cache and light head) is chosen, on a slide."""
        return MODES[str(self._mode.value)] == FAST and self._task.value == "segment"

    def _checkpoint_out(self, task: str) -> Path:
        chosen = optional_path(self._out)
        if chosen is not None:
            return chosen
        layer = self._image.value if task == "segment" else None
        stem = layer.name if layer is not None else (optional_path(self._folder) or Path(task)).name
        return self.session.new_checkpoint("finetune", stem, task)

    def request(self) -> FinetuneRequest:
        """The fields as a plain request; AnnotationError for empty or one-class annotations."""
        mode = MODES[str(self._mode.value)]
        init = optional_path(self._checkpoint) if mode != "scratch" else None
        if mode != "scratch" and init is None:
            raise WsiSslError("choose the pretrained checkpoint, or fine-tune from scratch")
        task = str(self._task.value)
        common: dict[str, Any] = {
            "task": task,
            "mode": mode,
            "init": init,
            "out": self._checkpoint_out(task),
            "budget": float(self._budget.value),
            "budget_unit": str(self._unit.value),
            "patch_size": int(self._patch.value) or None,
            "batch_size": int(self._batch.value),
            "num_patches": int(self._patches.value),
        }
        if task != "segment":
            return FinetuneRequest(**common, folder=optional_path(self._folder))
        slide, painted = self.painted()
        slide_layer = self._image.value
        slide_mpp = check_pixel_size(slide_layer, checkpoint=init)
        region = region_xywh(self._region.value, slide)
        then_map = None
        if self._predict_after.value:
            # the same request the Predict dock makes: the part of the slide on screen first
            then_map = predict_request(slide_layer, None, self.cache_dir, self._region.value)
        return FinetuneRequest(
            **common,
            slide=require_slide_path(slide),
            labels=painted.labels,
            labels_downsample=painted.downsample,
            region_xywh=region,
            then_map=then_map,
            class_names={k: v for k, v in painted.class_names.items() if k != 0},
            others=self.other_slides(slide, painted),
            slide_mpp=slide_mpp,
        )

    def _on_finetune(self, *_: Any) -> None:
        if self._runner.busy():
            return
        if self.fast_mode:
            self._start_fast()
            return
        try:
            request = self.request()
        except WsiSslError as exc:
            show_error(str(exc))
            self.set_status(str(exc))
            return
        self._curves.clear()
        self._val_acc = None
        if request.then_map is not None:
            self.display.begin(request.then_map)
        self._runner.start(
            lambda token: finetune_run(request, token), "Fine-tuning", on_done=self._on_done
        )

    def _on_event(self, event: Any) -> None:
        if isinstance(event, Progress):
            plot_progress(self._curves, event, metrics_axes="validation")
            for key in ("val_acc", "val_balanced_accuracy"):  # deep modes, fast mode
                if key in event.metrics:
                    self._val_acc = float(event.metrics[key])
            if event.loss is not None:
                total = f"/{event.total}" if event.total else ""
                self.set_progress_status(f"step {event.step}{total}, loss {event.loss:.4f}")
        elif isinstance(event, Preview):
            self._preview.show_images(event.images)
        elif isinstance(event, CheckpointSaved):
            self._remember(event.path)
            self.set_status(f"checkpoint saved: {event.path.name}; mapping the slide…")
        elif isinstance(event, (StoreReady, TilesDone)):
            self.display.handle(event)
            if isinstance(event, TilesDone) and event.total:
                self.set_progress_status(f"predicting: {event.done}/{event.total} tiles")

    def _remember(self, path: Path) -> None:
        self.last_checkpoint = path
        # a nuclei model goes to the Predict dock's nuclei field, not its checkpoint
        self.session.remember(TASK_KIND.get(str(self._task.value), "finetune"), path)

    def _on_done(self, outcome: Outcome) -> None:
        self._curves.flush()
        result = outcome.value
        if isinstance(result, FinetunedMap):
            self._remember(result.checkpoint)
        weak = self.display.finish(outcome)
        if not outcome.ok:
            return  # the status line says cancelled or failed
        assert isinstance(result, FinetunedMap)
        warnings = [w for w in (chance_warning(self._val_acc), weak) if w is not None]
        if warnings:
            self.set_status(f"done in {outcome.seconds:.0f} s; " + " ".join(warnings))
            show_warning(" ".join(warnings))
            return
        where = f"; map cached in {result.store}" if result.store is not None else ""
        self.set_status(f"done in {outcome.seconds:.0f} s; checkpoint: {result.checkpoint}{where}")
        shown = "; the map is shown" if self.display.layers else ""
        show_info(f"Fine-tuning finished: {result.checkpoint}{shown}")
