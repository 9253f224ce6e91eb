"""``wsi-ssl simulate``: a simulated annotator, painting where the suggestions point or at random.

SOURCE is a synthetic slide's folder (``wsi-ssl synth``; truth: its tumour and tissue masks) or
a folder of labelled 96 px patches in class folders ``0`` and ``1`` (PCam), from which a mosaic
of ``--side`` x ``--side`` patches is written into OUT_DIR (truth: each patch's centre). The
slide's feature cache is built once (colour features, or ``--encoder``'s too); then for each
seed and strategy a user paints one stroke per class, then ``--k`` strokes per round for
``--rounds`` rounds, the head retrained after each. Writes ``simulate.json`` and
``simulate_<metric>.png`` to OUT_DIR.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from .._atomic import atomic_write_text
from ..errors import WsiSslError
from ..evaluation import mosaic
from ..evaluation.annotator import SimulationConfig, Truth, simulate
from ..evaluation.plots import plot_rounds
from ..events import run_to_end
from ..synthetic import load_synthetic_slide, read_tissue_mask, read_tumour_mask
from .study import _names


def _ints(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected integers separated by commas, got {text!r}"
        ) from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", type=Path, help="synthetic slide folder or PCam patch folder")
    parser.add_argument("-o", "--out", type=Path, required=True, metavar="OUT_DIR")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--k", type=int, default=3, help="strokes per round")
    parser.add_argument("--seeds", type=_ints, default=(0, 1, 2))
    parser.add_argument(
        "--strategies",
        type=_names,
        default=("suggested", "random"),
        help="of suggested (the GUI's: clusters of features, uncertainty), representative "
        "(clusters only), distance (uncertainty x distance from strokes), uncertainty (no "
        "distance term), sampled (in proportion to the distance score), random",
    )
    parser.add_argument("--stroke", type=int, default=32, help="stroke side, level-0 px")
    parser.add_argument(
        "--cell", type=int, default=12, help="suggestion cell, map px (12 x 8 px = a PCam patch)"
    )
    parser.add_argument("--distance-scale", type=float, default=2.0)
    parser.add_argument(
        "--uncertainty-weight",
        type=float,
        help="suggested: weight of uncertainty against representativeness (default 0.5)",
    )
    parser.add_argument("--encoder", type=Path, help="encoder checkpoint (default: colour only)")
    parser.add_argument("--mpp", type=float, help="working resolution (default: the encoder's)")
    parser.add_argument("--stride", type=int, default=8)
    parser.add_argument("--tile", type=int, default=128, help="feature pixels per cache tile")
    parser.add_argument(
        "--head", choices=("linear", "mlp"), help="head kind (default: the fast mode's)"
    )
    parser.add_argument("--steps", type=int, help="head training steps per round (default: same)")
    parser.add_argument("--weight-decay", type=float, help="head L2 penalty (default: same)")
    parser.add_argument("--side", type=int, default=36, help="PCam mosaic: patches per side")
    parser.add_argument("--mosaic-seed", type=int, default=0)


def _source(args: argparse.Namespace) -> tuple[Path, Any, dict[str, Any]]:
    """The slide, its ``Truth`` and the cache settings it needs."""
    import numpy as np

    syn = load_synthetic_slide(args.source)
    if syn is not None:
        tumour, tissue = read_tumour_mask(syn) > 0, read_tissue_mask(syn) > 0
        labels = np.where(tumour, 1, np.where(tissue, 2, 0)).astype(np.uint8)
        return syn.slide, Truth(labels, float(syn.gt_downsample)), {}
    if (args.source / "0").is_dir() and (args.source / "1").is_dir():
        args.out.mkdir(parents=True, exist_ok=True)
        files = mosaic.mosaic_files(args.source, args.side, count=1, seed=args.mosaic_seed)[0]
        path = args.out / "mosaic.tif"
        patches = mosaic.write_mosaic(files, args.side, path)
        truth = Truth(mosaic.centre_mask(patches), 1.0, patches, mosaic.PATCH, mosaic.CENTRE)
        return path, truth, {"mpp": mosaic.MPP, "tissue_only": False}
    raise WsiSslError(
        "is neither a synthetic slide folder nor a patch folder with class folders 0 and 1",
        args.source,
    )


def run(args: argparse.Namespace) -> dict[str, Any]:
    # torch: the CLI's parser imports every cli module
    from ..features import FeatureCache, FeatureConfig, HeadConfig, build_cache_for

    config = SimulationConfig(
        args.rounds,
        args.k,
        args.seeds,
        args.strategies,
        args.stroke,
        args.cell,
        args.distance_scale,
        args.uncertainty_weight,
    )
    slide, truth, extra = _source(args)
    if args.mpp is not None:
        extra["mpp"] = args.mpp
    fcfg = FeatureConfig(stride=args.stride, tile=args.tile, **extra)
    t0 = time.perf_counter()
    cache_path = run_to_end(build_cache_for(slide, args.encoder, args.out / "cache", fcfg))
    cache_s = time.perf_counter() - t0
    quiet = args.json

    def log(msg: str) -> None:
        if not quiet:
            print(msg, file=sys.stderr, flush=True)

    log(f"feature cache of {slide.name} in {cache_s:.1f} s")
    given = {"kind": args.head, "steps": args.steps, "weight_decay": args.weight_decay}
    head_config = HeadConfig(**{k: v for k, v in given.items() if v is not None})
    summary = simulate(
        FeatureCache.open(cache_path),
        truth,
        config,
        args.out / "runs",
        head_config,
        log,
    )
    summary["slide"] = str(slide)
    summary["encoder"] = None if args.encoder is None else str(args.encoder)
    summary["feature_config"] = fcfg.to_dict()
    summary["head_config"] = asdict(head_config)
    summary["cache_s"] = cache_s
    import json

    atomic_write_text(args.out / "simulate.json", json.dumps(summary, indent=1))
    plots = []
    for metric in summary["curves"]:
        features = "colour features" if args.encoder is None else f"{args.encoder.name} + colour"
        plots.append(
            str(
                plot_rounds(
                    summary,
                    metric,
                    args.out / f"simulate_{metric}.png",
                    f"{slide.name}, {features}",
                )
            )
        )
    final = {s: round(c["mean"][-1], 4) for s, c in summary["curves"]["auc"].items()}
    first = {s: round(c["mean"][0], 4) for s, c in summary["curves"]["auc"].items()}
    if not quiet:
        for s in final:
            print(f"{s}: auc {first[s]:.3f} -> {final[s]:.3f} over {config.rounds} rounds")
        print(f"wrote {args.out / 'simulate.json'} and {', '.join(plots)}")
    return {
        "auc_first": first,
        "auc_last": final,
        "json": str(args.out / "simulate.json"),
        "plots": plots,
        "cache_s": round(cache_s, 1),
    }
