"""Content hashes of files (no torch, no numpy): the identity of checkpoints in cache keys."""

from __future__ import annotations

import hashlib
from pathlib import Path


def file_sha256(path: str | Path) -> str:
    """sha256 of a file, read in 1 MiB blocks (hashlib releases the GIL on each)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
