"""Take the screenshots of docs/gui.md in a real, shown napari window.

Run under a display, or under Xvfb on a headless machine::

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python docs/scripts/gui_screenshots.py \
        [--slide PATH] [--pretrained PATH]
    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python docs/scripts/gui_screenshots.py --live

It walks the user's path on a real slide, ../shared/data/slides/cmu_small_region.svs by default
(skin, Aperio SVS): open, pretrain, annotate, fine-tune (which predicts the map), predict
nuclei with the fast-mode head's map in one click, evaluate and export, and saves one PNG per
step in docs/images/gui_*.png. The window is
1600 x 1000 (a common laptop screen) with the plugin's docks tabified, as a user sees it.
The slide has no ground truth: the strokes stand for a user's, "tumour" on the densest
haematoxylin (cell-rich) tissue and "normal" on the palest (stroma). Models are small so that it
runs in a few minutes on a CPU. ``--live`` takes only the shot of the fast mode with live
refinement and suggestions (gui_live.png): colour features, a first and a second round of
strokes (refined live), the uncertainty layer shown and the camera on the first suggestion.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import numpy as np

os.environ["NAPARI_WSI_SSL_SYNC"] = "1"  # the same generators, run inline: deterministic shots

IMAGES = Path(__file__).resolve().parents[1] / "images"
PLUGIN = "napari-wsi-ssl"
SLIDE = Path(__file__).resolve().parents[3] / "shared" / "data" / "slides" / "cmu_small_region.svs"
WINDOW = (1600, 1000)


def _shot(viewer, name: str, width: int = WINDOW[0]) -> Path:
    """Save the whole window (canvas and docks) as a PNG under 300 KB."""
    from PIL import Image
    from qtpy.QtWidgets import QApplication

    for _ in range(5):
        QApplication.processEvents()
    array = viewer.screenshot(canvas_only=False, flash=False)
    image = Image.fromarray(np.asarray(array)[..., :3])
    if image.width > width:
        image = image.resize((width, round(image.height * width / image.width)), Image.LANCZOS)
    path = IMAGES / f"gui_{name}.png"
    for colours in (256, 128, 64):
        image.quantize(colours, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
        if path.stat().st_size < 300_000:
            break
    print(f"{path} ({path.stat().st_size // 1024} KB)")
    return path


def _open_slide(path: Path):
    """``path`` opened in a shown 1600 x 1000 window: (work folder, viewer, slide layer)."""
    import napari

    IMAGES.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="gui-shots-"))
    viewer = napari.Viewer(title="napari-wsi-ssl", show=True)
    viewer.window._qt_window.resize(*WINDOW)
    (slide,) = viewer.open(str(path), plugin=PLUGIN)
    return tmp, viewer, slide


def map_layer(layers, role: str):
    from napari_wsi_ssl._napari.widgets._layers import map_layer as find

    return find(layers, role)


def _dock(viewer, name: str):
    dock_widget, widget = viewer.window.add_plugin_dock_widget(PLUGIN, name, tabify=True)
    dock_widget.raise_()
    return widget


def main(argv: list[str]) -> int:
    """``--pretrained PATH``: fine-tune from that checkpoint (a longer pretraining, for a map
    that follows the tumour) instead of the few steps pretrained in the Pretrain shot."""

    path = Path(argv[argv.index("--slide") + 1]) if "--slide" in argv else SLIDE
    if "--live" in argv:
        return live_shot(path)
    pretrained = Path(argv[argv.index("--pretrained") + 1]) if "--pretrained" in argv else None

    tmp, viewer, slide = _open_slide(path)
    _shot(viewer, "open")

    pretrain = _dock(viewer, "Pretrain")
    pretrain.set_fields(
        preset="unet-resnet34",
        mpp=2.0,
        patch_size=64,
        width=16,
        budget=12,
        unit="steps",
        batch_size=8,
        out=tmp / "pretrained.pt",
    )
    pretrain.pretrain_button.native.click()
    _shot(viewer, "pretrain")

    finetune = _dock(viewer, "Fine-tune")
    finetune.annotation_button.native.click()
    annotations = viewer.layers["annotations"]
    annotations.brush_size = 24  # dabs smaller than the default region brush: many strokes
    _paint_strokes(annotations, slide, seed=0, per_class=30)
    annotations.selected_label = 1
    _shot(viewer, "annotate")

    finetune.cache_dir = tmp / "cache"
    finetune.set_fields(
        slide=slide,
        annotations=annotations,
        checkpoint=pretrained or tmp / "pretrained.pt",
        mode="fast",  # the default a user gets: a head on the encoder's cached features
        out=tmp / "head.pt",
    )
    finetune.finetune_button.native.click()
    _shot(viewer, "finetune")

    predict = _dock(viewer, "Predict")
    predict.set_fields(
        slide=slide, checkpoint=tmp / "head.pt", nuclei="classical", cache=tmp / "cache"
    )
    predict.predict_button.native.click()
    _zoom_on_tissue(viewer, slide)
    _shot(viewer, "predict")
    viewer.reset_view()

    evaluate = _dock(viewer, "Evaluate")
    prob = map_layer(viewer.layers, "tumour")  # named after the painted class
    evaluate.set_fields(truth=annotations, prediction=prob)
    evaluate.evaluate_button.native.click()
    _shot(viewer, "evaluate")

    export = _dock(viewer, "Export")
    export.layer_combo.value = prob
    export.format_combo.value = "GeoJSON"  # into the slide's export folder the dock shows
    export.export_button.native.click()
    _shot(viewer, "export")
    viewer.close()
    return 0


def _paint_strokes(annotations, slide, seed: int, per_class: int) -> None:
    """Dabs of "tumour" (1) on the densest haematoxylin tissue and "normal" (2) on the palest,
    with the layer's own brush (the slide has no ground truth; a user paints what they see)."""
    from napari_wsi_ssl.inference.nuclei import haematoxylin

    h, w = annotations.data.shape
    levels = slide.data if slide.multiscale else [slide.data]
    level = next((a for a in reversed(levels) if a.shape[0] >= h), levels[0])
    rgb = np.asarray(level)[..., :3]
    rows = (np.arange(h) * rgb.shape[0] / h).astype(int)
    cols = (np.arange(w) * rgb.shape[1] / w).astype(int)
    rgb = rgb[np.ix_(rows, cols)]
    tissue = rgb.mean(axis=-1) < 215
    hema = haematoxylin(rgb)
    low, high = np.percentile(hema[tissue], [35, 85])
    rng = np.random.default_rng(seed)
    for label, where in ((1, tissue & (hema >= high)), (2, tissue & (hema <= low))):
        ys, xs = np.nonzero(where)
        annotations.selected_label = label
        for i in rng.choice(ys.size, size=min(per_class, ys.size), replace=False):
            annotations.paint((int(ys[i]), int(xs[i])), label)


