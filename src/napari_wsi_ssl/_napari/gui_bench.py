"""``gui_vs_cli``: the Predict dock's whole-slide map against ``predict_slide`` in the same process.

Run as ``python -m napari_wsi_ssl._napari.gui_bench WORK_DIR [--quick] [--slide PATH]
[--rounds N] [--gui-only] [--no-trace]`` (``wsi-ssl bench --only gui_vs_cli`` does, under Xvfb
when there is no display).
It opens the slide in a shown napari window of the default size with all five docks open, sets
the Predict dock to the bench's model and tile size, and alternates: a click on Predict (timed to
the end of the run, the event loop running as a user's does) and ``predict_slide`` of the same
plan (the dock's own request, into a fresh folder) timed in a fresh child process, as the
command line runs it. Each side writes a fresh
store, so nothing is read from a cache. A 10 ms timer records the event loop's longest stall
during the dock's runs, and the causes of the longest ones (``stalls``: the GUI thread's CPU
time in each, its wait for a core, the callback that owned it and where it was, from stack
samples; see :mod:`.stall_trace`; ``--no-trace`` leaves the sampling out). ``--gui-only`` runs
the dock's side alone (for measuring the stalls; no ratio). The last line of stdout is one
JSON object; each round's stalls go to stderr.
"""

from __future__ import annotations

import dataclasses
import json
import pickle
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from ..benchmark.core import BenchConfig
from ..benchmark.fixtures import bench_slide, random_checkpoint
from ..events import run_to_end
from .stall_trace import Probe

DOCKS = ("Pretrain", "Fine-tune", "Predict", "Evaluate", "Export")


def _run_loop(until: Any, timeout_s: float) -> None:
    """Run the Qt event loop (as ``app.exec`` does) until ``until()`` or the timeout."""
    from qtpy.QtCore import QEventLoop, QTimer

    loop = QEventLoop()
    end = time.monotonic() + timeout_s
    check = QTimer()
    check.setInterval(20)

    def tick() -> None:
        if until() or time.monotonic() > end:
            loop.quit()

    check.timeout.connect(tick)
    check.start()
    loop.exec()
    check.stop()


def _tiles(store: Path) -> int:
    """Tiles computed in a store: the ``done`` flags of its tumour map."""
    import numpy as np
    import zarr

    done = zarr.open_group(str(store), mode="r")["tumour"]["done"]
    return int(np.count_nonzero(done[:]))


def _round(
    dock: Any, ckpt: Path, probe: Any, gui_dir: Path, cli_dir: Path | None
) -> tuple[float, float, int, float]:
    """One click on Predict and one direct call (none without ``cli_dir``): (dock s, longest
    stall ms, tiles, direct s)."""
    dock.set_fields(cache=gui_dir)
    probe.start()
    t0 = time.perf_counter()
    dock.predict_button.native.click()
    _run_loop(lambda: not dock.runner.running, 3600)
    gui = time.perf_counter() - t0
    stall = probe.stop()["longest_ms"]
    outcome = dock.runner.last_outcome
    if outcome is None or not outcome.ok:
        raise RuntimeError(f"the Predict dock's run failed: {outcome}")
    tiles = _tiles(Path(outcome.value))
    if cli_dir is None:
        return gui, stall, tiles, 0.0
    # the command line's path: the dock's own plan, without a view, into a fresh folder, in a
    # fresh process (as `wsi-ssl predict`; none of this process's thread priorities)
    plan = dataclasses.replace(dock.request().plan, out_dir=cli_dir, visible_first=None)
    (cli_dir / "plan.pkl").write_bytes(pickle.dumps((plan, ckpt)))
    cmd = [
        sys.executable,
        "-m",
        "napari_wsi_ssl._napari.gui_bench",
        "--direct",
        str(cli_dir / "plan.pkl"),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"predict_slide failed: {proc.stderr.strip().splitlines()[-3:]}")
    cli, store = json.loads(proc.stdout.strip().splitlines()[-1])
    if _tiles(Path(store)) != tiles:
        raise RuntimeError(f"the runs differ: {tiles} tiles vs {_tiles(store)}")
    return gui, stall, tiles, cli


