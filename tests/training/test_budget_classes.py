"""A budget stops a real training where it says; painted class names come back from the checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from napari_wsi_ssl.events import Progress
from napari_wsi_ssl.models import load_checkpoint
from napari_wsi_ssl.training import FinetuneConfig, FinetuneData, PretrainConfig, finetune, pretrain
from napari_wsi_ssl.vocab import Budget

TINY = {"width": 8, "patch_size": 32, "batch_size": 4, "device": "cpu", "precision": "fp32"}


def _run(gen) -> tuple[list[Progress], Path]:
    steps = []
    while True:
        try:
            event = next(gen)
        except StopIteration as stop:
            return steps, stop.value
        if isinstance(event, Progress) and not event.metrics:
            steps.append(event)


def test_each_budget_stops_where_it_says(patch_folder: Path, tmp_path: Path) -> None:
    # 16 images in batches of 4: 4 steps an epoch
    steps, out = _run(
        pretrain([patch_folder], PretrainConfig(**TINY, budget=Budget(2)), tmp_path / "e.pt")
    )
    assert [p.step for p in steps] == list(range(1, 9)) and steps[-1].total == 8
    assert [e["epoch"] for e in load_checkpoint(out).history["epoch"]] == [1, 2]
    steps, out = _run(
        pretrain(
            [patch_folder], PretrainConfig(**TINY, budget=Budget(6, "steps")), tmp_path / "s.pt"
        )
    )
    assert [p.step for p in steps] == list(range(1, 7)) and steps[-1].total == 6
    assert load_checkpoint(out).train_config["budget"] == {"value": 6, "unit": "steps"}
    # a wall-clock budget shorter than one step: the run stops after its first step
    minutes = PretrainConfig(**TINY, budget=Budget(1e-4, "minutes"))
    steps, _ = _run(pretrain([patch_folder], minutes, tmp_path / "m.pt"))
    assert len(steps) == 1 and steps[0].total is None


def _painted(synthetic) -> np.ndarray:
    from napari_wsi_ssl.synthetic import read_tumour_mask

    gt = read_tumour_mask(synthetic)
    labels = np.zeros_like(gt, dtype=np.uint8)
    labels[::5][gt[::5] > 0] = 1
    labels[::5][gt[::5] == 0] = 2
    return labels


def test_painted_class_names_come_back_from_the_checkpoint(synthetic, tmp_path: Path) -> None:
    data = FinetuneData.from_arrays(
        synthetic.slide,
        _painted(synthetic),
        synthetic.gt_downsample,
        class_names={1: "carcinoma", 2: "stroma"},
    )
    cfg = FinetuneConfig(**TINY, mode="scratch", num_patches=8, budget=Budget(1, "steps"))
    _, out = _run(finetune(data, cfg, tmp_path / "named.pt"))
    assert load_checkpoint(out).class_names == ["background", "carcinoma", "stroma"]


def test_geojson_classification_names_reach_the_checkpoint(synthetic, tmp_path: Path) -> None:
    from napari_wsi_ssl.slide import open_slide

    with open_slide(synthetic.slide) as slide:
        w, h = slide.dimensions

    def square(x0: int, x1: int, name: str) -> dict:
        ring = [[x0, 0], [x1, 0], [x1, h], [x0, h], [x0, 0]]
        return {
            "type": "Feature",
            "geometry": {"type": "Polygon", "coordinates": [ring]},
            "properties": {"classification": {"name": name}},
        }

    doc = {
        "type": "FeatureCollection",
        "features": [square(0, w // 2, "Tumor"), square(w // 2, w, "Stroma")],
    }
    path = tmp_path / "labels.geojson"
    path.write_text(json.dumps(doc))
    data = FinetuneData.from_mask_file(synthetic.slide, path)
    assert data.class_names == {1: "Tumor", 2: "Stroma"}
    cfg = FinetuneConfig(**TINY, mode="scratch", num_patches=8, budget=Budget(1, "steps"))
    _, out = _run(finetune(data, cfg, tmp_path / "geo.pt"))
    assert load_checkpoint(out).class_names == ["background", "Tumor", "Stroma"]
