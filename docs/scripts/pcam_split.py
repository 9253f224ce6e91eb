"""Split ../shared/data/pcam/valid into train/ and test/ folders of symlinks (300 test patches per
class, seed 0), for the classifier behind the overlay in docs/inference.md.

Usage, from the repository root:  .venv/bin/python docs/scripts/pcam_split.py OUT_DIR
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

PCAM = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "pcam" / "valid"


def main(out: Path, n_test: int = 300, seed: int = 0) -> None:
    rng = random.Random(seed)
    for label in ("0", "1"):
        files = sorted((PCAM / label).glob("*.jpg"))
        rng.shuffle(files)
        for split, part in (("test", files[:n_test]), ("train", files[n_test:])):
            folder = out / split / label
            folder.mkdir(parents=True, exist_ok=True)
            for f in part:
                link = folder / f.name
                if not link.exists():
                    link.symlink_to(f)
    print(f"{out}/train and {out}/test written")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
