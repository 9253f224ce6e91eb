"""The vocabulary: Rect conversions, the enums at argparse, the class table and Budget arithmetic."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from napari_wsi_ssl.errors import AnnotationError, TrainingError
from napari_wsi_ssl.geometry import Rect
from napari_wsi_ssl.vocab import (
    UNLABELLED,
    Budget,
    Mode,
    Preset,
    Task,
    class_names_for,
    class_value,
)


def test_rect_conversions_round_trip() -> None:
    r = Rect.from_xywh(100, 40, 300, 20)
    assert (r.x0, r.y0, r.x1, r.y1) == (100, 40, 400, 60)
    assert r.width == 300 and r.height == 20 and not r.empty
    assert Rect.from_xywh(*r.xywh) == r
    y0, x0, y1, x1 = r.yx_box
    assert Rect(x0, y0, x1, y1) == r
    assert Rect.parse("100,40,300,20") == r == Rect.coerce((100, 40, 300, 20))
    assert Rect.coerce(r) is r and Rect.coerce(None) is None
    with pytest.raises(ValueError):
        Rect.parse("1,2,3")
    with pytest.raises(ValueError):
        Rect(5, 0, 4, 1)


def test_rect_scaled_covers_and_clips() -> None:
    r = Rect(5, 6, 17, 31)
    coarse = r.scaled(1 / 4)  # a mask at downsample 4
    assert coarse == Rect(1, 1, 5, 8)  # floor of the start, ceil of the end
    back = coarse.scaled(4)
    assert back.x0 <= r.x0 and back.y0 <= r.y0 and back.x1 >= r.x1 and back.y1 >= r.y1
    assert Rect(0, 0, 6, 9).scaled(1 / 3) == Rect(0, 0, 2, 3)  # exact, despite 6 * (1/3)
    assert Rect.from_xywh(-50, 10, 100, 100).clipped(40, 60) == Rect(0, 10, 40, 60)
    assert Rect(50, 0, 60, 10).clipped(40, 40).empty
    assert Rect(0, 0, 10, 10).intersects(Rect(9, 9, 20, 20))
    assert not Rect(0, 0, 10, 10).intersects(Rect(10, 0, 20, 10))  # half-open: touching only


def test_rect_check_inside_is_the_one_error() -> None:
    assert Rect(-5, -5, 50, 50).check_inside(40, 30) == Rect(0, 0, 40, 30)
    with pytest.raises(AnnotationError, match=r"slide\.svs: the region .* outside the slide"):
        Rect.from_xywh(5000, 0, 64, 64).check_inside(2048, 2048, "slide.svs")


def test_make_grid_uses_the_part_of_the_region_on_the_slide() -> None:
    from napari_wsi_ssl.inference.tiling import make_grid

    grid = make_grid((1000, 800), 2.0, 64, 0, Rect.from_xywh(-100, 600, 400, 400))
    assert grid.origin == (0, 600) and grid.shape == (100, 150)
    assert make_grid((1000, 800), 2.0, 64, 0, (0, 600, 300, 200)).shape == (100, 150)
    with pytest.raises(AnnotationError, match="outside the slide"):
        make_grid((1000, 800), 2.0, 64, 0, Rect.from_xywh(1000, 0, 10, 10))


def test_enums_keep_the_strings_of_flags_and_checkpoints() -> None:
    assert Preset.values() == ("resnet34-ae", "unet-resnet34")
    assert Mode.values() == ("full", "frozen-encoder", "scratch")
    assert set(Task.values()) == {"reconstruct", "segment", "classify", "nuclei"}
    assert Mode.FROZEN_ENCODER == "frozen-encoder" and f"{Preset.UNET_RESNET34}" == "unet-resnet34"
    assert Mode.check("scratch", "mode") == "scratch" and type(Mode.check("full", "m")) is str
    with pytest.raises(TrainingError, match="unknown mode 'fancy'.*full, frozen-encoder, scratch"):
        Mode.check("fancy", "mode")


def test_cli_choices_come_from_the_enums() -> None:
    from napari_wsi_ssl.cli import build_parser

    parser = build_parser()
    args = parser.parse_args(
        ["finetune", "--scratch", "--patches", "p", "-o", "o.pt", "--mode", "frozen-encoder"]
    )
    assert args.mode == "frozen-encoder" and args.preset == "unet-resnet34"
    args = parser.parse_args(
        ["predict", "s.svs", "--model", "m.pt", "-o", "o", "--region", "1,2,3,4"]
    )
    assert args.region == Rect(1, 2, 4, 6)
    with pytest.raises(SystemExit):
        parser.parse_args(["pretrain", "s.svs", "-o", "a.pt", "--preset", "vit"])


def test_cli_prints_settings_as_its_flags(tmp_path, capsys) -> None:
    from PIL import Image

    from napari_wsi_ssl.cli import main
    from napari_wsi_ssl.cli._settings import with_flags

    assert with_flags("lower the 'patch_size' or 'mpp' setting") == "lower --patch-size or --mpp"
    assert with_flags("unknown mode 'x'") == "unknown mode 'x'"  # a quoted value is no setting
    Image.fromarray(np.full((32, 32, 3), 200, np.uint8)).save(tmp_path / "p.png")
    argv = ["pretrain", str(tmp_path), "-o", str(tmp_path / "a.pt"), "--patch-size", "32"]
    assert main([*argv, "--width", "8", "--device", "mps", "--steps", "1"]) == 2
    err = capsys.readouterr().err
    assert "MPS was asked for but is not available. set --device to cpu or auto." in err


def test_class_table() -> None:
    assert UNLABELLED == 0
    assert class_names_for([1, 2]) == ["background", "tumour", "normal"]
    assert class_names_for([4]) == ["background", "tumour", "normal", "class 3", "class 4"]
    named = class_names_for([1, 3], {1: "carcinoma", 3: "stroma", 0: "ignored"})
    assert named == ["background", "carcinoma", "normal", "stroma"]
    assert class_value("Tumor", ["background", "tumour"]) == 1
    assert class_value("3", None) == 3 and class_value("fat", ["background"]) is None


def test_budget_arithmetic() -> None:
    assert Budget.parse(2.7, "epochs") == Budget(2, "epochs")
    assert Budget.parse(0.2, "steps") == Budget(1, "steps")
    assert Budget.parse(1.5, "minutes") == Budget(1.5, "minutes")
    assert Budget.of(epochs=3, steps=5) == Budget(5, "steps") and Budget.of() is None
    assert Budget.of(epochs=3, minutes=2.0) == Budget(2.0, "minutes")
    assert Budget(3).total_steps(10) == 30 and Budget(7, "steps").total_steps(10) == 7
    assert Budget(1.0, "minutes").total_steps(10) is None
    assert not Budget(2).spent(step=999, elapsed_s=1e9, epoch=1) and Budget(2).spent(0, 0.0, 2)
    assert Budget(5, "steps").spent(5, 0.0) and not Budget(5, "steps").spent(4, 1e9)
    assert Budget(0.5, "minutes").spent(0, 30.0) and not Budget(0.5, "minutes").spent(9, 29.9)
    assert (
        Budget(0.5, "minutes").progress(0, 15.0, 4) == 0.5 and Budget(2).progress(2, 0, 4) == 0.25
    )
    assert [
        Budget(1).describe(),
        Budget(3, "steps").describe(),
        Budget(1.5, "minutes").describe(),
    ] == [
        "1 epoch",
        "3 steps",
        "1.5 minutes",
    ]
    with pytest.raises(TrainingError, match="must not be negative"):
        Budget(-1, "steps")
    with pytest.raises(TrainingError, match="whole"):
        Budget(1.5, "epochs")
    with pytest.raises(TrainingError, match="unknown budget unit 'hours'"):
        Budget.parse(1, "hours")


def test_configs_hold_one_budget() -> None:
    from napari_wsi_ssl.training import FinetuneConfig, PretrainConfig

    assert PretrainConfig().budget == Budget(200) and FinetuneConfig().budget == Budget(80)
    assert PretrainConfig(steps=3).budget == Budget(3, "steps")  # the shorthand builds it
    cfg = FinetuneConfig(budget=Budget(2.0, "minutes"))
    assert cfg.to_dict()["budget"] == {"value": 2.0, "unit": "minutes"}
    assert "steps" not in cfg.to_dict()


def test_vocabulary_loads_neither_torch_nor_napari() -> None:
    code = (
        "import sys, napari_wsi_ssl.vocab, napari_wsi_ssl.geometry; "
        "print(sorted(m for m in ('torch', 'napari', 'qtpy') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    assert np.array_equal(np.asarray(Rect(1, 2, 3, 4).xywh), [1, 2, 2, 2])


def test_enums_are_magicgui_choices(qtbot) -> None:
    from magicgui.widgets import ComboBox

    box = ComboBox(choices=Mode, value=Mode.FULL)
    box.value = Mode.FROZEN_ENCODER
    assert box.value == "frozen-encoder" and len(box.choices) == 3
    by_value = ComboBox(choices=Preset.values(), value="unet-resnet34")
    assert Preset(by_value.value) is Preset.UNET_RESNET34
