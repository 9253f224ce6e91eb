"""Open a result folder in napari: the slide, the prediction overlays and the plugin's docks."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from ..errors import WsiSslError
from .project import is_project

DOCKS = ("Pretrain", "Fine-tune", "Predict", "Evaluate", "Export")


def _describe(folder: Path, store: Path | None) -> tuple[Path, list[Path], Path | None, str | None]:
    """The slide, the prediction stores, the checkpoint and the nuclei method of a demo folder
    (``result.json``), or a slide path and the store given."""
    stores = [store] if store is not None else []
    if folder.is_dir() and (folder / "result.json").is_file():
        result = json.loads((folder / "result.json").read_text())
        slide = _locate(Path(result["slide"]), folder)
        if not stores:
            named = result.get("stores") or (
                [result["prediction"]] if result.get("prediction") else []
            )
            stores = [_locate(Path(p), folder) for p in named]
        checkpoint = result.get("checkpoint")
        ckpt = _locate(Path(checkpoint), folder) if checkpoint else None
        return slide, stores, ckpt, result.get("nuclei")
    if folder.exists():
        return folder, stores, None, None
    raise WsiSslError("no such folder or slide", folder, "give a demo output folder or a slide")


def _locate(path: Path, folder: Path) -> Path:
    """A path of ``result.json``; one written relative to another working folder is looked up
    inside the result folder (e.g. a moved ``demo_out``)."""
    if path.is_absolute() or path.exists():
        return path
    parts = path.parts
    for k in range(len(parts)):
        candidate = folder.joinpath(*parts[k:])
        if candidate.exists():
            return candidate
    return path


def open_result(
    folder: str | Path, store: str | Path | None = None, screenshot: str | Path | None = None
) -> dict[str, Any]:
    """Show the slide with its overlays and the docks; with ``screenshot``, save it and close."""
    import napari

    from .widgets._annotations import slide_geometry  # napari and Qt only when a window opens
    from .widgets._base import optional_path
    from .widgets._layers import show_store
    from .widgets.predict import NUCLEI_CHOICES

    if is_project(folder):
        return _open_project(Path(folder), screenshot)
    slide, stores, checkpoint, nuclei = _describe(Path(folder), Path(store) if store else None)
    viewer = napari.Viewer(title=f"napari-wsi-ssl: {slide.name}", show=True)
    viewer.window._qt_window.resize(1500, 950)  # before reset_view, so the slide fills the canvas
    layers = viewer.open(slide, plugin="napari-wsi-ssl")
    shown: dict[str, Any] = {}
    for store_path in stores:
        if store_path.exists():
            shown.update(show_store(viewer, store_path, slide_geometry(layers[0])))
    # the Predict dock last, so that it is the tab in front, with the checkpoint that made the map
    for name in sorted(DOCKS, key=lambda n: n == "Predict"):
        _, widget = viewer.window.add_plugin_dock_widget("napari-wsi-ssl", name, tabify=True)
    if checkpoint is not None and checkpoint.exists():
        widget.set_fields(checkpoint=str(checkpoint))
    if nuclei in NUCLEI_CHOICES:  # how the Nuclei layer was made, as the dock would ask for it
        widget.set_fields(nuclei=nuclei)
    viewer.layers.selection.active = layers[0]  # the slide's controls, not a brush's
    from qtpy.QtWidgets import QApplication

    QApplication.processEvents()
    viewer.reset_view()
    info = {
        "slide": str(slide),
        "store": str(stores[-1]) if stores else None,
        "stores": [str(p) for p in stores],
        "checkpoint": str(checkpoint) if checkpoint else None,
        "layers": list(shown),
        # what the Predict dock in front shows (its checkpoint and nuclei fields)
        "predict_dock": {
            "checkpoint": str(optional_path(widget._checkpoint) or ""),
            "nuclei": str(widget._nuclei.value),
        },
    }
    return _show(viewer, info, screenshot)


def _open_project(folder: Path, screenshot: str | Path | None) -> dict[str, Any]:
    """A saved project in a new window; a slide that moved is a one-line error before any
    window opens (in napari, "Open project" asks for it)."""
    import napari

    from .project import locate_slides, read_project
    from .widgets.project import restore_project

    locate_slides(read_project(folder), folder)
    viewer = napari.Viewer(title=f"napari-wsi-ssl: {folder.name}", show=True)
    viewer.window._qt_window.resize(1500, 950)
    info = restore_project(viewer, folder)
    _, widget = viewer.window.add_plugin_dock_widget("napari-wsi-ssl", "Project", tabify=True)
    widget.set_folder(folder)
    from qtpy.QtWidgets import QApplication

    QApplication.processEvents()
    viewer.reset_view()
    return _show(viewer, info, screenshot)


def _show(viewer: Any, info: dict[str, Any], screenshot: str | Path | None) -> dict[str, Any]:
    """Run the window; with ``screenshot``, save it once every layer is drawn, and close."""
    import napari
    from qtpy.QtWidgets import QApplication

    if screenshot is None:
        napari.run()
        return info
    target = Path(screenshot)
    target.parent.mkdir(parents=True, exist_ok=True)

    # let every layer's tiles arrive and be drawn before the picture (slicing is asynchronous)
    start = time.monotonic()
    while time.monotonic() - start < 30:
        QApplication.processEvents()
        if time.monotonic() - start > 1.0 and all(layer.loaded for layer in viewer.layers):
            break
        time.sleep(0.02)
    for _ in range(10):
        QApplication.processEvents()
    viewer.screenshot(str(target), canvas_only=False, flash=False)
    viewer.close()
    info["screenshot"] = str(target)
    return info
