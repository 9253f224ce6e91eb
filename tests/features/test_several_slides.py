"""Fine-tuning on several slides: ``--slide S --mask M`` pairs, one head over every slide's
cache, patches balanced across slides and classes, and class names that must agree."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import zarr

from napari_wsi_ssl.classes import unify_classes
from napari_wsi_ssl.cli import main
from napari_wsi_ssl.errors import AnnotationError
from napari_wsi_ssl.features import FeatureCache, load_head


@pytest.fixture(scope="module")
def second(tmp_path_factory: pytest.TempPathFactory):
    """Another, smaller synthetic slide (other seed, other tumour)."""
    from napari_wsi_ssl.synthetic import write_synthetic_slide

    return write_synthetic_slide(tmp_path_factory.mktemp("second"), size=1024, seed=1)


def test_finetune_fast_on_two_slides(
    tmp_path: Path, synthetic, second, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "head.pt"
    rc = main(
        [
            "finetune", "--scratch", "--mode", "fast",
            "--slide", str(synthetic.slide), "--mask", str(synthetic.tumour_mask),
            "--slide", str(second.slide), "--mask", str(second.tumour_mask),
            "--mpp", str(synthetic.mpp * 2), "-o", str(out), "--json",
        ]
    )  # fmt: skip
    assert rc == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["validation"]["slides"] == 2
    assert result["validation"]["val_balanced_accuracy"] > 0.8
    maps = {Path(k): Path(v) for k, v in result["maps"].items()}
    assert (
        set(maps) == {synthetic.slide, second.slide}
        and Path(result["map"]) == maps[synthetic.slide]
    )
    for slide, store in maps.items():
        tumour = zarr.open_group(str(store), mode="r")["tumour"]["0"][:]
        assert 0.01 < (tumour > 127).mean() < 0.35, slide  # tumour is a few % of each slide
    # one basis for both caches, so one head reads both
    caches = [FeatureCache.open(p) for p in tmp_path.glob("*.features.zarr")]
    assert len(caches) == 2
    assert caches[0].meta["basis_digest"] == caches[1].meta["basis_digest"]
    assert {c.meta["mpp"] for c in caches} == {synthetic.mpp * 2}
    assert load_head(out).head.class_names == ["tumour", "normal"]


def test_pairs_must_match(synthetic, second, tmp_path: Path, capsys) -> None:
    rc = main(
        [
            "finetune", "--scratch", "--mode", "fast",
            "--slide", str(synthetic.slide), "--mask", str(synthetic.tumour_mask),
            "--slide", str(second.slide), "-o", str(tmp_path / "h.pt"),
        ]
    )  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "2 --slide but 1 --mask" in err[0]


def test_same_name_is_same_class_and_disagreement_is_one_line() -> None:
    a = np.array([[0, 1, 2]], np.uint8)
    b = np.array([[0, 1, 3]], np.uint8)
    labels, names = unify_classes(
        [("a.tif", a, {1: "Tumour", 2: "stroma"}), ("b.tif", b, {1: "stroma", 3: "tumour"})]
    )
    assert names == {1: "Tumour", 2: "stroma"}
    assert labels[0].tolist() == [[0, 1, 2]] and labels[1].tolist() == [[0, 2, 1]]
    with pytest.raises(AnnotationError, match=r"b\.tif: label 1 is 'fat' here but 'Tumour'") as e:
        unify_classes([("a.tif", a, {1: "Tumour", 2: "stroma"}), ("b.tif", b, {1: "fat"})])
    assert "\n" not in str(e.value)


def test_full_mode_patches_balanced_across_slides_and_classes(synthetic, second) -> None:
    from napari_wsi_ssl.training import FinetuneConfig, FinetuneData
    from napari_wsi_ssl.training.finetune import _datasets

    parts = [FinetuneData.from_mask_file(s.slide, s.tumour_mask) for s in (synthetic, second)]
    # the first slide painted everywhere, the second with a single small tumour stroke
    small = parts[1].labels.copy()
    small[small == 1] = 0
    ys, xs = np.nonzero(parts[1].labels == 1)
    small[ys[:20], xs[:20]] = 1
    parts[1] = FinetuneData.from_arrays(second.slide, small, parts[1].labels_downsample)
    data = FinetuneData.several(parts)
    cfg = FinetuneConfig(task="segment", mode="scratch", num_patches=2000)
    train, _, names, _, _ = _datasets(data, cfg, 32, synthetic.mpp)
    ds = train.parts[0]
    assert names == ["background", "tumour", "normal"]
    slide_of = ds.coords[:, 0]
    # each class half the patches, each slide half of each class, however much was painted
    centre = [ds.labels[s].patch(x, y, 32, 1.0)[16, 16] for s, x, y in ds.coords]
    tumour = np.asarray(centre) == 1
    assert 0.4 < tumour.mean() < 0.6
    assert 0.4 < (slide_of[tumour] == 1).mean() < 0.6


def test_dock_request_full_mode_on_two_slides(
    synthetic, second, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Fine-tune dock's network-mode run hands both slides, classes unified, to training
    (which the CLI test above and test_full_mode_... cover; stopped here before it)."""
    from napari_wsi_ssl._napari.widgets import _finetune_run
    from napari_wsi_ssl.events import CancelToken, run_to_end
    from napari_wsi_ssl.training import FinetuneData

    handed = []

    def capture(data, config, out, init=None, plan=None, cancel=None):
        handed.append(data)
        return None
        yield

    monkeypatch.setattr(_finetune_run, "finetune_then_predict", capture)
    a, b = (FinetuneData.from_mask_file(s.slide, s.tumour_mask) for s in (synthetic, second))
    b_labels = np.where(b.labels == 1, 3, b.labels)  # the second slide paints tumour as 3
    request = _finetune_run.FinetuneRequest(
        task="segment", mode="scratch", init=None, out=tmp_path / "full.pt", budget=1,
        budget_unit="steps", patch_size=32, batch_size=2, num_patches=16, slide=synthetic.slide,
        labels=a.labels, labels_downsample=a.labels_downsample,
        class_names={1: "metastasis", 2: "normal"},
        others=(
            _finetune_run.OtherSlide(
                second.slide, b_labels, b.labels_downsample, {3: "Metastasis", 2: "normal"}
            ),
        ),
    )  # fmt: skip
    run_to_end(_finetune_run.finetune_run(request, CancelToken()))
    [data] = handed
    parts = data.slides()
    assert [p.slide for p in parts] == [synthetic.slide, second.slide]
    assert np.array_equal(parts[1].labels, b.labels)  # 3 "Metastasis" is 1 "metastasis"
    assert data.class_names == {1: "metastasis", 2: "normal"}
