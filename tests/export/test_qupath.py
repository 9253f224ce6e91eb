"""QuPath GeoJSON both ways: annotations with class names and colours, the tumour region and
nuclei detections with their measurements out; annotations back into labels with their classes."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from napari_wsi_ssl.errors import AnnotationError
from napari_wsi_ssl.export import Placement, export_arrays, export_store
from napari_wsi_ssl.qupath import default_classes, parse_color, read_qupath_geojson


def _check_qupath_fields(doc: dict[str, Any], object_type: str) -> None:
    """The fields QuPath's GeoJSON import reads: type, geometry, objectType, classification."""
    assert doc["type"] == "FeatureCollection" and doc["features"]
    for feat in doc["features"]:
        assert feat["type"] == "Feature"
        assert feat["geometry"]["type"] == "Polygon"
        ring = np.asarray(feat["geometry"]["coordinates"][0])
        assert ring.ndim == 2 and ring.shape[1] == 2 and (ring[0] == ring[-1]).all()
        props = feat["properties"]
        assert props["objectType"] == object_type
        cls = props["classification"]
        assert isinstance(cls["name"], str) and cls["name"]
        assert len(cls["color"]) == 3 and all(isinstance(c, int) for c in cls["color"])
        if object_type == "detection":
            assert all(isinstance(v, (int, float)) for v in props["measurements"].values())


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max(1, (a | b).sum()))


def test_annotations_round_trip(tmp_path: Path) -> None:
    """Three painted classes (one QuPath does not know) out and back: same pixels, names, colours."""
    rng = np.random.default_rng(0)
    labels = np.zeros((300, 400), np.uint8)
    yy, xx = np.mgrid[:300, :400]
    labels[(yy - 120) ** 2 + (xx - 150) ** 2 < 70**2] = 1  # a tumour disc
    labels[200:280, 40:380] = 2  # a normal band
    labels[20:90, 260:380] = 3  # a third class
    labels[40:60, 300:330] = 0  # with a hole
    labels[rng.random(labels.shape) < 0.0005] = 0  # a few unlabelled specks
    out = tmp_path / "annotations.geojson"
    place = Placement(mpp=None, downsample=4.0, offset_level0=(1000.0, 500.0))
    names = {1: "tumour", 2: "normal", 3: "Stroma"}
    result = export_arrays(out, labels, "labels", place, class_names=names, instances=False)
    doc = json.loads(out.read_text())
    _check_qupath_fields(doc, "annotation")
    assert result.features == len(doc["features"])
    written = {f["properties"]["classification"]["name"] for f in doc["features"]}
    assert written == {"Tumor", "Normal", "Stroma"}
    colours = {
        f["properties"]["classification"]["name"]: tuple(f["properties"]["classification"]["color"])
        for f in doc["features"]
    }
    back, table = read_qupath_geojson(out, labels.shape, 4.0, offset=(1000.0, 500.0))
    # QuPath's "Tumor" is the project's tumour (1), "Normal" its normal (2); Stroma is new (3)
    assert {v: name for v, (name, _) in table.items()} == {1: "Tumor", 2: "Normal", 3: "Stroma"}
    assert {name: colour for name, colour in table.values()} == colours
    for value in (1, 2, 3):
        assert _iou(back == value, labels == value) >= 0.95, value
    # the same file at level 0 (downsample 1) covers the same level-0 area
    fine, _ = read_qupath_geojson(out, (1200, 1600), 1.0, offset=(1000.0, 500.0))
    coarse = fine.reshape(300, 4, 400, 4)[:, 1, :, 1]
    assert _iou(coarse == 1, labels == 1) >= 0.95


