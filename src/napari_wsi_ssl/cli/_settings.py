"""Where each setting named in an error's hint lives on the command line.

The compute layers name settings, not flags (``'patch_size'``), because napari users read the
same hints; the command line rewrites those names into its flags when it prints an error.
"""

from __future__ import annotations

import re

#: setting -> the flag that sets it
FLAGS: dict[str, str] = {
    "batch_size": "--batch-size",
    "budget": "--epochs/--steps/--minutes",
    "device": "--device",
    "init": "--init",
    "lr": "--lr",
    "mode": "--mode",
    "mpp": "--mpp",
    "num_workers": "--workers",
    "patch_size": "--patch-size",
    "precision": "--precision",
    "preset": "--preset",
    "region": "--region",
    "seed": "--seed",
    "slide_mpp": "--slide-mpp",
    "task": "--task",
    "width": "--width",
}

_NAMED = re.compile(r"(?:the )?'(" + "|".join(map(re.escape, FLAGS)) + r")'( setting)?")


def with_flags(message: str) -> str:
    """``message`` with each quoted setting name replaced by its command-line flag."""
    return _NAMED.sub(lambda m: FLAGS[m.group(1)], message)
