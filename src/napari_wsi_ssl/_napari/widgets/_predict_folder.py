"""The Predict dock's folder of slides: each slide of a folder predicted in turn, with its
progress, a failing slide failing alone (its one line kept), and the results listed to open.

Like ``wsi-ssl predict`` on several slides (``inference.distributed``), in the dock's worker
thread: the generator yields ``SlideStarted`` before each slide, then that slide's tile events.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...errors import CancelledError, WsiSslError
from ...events import CancelToken, Log
from ...inference import PredictConfig
from ...inference.distributed import SlideResult
from ...inference.predict import predict_slide
from ...inference.tileblocks import error_line
from ...slide import SLIDE_SUFFIXES


@dataclass(frozen=True)
class FolderRequest:
    """A folder prediction as plain values: the slides, the checkpoint, where stores go."""

    slides: tuple[Path, ...]
    checkpoint: Path | None
    out_dir: Path
    config: PredictConfig


@dataclass(frozen=True)
class SlideStarted:
    """The folder run moves on to slide ``index`` (0-based) of ``total``."""

    index: int
    total: int
    slide: Path


def slides_in(folder: Path) -> tuple[Path, ...]:
    """The slide files directly in ``folder`` (by suffix), sorted; WsiSslError when none."""
    if not folder.is_dir():
        raise WsiSslError("no such folder", folder, "choose the folder of slides")
    found = tuple(
        sorted(
            p
            for p in folder.iterdir()
            if p.is_file() and p.suffix.lower() in SLIDE_SUFFIXES and not p.name.startswith(".")
        )
    )
    if not found:
        suffixes = ", ".join(sorted(set(SLIDE_SUFFIXES) - {".zarr"}))
        raise WsiSslError("no slide in this folder", folder, f"slides end in {suffixes}")
    return found


def folder_run(
    request: FolderRequest, cancel: CancelToken
) -> Generator[Any, None, list[SlideResult]]:
    """Predict each slide of ``request`` in turn; returns one ``SlideResult`` per slide."""
    results: list[SlideResult] = []
    n = len(request.slides)
    for k, slide in enumerate(request.slides):
        if cancel.cancelled:
            raise CancelledError(f"stopped before slide {k + 1}/{n}; finished slides were kept")
        yield SlideStarted(k, n, slide)
        try:
            store = yield from predict_slide(
                slide, request.checkpoint, request.out_dir, request.config, cancel=cancel
            )
            results.append(SlideResult(str(slide), str(store)))
        except CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - one broken slide must not stop the folder
            line = error_line(slide, exc)
            results.append(SlideResult(str(slide), None, line))
            yield Log(line, level="warning")
    return results


def summary(results: list[SlideResult]) -> str:
    """The status line of a finished folder run."""
    failed = [r for r in results if r.error]
    done = len(results) - len(failed)
    text = f"{done} of {len(results)} slides predicted"
    if failed:
        text += "; failed: " + " | ".join(str(r.error) for r in failed)
    return text


def open_result(viewer: Any, result: SlideResult) -> None:
    """Open a predicted slide of the folder (unless open) with its maps over it."""
    from ._annotations import slide_geometry, slide_layers
    from ._layers import show_store

    assert result.store is not None
    layer = next(
        (la for la in slide_layers(viewer) if la.metadata.get("slide_path") == result.slide),
        None,
    )
    if layer is None:
        layer = viewer.open(result.slide, plugin="napari-wsi-ssl")[0]
    show_store(viewer, Path(result.store), slide_geometry(layer))


class FolderMixin:
    """The Predict dock's folder fields, button and results (the dock has the rest)."""

    _viewer: Any
    _runner: Any
    _checkpoint: Any
    _nuclei: Any
    _nuclei_checkpoint: Any
    _tile: Any
    _cache: Any
    set_status: Any
    set_progress_status: Any

    def _init_folder(self) -> list[Any]:
        """Make the folder widgets; returns them, for the dock to place."""
        from magicgui.types import FileDialogMode
        from magicgui.widgets import ComboBox, Container, FileEdit, PushButton

        self._folder = FileEdit(
            label="slide folder",
            mode=FileDialogMode.EXISTING_DIRECTORY,
            tooltip="predict every slide of this folder in turn, with the checkpoint above",
        )
        self._folder_button = PushButton(text="Predict folder")
        self._folder_button.changed.connect(self._on_predict_folder)
        self._results = ComboBox(label="results", choices=[], tooltip="the folder's slides")
        self._open_button = PushButton(text="Open")
        self._open_button.changed.connect(self._on_open_result)
        self.folder_results: list[SlideResult] = []
        self._folder_slide: SlideStarted | None = None
        row = Container(widgets=[self._results, self._open_button], layout="horizontal")
        row.label = "results"
        row.visible = False
        self._results_row = row
        return [self._folder, self._folder_button, row]

    @property
    def folder_button(self) -> Any:
        return self._folder_button

    def folder_request(self) -> FolderRequest:
        from ._base import optional_path

        folder = optional_path(self._folder)
        if folder is None:
            raise WsiSslError("choose the folder of slides")
        checkpoint = optional_path(self._checkpoint)
        nuclei = str(self._nuclei.value)
        if checkpoint is None and nuclei == "none":
            raise WsiSslError("choose a checkpoint, or ask for nuclei")
        nuclei_ckpt = optional_path(self._nuclei_checkpoint)
        config = PredictConfig(
            tile_size=int(self._tile.value) or None,
            nuclei=nuclei != "none",
            nuclei_checkpoint=str(nuclei_ckpt) if nuclei == "model" and nuclei_ckpt else None,
        )
        return FolderRequest(
            slides_in(folder), checkpoint, Path(str(self._cache.value)).expanduser(), config
        )

    def _on_predict_folder(self, *_: Any) -> None:
        from napari.utils.notifications import show_error

        if self._runner.busy():
            return
        try:
            request = self.folder_request()
        except WsiSslError as exc:
            show_error(str(exc))
            self.set_status(str(exc))
            return
        self._folder_slide = SlideStarted(0, len(request.slides), request.slides[0])
        self._runner.start(
            lambda token: folder_run(request, token),
            "Predicting a folder",
            on_done=self._on_folder_done,
        )

    def folder_event(self, event: Any) -> bool:
        """Handle an event of a folder run; ``False`` when it is not one (not running)."""
        from ...events import TilesDone

        if self._folder_slide is None:
            return False
        if isinstance(event, SlideStarted):
            self._folder_slide = event
            self.set_status(f"slide {event.index + 1}/{event.total}: {event.slide.name}")
        elif isinstance(event, TilesDone) and event.total:
            s = self._folder_slide
            self.set_progress_status(
                f"slide {s.index + 1}/{s.total} {s.slide.name}: {event.done}/{event.total} tiles"
            )
        return True

    def _on_folder_done(self, outcome: Any) -> None:
        self._folder_slide = None
        if not outcome.ok:
            return
        self.folder_results = list(outcome.value)
        done = [r for r in self.folder_results if r.store]
        self._results.choices = [(Path(r.slide).name, r) for r in done]
        self._results_row.visible = bool(done)
        self.set_status(f"done in {outcome.seconds:.0f} s; " + summary(self.folder_results))

    def _on_open_result(self, *_: Any) -> None:
        result = self._results.value
        if result is not None:
            open_result(self._viewer, result)
