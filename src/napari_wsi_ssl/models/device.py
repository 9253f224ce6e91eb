"""Device and precision choice, made once per run (training, inference and evaluation share it)."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from pathlib import Path

import torch

from ..errors import TrainingError


def choose_device(name: str = "auto") -> torch.device:
    """``"auto"`` picks CUDA, then MPS, then CPU; a named device that is absent raises TrainingError."""
    name = (name or "auto").lower()
    mps = getattr(torch.backends, "mps", None)
    has_mps = bool(mps is not None and mps.is_available())
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps") if has_mps else torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise TrainingError(
            "CUDA was asked for but no CUDA GPU is visible", hint="set 'device' to cpu or auto"
        )
    if name == "mps" and not has_mps:
        raise TrainingError(
            "MPS was asked for but is not available", hint="set 'device' to cpu or auto"
        )
    try:
        return torch.device(name)
    except RuntimeError:
        raise TrainingError(f"unknown device {name!r}", hint="use auto, cpu, cuda or mps") from None


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The instruction-set flags the OS exposes for this CPU (``/proc/cpuinfo``; empty elsewhere)."""
    try:
        return frozenset(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        return frozenset()


def cpu_has_bf16() -> bool:
    """Whether bf16 autocast pays on this CPU: it has AMX tiles (``amx_bf16``).

    AVX512-BF16 alone is not enough. On a CPU that has it but not AMX (oneDNN then picks
    ``brg_conv_fwd:avx512_core_bf16``), bf16 ran slower than fp32 for every model size measured:
    3×3 convolutions at 182-213 GFLOP/s against 264-365 in fp32, the UNet 10-30 % slower in
    inference and 6-20 % in training (``docs/performance.md``, ``wsi-ssl bench`` figure
    ``cpu_precision``). ``precision="bf16"`` still forces it.
    """
    return "amx_bf16" in cpu_flags()


def autocast_for(
    device: torch.device | str, precision: str = "auto"
) -> contextlib.AbstractContextManager[None]:
    """A context manager for mixed precision: bf16 on CPUs with AMX, AMP on CUDA.

    ``precision`` is ``"auto"``, ``"fp32"`` (no autocast), ``"bf16"`` or ``"fp16"``.
    """
    device = torch.device(device)
    if precision == "fp32":
        return contextlib.nullcontext()
    if device.type == "cuda":
        dtype = torch.float16 if precision == "fp16" else torch.bfloat16
        if precision == "auto" and not torch.cuda.is_bf16_supported():
            dtype = torch.float16
        return torch.autocast("cuda", dtype=dtype)
    if device.type == "cpu" and (precision == "bf16" or (precision == "auto" and cpu_has_bf16())):
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Run small torch work on one thread: on busy cores, two threads spin against each other
    and a head's step takes ten times longer (measured: 13 ms vs 100-160 ms, 40k x 50 points)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)
