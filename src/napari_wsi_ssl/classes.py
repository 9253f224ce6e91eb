"""Class names across several annotated slides: the same name is the same class.

Fine-tuning on several slides needs one meaning per label value. Each slide's annotation comes
with its own names (a painted layer's, a GeoJSON's, or the defaults: 1 tumour, 2 normal); a
name seen on an earlier slide keeps that slide's value, and a value another slide already gives
to a different name is refused with one line naming both. Torch-free and napari-free.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from .errors import AnnotationError
from .vocab import UNLABELLED, default_class_name


def _key(name: str) -> str:
    return " ".join(name.lower().split())


def names_of(labels: np.ndarray, names: Mapping[int, str] | None) -> dict[int, str]:
    """The names of the values painted in ``labels``: ``names`` where given, else the defaults."""
    given = {int(k): str(v) for k, v in (names or {}).items() if str(v).strip()}
    present = [int(v) for v in np.unique(labels) if int(v) != UNLABELLED]
    return {v: given.get(v, default_class_name(v)) for v in present}


def unify_classes(
    slides: Sequence[tuple[str | Path, np.ndarray, Mapping[int, str] | None]],
) -> tuple[list[np.ndarray], dict[int, str]]:
    """One label vocabulary for several ``(slide, labels, names)``: the labels remapped so that
    a class name has one value on every slide, and the names of those values.

    The first slide's values stay; a name first seen on a later slide keeps its value when that
    value is free. Raises ``AnnotationError`` when a later slide paints a value, under another
    name, that an earlier slide already gave a class (rename one of them so the names agree).
    """
    by_name: dict[str, int] = {}
    owner: dict[int, tuple[str, Path]] = {}
    out: list[np.ndarray] = []
    for path, labels, names in slides:
        path = Path(path)
        labels = np.asarray(labels)
        mapping: dict[int, int] = {}
        for value, name in names_of(labels, names).items():
            target = by_name.get(_key(name), value)
            if target not in owner:
                owner[target] = (name, path)
                by_name[_key(name)] = target
            elif _key(owner[target][0]) != _key(name):
                first, where = owner[target]
                raise AnnotationError(
                    f"label {value} is {name!r} here but {first!r} on {where.name}",
                    path,
                    "give the same class the same name on every slide",
                )
            mapping[value] = target
        if all(k == v for k, v in mapping.items()):
            out.append(labels)
            continue
        lut = np.arange(max([int(labels.max(initial=0)), *mapping.values()]) + 1)
        for old, new in mapping.items():
            lut[old] = new
        out.append(lut[labels].astype(labels.dtype, copy=False))
    return out, {v: name for v, (name, _) in sorted(owner.items())}