def direct(plan_file: Path) -> int:
    """Time ``predict_slide`` of a pickled (plan, checkpoint); print ``[seconds, store]``."""
    plan, ckpt = pickle.loads(plan_file.read_bytes())
    t0 = time.perf_counter()
    store = run_to_end(plan.run(ckpt))
    print(json.dumps([time.perf_counter() - t0, str(store)]))
    return 0


def main(argv: list[str]) -> int:
    if argv[0] == "--direct":
        return direct(Path(argv[1]))
    import napari

    work = Path(argv[0])
    quick = "--quick" in argv
    gui_only = "--gui-only" in argv
    slide_arg = Path(argv[argv.index("--slide") + 1]) if "--slide" in argv else None
    config = BenchConfig.quick_config(work_dir=work) if quick else BenchConfig(work_dir=work)
    rounds = int(argv[argv.index("--rounds") + 1]) if "--rounds" in argv else (1 if quick else 2)
    work.mkdir(parents=True, exist_ok=True)
    slide = slide_arg or bench_slide(work, 2048 if quick else 8192)
    ckpt = random_checkpoint(work / "bench_model.pt", config.width, mpp=4.0 if quick else 1.0)

    viewer = napari.Viewer(show=True)
    (layer,) = viewer.open(str(slide), plugin="napari-wsi-ssl")
    docks = {
        name: viewer.window.add_plugin_dock_widget("napari-wsi-ssl", name)[1] for name in DOCKS
    }
    dock = docks["Predict"]
    # the dock's smallest tile is 128 (the quick bench's 64 is not offered)
    dock.set_fields(slide=layer, checkpoint=ckpt, tile=max(config.infer_tile, 128))
    _run_loop(lambda: False, 1.0)  # the window settles
    window = dock.native.window()
    geometry = window.frameGeometry()
    screen = window.screen().availableGeometry()
    probe = Probe(trace="--no-trace" not in argv)
    probe.start()
    _run_loop(lambda: False, 1.0)
    idle = probe.stop()

    gui_s: list[float] = []
    cli_s: list[float] = []
    stalls: list[float] = []
    causes: list[dict[str, Any]] = []
    cpu: list[dict[str, float]] = []
    tiles = 0
    for k in range(rounds + 1):  # a first round warms up (imports, allocator, layers): not counted
        with (
            tempfile.TemporaryDirectory(dir=work) as gui_dir,
            tempfile.TemporaryDirectory(dir=work) as cli_dir,
        ):
            cli_path = None if gui_only else Path(cli_dir)
            gui, stall, tiles, cli = _round(dock, ckpt, probe, Path(gui_dir), cli_path)
        found = probe.stalls()
        print(f"round {k}: {gui:.1f} s, longest stall {stall:.1f} ms: {found}", file=sys.stderr)
        if k:
            gui_s.append(gui)
            cli_s.append(cli)
            stalls.append(stall)
            causes += [dict(s, round=k) for s in found]
            cpu.append(probe.cpu_ms())
    viewer.close()
    gui, cli = statistics.median(gui_s), statistics.median(cli_s)
    result = {
        "value": tiles / gui,
        "baseline": None if gui_only else tiles / cli,
        "ratio": None if gui_only else cli / gui,
        "unit": "tiles/s",
        "target": ">= 0.8",
        "measured": "whole-slide map: a click on the Predict dock's button to the end of its run "
        "(all five docks open, default window, event loop running) vs predict_slide of the "
        "same plan in a child process, alternating, after a warm-up pair",
        "tiles": tiles,
        "gui_s": [round(s, 2) for s in gui_s],
        "cli_s": [] if gui_only else [round(s, 2) for s in cli_s],
        "stall_ms": max(stalls),
        "idle_stall_ms": idle["longest_ms"],
        # the GUI thread's own work in its longest-working gap: what load does not stretch
        "stall_cpu_ms": max(c["longest_cpu_ms"] for c in cpu),
        "stalls": sorted(causes, key=lambda s: -s["ms"])[:8],
        "window": [geometry.width(), geometry.height()],
        "screen": [screen.width(), screen.height()],
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
