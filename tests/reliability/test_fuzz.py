"""Fuzzing: the reader's region arithmetic (hypothesis), and damaged TIFF headers.

``tests/slide/test_region_properties.py`` checks ``read_region`` against padded in-bounds reads;
here the other entry points get the same treatment (``read_scaled``, the dask pyramid, bad
levels and empty sizes), and files whose first kilobytes are flipped at random are opened in a
separate process, so that a crash of the interpreter or a hang is seen as such.
"""

from __future__ import annotations

import os
import select
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from napari_wsi_ssl.errors import SlideError
from napari_wsi_ssl.slide import open_slide

FIXTURE = [HealthCheck.function_scoped_fixture]


@pytest.fixture(scope="module")
def opened(small_slide):
    with open_slide(small_slide.slide) as slide:
        yield slide


@settings(max_examples=30, deadline=None, suppress_health_check=FIXTURE)
@given(
    x=st.integers(-1500, 2500),
    y=st.integers(-1500, 2500),
    w=st.integers(1, 120),
    h=st.integers(1, 120),
    downsample=st.floats(0.5, 40.0),
)
def test_read_scaled_shape_and_outside_white(
    opened, x: int, y: int, w: int, h: int, downsample: float
) -> None:
    region = opened.read_scaled((x, y), (w, h), downsample)
    assert region.shape == (h, w, 3) and region.dtype == np.uint8
    width, height = opened.dimensions
    if x >= width or y >= height or x + w * downsample <= 0 or y + h * downsample <= 0:
        assert (region == 255).all(), "a request wholly off the slide is white"


@settings(max_examples=30, deadline=None, suppress_health_check=FIXTURE)
@given(
    level=st.integers(0, 3),
    y0=st.integers(0, 1100),
    x0=st.integers(0, 1100),
    h=st.integers(1, 300),
    w=st.integers(1, 300),
)
def test_pyramid_slices_equal_level_reads(opened, level: int, y0: int, x0: int, h: int, w: int):
    levels = opened.pyramid()
    level = min(level, len(levels) - 1)
    arr = levels[level]
    lh, lw = arr.shape[:2]
    got = arr[y0 : y0 + h, x0 : x0 + w].compute()
    # numpy slicing semantics: clipped at the end, empty past it
    eh, ew = max(0, min(y0 + h, lh) - y0), max(0, min(x0 + w, lw) - x0)
    assert got.shape == (eh, ew, 3)
    if eh and ew:
        np.testing.assert_array_equal(got, opened.read_level(level, x0, y0, ew, eh))


@settings(max_examples=20, deadline=None, suppress_health_check=FIXTURE)
@given(level=st.integers(-5, 10), w=st.integers(-5, 5), h=st.integers(-5, 5))
def test_bad_levels_refused_and_empty_sizes_empty(opened, level: int, w: int, h: int) -> None:
    if not 0 <= level < opened.level_count:
        with pytest.raises(SlideError, match="level"):
            opened.read_region((0, 0), level, (max(w, 1), max(h, 1)))
    elif w <= 0 or h <= 0:
        region = opened.read_region((0, 0), level, (w, h))
        assert region.shape == (max(h, 0), max(w, 0), 3)


# ------------------------------------------------------------------ damaged headers

CHILD = r"""
import sys, warnings
warnings.simplefilter("ignore")
from napari_wsi_ssl.errors import SlideError
from napari_wsi_ssl.slide import open_slide
print("READY", flush=True)
for line in sys.stdin:
    path = line.strip()
    print("START", path, flush=True)
    try:
        with open_slide(path) as slide:
            w, h = slide.level_dimensions[-1]
            slide.read_region((0, 0), slide.level_count - 1, (min(w, 512), min(h, 512)))
            slide.pyramid()[-1][:64, :64].compute()
        print("READ", path, flush=True)
    except SlideError as exc:
        print("SLIDEERROR", path, flush=True)
    except Exception as exc:
        print("RAW", path, type(exc).__name__, str(exc)[:200].replace("\n", " "), flush=True)
"""


def _mutants(src: Path, folder: Path, n: int, seed: int) -> list[Path]:
    data = src.read_bytes()
    span = min(4096, len(data))
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        mutated = bytearray(data)
        for pos in rng.integers(4, span, rng.integers(1, 9)):  # keep the magic: reach the parser
            mutated[pos] = int(rng.integers(0, 256))
        path = folder / f"{src.stem}-{k}{src.suffix}"
        path.write_bytes(bytes(mutated))
        out.append(path)
    return out


def _run_all(paths: list[Path], per_file_s: float = 20) -> dict[str, str]:
    """Open every file in a child process; a crash or hang is recorded and the child restarted."""
    outcome: dict[str, str] = {}
    todo = list(paths)
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    while todo:
        proc = subprocess.Popen(
            [sys.executable, "-c", CHILD],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=env,
        )
        assert proc.stdin is not None and proc.stdout is not None
        assert proc.stdout.readline().strip() == "READY"
        current = None
        for path in todo:
            proc.stdin.write(f"{path}\n")
        proc.stdin.close()
        deadline = time.monotonic() + per_file_s
        while True:
            ready, _, _ = select.select([proc.stdout], [], [], 0.5)
            if ready:
                line = proc.stdout.readline()
                if not line:  # the child ended: finished or crashed
                    break
                kind, rest = line.rstrip("\n").split(" ", 1)
                path_s = rest.split(" ", 1)[0] if kind == "RAW" else rest
                if kind == "START":
                    current = path_s
                    deadline = time.monotonic() + per_file_s
                else:
                    outcome[path_s] = kind if kind != "RAW" else f"RAW {rest}"
                    current = None
            elif time.monotonic() > deadline:
                proc.kill()
                outcome[str(current)] = "HANG"
                break
        code = proc.wait()
        if current is not None and str(current) not in outcome:
            outcome[str(current)] = f"CRASH (exit {code})"
        todo = [p for p in todo if str(p) not in outcome]
    return outcome


@pytest.mark.slow
def test_flipped_header_bytes_never_crash_or_hang(
    small_slide, cmu_svs: Path, tmp_path: Path
) -> None:
    tiff = tmp_path / "small.tif"
    shutil.copy(small_slide.slide, tiff)
    paths = _mutants(tiff, tmp_path, 40, seed=1) + _mutants(cmu_svs, tmp_path, 20, seed=2)
    outcome = _run_all(paths)
    assert len(outcome) == len(paths)
    bad = {Path(p).name: o for p, o in outcome.items() if o not in ("READ", "SLIDEERROR")}
    counts = {k: sum(o == k for o in outcome.values()) for k in ("READ", "SLIDEERROR")}
    print(f"\n{len(paths)} damaged files: {counts}")
    assert not bad, bad
    assert counts["SLIDEERROR"] > 0, "some flips must have broken a header"
