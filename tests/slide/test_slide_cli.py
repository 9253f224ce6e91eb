"""``wsi-ssl info`` and ``wsi-ssl synth`` through the real front end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "napari_wsi_ssl.cli", *args], capture_output=True, text=True
    )


def test_info_json_on_cmu(cmu_svs: Path) -> None:
    out = _cli("info", str(cmu_svs), "--json")
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout.strip().splitlines()[-1])
    assert info["dimensions"] == [2220, 2967]
    assert info["level_count"] == 1
    assert info["level_dimensions"] == [[2220, 2967]]
    assert info["mpp"] == pytest.approx([0.499, 0.499])
    assert info["vendor"] == "aperio"
    assert 0.1 < info["tissue_fraction"] < 0.7


def test_info_text_and_bad_file(tmp_path: Path, cmu_svs: Path) -> None:
    out = _cli("info", str(cmu_svs))
    assert out.returncode == 0 and "0.499" in out.stdout and "aperio" in out.stdout
    bad = tmp_path / "notes.svs"
    bad.write_text("hello")
    out = _cli("info", str(bad))
    assert out.returncode == 2
    assert (
        out.stdout == "" and len(out.stderr.strip().splitlines()) == 1 and "notes.svs" in out.stderr
    )


def test_synth_then_info(tmp_path: Path) -> None:
    out = _cli(
        "synth", str(tmp_path / "syn"), "--size", "768", "--seed", "2", "--mpp", "0.25", "--json"
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert Path(result["slide"]).is_file() and result["size"] == 768
    info = json.loads(_cli("info", result["slide"], "--json").stdout.strip().splitlines()[-1])
    assert info["dimensions"] == [768, 768] and info["mpp"] == pytest.approx([0.25, 0.25])
    assert info["vendor"] == "generic-tiff" and info["level_count"] == 1
