"""Runs that stop: cancelled, interrupted with Ctrl-C, or killed outright.

What was finished stays valid: a checkpoint that loads, tiles that a rerun does not compute
again, and a final store equal to one of an uninterrupted run. Cancelling pretraining and
prediction through the CancelToken, the NaN stop and the out-of-memory halving are covered in
``tests/training`` and ``tests/inference``; here are fine-tuning's cancel and the real signals.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import zarr
from rel_helpers import REPO, child_env, wsi_ssl_command

from napari_wsi_ssl.events import CancelToken, Progress, run_to_end
from napari_wsi_ssl.models import load_checkpoint

pytestmark = pytest.mark.slow


def _start(args: list[object], log: Path) -> subprocess.Popen[bytes]:
    env = child_env()
    env["OMP_NUM_THREADS"] = str(torch.get_num_threads())  # the same arithmetic as this process
    return subprocess.Popen(
        wsi_ssl_command(*args), stdout=log.open("wb"), stderr=subprocess.STDOUT, env=env, cwd=REPO
    )


def _wait_for(condition, proc: subprocess.Popen[bytes], log: Path, timeout: float = 90) -> None:
    end = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            pytest.fail(f"the run ended before the test could stop it:\n{log.read_text()}")
        if time.monotonic() > end:
            proc.kill()
            pytest.fail(f"timed out waiting:\n{log.read_text()}")
        time.sleep(0.05)


@pytest.fixture(scope="module")
def patches(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four 40 px images: a pretraining epoch of two batches, saved at every epoch end."""
    from PIL import Image

    root = tmp_path_factory.mktemp("patches")
    rng = np.random.default_rng(0)
    for k in range(4):
        img = rng.integers(90, 230, (40, 40, 3), dtype=np.uint8)
        Image.fromarray(img).save(root / f"p{k}.png")
    return root


def test_cancel_finetune_keeps_a_loadable_checkpoint(small_slide, tmp_path: Path) -> None:
    from napari_wsi_ssl.slide import open_slide, tissue_mask
    from napari_wsi_ssl.training import FinetuneConfig, finetune
    from napari_wsi_ssl.training.data import FinetuneData

    with open_slide(small_slide.slide) as slide:
        mask, mds = tissue_mask(slide)
    labels = np.zeros(mask.shape, np.uint8)
    ys, xs = np.nonzero(mask)
    labels[ys[::5], xs[::5]] = 1
    labels[ys[2::5], xs[2::5]] = 2
    data = FinetuneData.from_arrays(small_slide.slide, labels, mds)
    cfg = FinetuneConfig(
        steps=50, batch_size=2, patch_size=32, mpp=2.0, width=8, mode="scratch", num_patches=16
    )
    token = CancelToken()
    out = tmp_path / "ft.pt"
    gen = finetune(data, cfg, out, cancel=token)
    steps = []
    while True:
        try:
            event = next(gen)
        except StopIteration as stop:
            assert stop.value == out
            break
        if isinstance(event, Progress) and event.metrics == {}:
            steps.append(event.step)
            if event.step == 3:
                token.cancel()
    assert max(steps) == 3, "the run stopped at the next step"
    ck = load_checkpoint(out)
    assert ck.resume is not None and ck.resume["step"] == 3
    assert ck.task == "segment"


