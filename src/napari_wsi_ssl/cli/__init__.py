"""The ``wsi-ssl`` command line.

Each subcommand lives in its own module ``cli/<name>.py`` with two functions:

``add_arguments(parser)``
    declares its options (argparse only; no heavy import at module level);
``run(args) -> dict``
    does the work and returns a JSON-serialisable summary.

``main`` adds ``--json`` (print that summary as one JSON object on the last line of stdout)
and ``--debug`` (show tracebacks and the libraries' own log records) to every subcommand, and
turns the project's user errors into one line on stderr with exit code 2.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys
from collections.abc import Sequence
from typing import Any

from .. import __version__
from ..errors import WsiSslError
from ._settings import with_flags

# name -> (module, one-line help); the order is the order of the user's path
COMMANDS: dict[str, tuple[str, str]] = {
    "info": ("info", "describe a slide: format, levels, mpp, tissue fraction"),
    "synth": ("synth", "write the procedural synthetic H&E slide and its ground truth"),
    "pretrain": ("pretrain", "self-supervised pretraining on slides or patch folders"),
    "finetune": ("finetune", "fine-tune a pretrained model from a mask, GeoJSON or patch folder"),
    "predict": ("predict", "probability map and nuclei of whole slides, to OME-Zarr"),
    "evaluate": ("evaluate", "metrics and plots of a model on labelled data"),
    "export": ("export", "write masks and labels as OME-TIFF, OME-Zarr, GeoJSON, PNG or CSV"),
    "study": ("study", "label-efficiency study, with and without pretraining"),
    "simulate": ("simulate", "a simulated annotator: paint where suggested or at random"),
    "demo": ("demo", "the whole path on the synthetic slide (or a given one)"),
    "view": ("view", "open a demo or prediction folder in napari"),
    "bench": ("bench", "measure the performance targets as ratios in one run"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wsi-ssl",
        description="Self-supervised deep learning for whole-slide histopathology images.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        module = importlib.import_module(f"{__name__}.{module_name}")
        p = sub.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(p)
        p.add_argument("--json", action="store_true", help="print one JSON object as the last line")
        p.add_argument(
            "--debug", action="store_true", help="show tracebacks of errors and libraries' logs"
        )
        p.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 1
    _route_logs(args.debug)
    try:
        result: dict[str, Any] = args._run(args) or {}
    except WsiSslError as exc:
        if args.debug:
            raise
        print(f"wsi-ssl {args.command}: error: {with_flags(str(exc))}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        if args.debug:
            raise
        print(f"wsi-ssl {args.command}: cancelled; finished work was kept.", file=sys.stderr)
        return 130
    except OSError as exc:
        # the file system refused (a file where a folder should be, permissions, a full disk):
        # the user's to fix, so one line naming the path, like the project's own errors
        if args.debug:
            raise
        where = f"{exc.filename}: " if exc.filename else ""
        reason = exc.strerror or str(exc)
        print(f"wsi-ssl {args.command}: error: {where}{reason}.", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result, default=_jsonable))
    return 0


def _route_logs(debug: bool) -> None:
    """Libraries' log records (tifffile's "invalid offset" on a truncated slide) reach the
    terminal only with ``--debug``: without it the user reads the one line of the error."""
    root = logging.getLogger()
    if debug:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    elif not root.handlers:
        # a handler anywhere keeps Python's last-resort handler from printing to stderr
        root.addHandler(logging.NullHandler())


def _jsonable(value: Any) -> Any:
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
