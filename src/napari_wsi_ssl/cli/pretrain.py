"""``wsi-ssl pretrain``: self-supervised pretraining on slides or patch folders (``--objective``)."""

from __future__ import annotations

import argparse
from typing import Any

from .. import recent
from ..events import Progress
from ..vocab import DEFAULT_OBJECTIVE, Budget, ColourAugment, Objective, Preset
from ._pixels import add_slide_mpp, require_pixel_size
from ._progress import drive


def add_budget(parser: argparse.ArgumentParser) -> None:
    budget = parser.add_mutually_exclusive_group()
    budget.add_argument("--epochs", type=int, help="number of epochs (default: the paper's)")
    budget.add_argument("--steps", type=int, help="number of optimizer steps")
    budget.add_argument("--minutes", type=float, help="wall-clock budget in minutes")


def budget_of(args: argparse.Namespace) -> Budget | None:
    """The ``budget`` setting from ``--epochs``/``--steps``/``--minutes`` (None: none given)."""
    return Budget.of(args.epochs, args.steps, args.minutes)


def add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"])
    parser.add_argument("--workers", type=int, default=0, help="DataLoader worker processes")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--resume", action="store_true", help="continue the run saved in -o")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "sources",
        nargs="+",
        metavar="SLIDE_OR_DIR",
        help="slides, or folders of slides or patch images",
    )
    parser.add_argument(
        "-o", "--output", required=True, metavar="CKPT", help="checkpoint file to write (.pt)"
    )
    parser.add_argument("--preset", default=Preset.RESNET34_AE.value, choices=Preset.values())
    parser.add_argument(
        "--objective",
        default=DEFAULT_OBJECTIVE,
        choices=Objective.values(),
        help="what the model reconstructs from: l1 (the clean patch, the papers'), mim (masked "
        "squares; the default), stain (stain-jittered, noisy patch), cross-stain (one stain layer)",
    )
    parser.add_argument(
        "--augment",
        default=ColourAugment.HED.value,
        choices=ColourAugment.values(),
        help="colour augmentation: hed (stain jitter), rgb (colour jitter) or none",
    )
    parser.add_argument(
        "--mpp", type=float, default=None, help="working resolution in µm/px (default: native)"
    )
    add_slide_mpp(parser)
    parser.add_argument("--patch-size", type=int, default=256)
    parser.add_argument("--width", type=int, default=64, help="base channels (64 = ResNet34)")
    add_budget(parser)
    add_common(parser)


def drive_training(gen: Any, label: str) -> tuple[Any, dict[str, Any]]:
    """Drive a training generator with a progress bar; return (checkpoint, loss summary).

    The checkpoint is recorded as the last of its kind (``recent``), so that the docks offer it.
    """
    import time

    losses: list[float] = []
    t0 = time.monotonic()

    def watch() -> Any:
        while True:
            try:
                event = next(gen)
            except StopIteration as stop:
                return stop.value
            if isinstance(event, Progress) and event.loss is not None and not event.metrics:
                losses.append(event.loss)
            yield event

    path = drive(watch(), label)
    from ..models import load_checkpoint  # torch: the CLI's parser imports every cli module

    ck = load_checkpoint(path)
    kind = "pretrain" if label == "pretrain" else recent.TASK_KIND.get(str(ck.task), "finetune")
    recent.record(kind, path, source="cli", task=str(ck.task))
    return path, {
        "first_loss": losses[0] if losses else None,
        "final_loss": losses[-1] if losses else None,
        "steps": len(losses),
        "seconds": round(time.monotonic() - t0, 2),
        "checkpoint": str(path),
        "total_steps": ck.resume.get("step") if ck.resume else None,
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    # torch: the CLI's parser imports every cli module
    from ..training import PretrainConfig, pretrain
    from ..training.data import resolve_sources

    slides, _ = resolve_sources(args.sources)
    require_pixel_size(slides, args.slide_mpp, needed=args.mpp is not None)
    cfg = PretrainConfig(
        preset=args.preset,
        objective=args.objective,
        augment=args.augment,
        width=args.width,
        mpp=args.mpp,
        slide_mpp=args.slide_mpp,
        patch_size=args.patch_size,
        batch_size=args.batch_size,
        lr=args.lr,
        budget=budget_of(args) or PretrainConfig.budget,
        device=args.device,
        precision=args.precision,
        num_workers=args.workers,
        seed=args.seed,
        resume=args.resume,
    )
    _, summary = drive_training(pretrain(args.sources, cfg, args.output), "pretrain")
    return summary
