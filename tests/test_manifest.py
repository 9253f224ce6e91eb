"""The manifest napari loads is the top-level napari.yaml, and npe2 accepts it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_package_manifest_is_the_top_level_one() -> None:
    top = (REPO / "napari.yaml").read_bytes()
    packaged = (REPO / "src" / "napari_wsi_ssl" / "napari.yaml").read_bytes()
    assert top == packaged, "copy napari.yaml to src/napari_wsi_ssl/napari.yaml"


def test_npe2_validate() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "npe2", "validate", "napari-wsi-ssl", "--imports"],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_every_manifest_command_imports() -> None:
    from npe2 import PluginManifest

    manifest = PluginManifest.from_file(REPO / "napari.yaml")
    import importlib

    for command in manifest.contributions.commands or []:
        module_name, _, attr = command.python_name.partition(":")
        assert hasattr(importlib.import_module(module_name), attr), command.python_name
