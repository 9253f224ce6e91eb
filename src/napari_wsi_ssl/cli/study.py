"""``wsi-ssl study``: label-efficiency study, with and without self-supervised pretraining.

Pretrains once per objective on the training pool (labels hidden), then runs each mode
(``full``, ``frozen-encoder`` and ``scratch`` fine-tuning, the ``fast`` head and the linear
``probe`` on frozen features) for each label fraction and repeat, and scores a test set: another
folder (``--test``) or a held-out share of the patches. Writes ``study.md`` (table),
``study.json``, ``scores/`` and ``study_<metric>.png`` to ``-o OUT_DIR``. Running again with the
same folder and settings resumes an interrupted study.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..evaluation.study import NONE, STUDY_MODES, StudyConfig, iter_study
from ..evaluation.study_report import comparison_table, markdown_table
from ..vocab import Budget, Mode, Objective, Preset
from ._progress import drive


def _floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected numbers separated by commas, got {text!r}"
        ) from None


def _names(text: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in text.split(",") if v.strip())


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "patches", type=Path, help="labelled patch folder (class sub-folders or labels.csv)"
    )
    parser.add_argument("-o", "--out", type=Path, required=True, metavar="OUT_DIR")
    parser.add_argument(
        "--fractions", type=_floats, default=(0.01, 0.03, 0.1, 0.3, 1.0), help="label fractions"
    )
    parser.add_argument(
        "--test",
        type=Path,
        metavar="PATCHES",
        help="score on this labelled folder; every patch of the first is then the pool",
    )
    parser.add_argument("--folds", type=int, default=5, help="folds, or seeds with --test")
    parser.add_argument(
        "--modes", type=_names, default=Mode.values(), help=f"of {', '.join(STUDY_MODES)}"
    )
    parser.add_argument(
        "--test-fraction", type=float, default=0.2, help="held-out test share of the patches"
    )
    parser.add_argument(
        "--limit", type=int, help="use a class-stratified subset of this many patches"
    )
    parser.add_argument("--preset", default=Preset.RESNET34_AE.value, choices=Preset.values())
    parser.add_argument(
        "--width", type=int, default=64, help="channels of the first stage (64 = ResNet34)"
    )
    parser.add_argument(
        "--patch-size", type=int, help="crop patches to this size (default: as stored)"
    )
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument(
        "--objective",
        default=Objective.L1.value,
        choices=Objective.values(),
        help="pretraining objective (see wsi-ssl pretrain --help)",
    )
    parser.add_argument(
        "--objectives",
        type=_names,
        default=(),
        help=f"several, compared in one run, of {NONE} (untrained), {', '.join(Objective.values())}",
    )
    parser.add_argument("--pretrain-epochs", type=int)
    parser.add_argument("--pretrain-steps", type=int)
    parser.add_argument("--pretrain-minutes", type=float)
    parser.add_argument(
        "--pretrained", type=Path, help="reuse this pretrained checkpoint instead of pretraining"
    )
    parser.add_argument("--finetune-epochs", type=int)
    parser.add_argument("--finetune-steps", type=int)
    parser.add_argument("--finetune-minutes", type=float)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--seed", type=int, default=0)


def run(args: argparse.Namespace) -> dict[str, Any]:
    config = StudyConfig(
        fractions=args.fractions,
        folds=args.folds,
        modes=args.modes,
        test_fraction=args.test_fraction,
        limit=args.limit,
        preset=args.preset,
        width=args.width,
        patch_size=args.patch_size,
        batch_size=args.batch_size,
        pretrain_budget=Budget.of(args.pretrain_epochs, args.pretrain_steps, args.pretrain_minutes),
        objective=args.objective,
        objectives=args.objectives,
        test=None if args.test is None else str(args.test),
        pretrained=None if args.pretrained is None else str(args.pretrained),
        finetune_budget=Budget.of(args.finetune_epochs, args.finetune_steps, args.finetune_minutes),
        device=args.device,
        seed=args.seed,
    )
    result: dict[str, Any] = drive(iter_study(args.patches, args.out, config), "study")
    print(markdown_table(result["summary"]), end="")
    print(comparison_table(result["comparison"]), end="")
    print(f"table: {result['table']}\njson: {result['json']}")
    return result
