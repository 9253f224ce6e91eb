"""The documented nuclei build (docs/scripts/monuseg_nuclei.py) at a tiny size, end to end through
the CLI, and the default nuclei method it sets for the Predict dock."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from napari_wsi_ssl.evaluation.data import find_nuclei_pairs, read_image, read_labels
from napari_wsi_ssl.inference.nuclei_choice import CLASSICAL, best_nuclei, write_scores
from napari_wsi_ssl.models import load_checkpoint

SCRIPT = Path(__file__).resolve().parents[2] / "docs" / "scripts" / "monuseg_nuclei.py"


def _tiny_monuseg(src: Path, out: Path, n: int = 3, size: int = 192) -> Path:
    """``n`` crops of MoNuSeg images (0.25 µm/px) as a nuclei folder."""
    (out / "images").mkdir(parents=True)
    (out / "masks_instance_png").mkdir()
    for image, mask in find_nuclei_pairs(src)[:n]:
        Image.fromarray(read_image(image)[:size, :size]).save(out / "images" / image.name)
        crop = read_labels(mask)[:size, :size].astype(np.uint16)
        Image.fromarray(crop).save(out / "masks_instance_png" / mask.name)
    return out


@pytest.mark.slow
def test_build_script_end_to_end(shared_data: Path, tmp_path: Path) -> None:
    data = _tiny_monuseg(shared_data / "nuclei" / "monuseg_train_partial", tmp_path / "nuc")
    spec = importlib.util.spec_from_file_location("monuseg_nuclei", SCRIPT)
    assert spec is not None and spec.loader is not None
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    ckpt = tmp_path / "models" / "nuclei.pt"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        # fmt: off
        args = script.parse([
            "--data", str(data), "-o", str(ckpt), "--holdout", "1", "--steps", "2",
            "--width", "8", "--patch-size", "64", "--batch-size", "2", "--num-patches", "4",
            "--device", "cpu",
        ])
        # fmt: on
        scores = script.build(args)
    finally:
        torch.set_num_threads(threads)
    ck = load_checkpoint(ckpt)
    assert ck.task == "nuclei" and ck.mpp == 0.5  # the model records the µm/px it works at
    assert len(ck.train_config["held_out"]) == 1
    recorded = json.loads(ckpt.with_suffix(".json").read_text())
    assert recorded["held_out_images"] == 1 and recorded["model_mpp"] == 0.5
    for name in ("learned", "classical"):
        lo, hi = recorded[name]["ci"]["aji"]
        assert 0.0 <= lo <= recorded[name]["aji"] <= hi <= 1.0
    assert recorded["classical"]["aji"] > 0.05  # the classical path found nuclei in the crop
    choice = best_nuclei(ckpt)
    learned_wins = scores["learned"]["aji"] > scores["classical"]["aji"]
    assert (choice.checkpoint == ckpt) is learned_wins


def test_best_nuclei_reads_the_recorded_comparison(tmp_path: Path) -> None:
    ckpt = tmp_path / "nuclei.pt"
    assert best_nuclei(ckpt).label == CLASSICAL  # nothing built
    write_scores(ckpt, {"learned": {"aji": 0.6}, "classical": {"aji": 0.4}})
    assert best_nuclei(ckpt).checkpoint is None  # scores without the checkpoint itself
    ckpt.write_bytes(b"")
    choice = best_nuclei(ckpt)
    assert choice.checkpoint == ckpt and choice.label.startswith("learned (nuclei.pt)")
    write_scores(ckpt, {"learned": {"aji": 0.3}, "classical": {"aji": 0.4}})
    assert best_nuclei(ckpt).checkpoint is None and best_nuclei(ckpt).label == CLASSICAL
    ckpt.with_suffix(".json").write_text("{not json")
    assert best_nuclei(ckpt).label == CLASSICAL


def test_learned_split_separates_touching_nuclei() -> None:
    from napari_wsi_ssl.inference.nuclei import nuclei_from_probs

    yy, xx = np.mgrid[:40, :60]
    a = (yy - 20) ** 2 + (xx - 20) ** 2 < 12**2
    b = (yy - 20) ** 2 + (xx - 41) ** 2 < 12**2
    fg = (a | b).astype(np.float32) * 0.9
    bd = np.zeros_like(fg)
    bd[:, 30:32] = np.where(a | b, 0.8, 0.0)[:, 30:32]  # the predicted boundary where they touch
    fg[:, 30:32] = np.where(a | b, 0.15, 0.0)[:, 30:32]
    probs = np.stack([1 - fg - bd, fg, bd])
    labels = nuclei_from_probs(probs, mpp=0.5)
    assert labels.max() == 2
    assert labels[20, 20] != labels[20, 41] and labels[20, 20] > 0 and labels[20, 41] > 0
    assert labels[0, 0] == 0 and (labels > 0).sum() >= 0.95 * (a | b).sum()


def test_cli_refuses_what_cannot_be_scored_honestly(
    shared_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from napari_wsi_ssl.cli import main

    data = _tiny_monuseg(shared_data / "nuclei" / "monuseg_train_partial", tmp_path / "nuc", n=2)
    # a working µm/px needs the images' own, or nothing could be resampled
    args = ["finetune", "--scratch", "--nuclei", str(data), "--mpp", "0.5", "--steps", "1"]
    assert main([*args, "-o", str(tmp_path / "x.pt")]) != 0
    err = capsys.readouterr().err
    assert "images' own µm/px is unknown" in err and "--slide-mpp" in err
    assert main(["evaluate", "--nuclei", str(data), "--holdout", "2", "-o", str(tmp_path / "e")])
    err = capsys.readouterr().err
    assert "cannot hold out 2 of 2 images" in err and "Traceback" not in err


def test_probabilities_in_micrometres_and_their_flip_average(shared_data: Path) -> None:
    from types import SimpleNamespace

    from napari_wsi_ssl.evaluation.nuclei import nuclei_probs_um
    from napari_wsi_ssl.models import build_model

    torch.manual_seed(0)
    model = build_model("unet-resnet34", "nuclei", 3, 8, seg_head="decoder")
    ckpt = SimpleNamespace(model=model, mpp=0.5)
    image, _ = find_nuclei_pairs(shared_data / "nuclei" / "monuseg_train_partial")[0]
    rgb = read_image(image)[:128, :128]
    probs = nuclei_probs_um(ckpt, rgb, 0.25, "cpu")  # run on 64 px at 0.5 µm/px, back to 128
    assert probs.shape == (3, 128, 128)
    np.testing.assert_allclose(probs.sum(0), 1.0, atol=1e-4)
    # averaged over the 8 rotations and flips, the result turns with the image (at the model's
    # scale: a resampled turned image may differ by one grey level where PIL rounds)
    avg = nuclei_probs_um(ckpt, rgb, 0.5, "cpu", tta=True)
    turned = nuclei_probs_um(ckpt, np.ascontiguousarray(np.rot90(rgb)), 0.5, "cpu", tta=True)
    np.testing.assert_allclose(np.rot90(avg, 1, (1, 2)), turned, atol=1e-5)
    one = nuclei_probs_um(ckpt, rgb, 0.5, "cpu")
    assert float(np.abs(avg - one).max()) > 1e-3  # and differs from one pass
