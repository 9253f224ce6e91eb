"""The simulated annotator: rounds of strokes where suggested or at random, the map improving."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from napari_wsi_ssl.cli import main
from napari_wsi_ssl.evaluation.annotator import Maps, SimulationConfig, Truth, quality
from napari_wsi_ssl.evaluation.annotator import _suggested_strokes as suggested_strokes
from napari_wsi_ssl.evaluation.mosaic import centre_mask, mosaic_files

PNG = b"\x89PNG\r\n\x1a\n"


def _painted_by(strokes: list[dict], truth: np.ndarray, ds: float, side: int) -> np.ndarray:
    """Replay strokes: each paints a square of ``side`` level-0 px, clipped to its box, on known
    pixels (the module's rule); returns the stroke index + 1 of each pixel (0 = unpainted)."""
    out = np.zeros(truth.shape, np.int32)
    half = max(0, round(side / ds / 2))
    for i, s in enumerate(strokes):
        cy, cx = int(s["centre"][0] / ds), int(s["centre"][1] / ds)
        y0, x0, y1, x1 = cy - half, cx - half, cy + half + 1, cx + half + 1
        if s["box"] is not None:
            b = [int(np.ceil(v / ds - 0.5)) for v in s["box"]]
            y0, x0, y1, x1 = max(y0, b[0]), max(x0, b[1]), min(y1, b[2]), min(x1, b[3])
        y0, x0 = max(y0, 0), max(x0, 0)
        region = out[y0:y1, x0:x1]
        region[(truth[y0:y1, x0:x1] != 0) & (region == 0)] = i + 1
    return out


def test_simulation_on_the_synthetic_slide(tmp_path: Path, synthetic, capsys) -> None:
    out = tmp_path / "sim"
    code = main(
        [
            "simulate", str(synthetic.slide.parent), "-o", str(out), "--rounds", "2", "--k", "2",
            "--seeds", "0", "--strategies", "suggested,random", "--tile", "32", "--stroke", "64",
            "--cell", "8", "--mpp", str(synthetic.mpp * 2), "--json",
        ]
    )  # fmt: skip
    assert code == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    data = json.loads((out / "simulate.json").read_text())
    for metric in ("auc", "dice"):
        assert (out / f"simulate_{metric}.png").read_bytes()[:8] == PNG
    assert set(summary["auc_last"]) == {"suggested", "random"}
    from napari_wsi_ssl.synthetic import read_tissue_mask, read_tumour_mask

    tumour, tissue = read_tumour_mask(synthetic) > 0, read_tissue_mask(synthetic) > 0
    truth = np.where(tumour, 1, np.where(tissue, 2, 0))
    ds = float(synthetic.gt_downsample)
    for run in data["runs"]:
        q = run["quality"]
        assert len(q) == 3 and len(run["strokes"]) == 2 + 2 * 2
        # every stroke paints its true label
        for s in run["strokes"]:
            assert s["pixels"] > 0
            assert truth[int(s["centre"][0] / ds), int(s["centre"][1] / ds)] == s["label"]
        if run["strategy"] != "suggested":
            continue
        # the map gets better with the suggested strokes
        assert q[-1]["dice"] > q[0]["dice"] + 0.05
        assert q[-1]["auc"] > 0.95  # from 0.98 at round 0: the ranking stays (it moves +-0.01)
        # suggested strokes land in their suggestion's box, never where anything was painted
        painted = _painted_by(run["strokes"], truth, ds, 64)
        for i, s in enumerate(run["strokes"]):
            if s["round"] == 0:
                assert s["box"] is None
                continue
            y0, x0, y1, x1 = s["box"]
            assert y0 <= s["centre"][0] < y1 and x0 <= s["centre"][1] < x1
            b = [int(np.ceil(v / ds - 0.5)) for v in s["box"]]
            earlier = painted[b[0] : b[2], b[1] : b[3]]
            assert not ((earlier > 0) & (earlier <= i)).any()


def test_suggested_strokes_follow_the_uncertainty() -> None:
    truth = Truth(centre_mask(np.array([[1, 0], [0, 1]], np.uint8)), 1.0, None)
    labels = np.zeros(truth.labels.shape, np.uint8)
    labels[32:64, 32:64] = 1  # the top-left patch's centre is painted
    u = np.full((24, 24), 0.1, np.float32)  # map at 8 px per pixel
    u[:12, :12] = 0.9  # the painted patch: uncertain, but painted
    u[12:, :12] = 0.6  # bottom-left: the most uncertain unpainted patch
    u[18, 6] = 0.7  # ... most uncertain in the middle of its centre (level-0 y 144, x 48)
    maps = Maps(u.copy(), u, 8.0, (0.0, 0.0))
    config = SimulationConfig(k=1, stroke=16, cell=12)
    before = labels.copy()
    (stroke,) = suggested_strokes(labels, truth, maps, config, 1, "distance", None, None)
    assert stroke.box == (96, 0, 192, 96)
    assert stroke.label == 2 and stroke.pixels == 17 * 17
    new = labels != before
    ys, xs = np.nonzero(new)
    assert (ys.min(), ys.max(), xs.min(), xs.max()) == (136, 152, 40, 56)
    assert (labels[new] == truth.labels[new]).all()


def test_patch_quality_scores_centres() -> None:
    patches = np.array([[1, 0], [0, 1]], np.uint8)
    truth = Truth(centre_mask(patches), 1.0, patches)
    tumour = np.zeros((24, 24), np.float32)
    tumour[4:8, 4:8] = 0.9  # top-left centre (32-64 px) at 8 px per map pixel
    tumour[16:20, 16:20] = 0.8
    tumour[4:8, 16:20] = 0.85  # a normal patch scored between the two tumours
    maps = Maps(tumour, tumour, 8.0, (0.0, 0.0))
    painted = np.zeros(truth.labels.shape, bool)
    painted[40, 40] = True
    q = quality(maps, truth, painted)
    assert q["auc"] == pytest.approx(0.75)
    assert q["painted_patches"] == 1
    assert q["auc_unpainted"] == pytest.approx(0.5)


def test_simulation_on_a_pcam_mosaic(tmp_path: Path, shared_data: Path, capsys) -> None:
    out = tmp_path / "pcam"
    code = main(
        [
            "simulate", str(shared_data / "pcam" / "valid"), "-o", str(out), "--side", "6",
            "--rounds", "1", "--k", "2", "--seeds", "0", "--strategies", "suggested", "--json",
        ]
    )  # fmt: skip
    assert code == 0
    data = json.loads((out / "simulate.json").read_text())
    (run,) = data["runs"]
    assert [q["painted_patches"] for q in run["quality"]] == [2, 4]
    assert all(0 <= q["auc"] <= 1 for q in run["quality"])
    # strokes paint patch centres with the patch's label (1 tumour, 2 normal)
    files = mosaic_files(shared_data / "pcam" / "valid", 6, count=1, seed=0)[0]
    for s in run["strokes"]:
        y, x = s["centre"]
        assert 32 <= y % 96 < 64 and 32 <= x % 96 < 64 and s["pixels"] > 0
        assert s["label"] == (1 if files[(y // 96) * 6 + x // 96][1] else 2)


def test_a_bad_source_is_one_line(tmp_path: Path, capsys) -> None:
    assert main(["simulate", str(tmp_path), "-o", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "neither a synthetic slide folder" in err


def test_sampled_strokes_stay_in_unpainted_suggestions() -> None:
    truth = Truth(centre_mask(np.array([[1, 0, 1], [0, 1, 0], [1, 0, 1]], np.uint8)), 1.0, None)
    labels = np.zeros(truth.labels.shape, np.uint8)
    labels[128:160, 128:160] = 1  # the middle patch's centre is painted
    rng = np.random.default_rng(0)
    u = rng.uniform(0.2, 0.9, (36, 36)).astype(np.float32)
    maps = Maps(u, u, 8.0, (0.0, 0.0))
    config = SimulationConfig(k=3, stroke=16, cell=12)
    before = labels.copy()
    strokes = suggested_strokes(labels, truth, maps, config, 1, "sampled", None, rng)
    assert len(strokes) == 3
    assert len({s.box for s in strokes}) == 3
    for s in strokes:
        y0, x0, y1, x1 = s.box
        assert not before[y0:y1, x0:x1].any()
        assert y0 <= s.centre[0] < y1 and x0 <= s.centre[1] < x1
    assert ((labels != before) == (labels != 0) & (before == 0)).all()
