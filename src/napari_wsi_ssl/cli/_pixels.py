"""The slide's pixel size on the command line: ``--slide-mpp``, and the error when it is needed.

Two words, one meaning each: ``--slide-mpp`` is the slide's own level-0 µm/px (it supplies a
pixel size the file lacks, or overrides the file's); ``--mpp`` is the working resolution a
model trains or predicts at. A run that needs a pixel size the file does not state stops with
the estimate (objective power, else nucleus size) in its message: nothing goes on a guess.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import SlideError
from ..slide import estimate_mpp, open_slide

if TYPE_CHECKING:
    from ..slide import MppEstimate


def add_slide_mpp(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--slide-mpp",
        type=float,
        default=None,
        metavar="UM",
        help="the slide's level-0 µm/px: supplies a pixel size the file lacks, or overrides it",
    )


def checkpoint_mpp(path: str | Path | None) -> float | None:
    """The working resolution a checkpoint (network or fast-mode head) was trained at (None:
    native, or no checkpoint)."""
    if path is None:
        return None
    from ..features.head_file import is_head_checkpoint, load_head  # torch: lazy, as below
    from ..models import load_checkpoint  # torch: the CLI's parser imports every cli module

    if is_head_checkpoint(path):
        return load_head(path).mpp
    return load_checkpoint(path).mpp


def require_pixel_size(
    slides: Iterable[str | Path], slide_mpp: float | None, needed: bool = True
) -> None:
    """SlideError, with the estimate, for the first slide that states no pixel size.

    ``needed`` is whether the run works in µm at all (a working ``--mpp``, a model trained at
    one); ``slide_mpp`` given on the command line satisfies it.
    """
    if not needed or slide_mpp is not None:
        return

    for path in slides:
        with open_slide(path) as slide:
            if slide.mpp is not None:
                continue
            estimate = estimate_mpp(slide)
        raise SlideError(no_pixel_size_message(estimate), path)


def no_pixel_size_message(estimate: MppEstimate | None) -> str:
    """ "no pixel size in the file; it looks like about 0.5 µm/px (20x) from ...; pass ..."."""
    if estimate is None:
        return (
            "no pixel size in the file, and none could be estimated (no objective power, too "
            "few nuclei); pass --slide-mpp UM with the slide's µm/px"
        )
    return (
        f"no pixel size in the file; it looks like {estimate}; pass --slide-mpp {estimate.mpp:.2g}"
    )
