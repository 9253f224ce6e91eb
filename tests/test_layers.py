"""The dependency rule of DESIGN.md: compute layers never load napari or Qt; slide, export and
the metrics never load torch."""

from __future__ import annotations

import subprocess
import sys

import pytest

GUI_MODULES = ("napari", "qtpy", "PyQt6", "PyQt5", "PySide6", "magicgui", "superqt")


def _loaded_after_import(module: str) -> set[str]:
    code = (
        f"import sys, importlib; importlib.import_module({module!r}); "
        "print('\\n'.join(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


@pytest.mark.parametrize(
    "module",
    [
        "napari_wsi_ssl.slide",
        "napari_wsi_ssl.synthetic",
        "napari_wsi_ssl.patches",
        "napari_wsi_ssl.models",
        "napari_wsi_ssl.training",
        "napari_wsi_ssl.inference",
        "napari_wsi_ssl.evaluation",
        "napari_wsi_ssl.export",
        "napari_wsi_ssl.benchmark",
        "napari_wsi_ssl.cli",
        "napari_wsi_ssl.classes",
        "napari_wsi_ssl._napari.project",
    ],
)
def test_compute_layers_do_not_load_gui(module: str) -> None:
    loaded = _loaded_after_import(module)
    assert not loaded & set(GUI_MODULES), f"{module} loads {sorted(loaded & set(GUI_MODULES))}"


@pytest.mark.parametrize(
    "module",
    [
        "napari_wsi_ssl.slide",
        "napari_wsi_ssl.export",
        "napari_wsi_ssl.metrics",
        "napari_wsi_ssl.classes",
        "napari_wsi_ssl._napari.project",
    ],
)
def test_torch_free_layers(module: str) -> None:
    assert "torch" not in _loaded_after_import(module)