def test_unknown_classes_get_new_labels(tmp_path: Path) -> None:
    square = [[[10, 10], [50, 10], [50, 50], [10, 50], [10, 10]]]
    feats = [
        {"name": "Necrosis", "color": [10, 20, 30]},
        {"name": "Tumor", "color": -65536},  # QuPath's packed ARGB: red
        {"name": "Immune cells"},  # no colour: one is made up
        None,  # unclassified
    ]
    doc = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "geometry": {
                    "type": "Polygon",
                    "coordinates": [[[x + 60 * k, y] for x, y in square[0]]],
                },
                "properties": {"objectType": "annotation"}
                | ({"classification": cls} if cls else {}),
            }
            for k, cls in enumerate(feats)
        ]
        # a detection is not an annotation: left out
        + [
            {
                "type": "Feature",
                "geometry": {"type": "Polygon", "coordinates": square},
                "properties": {"objectType": "detection", "classification": {"name": "Nucleus"}},
            }
        ],
    }
    path = tmp_path / "qupath.geojson"
    path.write_text(json.dumps(doc))
    labels, table = read_qupath_geojson(path, (64, 256))
    assert table[1] == ("Tumor", (255, 0, 0))
    assert table[3] == ("Necrosis", (10, 20, 30))
    assert table[4][0] == "Immune cells" and table[4][1] not in {
        c for _, c in table.values() if _ != "Immune cells"
    }
    assert table[5][0] == "Unclassified"
    assert 2 not in table and "Nucleus" not in {n for n, _ in table.values()}
    assert labels[30, 30] == 3 and labels[30, 90] == 1 and labels[30, 150] == 4
    assert labels[30, 210] == 5
    assert parse_color([1, 2, 3, 4]) == (1, 2, 3) and parse_color("red") is None
    assert default_classes()[1][0] == "tumour"
    empty = tmp_path / "empty.geojson"
    empty.write_text(json.dumps({"type": "FeatureCollection", "features": []}))
    with pytest.raises(AnnotationError, match="no polygon annotation"):
        read_qupath_geojson(empty, (10, 10))
    bad = tmp_path / "bad.geojson"
    bad.write_text("{not json")
    with pytest.raises(AnnotationError, match="cannot read the GeoJSON"):
        read_qupath_geojson(bad, (10, 10))


def test_store_exports_tumour_annotations_and_measured_detections(
    synthetic_store: tuple[Any, Path], tmp_path: Path
) -> None:
    syn, store = synthetic_store
    tumour = tmp_path / "tumour.geojson"
    export_store(store, tumour, "tumour")
    doc = json.loads(tumour.read_text())
    _check_qupath_fields(doc, "annotation")
    assert {f["properties"]["classification"]["name"] for f in doc["features"]} == {"Tumor"}
    nuclei = tmp_path / "nuclei.geojson"
    export_store(store, nuclei, "nuclei")
    doc = json.loads(nuclei.read_text())
    _check_qupath_fields(doc, "detection")
    m = doc["features"][0]["properties"]["measurements"]
    for key in ("centroid_x_um", "area_um2", "perimeter_um", "eccentricity", "mean_haematoxylin"):
        assert key in m, key
    assert 0 <= m["tumour_probability"] <= 1 and m["tumour"] in (0.0, 1.0)
    table = tmp_path / "nuclei.csv"
    export_store(store, table, "nuclei")
    rows = list(csv.DictReader(table.open()))
    assert len(rows) == len(doc["features"]) or len(rows) <= len(doc["features"])
    assert {"tumour_probability", "tumour", "perimeter_um", "eccentricity"} <= set(rows[0])
    # the call agrees with the ground truth tumour mask at the centroids (the map is the truth)
    import tifffile

    truth = tifffile.imread(syn.tumour_mask) > 0
    ds = syn.gt_downsample
    calls = np.array([r["tumour"] == "True" for r in rows])
    x = np.array([float(r["centroid_x_px"]) for r in rows])
    y = np.array([float(r["centroid_y_px"]) for r in rows])
    at = truth[
        np.clip((y / ds).astype(int), 0, truth.shape[0] - 1),
        np.clip((x / ds).astype(int), 0, truth.shape[1] - 1),
    ]
    assert calls.any() and (~calls).any()
    assert (calls == at).mean() > 0.97
