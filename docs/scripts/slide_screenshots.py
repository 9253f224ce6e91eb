"""Take the screenshots of the slide µm/px field, the QuPath GeoJSON import and the Nuclei table
(docs/slides.md, docs/qupath.md, docs/gui.md) in a real, shown napari window.

Run under a display, or under Xvfb on a headless machine::

    xvfb-run -a .venv/bin/python docs/scripts/slide_screenshots.py

- ``gui_slide_mpp.png``: the CMU SVS written again without its pixel size or objective power;
  the Predict dock's "slide µm/px" field in its warning colour, and the one-line message of a
  click on Predict with a model trained at 2 µm/px (the estimate from nucleus size in it).
- ``gui_qupath_import.png``: a QuPath GeoJSON (the synthetic slide's truth, classes "Tumor",
  "Normal" and "Stroma") imported into the Fine-tune dock over the synthetic slide.
- ``gui_nuclei_table.png``: classical nuclei predicted on a region of the CMU SVS, the Nuclei
  table sorted by mean haematoxylin, and the view centred on the row clicked.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

os.environ["NAPARI_WSI_SSL_SYNC"] = "1"  # the same generators, run inline: deterministic shots
sys.path.insert(0, str(Path(__file__).resolve().parent))

from gui_screenshots import PLUGIN, _dock, _shot  # noqa: E402

CMU = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "slides"
CMU = CMU / "cmu_small_region.svs"


def _viewer():
    import napari

    viewer = napari.Viewer(title="napari-wsi-ssl", show=True)
    viewer.window._qt_window.resize(1500, 950)
    return viewer


def _rectangle(viewer, y0: float, x0: float, y1: float, x1: float):
    corners = np.array([[y0, x0], [y0, x1], [y1, x1], [y1, x0]], dtype=float)
    return viewer.add_shapes([corners], shape_type="rectangle", name="region", face_color="#0000")


def slide_mpp_shot(tmp: Path) -> None:
    import tifffile
    import torch

    from napari_wsi_ssl.models import build_model, save_checkpoint
    from napari_wsi_ssl.slide import open_slide

    with open_slide(CMU) as slide:
        rgb = slide.read_region((0, 0), 0, slide.dimensions)
    bare = tmp / "cmu without pixel size.tif"
    tifffile.imwrite(bare, rgb, tile=(256, 256), photometric="rgb", compression="jpeg")
    torch.manual_seed(0)
    model = build_model("unet-resnet34", "segment", num_classes=2, width=8).eval()
    ckpt = save_checkpoint(tmp / "model at 2 um.pt", model, mpp=2.0, patch_size=64)
    viewer = _viewer()
    viewer.open(str(bare), plugin=PLUGIN)
    predict = _dock(viewer, "Predict")
    predict.set_fields(checkpoint=ckpt, cache=tmp / "cache")
    predict.predict_button.native.click()  # stops: no pixel size, the estimate in the message
    _shot(viewer, "slide_mpp")
    viewer.close()


def qupath_import_shot(tmp: Path) -> None:
    import tifffile

    from napari_wsi_ssl.export import Placement, export_arrays
    from napari_wsi_ssl.synthetic import write_synthetic_slide

    syn = write_synthetic_slide(tmp / "synthetic", size=2048, seed=0)
    truth = tifffile.imread(syn.tumour_mask) > 0
    tissue = tifffile.imread(syn.tissue_mask) > 0
    labels = np.where(truth, 1, np.where(tissue, 2, 0)).astype(np.uint8)
    geojson = tmp / "qupath annotations.geojson"
    place = Placement(downsample=float(syn.gt_downsample))
    export_arrays(geojson, labels, "labels", place, class_names={1: "Tumor", 2: "Normal"})
    doc = json.loads(geojson.read_text())
    square = [[[1500, 200], [1900, 200], [1900, 600], [1500, 600], [1500, 200]]]
    doc["features"].append(
        {
            "type": "Feature",
            "geometry": {"type": "Polygon", "coordinates": square},
            "properties": {
                "objectType": "annotation",
                "classification": {"name": "Stroma", "color": [230, 160, 40]},
            },
        }
    )
    geojson.write_text(json.dumps(doc))
    viewer = _viewer()
    viewer.open(str(syn.slide), plugin=PLUGIN)
    finetune = _dock(viewer, "Fine-tune")
    finetune.import_geojson(geojson)  # what "Import GeoJSON…" does with the file picked
    _shot(viewer, "qupath_import")
    viewer.close()


def nuclei_table_shot(tmp: Path) -> None:
    from qtpy.QtCore import Qt

    viewer = _viewer()
    (slide,) = viewer.open(str(CMU), plugin=PLUGIN)
    mpp = slide.scale[-1]
    region = _rectangle(viewer, 500 * mpp, 950 * mpp, 1500 * mpp, 1650 * mpp)  # epithelium
    predict = _dock(viewer, "Predict")
    predict.set_fields(slide=slide, nuclei="classical", region=region, cache=tmp / "cache")
    predict.predict_button.native.click()
    viewer.layers.remove(region)
    viewer.layers["Nuclei"].contour = 2  # outlines: the tissue shows through
    viewer.layers["Nuclei"].opacity = 1.0
    viewer.camera.center = (1000 * mpp, 1300 * mpp)
    viewer.camera.zoom = 1.0
    table = _dock(viewer, "Nuclei table")
    column = list(table.model.frame.columns).index("mean_haematoxylin")
    table.view.sortByColumn(column, Qt.SortOrder.DescendingOrder)
    table.view.selectRow(3)  # as a click on the row: the view centres on that nucleus
    viewer.camera.zoom = 4.0
    _shot(viewer, "nuclei_table")
    viewer.close()


def main() -> int:
    tmp = Path(tempfile.mkdtemp(prefix="slide-shots-"))
    slide_mpp_shot(tmp)
    qupath_import_shot(tmp)
    nuclei_table_shot(tmp)
    return 0


if __name__ == "__main__":
    sys.exit(main())
