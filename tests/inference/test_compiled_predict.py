"""``PredictConfig.compile``: the model compiled with torch.compile gives the plain model's map,
a failed compilation falls back to the plain model with a warning, and ``auto`` compiles only
CPU runs with many tiles."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import zarr

from napari_wsi_ssl.events import Log, run_to_end
from napari_wsi_ssl.inference import PredictConfig, predict_slide
from napari_wsi_ssl.synthetic import write_synthetic_slide


@pytest.fixture(scope="module")
def slide(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_synthetic_slide(tmp_path_factory.mktemp("compile") / "s", size=1024, seed=3).slide


def _run(slide: Path, ckpt: Path, out: Path, **kw: Any) -> tuple[np.ndarray, list[Log]]:
    cfg = PredictConfig(tile_size=128, margin=32, batch_size=4, device="cpu", **kw)
    events: list[Any] = []
    store = run_to_end(predict_slide(slide, ckpt, out, cfg), on_event=events.append)
    logs = [e for e in events if isinstance(e, Log)]
    return zarr.open_group(str(store), mode="r")["tumour"]["0"][:], logs


@pytest.mark.slow
def test_compiled_model_gives_the_plain_models_map(
    slide: Path, tiny_segment_ckpt: Path, tmp_path: Path
) -> None:
    torch.set_num_threads(1)
    plain, _ = _run(slide, tiny_segment_ckpt, tmp_path / "plain", compile="off")
    compiled, logs = _run(slide, tiny_segment_ckpt, tmp_path / "compiled", compile="on")
    assert any("compiled with torch.compile" in log.message for log in logs)
    assert not [log for log in logs if log.level == "warning"], "the compilation succeeded"
    assert plain.any(), "the map is not empty"
    # uint8 probabilities: fused kernels may round a rare pixel to the next level
    diff = np.abs(plain.astype(int) - compiled.astype(int))
    assert diff.max() <= 1 and (diff == 0).mean() > 0.999


def test_a_failed_compilation_falls_back_to_the_plain_model(
    slide: Path, tiny_segment_ckpt: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    torch.set_num_threads(1)

    def broken(model: Any, **kw: Any) -> Any:
        def run(x: Any) -> Any:
            raise RuntimeError("C++ compiler not found")

        return run

    plain, _ = _run(slide, tiny_segment_ckpt, tmp_path / "plain", compile="off")
    monkeypatch.setattr(torch, "compile", broken)
    fallback, logs = _run(slide, tiny_segment_ckpt, tmp_path / "broken", compile="on")
    warnings = [log.message for log in logs if log.level == "warning"]
    assert warnings and "torch.compile failed (RuntimeError: C++ compiler not found)" in warnings[0]
    np.testing.assert_array_equal(fallback, plain)


def test_auto_compiles_only_cpu_runs_with_many_tiles(
    slide: Path, tiny_segment_ckpt: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import napari_wsi_ssl.inference.jobs as jobs_module

    torch.set_num_threads(1)
    calls: list[int] = []

    def recording(model: Any, **kw: Any) -> Any:
        calls.append(1)
        return model  # "compiled" to itself: only the decision is under test here

    monkeypatch.setattr(torch, "compile", recording)
    _run(slide, tiny_segment_ckpt, tmp_path / "few", compile="auto")
    assert calls == [], "a small slide is not worth compiling"
    monkeypatch.setattr(jobs_module, "COMPILE_MIN_TILES", 4)
    _, logs = _run(slide, tiny_segment_ckpt, tmp_path / "many", compile="auto")
    assert calls == [1]
    assert any("compiled with torch.compile" in log.message for log in logs)
    with pytest.raises(Exception, match="compile must be"):
        PredictConfig(compile="always")
