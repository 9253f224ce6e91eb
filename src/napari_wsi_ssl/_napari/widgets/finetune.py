"""The "Fine-tune" dock: learn tumour vs normal from brush strokes, then show the map.

The painted pixels are read from the annotation layer into a numpy array on the GUI thread;
the worker gets that array, the slide path and the config. When training ends, the dock
predicts the slide with the new checkpoint, so the probability map appears (or refreshes) by
itself.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
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
from napari.utils.notifications import show_error, show_info

from ...errors import AnnotationError, WsiSslError
from ...events import CancelToken, Preview, Progress, TilesDone
from ._annotations import (
    is_slide_layer,
    read_painted,
    region_box,
    require_slide_path,
    slide_geometry,
)
from ._base import DockBase, layer_choices, optional_path, preload_compute
from ._plot import CurveCanvas, ImageStrip, plot_progress
from ._worker import Outcome
from .predict import DEFAULT_CACHE, PredictionDisplay, PredictRequest
from .pretrain import BUDGET_UNITS, DEFAULT_DIR, RECENT

TASKS = ("segment", "classify", "nuclei")
MODES = {"fast (frozen encoder)": "frozen-encoder", "full": "full", "from scratch": "scratch"}
#: Defaults of the fast mode: a usable map of a painted slide in about a minute on a laptop CPU.
#: (64 patches of 64 px, 3 epochs: about a minute for training and map on a 2-core CPU.)
FAST_PATCHES = 64
FAST_PATCH_SIZE = 64
FAST_EPOCHS = 3
FAST_BATCH = 8


@dataclass(frozen=True)
class FinetuneRequest:
    """Everything a fine-tuning run needs, as plain values."""

    task: str
    mode: str
    init: Path | None
    out: Path
    budget: float
    budget_unit: str
    patch_size: int | None
    batch_size: int
    num_patches: int = FAST_PATCHES
    slide: Path | None = None
    labels: np.ndarray | None = None
    labels_downsample: float = 1.0
    region_xywh: tuple[int, int, int, int] | None = None
    folder: Path | None = None


def finetune_run(request: FinetuneRequest, cancel: CancelToken) -> Generator[Any, None, Path]:
    """The fine-tuning generator of ``request``."""
    from ...training import FinetuneConfig, FinetuneData, finetune

    if request.task == "segment":
        assert request.slide is not None and request.labels is not None
        data = FinetuneData.from_arrays(
            request.slide, request.labels, request.labels_downsample, region=request.region_xywh
        )
    elif request.folder is None:
        raise WsiSslError(
            f"task {request.task!r} learns from a folder",
            hint="choose the folder of labelled images",
        )
    elif request.task == "classify":
        data = FinetuneData.from_patches(request.folder)
    else:
        data = FinetuneData.from_nuclei(request.folder)
    budget: dict[str, Any] = {"epochs": None, "steps": None, "minutes": None}
    if request.budget_unit == "minutes":
        budget["minutes"] = float(request.budget)
    elif request.budget_unit == "steps":
        budget["steps"] = max(1, int(request.budget))
    else:
        budget["epochs"] = max(1, int(request.budget))
    config = FinetuneConfig(
        task=request.task,
        mode=request.mode,
        patch_size=request.patch_size,
        batch_size=request.batch_size,
        num_patches=request.num_patches,
        preview_every=10,
        **budget,
    )
    result: Path = yield from finetune(data, config, request.out, init=request.init, cancel=cancel)
    return result


class FinetuneWidget(DockBase):
    """Fine-tune a pretrained model on painted annotations (or a labelled folder)."""

    def __init__(self, napari_viewer: Any) -> None:
        super().__init__(napari_viewer)
        preload_compute()
        self._image = ComboBox(label="slide", choices=layer_choices(napari_viewer, is_slide_layer))
        self._annotations = ComboBox(
            label="annotations",
            choices=layer_choices(
                napari_viewer, lambda la: isinstance(la, Labels) and not la.metadata.get("store")
            ),
            tooltip="painted labels: 1 tumour, 2 normal, 0 unlabelled",
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
        self._mode = ComboBox(label="mode", choices=list(MODES), value="fast (frozen encoder)")
        self._budget = FloatSpinBox(label="budget", value=FAST_EPOCHS, min=0.1, max=100_000, step=1)
        self._unit = ComboBox(label="unit", choices=list(BUDGET_UNITS), value="epochs")
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
            label="checkpoint out", mode=FileDialogMode.OPTIONAL_FILE, filter="*.pt"
        )
        self._out.value = DEFAULT_DIR / "finetuned.pt"
        self._predict_after = CheckBox(text="predict the slide when done", value=True)
        self._finetune_button = PushButton(text="Fine-tune")
        self._finetune_button.changed.connect(self._on_finetune)
        self._curves = CurveCanvas(("loss", "validation"))
        self._preview = ImageStrip()
        budget_row = Container(
            widgets=[self._budget, self._unit], layout="horizontal", labels=False
        )
        budget_row.label = "budget"
        self._task.changed.connect(self._on_task)
        self.extend(
            [
                self._image,
                self._annotations,
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
                self._cancel_button,
                self._status,
            ]
        )
        self.native.layout().addWidget(self._curves)
        self.native.layout().addWidget(self._preview)
        self.display = PredictionDisplay(napari_viewer, self._runner)
        self.last_checkpoint: Path | None = None
        self.cache_dir = DEFAULT_CACHE
        self._phase = "train"
        self._request: FinetuneRequest | None = None
        self._slide_for_predict: Any = None
        self.reset_choices()
        self._on_task()

    @property
    def finetune_button(self) -> PushButton:
        return self._finetune_button

    @property
    def curves(self) -> CurveCanvas:
        return self._curves

    def set_fields(self, **values: Any) -> None:
        """Set fields by name: slide, annotations, region, checkpoint, task, folder, mode,
        budget, unit, patch_size, batch_size, num_patches, out, predict_after."""
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
        }
        for name, value in values.items():
            fields[name].value = value

    def reset_choices(self, *args: Any) -> None:
        super().reset_choices(*args)
        if not hasattr(self, "_checkpoint"):
            return
        if optional_path(self._checkpoint) is None and "pretrain" in RECENT:
            self._checkpoint.value = RECENT["pretrain"]

    def _on_task(self, *_: Any) -> None:
        on_slide = self._task.value == "segment"
        self._image.visible = self._annotations.visible = self._region.visible = on_slide
        self._folder.visible = not on_slide
        self._predict_after.visible = on_slide

    def request(self) -> FinetuneRequest:
        """The fields as a plain request; AnnotationError for empty or one-class annotations."""
        mode = MODES[str(self._mode.value)]
        init = optional_path(self._checkpoint) if mode != "scratch" else None
        if mode != "scratch" and init is None:
            raise WsiSslError("choose the pretrained checkpoint, or fine-tune from scratch")
        common: dict[str, Any] = {
            "task": str(self._task.value),
            "mode": mode,
            "init": init,
            "out": Path(str(self._out.value)).expanduser(),
            "budget": float(self._budget.value),
            "budget_unit": str(self._unit.value),
            "patch_size": int(self._patch.value) or None,
            "batch_size": int(self._batch.value),
            "num_patches": int(self._patches.value),
        }
        if self._task.value != "segment":
            return FinetuneRequest(**common, folder=optional_path(self._folder))
        slide_layer = self._image.value
        labels_layer = self._annotations.value
        if slide_layer is None:
            raise WsiSslError("open a slide first")
        if labels_layer is None:
            raise AnnotationError(
                "no annotation layer", hint="click New annotation layer (Pretrain dock) and paint"
            )
        slide = slide_geometry(slide_layer)
        painted = read_painted(labels_layer, slide)
        box = region_box(self._region.value, slide)
        region = None if box is None else (box[0], box[1], box[2] - box[0], box[3] - box[1])
        return FinetuneRequest(
            **common,
            slide=require_slide_path(slide),
            labels=painted.labels,
            labels_downsample=painted.downsample,
            region_xywh=region,
        )

    def _on_finetune(self, *_: Any) -> None:
        if self._runner.busy():
            return
        try:
            request = self.request()
        except WsiSslError as exc:
            show_error(str(exc))
            self.set_status(str(exc))
            return
        self._curves.clear()
        self._phase = "train"
        self._request = request
        self._slide_for_predict = self._image.value if request.task == "segment" else None
        self._runner.start(
            lambda token: finetune_run(request, token), "Fine-tuning", on_done=self._on_done
        )

    def _on_event(self, event: Any) -> None:
        if isinstance(event, Progress):
            plot_progress(self._curves, event, metrics_axes="validation")
            if event.loss is not None:
                self.set_progress_status(
                    f"step {event.step}{f'/{event.total}' if event.total else ''}, loss {event.loss:.4f}"
                )
        elif isinstance(event, Preview):
            self._preview.show_images(event.images)
        elif self._phase == "predict":
            self.display.handle(event)
            if isinstance(event, TilesDone) and event.total:
                self.set_progress_status(f"predicting: {event.done}/{event.total} tiles")

    def _on_done(self, outcome: Outcome) -> None:
        self._curves.flush()
        if outcome.value is None:
            return
        path = Path(outcome.value)
        self.last_checkpoint = path
        RECENT["finetune"] = path
        # no notification here: the prediction starts at once and ends with one
        self.set_status(f"checkpoint: {path}")
        layer = self._slide_for_predict
        if not self._predict_after.value or layer is None or layer not in self._viewer.layers:
            show_info(f"Fine-tuning finished: {path}")
            return
        request = PredictRequest(
            slide=slide_geometry(layer),
            checkpoint=path,
            out_dir=self.cache_dir,
            region_xywh=self._request.region_xywh if self._request is not None else None,
        )
        self._phase = "predict"
        self.display.start(request, on_done=self._on_predicted)

    def _on_predicted(self, outcome: Outcome) -> None:
        if outcome.ok:
            self.set_status(
                f"checkpoint: {self.last_checkpoint}; map cached in {self.display.store}"
            )
            show_info(f"Fine-tuning finished: {self.last_checkpoint}; the map is shown")
