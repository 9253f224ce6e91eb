"""Helpers of the reliability tests: CLI runners, damaged copies of slides."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]


@dataclass
class CliResult:
    code: int
    out: str
    err: str


def wsi_ssl_command(*args: object) -> list[str]:
    return [sys.executable, "-m", "napari_wsi_ssl.cli", *map(str, args)]


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "1")
    env["PYTHONUNBUFFERED"] = "1"
    return env


def run_wsi_ssl(args: Sequence[object], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run ``wsi-ssl ARGS`` as a separate process, as a user's shell does."""
    return subprocess.run(
        wsi_ssl_command(*args),
        capture_output=True,
        text=True,
        timeout=timeout,
        env=child_env(),
        cwd=REPO,
    )


def assert_one_line_error(err: str, *names: str) -> str:
    """stderr holds one ``wsi-ssl CMD: error: ...`` line naming ``names``, and no traceback."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err, err
    errors = [line for line in lines if ": error: " in line]
    assert len(errors) == 1, err
    for name in names:
        assert name in errors[0], (name, errors[0])
    return errors[0]


def corrupt_tile(src: Path, dst: Path, index: int, seed: int = 0) -> Path:
    """Copy ``src`` to ``dst`` with the bytes of tile ``index`` of the first page replaced by noise."""
    import tifffile

    shutil.copy(src, dst)
    with tifffile.TiffFile(dst) as tf:
        page = tf.pages[0]
        offset, count = int(page.dataoffsets[index]), int(page.databytecounts[index])
    data = bytearray(dst.read_bytes())
    noise = np.random.default_rng(seed).integers(0, 256, count, dtype=np.uint8)
    data[offset : offset + count] = noise.tobytes()
    dst.write_bytes(bytes(data))
    return dst


def nompp_copy(slide_path: Path, dst: Path) -> Path:
    """The slide's level 0 written again as a tiled TIFF without any pixel size."""
    import tifffile

    from napari_wsi_ssl.slide import open_slide

    with open_slide(slide_path) as slide:
        rgb = slide.read_region((0, 0), 0, slide.dimensions)
    tifffile.imwrite(dst, rgb, tile=(256, 256), photometric="rgb", compression="jpeg")
    return dst
