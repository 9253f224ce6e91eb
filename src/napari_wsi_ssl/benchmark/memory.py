"""``memory``: peak RSS of ``predict_slide`` as the slide grows, each size in a fresh process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from .core import BenchConfig, Figure
from .fixtures import bench_slide, random_checkpoint

_CHILD = r"""
import json, sys, tempfile
from pathlib import Path
from napari_wsi_ssl.events import run_to_end
from napari_wsi_ssl.inference import PredictConfig, predict_slide
slide, ckpt, work, compile = sys.argv[1:5]
with tempfile.TemporaryDirectory(dir=work) as out:
    cfg = PredictConfig(batch_size=4, compile=compile)
    store = run_to_end(predict_slide(slide, ckpt, out, cfg))
# VmHWM, not ru_maxrss: Linux carries ru_maxrss over exec, so a child would report its parent's peak
hwm = next(l for l in open("/proc/self/status") if l.startswith("VmHWM:"))
print(json.dumps({"peak_rss": int(hwm.split()[1]) * 1024}))
"""


def peak_rss(slide: Path, ckpt: Path, work: Path, compile: str = "off") -> int:
    """Peak resident memory of one ``predict_slide`` run in a fresh process."""
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, str(slide), str(ckpt), str(work), compile],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"memory bench child failed: {proc.stderr.strip().splitlines()[-1:]}")
    return int(json.loads(proc.stdout.strip().splitlines()[-1])["peak_rss"])


def bench_memory(config: BenchConfig) -> Figure:
    # a small model at a coarse working resolution: this measures streaming, not compute
    ckpt = random_checkpoint(config.work_dir / "bench_memory_model.pt", width=8, mpp=4.0)
    small, large = config.memory_sizes
    # both sizes without compilation, so that the ratio compares the same code path; the large
    # slide again with the default (it has enough tiles for "auto" to compile), beside it
    peaks = {
        size: peak_rss(bench_slide(config.work_dir, size), ckpt, config.work_dir)
        for size in (small, large)
    }
    extra: dict[str, object] = {"sizes": [small, large], "working_mpp": 4.0, "compile": "off"}
    if not config.quick:
        extra["large_compile_auto_bytes"] = peak_rss(
            bench_slide(config.work_dir, large), ckpt, config.work_dir, compile="auto"
        )
    return Figure(
        "memory",
        float(peaks[large]),
        float(peaks[small]),
        "bytes",
        "<= 2 GB at the large size, ratio <= 1.3",
        higher_is_better=False,
        extra=extra,
    )
