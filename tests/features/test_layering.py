"""The fast mode is compute: importing it loads no GUI toolkit (DESIGN.md's layers)."""

from __future__ import annotations

import subprocess
import sys

GUI_MODULES = {"napari", "qtpy", "PyQt6", "PyQt5", "PySide6", "magicgui", "superqt"}


def test_features_do_not_load_gui() -> None:
    code = (
        "import sys, napari_wsi_ssl.features; "
        "print('\\n'.join(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = set(out.stdout.split())
    assert "torch" in loaded and not loaded & GUI_MODULES