def test_ctrl_c_then_kill_during_pretrain(patches: Path, tmp_path: Path) -> None:
    out = tmp_path / "ae.pt"
    args = ["pretrain", patches, "-o", out, "--width", "8", "--patch-size", "32"]
    args += ["--batch-size", "2", "--device", "cpu", "--precision", "fp32"]
    log = tmp_path / "log.txt"
    # Ctrl-C: the run saves where it is and says so; exit code 130
    proc = _start([*args, "--steps", "100000"], log)
    _wait_for(out.exists, proc, log)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=60) == 130, log.read_text()
    assert "cancelled" in log.read_text() and "Traceback" not in log.read_text()
    first = load_checkpoint(out)
    assert first.resume is not None and first.resume["step"] >= 2
    # SIGKILL while it resumes and saves every epoch: no half-written file takes the name
    proc = _start([*args, "--steps", "100000", "--resume"], log)
    before = out.stat().st_mtime_ns
    _wait_for(lambda: out.stat().st_mtime_ns != before, proc, log)
    time.sleep(0.2)
    proc.kill()
    proc.wait(timeout=30)
    killed = load_checkpoint(out)  # whatever is at the name is whole
    step = killed.resume["step"]
    assert step > first.resume["step"]
    # a later run trusts that checkpoint and finishes from it
    done = subprocess.run(
        wsi_ssl_command(*args, "--steps", step + 1, "--resume", "--json"),
        capture_output=True,
        text=True,
        timeout=120,
        env=child_env(),
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr
    assert load_checkpoint(out).resume["step"] == step + 1


@pytest.fixture(scope="module")
def ckpt_fine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A width-8 segmentation checkpoint at the slide's own 0.5 µm/px: many small tiles."""
    from napari_wsi_ssl.models import build_model, save_checkpoint

    torch.manual_seed(1)
    model = build_model("unet-resnet34", "segment", num_classes=2, width=8)
    return save_checkpoint(
        tmp_path_factory.mktemp("fine") / "seg.pt", model.eval(), mpp=0.5, patch_size=32
    )


def _done_tiles(out: Path) -> int:
    stores = list(out.glob("*.ome.zarr"))
    if not stores or not (stores[0] / "tumour" / "done" / ".zarray").exists():
        return 0
    try:
        return int(zarr.open_group(str(stores[0]), mode="r")["tumour/done"][:].sum())
    except Exception:  # caught between two writes of the chunk file
        return 0


def test_ctrl_c_and_kill_during_predict_then_resume(
    small_slide, ckpt_fine: Path, tmp_path: Path
) -> None:
    from napari_wsi_ssl.inference import PredictConfig, predict_slide

    region = (0, 0, 320, 320)  # 10 x 10 tiles of 32 px
    config = PredictConfig(tile_size=32, batch_size=1, device="cpu")
    reference = run_to_end(
        predict_slide(small_slide.slide, ckpt_fine, tmp_path / "reference", config, region=region)
    )
    out = tmp_path / "out"
    args = ["predict", small_slide.slide, "--model", ckpt_fine, "-o", out, "--tile-size", "32"]
    args += ["--batch-size", "1", "--device", "cpu", "--region", ",".join(map(str, region))]
    log = tmp_path / "log.txt"

    proc = _start(args, log)
    _wait_for(lambda: _done_tiles(out) >= 8, proc, log)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=60) == 130, log.read_text()
    assert "Traceback" not in log.read_text()
    after_ctrl_c = _done_tiles(out)

    proc = _start(args, log)
    _wait_for(lambda: _done_tiles(out) >= after_ctrl_c + 8, proc, log)
    proc.kill()
    proc.wait(timeout=30)
    after_kill = _done_tiles(out)
    store = next(out.glob("*.ome.zarr"))
    total = int(np.asarray(zarr.open_group(str(store), mode="r")["tumour/done"]).size)
    assert after_ctrl_c < after_kill < total

    done = subprocess.run(
        wsi_ssl_command(*args, "--json"),
        capture_output=True,
        text=True,
        timeout=120,
        env=child_env(),
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr
    assert Path(json.loads(done.stdout.strip().splitlines()[-1])["slides"][0]["store"]) == store
    final = zarr.open_group(str(store), mode="r")
    ref = zarr.open_group(str(reference), mode="r")
    computed = final["tumour"].attrs["tiles_computed"]
    assert computed <= total - after_kill, "the rerun computed only the missing tiles"
    for level in ("0", "1"):
        np.testing.assert_array_equal(final[f"tumour/{level}"][:], ref[f"tumour/{level}"][:])
