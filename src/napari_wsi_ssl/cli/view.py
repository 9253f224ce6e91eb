"""``wsi-ssl view OUT_DIR``: open a demo or prediction folder, or a saved project, in napari,
with the docks."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "folder",
        type=Path,
        help="a demo output folder (with result.json), a saved project folder (project.json) or a slide",
    )
    parser.add_argument("--store", type=Path, help="a prediction store to overlay")
    parser.add_argument("--screenshot", type=Path, help="save a screenshot of the window and quit")


def run(args: argparse.Namespace) -> dict[str, Any]:
    # the napari side lives in _napari; imported here, lazily, only when a window is wanted
    from .._napari.view import open_result  # napari: the CLI's parser imports every cli module

    return open_result(args.folder, store=args.store, screenshot=args.screenshot)
