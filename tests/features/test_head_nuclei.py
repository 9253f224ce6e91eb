"""A fast-mode head and nuclei in one prediction: the head's maps through the feature cache and
the classical nuclei in the same store, by ``predict_slide`` and by ``wsi-ssl predict``; a
cancel during the nuclei keeps the map, and the next call computes only the nuclei left."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr

from napari_wsi_ssl.cli import main
from napari_wsi_ssl.errors import CancelledError
from napari_wsi_ssl.events import CancelToken, Log, StoreReady, TilesDone, run_to_end
from napari_wsi_ssl.inference import PredictConfig, predict_slide
from napari_wsi_ssl.metrics import aji
from napari_wsi_ssl.synthetic import read_nuclei_labels

#: x, y, w, h level-0 px: a quarter of the slide, 16 nuclei tiles of 256 px.
REGION = (512, 512, 1024, 1024)
NUCLEI = PredictConfig(nuclei=True, nuclei_tile_size=256)


def _nuclei_phase(events: list[Any]) -> int:
    """Index of the nuclei job's first line in ``events``."""
    return next(
        i for i, e in enumerate(events) if isinstance(e, Log) and e.message.startswith("nuclei:")
    )


def test_head_and_classical_nuclei_in_one_store(tmp_path: Path, fast_head: Path, synthetic) -> None:
    events: list[Any] = []
    store = run_to_end(
        predict_slide(synthetic.slide, fast_head, tmp_path, NUCLEI, region=REGION), events.append
    )
    root = zarr.open_group(str(store), mode="r")
    assert {"tumour", "uncertainty", "nuclei"} <= set(root.group_keys())
    assert root["tumour"].attrs["complete"] and root["nuclei"].attrs["complete"]
    assert [p.name for p in tmp_path.glob("*.ome.zarr")] == [store.name]  # one store
    # the map is the head's, as a head-only call writes it (the same store, the same pixels)
    only = run_to_end(
        predict_slide(synthetic.slide, fast_head, tmp_path / "only", PredictConfig(), region=REGION)
    )
    assert only.name == store.name
    np.testing.assert_array_equal(
        root["tumour"]["0"][:], zarr.open_group(str(only), mode="r")["tumour"]["0"][:]
    )
    assert root["tumour"]["0"][:].max() > 127
    # the nuclei are the classical ones where the slide has nuclei
    labels = root["nuclei"]["0"][:]
    expected = read_nuclei_labels(synthetic, region=REGION)
    assert labels.shape == expected.shape and labels.max() > 0
    assert ((labels > 0) & (expected > 0)).sum() > 0.6 * (expected > 0).sum()
    assert aji(expected, labels) >= 0.6
    # progress of both phases: the map whole before the nuclei's tiles, then those
    phase = _nuclei_phase(events)
    before, after = events[:phase], events[phase:]
    assert any(isinstance(e, StoreReady) for e in before)
    assert [e for e in before if isinstance(e, TilesDone)][-1].done > 0
    nuclei = [e for e in after if isinstance(e, TilesDone)]
    assert nuclei[-1].done == nuclei[-1].total == 16
    # a repeated call computes nothing
    again: list[Any] = []
    run_to_end(
        predict_slide(synthetic.slide, fast_head, tmp_path, NUCLEI, region=REGION), again.append
    )
    assert any(isinstance(e, Log) and "nothing to do" in e.message for e in again)


def test_a_cancel_during_the_nuclei_keeps_the_map_and_resumes(
    tmp_path: Path, fast_head: Path, synthetic
) -> None:
    token = CancelToken()
    events: list[Any] = []

    def on_event(event: Any) -> None:
        events.append(event)
        in_nuclei = any(isinstance(e, Log) and e.message.startswith("nuclei:") for e in events)
        if in_nuclei and isinstance(event, TilesDone) and event.done > 0:
            token.cancel()

    with pytest.raises(CancelledError):
        run_to_end(
            predict_slide(
                synthetic.slide, fast_head, tmp_path, NUCLEI, region=REGION, cancel=token
            ),
            on_event,
        )
    (store,) = tmp_path.glob("*.ome.zarr")
    root = zarr.open_group(str(store), mode="r")
    assert root["tumour"].attrs["complete"] and root["tumour"]["0"][:].max() > 127
    done = int(root["nuclei"]["done"][:].sum())
    assert 0 < done < 16 and not root["nuclei"].attrs.get("complete")
    # the next call: the map is kept, only the nuclei left are computed
    rest: list[Any] = []
    again = run_to_end(
        predict_slide(synthetic.slide, fast_head, tmp_path, NUCLEI, region=REGION), rest.append
    )
    assert again == store
    nuclei = [e for e in rest[_nuclei_phase(rest) :] if isinstance(e, TilesDone)]
    assert nuclei[-1].total == 16 - done
    whole = run_to_end(
        predict_slide(synthetic.slide, fast_head, tmp_path / "whole", NUCLEI, region=REGION)
    )
    np.testing.assert_array_equal(
        zarr.open_group(str(again), mode="r")["nuclei"]["0"][:],
        zarr.open_group(str(whole), mode="r")["nuclei"]["0"][:],
    )


def test_wsi_ssl_predict_a_head_with_nuclei_on_two_slides(
    tmp_path: Path, fast_head: Path, synthetic, capsys: pytest.CaptureFixture[str]
) -> None:
    second = tmp_path / "second.tif"
    shutil.copy(synthetic.slide, second)
    region = ",".join(str(v) for v in REGION)
    args = ["--model", str(fast_head), "--nuclei", "--region", region, "--json"]
    rc = main(["predict", str(synthetic.slide), str(second), "-o", str(tmp_path / "out"), *args])
    assert rc == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["succeeded"] == 2 and summary["failed"] == 0
    for entry in summary["slides"]:
        root = zarr.open_group(entry["store"], mode="r")
        assert {"tumour", "uncertainty", "nuclei"} <= set(root.group_keys())
        assert root["nuclei"].attrs["complete"] and root["nuclei"]["0"][:].max() > 0
        assert root["tumour"].attrs["complete"]
