"""``wsi-ssl demo``: the whole user's path, headless, on the synthetic slide or a given one.

synth -> pretrain -> fine-tune from strokes drawn out of the ground-truth mask (standing in for
brush strokes) -> the tumour map and nuclei -> evaluate against the ground truth -> export -> a
napari screenshot. The default fine-tuning is the GUI's fast mode (the slide's feature cache and a
light head); ``--mode full`` runs the papers' full fine-tuning instead. Budgets are in steps, so
the result does not depend on how busy the machine is. Everything lands in one folder, described by ``result.json``, which
``wsi-ssl view`` opens.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from .._atomic import atomic_write_text
from ..errors import WsiSslError
from ..evaluation.masks import map_on_mask_grid
from ..export import ExportSettings, export_store
from ..inference import PredictConfig, predict_slide
from ..metrics import segmentation_metrics
from ..metrics.instances import aji
from ..synthetic import (
    load_synthetic_slide,
    read_nuclei_labels,
    read_tumour_mask,
    write_synthetic_slide,
)
from ..vocab import Budget, BudgetUnit, Mode, Preset, Task
from ._pixels import add_slide_mpp, require_pixel_size
from ._progress import drive


def _budget(steps: int, minutes: float | None) -> Budget:
    """The minutes when they are given, else the steps (which have a default)."""
    if minutes is not None:
        return Budget(minutes, BudgetUnit.MINUTES.value)
    return Budget(steps, BudgetUnit.STEPS.value)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-o", "--out", type=Path, default=Path("demo_out"), help="output folder")
    parser.add_argument("--slide", type=Path, help="run on this slide instead of the synthetic one")
    parser.add_argument(
        "--mask", type=Path, help="tumour mask or GeoJSON of --slide, for fine-tuning"
    )
    parser.add_argument("--size", type=int, default=4096, help="synthetic slide size in px")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--mpp", type=float, default=2.0, help="working resolution (µm/px)")
    add_slide_mpp(parser)
    parser.add_argument("--patch-size", type=int, default=128)
    parser.add_argument("--width", type=int, default=16, help="model width (64 is full ResNet34)")
    parser.add_argument(
        "--mode",
        choices=("fast", "full"),
        default="fast",
        help="fast: feature cache and light head (the GUI's default); full: the papers' fine-tuning",
    )
    parser.add_argument(
        "--strokes", type=int, default=30, help="strokes per class drawn from --mask"
    )
    parser.add_argument("--pretrain-steps", type=int, default=150, help="pretraining budget")
    parser.add_argument("--finetune-steps", type=int, default=300, help="--mode full budget")
    parser.add_argument("--pretrain-minutes", type=float, help="a time budget instead of steps")
    parser.add_argument("--finetune-minutes", type=float, help="a time budget instead of steps")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--no-screenshot", action="store_true", help="skip demo.png")


def run(args: argparse.Namespace) -> dict[str, Any]:
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    result: dict[str, Any] = {"out": str(out.resolve())}

    def step(name: str) -> _Timer:
        return _Timer(name, timings)

    # 1. the slide
    truth: Any = None
    if args.slide is None:
        with step("synth"):
            syn_dir = out / "synthetic"
            syn = load_synthetic_slide(syn_dir)
            if syn is None or syn.size != args.size or syn.seed != args.seed:
                syn = write_synthetic_slide(syn_dir, size=args.size, seed=args.seed)
        slide_path, mask_path, truth = syn.slide, syn.tumour_mask, syn
        result["ground_truth"] = {
            "tumour_mask": str(syn.tumour_mask),
            "nuclei": str(syn.nuclei_labels),
        }
    else:
        if not args.slide.exists():
            raise WsiSslError("no such slide", args.slide)
        slide_path, mask_path = args.slide, args.mask
    require_pixel_size([slide_path], args.slide_mpp)
    result["slide"] = str(Path(slide_path).resolve())
    _say(f"slide: {slide_path}")

    # 2. self-supervised pretraining
    # torch: the CLI's parser imports every cli module
    from ..training import FinetuneConfig, FinetuneData, PretrainConfig, finetune, pretrain

    ckpt_dir = out / "checkpoints"
    pre_cfg = PretrainConfig(
        preset=Preset.UNET_RESNET34.value,
        width=args.width,
        mpp=args.mpp,
        slide_mpp=args.slide_mpp,
        patch_size=args.patch_size,
        batch_size=8,
        budget=_budget(args.pretrain_steps, args.pretrain_minutes),
        device=args.device,
        preview_every=10**9,
    )
    with step("pretrain"):
        pretrained = drive(pretrain([slide_path], pre_cfg, ckpt_dir / "pretrained.pt"), "pretrain")
    result["pretrained"] = str(Path(pretrained).resolve())

    # 3. fine-tuning from strokes drawn out of the mask (the brush strokes of the GUI)
    model_path = None
    stores: list[Path] = []
    if mask_path is not None:
        data = FinetuneData.from_mask_file(slide_path, mask_path, slide_mpp=args.slide_mpp)
        assert data.labels is not None
        labels = demo_strokes(data.labels, args.strokes, seed=args.seed)
        result["strokes"] = {
            "per_class": args.strokes,
            "labelled_fraction": round(float((labels > 0).mean()), 4),
        }
        if args.mode == "fast":
            # torch: the CLI's parser imports every cli module
            from ..features import FeatureConfig, HeadConfig, fast_finetune

            with step("finetune"):
                fast = drive(
                    fast_finetune(
                        slide_path,
                        labels,
                        data.labels_downsample,
                        pretrained,
                        ckpt_dir,
                        FeatureConfig(slide_mpp=args.slide_mpp, device=args.device),
                        head_config=HeadConfig(),  # the default, the regularised MLP
                        head_path=ckpt_dir / "head.pt",
                        cache_dir=out / "predictions",
                    ),
                    "fine-tune (fast)",
                )
            model_path, tumour_store = fast.head, fast.store
            stores.append(Path(tumour_store))
            result["fast_seconds"] = {k: round(v, 2) for k, v in fast.seconds.items()}
        else:
            ft_cfg = FinetuneConfig(
                task=Task.SEGMENT.value,
                mode=Mode.FULL.value,
                preset=Preset.UNET_RESNET34.value,
                width=args.width,
                batch_size=8,
                budget=_budget(args.finetune_steps, args.finetune_minutes),
                num_patches=512,
                device=args.device,
                preview_every=10**9,
            )
            strokes = FinetuneData.from_arrays(
                slide_path, labels, data.labels_downsample, slide_mpp=args.slide_mpp
            )
            with step("finetune"):
                model_path = drive(
                    finetune(strokes, ft_cfg, ckpt_dir / "finetuned.pt", init=pretrained),
                    "fine-tune",
                )
        result["checkpoint"] = str(Path(model_path).resolve())
    else:
        _say("no --mask given: skipping fine-tuning and the tumour map")

    # 4. whole-slide prediction: the tumour map (full mode; fast mode has it already) and nuclei

    with step("predict"):
        full_model = model_path if args.mode == "full" else None
        store = drive(
            predict_slide(
                slide_path,
                full_model,
                out / "predictions",
                PredictConfig(
                    nuclei=True, device=args.device, batch_size=16, slide_mpp=args.slide_mpp
                ),
            ),
            "predict",
        )
    stores.append(Path(store))
    result["prediction"] = str(Path(store).resolve())
    result["nuclei"] = "classical"  # the Predict dock's name for the watershed run above
    result["stores"] = [str(p.resolve()) for p in stores]
    tumour_store = stores[0] if model_path is not None else None

    # 5. evaluation against the ground truth
    if truth is not None:
        with step("evaluate"):
            result["metrics"] = _evaluate(tumour_store, Path(store), truth)
        _say("metrics: " + ", ".join(f"{k} {v:.3f}" for k, v in result["metrics"].items()))

    # 6. exports
    with step("export"):
        result["exports"] = _export(tumour_store, Path(store), out / "exports")

    # 7. the napari screenshot
    (out / "result.json").write_text(json.dumps(result, indent=2))
    if not args.no_screenshot:
        with step("screenshot"):
            result["screenshot"] = str(_screenshot(out))
    result["seconds"] = {k: round(v, 1) for k, v in timings.items()}
    result["total_seconds"] = round(sum(timings.values()), 1)

    atomic_write_text(out / "result.json", json.dumps(result, indent=2))
    _say("")
    _say(f"done in {result['total_seconds']:.0f} s; everything is in {out}/:")
    for key in ("slide", "pretrained", "checkpoint", "prediction", "screenshot"):
        if key in result:
            _say(f"  {key:11s} {result[key]}")
    for path in result["exports"].values():
        _say(f"  {'export':11s} {path}")
    _say(f"open it in napari with:  wsi-ssl view {out}")
    return result


class _Timer:
    def __init__(self, name: str, into: dict[str, float]) -> None:
        self.name, self.into = name, into

    def __enter__(self) -> None:
        self.start = time.perf_counter()
        _say(f"== {self.name}")

    def __exit__(self, *exc: object) -> None:
        self.into[self.name] = time.perf_counter() - self.start


def _say(line: str) -> None:
    print(line, flush=True)


def demo_strokes(mask: np.ndarray, per_class: int, seed: int = 0) -> np.ndarray:
    """Brush strokes drawn from a full mask (1 tumour, 2 normal, 0 unknown): ``per_class`` discs
    of each class, each well inside its class, the rest of the slide left unlabelled."""
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    out = np.zeros_like(mask, dtype=np.uint8)
    radius = max(2, min(mask.shape) // 80)
    yy, xx = np.mgrid[-radius : radius + 1, -radius : radius + 1]
    disc = yy**2 + xx**2 <= radius**2
    for value in (1, 2):
        inside = ndimage.binary_erosion(mask == value, disc, iterations=1)
        ys, xs = np.nonzero(inside)
        if len(ys) == 0:
            ys, xs = np.nonzero(mask == value)
        for k in rng.choice(len(ys), size=min(per_class, len(ys)), replace=False):
            y, x = ys[k], xs[k]
            sy = slice(max(0, y - radius), y + radius + 1)
            sx = slice(max(0, x - radius), x + radius + 1)
            d = disc[
                sy.start - y + radius : sy.stop - y + radius,
                sx.start - x + radius : sx.stop - x + radius,
            ]
            out[sy, sx][d & (mask[sy, sx] == value)] = value
    return out


def _evaluate(tumour_store: Path | None, nuclei_store: Path, syn: Any) -> dict[str, float]:
    """Dice of the tumour map and AJI of the nuclei against the synthetic ground truth."""
    import numpy as np
    import zarr

    metrics: dict[str, float] = {}
    if tumour_store is not None:
        truth = read_tumour_mask(syn)
        prob = map_on_mask_grid(tumour_store, truth.shape, syn.gt_downsample, (syn.mpp, syn.mpp))
        seg = segmentation_metrics(truth.astype(np.int64), (prob >= 0.5).astype(np.int64))
        metrics["tumour_dice"] = float(seg["dice"])
        metrics["tumour_miou"] = float(seg["miou"])
    root = zarr.open_group(str(nuclei_store), mode="r")
    if "nuclei" in root:
        # a central crop at level 0 keeps the comparison cheap on big slides
        size = min(1024, syn.size)
        y0 = x0 = (syn.size - size) // 2
        truth_n = read_nuclei_labels(syn, (x0, y0, size, size))
        pred_n = np.asarray(root["nuclei"]["0"][y0 : y0 + size, x0 : x0 + size])
        metrics["nuclei_aji"] = float(aji(truth_n, pred_n))
    return metrics


def _export(tumour_store: Path | None, nuclei_store: Path, folder: Path) -> dict[str, str]:
    """Every export format, through the entry point of ``wsi-ssl export``."""
    folder.mkdir(parents=True, exist_ok=True)
    jobs = [
        (nuclei_store, "nuclei", "nuclei.geojson", False),
        (nuclei_store, "nuclei", "nuclei.csv", False),
        (nuclei_store, "nuclei", "nuclei.ome.tif", False),
    ]
    if tumour_store is not None:
        jobs = [
            (tumour_store, "tumour", "tumour_mask.ome.tif", False),
            (tumour_store, "tumour", "tumour_mask.ome.zarr", False),
            (tumour_store, "tumour", "tumour.geojson", False),
            (tumour_store, "tumour", "tumour_probability.png", True),
            *jobs,
        ]
    written: dict[str, str] = {}
    for store, layer, name, probability in jobs:
        result = export_store(
            store, folder / name, layer, settings=ExportSettings(values=probability)
        )
        for warning in result.warnings:
            _say(f"  warning: {warning}")
        written[name] = str(result.path.resolve())
    return written


def _screenshot(out: Path) -> Path:
    """Run ``wsi-ssl view --screenshot`` in a child process, under Xvfb when there is no display."""
    import os
    import shutil
    import subprocess
    import sys

    target = out / "demo.png"
    cmd = [
        sys.executable,
        "-m",
        "napari_wsi_ssl.cli",
        "view",
        str(out),
        "--screenshot",
        str(target),
    ]
    if not os.environ.get("DISPLAY"):
        xvfb = shutil.which("xvfb-run")
        if xvfb is None:
            raise WsiSslError(
                "no display and no xvfb-run for the screenshot",
                target,
                "install xvfb or pass --no-screenshot",
            )
        cmd = [xvfb, "-a", "-s", "-screen 0 1600x1000x24", *cmd]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0 or not target.is_file():
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        raise WsiSslError(f"the napari screenshot failed: {tail[0]}", target)
    return target
