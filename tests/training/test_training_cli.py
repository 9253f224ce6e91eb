"""``wsi-ssl pretrain`` and ``wsi-ssl finetune`` on the real CMU slide and PCam patches."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from napari_wsi_ssl.cli import main
from napari_wsi_ssl.models import load_checkpoint


def _json(capsys: pytest.CaptureFixture[str]) -> dict:
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_cli_pretrain_then_finetune(
    cmu_svs: Path, shared_data: Path, tmp_path: Path, capsys
) -> None:
    ckpt = tmp_path / "ae.pt"
    common = ["--device", "cpu", "--precision", "fp32", "--batch-size", "4", "--json"]
    rc = main(
        [
            "pretrain",
            str(cmu_svs),
            "-o",
            str(ckpt),
            "--steps",
            "30",
            "--width",
            "8",
            "--patch-size",
            "32",
            "--mpp",
            "2.0",
            *common,
        ]
    )
    assert rc == 0
    res = _json(capsys)
    assert res["steps"] == 30 and res["checkpoint"] == str(ckpt)
    assert res["final_loss"] < res["first_loss"]
    assert load_checkpoint(ckpt).mpp == 2.0

    out = tmp_path / "cls.pt"
    rc = main(
        [
            "finetune",
            "--init",
            str(ckpt),
            "--patches",
            str(shared_data / "pcam" / "valid"),
            "-o",
            str(out),
            "--steps",
            "6",
            "--label-fraction",
            "0.1",
            *common,
        ]
    )
    assert rc == 0
    res = _json(capsys)
    assert (
        res["steps"] == 6
        and res["task"] == "classify"
        and res["classes"] == ["non-tumour", "tumour"]
    )
    assert 0.0 <= res["validation"]["val_acc"] <= 1.0
    ck = load_checkpoint(out)
    assert ck.task == "classify" and ck.patch_size == 32


def test_cli_errors_are_one_line(tmp_path: Path, capsys) -> None:
    rc = main(["finetune", "--scratch", "--patches", str(tmp_path), "-o", str(tmp_path / "x.pt")])
    assert rc == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "class folders" in err[0]
