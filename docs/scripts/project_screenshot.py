"""Take the screenshot of docs/projects.md: a saved project opened again by ``wsi-ssl view``.

Run under a display, or under Xvfb on a headless machine::

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python docs/scripts/project_screenshot.py

Two synthetic slides are opened, an annotation layer painted on each from the ground truth, one
fast-mode head trained on both ("all annotated slides"), and the project saved; the viewer is
closed and ``wsi-ssl view PROJECT --screenshot`` opens the project in a new, shown window and
saves docs/images/gui_project.png.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

os.environ["NAPARI_WSI_SSL_SYNC"] = "1"  # the same generators, run inline

IMAGES = Path(__file__).resolve().parents[1] / "images"
PLUGIN = "napari-wsi-ssl"


def _paint(layer, tumour: np.ndarray, seed: int, strokes: int = 12) -> None:
    rng = np.random.default_rng(seed)
    layer.brush_size = 8
    for label, where in ((1, tumour), (2, ~tumour)):
        ys, xs = np.nonzero(where)
        for i in rng.choice(ys.size, size=min(strokes, ys.size), replace=False):
            layer.paint((int(ys[i]), int(xs[i])), label)


def build(folder: Path) -> Path:
    """Make the study (slides, strokes, a head over both) and save it as a project."""
    import napari

    from napari_wsi_ssl._napari.widgets.project import save_viewer
    from napari_wsi_ssl.synthetic import read_tumour_mask, write_synthetic_slide

    viewer = napari.Viewer(show=True)
    slides = []
    for k, (size, seed) in enumerate(((2048, 0), (1536, 3))):
        syn = write_synthetic_slide(folder / f"synthetic{k}", size=size, seed=seed)
        path = folder / "slides" / f"case{k + 1}.tif"
        path.parent.mkdir(exist_ok=True)
        syn.slide.rename(path)
        layer = viewer.open(str(path), plugin=PLUGIN)[0]
        layer.translate = (0.0, 1100.0 * k)  # side by side, in µm
        slides.append((layer, syn))
    _, ft = viewer.window.add_plugin_dock_widget(PLUGIN, "Fine-tune")
    ft.cache_dir = folder / "maps"
    for k, (layer, syn) in enumerate(slides):
        ft.set_fields(slide=layer)
        ft.annotation_button.clicked.emit()
        ann = viewer.layers[-1]
        truth = read_tumour_mask(syn) > 0
        rows = np.arange(ann.data.shape[0]) * syn.size / ann.data.shape[0] / syn.gt_downsample
        cols = np.arange(ann.data.shape[1]) * syn.size / ann.data.shape[1] / syn.gt_downsample
        grid = truth[np.ix_(rows.astype(int), cols.astype(int))]
        _paint(ann, grid, seed=k)
    ft.set_fields(
        slide=slides[0][0], annotations=viewer.layers["annotations"], several=True,
        out=folder / "head.pt",
    )  # fmt: skip
    ft.finetune_button.clicked.emit()
    print(ft._status.value)
    project = folder / "project"
    save_viewer(viewer, project)
    viewer.close()
    return project


def main() -> None:
    IMAGES.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="project-shot-"))
    project = build(folder)
    target = IMAGES / "gui_project.png"
    subprocess.run(
        [sys.executable, "-m", "napari_wsi_ssl.cli", "view", str(project), "--screenshot",
         str(target)],
        check=True,
    )  # fmt: skip
    from PIL import Image

    image = Image.open(target).convert("RGB")
    if image.width > 1400:
        image = image.resize((1400, round(image.height * 1400 / image.width)), Image.LANCZOS)
    image.quantize(128, method=Image.Quantize.MEDIANCUT).save(target, optimize=True)
    print(f"{target} ({target.stat().st_size // 1024} KB)")


if __name__ == "__main__":
    main()
