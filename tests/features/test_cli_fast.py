"""``wsi-ssl finetune --mode fast``: a head checkpoint and its map from a mask, colour features only."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import zarr

from napari_wsi_ssl.cli import main


def test_finetune_fast_from_a_mask(
    tmp_path: Path, synthetic, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "head.pt"
    rc = main(
        [
            "finetune", "--scratch", "--mode", "fast", "--slide", str(synthetic.slide),
            "--mask", str(synthetic.tumour_mask), "--mpp", str(synthetic.mpp * 2),
            "-o", str(out), "--json",
        ]
    )  # fmt: skip
    assert rc == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["mode"] == "fast" and Path(result["checkpoint"]) == out and out.is_file()
    assert result["validation"]["val_balanced_accuracy"] > 0.8
    tumour = zarr.open_group(result["map"], mode="r")["tumour"]["0"][:]
    assert 0.02 < (tumour > 127).mean() < 0.3  # the synthetic tumour covers about 7 %
