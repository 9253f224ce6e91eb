"""The GUI figures, each measured in a child process (napari needs a display; under Xvfb when
there is none), so that the benchmark layer itself never imports napari or Qt.

- ``gui_stall_ms``: the longest Qt event-loop stall while the Fine-tune dock trains.
- ``gui_live_stall_ms``: the longest stall during live refinement (fast mode, all five docks).
- ``gui_vs_cli``: the Predict dock's whole-slide map (all five docks open) against
  ``predict_slide`` of the same slide and settings.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from typing import Any

from .core import BenchConfig

#: The GUI figures, by name: the module that measures each.
GUI_FIGURES = {
    "gui_stall_ms": "napari_wsi_ssl._napari.stall_probe",
    "gui_vs_cli": "napari_wsi_ssl._napari.gui_bench",
    "gui_live_stall_ms": "napari_wsi_ssl._napari.live_bench",
}


def measure_gui(name: str, config: BenchConfig) -> dict[str, Any]:
    """Run the child that measures the GUI figure ``name``; return its JSON result."""
    cmd = [sys.executable, "-m", GUI_FIGURES[name], str(config.work_dir)]
    if config.quick:
        cmd.append("--quick")
    if name == "gui_vs_cli" and config.slide is not None:
        cmd += ["--slide", str(config.slide)]
    if not os.environ.get("DISPLAY"):
        xvfb = shutil.which("xvfb-run")
        if xvfb is None:
            raise RuntimeError(f"no display and no xvfb-run: cannot measure {name}")
        cmd = [xvfb, "-a", "-s", "-screen 0 1600x1000x24", *cmd]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{name} failed: {proc.stderr.strip().splitlines()[-3:]}")
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))
