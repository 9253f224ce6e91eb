"""``wsi-ssl bench --quick --json``: every figure is there and positive (speed is never asserted)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from napari_wsi_ssl.cli import main

FIGURES = ("read", "infer_vs_model", "infer_vs_naive", "cpu_precision", "train_vs_model", "memory")


def test_bench_quick_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["bench", "--quick", "--json", "--work-dir", str(tmp_path)])
    assert rc == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for name in FIGURES:
        fig = result[name]
        assert {"value", "baseline", "ratio", "unit", "target"} <= set(fig), name
        assert fig["value"] > 0 and fig["baseline"] > 0, name
        assert math.isclose(fig["ratio"], fig["value"] / fig["baseline"], rel_tol=1e-9), name
    env = result["env"]
    assert env["device"] == "cpu" and env["torch"] and env["threads"] >= 1
    assert Path(env["slide"]).is_file()
    assert 0.0 <= result["cpu_precision"]["argmax_agreement"] <= 1.0
