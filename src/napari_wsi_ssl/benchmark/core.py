"""The bench driver: configuration, the A/B timing protocol and the report."""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..models.device import choose_device, cpu_flags
from .fixtures import bench_slide, random_checkpoint


@dataclass(frozen=True)
class BenchConfig:
    """What one bench run measures, and how big.

    ``quick`` shrinks every input so that the run takes seconds (the test suite uses it); the
    figures then only prove the code paths, not the targets.
    """

    quick: bool = False
    slide: Path | None = None
    device: str = "auto"
    work_dir: Path = Path("bench_out")
    rounds: int = 5
    width: int = 64
    infer_tile: int = 256
    infer_batch: int = 4
    train_width: int = 32
    train_patch: int = 128
    train_batch: int = 8
    read_tiles: int = 128
    memory_sizes: tuple[int, int] = (10_000, 50_000)
    only: tuple[str, ...] = ()

    @classmethod
    def quick_config(cls, **kw: Any) -> BenchConfig:
        small = dict(
            quick=True,
            rounds=1,
            width=8,
            infer_tile=64,
            infer_batch=4,
            train_width=8,
            train_patch=32,
            train_batch=4,
            read_tiles=16,
            memory_sizes=(1024, 2048),
        )
        small.update(kw)
        return cls(**small)  # type: ignore[arg-type]


@dataclass
class Figure:
    """One target: the product's value, the baseline's, and their ratio."""

    name: str
    value: float
    baseline: float
    unit: str
    target: str
    higher_is_better: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float:
        return self.value / self.baseline if self.baseline else float("nan")

    def as_dict(self) -> dict[str, Any]:
        return {
            "value": self.value,
            "baseline": self.baseline,
            "ratio": self.ratio,
            "unit": self.unit,
            "target": self.target,
            **self.extra,
        }


def alternate(
    a: Callable[[], float], b: Callable[[], float], rounds: int, warmup: int = 1
) -> tuple[float, float, list[float], list[float]]:
    """Run A, B, A, B ... ``rounds`` times after ``warmup`` rounds; return the medians and samples.

    ``a`` and ``b`` return a rate (items per second) for one round.
    """
    for _ in range(warmup):
        a()
        b()
    sa: list[float] = []
    sb: list[float] = []
    for _ in range(rounds):
        sa.append(a())
        sb.append(b())
    return statistics.median(sa), statistics.median(sb), sa, sb


def rate(n: int, fn: Callable[[], Any]) -> float:
    """Items per second of ``fn`` doing ``n`` items."""
    start = time.perf_counter()
    fn()
    return n / (time.perf_counter() - start)


def environment(device: Any) -> dict[str, Any]:
    import torch

    return {
        "device": str(device),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cpu_bf16": sorted(cpu_flags() & {"amx_bf16", "amx_tile", "avx512_bf16"}),
        "cores": os.cpu_count(),
        "jemalloc": "jemalloc" in os.environ.get("LD_PRELOAD", ""),
    }


def run_bench(config: BenchConfig) -> Iterator[tuple[str, Figure | dict[str, Any]]]:
    """Measure every figure in turn; yields ``(name, Figure)`` as each finishes, then ``("env", {...})``."""
    from . import inference, memory, reading, training  # they import BenchConfig from here

    device = choose_device(config.device)
    config.work_dir.mkdir(parents=True, exist_ok=True)
    slide = config.slide or bench_slide(config.work_dir, 2048 if config.quick else 8192)
    env = {**environment(device), "slide": str(slide)}

    def want(name: str) -> bool:
        return not config.only or name in config.only

    if want("read"):
        yield "read", reading.bench_read(slide, config)
    # quick mode predicts at a coarse resolution, so that a round takes seconds
    ckpt = random_checkpoint(
        config.work_dir / "bench_model.pt", config.width, mpp=4.0 if config.quick else 1.0
    )
    if want("infer_vs_model") or want("infer_vs_naive"):
        for fig in inference.bench_inference(slide, ckpt, device, config):
            if want(fig.name):
                yield fig.name, fig
    # one compilation takes about 25 s on 2 cores: only in a full run, or when asked for
    if (want("infer_compiled") and not config.quick) or "infer_compiled" in config.only:
        yield "infer_compiled", inference.bench_compile(slide, ckpt, device, config)
    if want("cpu_precision") and device.type == "cpu":
        yield "cpu_precision", inference.bench_precision(ckpt, config)
    if want("train_vs_model"):
        yield "train_vs_model", training.bench_training(slide, ckpt, device, config)
    if want("memory"):
        yield "memory", memory.bench_memory(config)
    if want("refine_latency") or want("feature_cache"):
        from .features import bench_features  # it imports BenchConfig from here

        for fig in bench_features(slide, ckpt, device, config):
            if want(fig.name):
                yield fig.name, fig
    yield "env", env


def describe(config: BenchConfig) -> dict[str, Any]:
    d = asdict(config)
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in d.items()}
