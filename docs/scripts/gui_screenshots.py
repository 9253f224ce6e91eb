"""Take the screenshots of docs/gui.md in a real, shown napari window.

Run under a display, or under Xvfb on a headless machine::

    xvfb-run -a .venv/bin/python docs/scripts/gui_screenshots.py [--pretrained PATH]
    xvfb-run -a .venv/bin/python docs/scripts/gui_screenshots.py --live


It walks the user's path on the synthetic slide: open, pretrain, annotate, fine-tune (which
predicts the map), predict nuclei, evaluate and export, and saves one PNG per step in
docs/images/gui_*.png. Models are small so that it runs in a few minutes on a CPU.
``--live`` takes only the shot of the fast mode with live refinement and suggestions
(gui_live.png): colour features, strokes from the ground truth, a second round of strokes
refined live, the uncertainty layer shown and the camera on the first suggestion.
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


def _shot(viewer, name: str, width: int = 1400) -> Path:
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


def _open_synthetic():
    """A fresh synthetic slide (2048 px) opened in a shown window: (folder, slide, viewer, layer)."""
    import napari

    from napari_wsi_ssl.synthetic import write_synthetic_slide

    IMAGES.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="gui-shots-"))
    syn = write_synthetic_slide(tmp / "synthetic", size=2048, seed=0)
    viewer = napari.Viewer(title="napari-wsi-ssl", show=True)
    viewer.window._qt_window.resize(1500, 950)
    (slide,) = viewer.open(str(syn.slide), plugin=PLUGIN)
    return tmp, syn, viewer, slide


def _dock(viewer, name: str):
    dock_widget, widget = viewer.window.add_plugin_dock_widget(PLUGIN, name, tabify=True)
    dock_widget.raise_()
    return widget


def main(argv: list[str]) -> int:
    """``--pretrained PATH``: fine-tune from that checkpoint (a longer pretraining, for a map
    that follows the tumour) instead of the few steps pretrained in the Pretrain shot."""

    if "--live" in argv:
        return live_shot()
    pretrained = Path(argv[argv.index("--pretrained") + 1]) if "--pretrained" in argv else None

    tmp, syn, viewer, slide = _open_synthetic()
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
    annotations.brush_size = 8
    _paint_truth(annotations, syn, seed=0, per_class=30)
    annotations.selected_label = 1
    _shot(viewer, "annotate")

    finetune.cache_dir = tmp / "cache"
    finetune.set_fields(
        slide=slide,
        annotations=annotations,
        checkpoint=pretrained or tmp / "pretrained.pt",
        mode="frozen encoder",  # with the dock's defaults of the frozen-encoder mode
        out=tmp / "finetuned.pt",
    )
    finetune.finetune_button.native.click()
    _shot(viewer, "finetune")

    predict = _dock(viewer, "Predict")
    predict.set_fields(
        slide=slide, checkpoint=tmp / "finetuned.pt", nuclei="classical", cache=tmp / "cache"
    )
    predict.predict_button.native.click()
    viewer.camera.center = (0, 256, 256)
    viewer.camera.zoom = 3.0
    _shot(viewer, "predict")
    viewer.reset_view()

    evaluate = _dock(viewer, "Evaluate")
    evaluate.set_fields(truth=annotations, prediction=viewer.layers["Metastasis probability"])
    evaluate.evaluate_button.native.click()
    _shot(viewer, "evaluate")

    export = _dock(viewer, "Export")
    export.layer_combo.value = viewer.layers["Metastasis probability"]
    export.format_combo.value = "GeoJSON"
    export.path_edit.value = tmp / "tumour.geojson"
    export.export_button.native.click()
    _shot(viewer, "export")
    viewer.close()
    return 0


def _paint_truth(annotations, syn, seed: int, per_class: int) -> None:
    """Dabs of tumour (1) and normal (2) where the synthetic slide's ground truth says."""
    from napari_wsi_ssl.synthetic import read_tumour_mask

    gt = read_tumour_mask(syn) > 0
    h, w = annotations.data.shape
    rows = np.clip(
        (np.arange(h) * syn.size / h / syn.gt_downsample).astype(int), 0, gt.shape[0] - 1
    )
    cols = np.clip(
        (np.arange(w) * syn.size / w / syn.gt_downsample).astype(int), 0, gt.shape[1] - 1
    )
    tumour = gt[np.ix_(rows, cols)]
    rng = np.random.default_rng(seed)
    for label, where in ((1, tumour), (2, ~tumour)):
        ys, xs = np.nonzero(where)
        annotations.selected_label = label
        for i in rng.choice(ys.size, size=per_class, replace=False):
            annotations.paint((int(ys[i]), int(xs[i])), label)


def live_shot() -> int:
    """The fast mode, one live round and the first suggestion, in a shown window."""
    from qtpy.QtWidgets import QApplication

    tmp, syn, viewer, slide = _open_synthetic()
    finetune = _dock(viewer, "Fine-tune")
    finetune.cache_dir = tmp / "cache"
    finetune.annotation_button.native.click()
    annotations = viewer.layers["annotations"]
    annotations.brush_size = 8
    _paint_truth(annotations, syn, seed=0, per_class=12)
    finetune.set_fields(slide=slide, annotations=annotations, mode="fast", out=tmp / "head.pt")
    finetune.finetune_button.native.click()  # inline: cache, head and map
    finetune.set_fields(live=True)
    _paint_truth(annotations, syn, seed=1, per_class=6)
    while finetune.live.timer.isActive() or finetune.runner.running:  # the live round
        QApplication.processEvents()
    viewer.layers["Uncertainty"].visible = True
    finetune.suggest_button.native.click()
    _shot(viewer, "live")
    viewer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
