"""``wsi-ssl bench``: every performance target of DESIGN.md, as ratios measured in one run.

Each figure is a pair, A (the product) and B (its baseline), timed alternately A, B, A, B ...
after a warm-up, and reported as medians: ``{value, baseline, ratio, unit, target, ...}``.
"""

from .core import BenchConfig, Figure, run_bench

__all__ = ["BenchConfig", "Figure", "run_bench"]
