"""Screenshots of slides open in napari through the plugin's reader, for docs/slides.md.

Run under Xvfb from the repository root:  xvfb-run -a .venv/bin/python docs/scripts/screenshot_slide.py
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import napari
from PIL import Image
from qtpy.QtWidgets import QApplication

from napari_wsi_ssl.synthetic import write_synthetic_slide

REPO = Path(__file__).resolve().parents[2]
IMAGES = REPO / "docs" / "images"
CMU = REPO.parent / "shared" / "data" / "slides" / "cmu_small_region.svs"


def shoot(path: Path, out: Path, size: tuple[int, int] = (1100, 750)) -> None:
    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(*size)
    viewer.window._qt_window.show()
    start = time.perf_counter()
    viewer.open(str(path), plugin="napari-wsi-ssl")
    print(f"{path.name}: opened in {time.perf_counter() - start:.2f} s")
    viewer.scale_bar.visible = True
    viewer.reset_view()
    for _ in range(40):
        QApplication.processEvents()
        time.sleep(0.05)
    shot = viewer.screenshot(canvas_only=False, flash=False)
    img = Image.fromarray(shot[..., :3])
    img.thumbnail((900, 900))
    # a 256-colour palette keeps the PNG small (< 300 KB) with no visible loss for a screenshot
    img.quantize(256, method=Image.Quantize.MEDIANCUT).save(out, optimize=True)
    print(f"saved {out} ({out.stat().st_size // 1024} KB)")
    viewer.close()


def main() -> None:
    IMAGES.mkdir(parents=True, exist_ok=True)
    if CMU.is_file():
        shoot(CMU, IMAGES / "slide_cmu.png")
    with tempfile.TemporaryDirectory() as tmp:
        syn = write_synthetic_slide(tmp, size=8192, seed=0)
        shoot(syn.slide, IMAGES / "slide_synthetic.png")


if __name__ == "__main__":
    main()