def _zoom_on_tissue(viewer, slide) -> None:
    """Centre the camera on the slide's middle at 2.5x the whole-slide zoom."""
    viewer.reset_view()
    extent = np.asarray(slide.extent.world)[:, -2:]
    camera = viewer.scene.camera
    camera.center = tuple(extent.mean(axis=0))
    camera.zoom = camera.zoom * 2.5


def live_shot(path: Path) -> int:
    """The fast mode, one live round and the first suggestion, in a shown window."""
    from qtpy.QtWidgets import QApplication

    tmp, viewer, slide = _open_slide(path)
    finetune = _dock(viewer, "Fine-tune")
    finetune.cache_dir = tmp / "cache"
    finetune.annotation_button.native.click()
    annotations = viewer.layers["annotations"]
    annotations.brush_size = 24
    _paint_strokes(annotations, slide, seed=0, per_class=12)
    finetune.set_fields(slide=slide, annotations=annotations, mode="fast", out=tmp / "head.pt")
    finetune.finetune_button.native.click()  # inline: cache, head and map
    finetune.set_fields(live=True)
    _paint_strokes(annotations, slide, seed=1, per_class=6)
    while finetune.live.timer.isActive() or finetune.runner.running:  # the live round
        QApplication.processEvents()
    map_layer(viewer.layers, "uncertainty").visible = True
    finetune.suggest_button.native.click()
    _shot(viewer, "live")
    viewer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
