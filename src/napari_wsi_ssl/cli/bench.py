"""``wsi-ssl bench``: the performance targets of DESIGN.md, measured as ratios in one run."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

FIGURES = (
    "read",
    "infer_vs_model",
    "infer_vs_naive",
    "infer_compiled",
    "cpu_precision",
    "train_vs_model",
    "memory",
    "refine_latency",
    "feature_cache",
)
#: Figures measured in a napari window (``--gui`` measures them all).
GUI = ("gui_stall_ms", "gui_vs_cli", "gui_live_stall_ms")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--quick", action="store_true", help="tiny inputs: proves the paths in seconds"
    )
    parser.add_argument("--slide", type=Path, help="slide to read and predict (default: synthetic)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
    parser.add_argument(
        "--gui", action="store_true", help="also measure the GUI figures (stall, GUI vs CLI)"
    )
    parser.add_argument("--only", nargs="+", choices=[*FIGURES, *GUI], default=[])
    parser.add_argument("--work-dir", type=Path, default=Path("bench_out"), help="scratch folder")
    parser.add_argument("--memory-sizes", type=int, nargs=2, metavar=("SMALL", "LARGE"))


def run(args: argparse.Namespace) -> dict[str, Any]:
    # torch: the CLI's parser imports every cli module
    from ..benchmark import BenchConfig, run_bench

    kw: dict[str, Any] = {
        "slide": args.slide,
        "device": args.device,
        "work_dir": args.work_dir,
        "only": tuple(o for o in args.only if o not in GUI),
    }
    if args.memory_sizes:
        kw["memory_sizes"] = tuple(args.memory_sizes)
    config = BenchConfig.quick_config(**kw) if args.quick else BenchConfig(**kw)
    result: dict[str, Any] = {}
    gui_only = bool(args.only) and set(args.only) <= set(GUI)
    if not gui_only:
        for name, fig in run_bench(config):
            result[name] = fig if isinstance(fig, dict) else fig.as_dict()
            _row(name, result[name])
    for name in GUI:
        if args.gui or name in args.only:
            # torch: the CLI's parser imports every cli module
            from ..benchmark.gui import measure_gui

            result[name] = measure_gui(name, config)
            _row(name, result[name])
    return result


def _row(name: str, fig: dict[str, Any]) -> None:
    if name == "env":
        print("  ".join(f"{k}={v}" for k, v in fig.items()), file=sys.stderr)
        return
    print(
        f"{name:15s} {fig['value']:>12.4g} vs {fig['baseline']:>12.4g} {fig['unit']:8s} "
        f"ratio {fig['ratio']:6.2f}  target {fig['target']}",
        file=sys.stderr,
        flush=True,
    )
