"""``wsi-ssl bench --quick --only gui_vs_cli``: the GUI figure is measured with all five docks
open in a window that fits the screen (speed is never asserted)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from napari_wsi_ssl.cli import main

pytestmark = [pytest.mark.gui, pytest.mark.slow]


def test_gui_vs_cli_quick(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["bench", "--quick", "--json", "--only", "gui_vs_cli", "--work-dir", str(tmp_path)])
    assert rc == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(result) == {"gui_vs_cli"}, "only the GUI figure was measured"
    fig = result["gui_vs_cli"]
    assert fig["tiles"] > 0 and fig["value"] > 0 and fig["baseline"] > 0
    assert math.isclose(fig["ratio"], fig["value"] / fig["baseline"], rel_tol=1e-9)
    assert fig["stall_ms"] > 0 and fig["idle_stall_ms"] > 0
    # the longest stalls, each with the GUI thread's CPU time in it and the callback that owned it
    assert 0 < fig["stall_cpu_ms"] <= fig["stall_ms"] + 1
    for stall in fig["stalls"]:
        assert stall["ms"] > 50 and 0 <= stall["cpu_ms"] <= stall["ms"] + 1, stall
    (w, h), (sw, sh) = fig["window"], fig["screen"]
    assert w <= sw and h <= sh, "five docks open, the window fits the screen"


def test_gui_live_stall_quick(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["bench", "--quick", "--json", "--only", "gui_live_stall_ms"]
    assert main([*args, "--work-dir", str(tmp_path)]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(result) == {"gui_live_stall_ms"}
    fig = result["gui_live_stall_ms"]
    # a live round ran (it raises if the map was not refreshed) and the probe ticked in it
    assert len(fig["rounds_ms"]) == 1 and fig["rounds_ms"][0] >= 10 and fig["round_s"][0] > 0
    assert fig["value"] == pytest.approx(max(fig["rounds_ms"]), abs=0.1) and fig["baseline"] > 0
    assert math.isclose(fig["ratio"], fig["value"] / fig["baseline"], rel_tol=1e-9)
