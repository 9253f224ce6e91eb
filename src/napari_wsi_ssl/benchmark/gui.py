"""``gui_stall_ms``: the longest Qt event-loop stall while the Fine-tune dock trains.

It runs in a child process (napari needs a display; under Xvfb when there is none), so that
the benchmark layer itself never imports napari or Qt.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from typing import Any

from .core import BenchConfig


def measure_gui_stall(config: BenchConfig) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "napari_wsi_ssl._napari.stall_probe", str(config.work_dir)]
    if config.quick:
        cmd.append("--quick")
    if not os.environ.get("DISPLAY"):
        xvfb = shutil.which("xvfb-run")
        if xvfb is None:
            raise RuntimeError("no display and no xvfb-run: cannot measure the GUI stall")
        cmd = [xvfb, "-a", "-s", "-screen 0 1600x1000x24", *cmd]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"GUI stall probe failed: {proc.stderr.strip().splitlines()[-3:]}")
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))
