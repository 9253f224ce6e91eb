"""Measure the longest stall of the Qt event loop while the Fine-tune dock trains.

Run as ``python -m napari_wsi_ssl._napari.stall_probe WORK_DIR [--quick]`` (``wsi-ssl bench
--gui`` does, under Xvfb when there is no display). It opens the synthetic slide in a shown
napari window, paints annotations from the ground truth, clicks Fine-tune and records, with a
10 ms QTimer, the longest gap between ticks during the run. The baseline is the same probe on
the idle viewer. The last line of stdout is one JSON object.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np


class _Probe:
    def __init__(self) -> None:
        from qtpy.QtCore import QTimer

        self.timer = QTimer()
        self.timer.setInterval(10)
        self.timer.timeout.connect(self._tick)
        self.last = 0.0
        self.gaps: list[float] = []

    def _tick(self) -> None:
        now = time.perf_counter()
        if self.last:
            self.gaps.append(now - self.last)
        self.last = now

    def start(self) -> None:
        self.gaps, self.last = [], 0.0
        self.timer.start()

    def stop(self) -> dict[str, float]:
        self.timer.stop()
        g = np.asarray(self.gaps or [0.0]) * 1000
        return {
            "longest_ms": float(g.max()),
            "p99_ms": float(np.percentile(g, 99)),
            "ticks": len(g),
        }


def _wait(app: Any, until: Any, timeout: float) -> None:
    end = time.perf_counter() + timeout
    while not until() and time.perf_counter() < end:
        app.processEvents()
        time.sleep(0.002)


def main(argv: list[str]) -> int:
    import napari
    from qtpy.QtWidgets import QApplication

    from ..synthetic import load_synthetic_slide, read_tumour_mask, write_synthetic_slide
    from ..training import PretrainConfig, pretrain

    work = Path(argv[0])
    quick = "--quick" in argv
    work.mkdir(parents=True, exist_ok=True)
    size = 2048
    syn = load_synthetic_slide(work / f"synthetic_{size}") or write_synthetic_slide(
        work / f"synthetic_{size}", size=size
    )
    width, patch = (8, 32) if quick else (32, 64)
    init = work / "stall_pretrained.pt"
    from ..events import run_to_end

    run_to_end(
        pretrain(
            [syn.slide],
            PretrainConfig(preset="unet-resnet34", width=width, mpp=2.0, patch_size=patch, steps=3),
            init,
        )
    )

    viewer = napari.Viewer(show=True)
    app = QApplication.instance()
    viewer.open(str(syn.slide), plugin="napari-wsi-ssl")
    _, pre_dock = viewer.window.add_plugin_dock_widget("napari-wsi-ssl", "Pretrain")
    pre_dock.annotation_button.native.click()
    layer = viewer.layers["annotations"]
    truth = read_tumour_mask(syn)
    rows = (np.arange(layer.data.shape[0]) * size / layer.data.shape[0] / syn.gt_downsample).astype(
        int
    )
    cols = (np.arange(layer.data.shape[1]) * size / layer.data.shape[1] / syn.gt_downsample).astype(
        int
    )
    tumour = truth[np.ix_(rows, cols)] > 0
    rng = np.random.default_rng(0)
    layer.brush_size = 6
    for label, where in ((1, tumour), (2, ~tumour)):
        ys, xs = np.nonzero(where)
        for i in rng.choice(ys.size, size=min(25, ys.size), replace=False):
            layer.paint((int(ys[i]), int(xs[i])), label)

    _, dock = viewer.window.add_plugin_dock_widget("napari-wsi-ssl", "Fine-tune")
    dock.cache_dir = work / "stall_cache"
    dock.set_fields(
        slide=viewer.layers[0],
        annotations=layer,
        checkpoint=init,
        task="segment",
        mode="fast (frozen encoder)",
        budget=10 if quick else 40,
        unit="steps",
        batch_size=8,
        out=work / "stall_finetuned.pt",
    )
    probe = _Probe()
    probe.start()
    _wait(app, lambda: False, 1.0)  # the idle viewer: the baseline
    idle = probe.stop()
    probe.start()
    dock.finetune_button.native.click()
    _wait(app, lambda: not dock.runner.running, 600)
    busy = probe.stop()
    outcome = dock.runner.last_outcome
    viewer.close()
    result = {
        "value": busy["longest_ms"],
        "baseline": idle["longest_ms"],
        "ratio": busy["longest_ms"] / max(idle["longest_ms"], 1e-9),
        "unit": "ms",
        "target": "<= 100",
        "p99_ms": busy["p99_ms"],
        "ticks": busy["ticks"],
        "run_ok": bool(outcome is not None and outcome.ok),
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
