"""The project's vocabulary: presets, tasks, modes, the class table and the training budget.

Each name is spelled here once. The enums are ``str`` enums whose values are the strings that
checkpoints, configs and command-line flags have always used, so a plain string still works
wherever a member is expected, and ``list(Preset)`` feeds argparse ``choices`` and magicgui
``ComboBox`` choices directly. Torch-free and napari-free.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import Enum

from .errors import TrainingError


class Choice(str, Enum):
    """A closed set of names (Python 3.10's ``StrEnum``)."""

    def __str__(self) -> str:
        return str(self.value)

    @classmethod
    def values(cls) -> tuple[str, ...]:
        return tuple(m.value for m in cls)

    @classmethod
    def check(cls, value: str, what: str) -> str:
        """``value`` as a plain string when it is one of the names; TrainingError otherwise."""
        try:
            return str(cls(value).value)
        except ValueError:
            raise TrainingError(
                f"unknown {what} {value!r}", hint=f"choose one of {', '.join(cls.values())}"
            ) from None


class Preset(Choice):
    """Architectures: paper 1's ResNet34 autoencoder and paper 2's ResNet34-UNet."""

    RESNET34_AE = "resnet34-ae"
    UNET_RESNET34 = "unet-resnet34"


class Task(Choice):
    """What a model's head outputs."""

    RECONSTRUCT = "reconstruct"
    SEGMENT = "segment"
    CLASSIFY = "classify"
    NUCLEI = "nuclei"


class Mode(Choice):
    """How fine-tuning starts: every weight, a frozen encoder, or random weights (the baseline)."""

    FULL = "full"
    FROZEN_ENCODER = "frozen-encoder"
    SCRATCH = "scratch"


class Objective(Choice):
    """What pretraining learns from: the papers' pixel L1 and the objectives beside it.

    ``l1`` reconstructs the clean patch (the papers'); ``mim`` reconstructs squares masked out of
    it (loss on the masked pixels only); ``stain`` reconstructs it from a stain-jittered, noisy
    copy; ``cross-stain`` reconstructs it from its haematoxylin or its eosin layer alone.
    """

    L1 = "l1"
    MIM = "mim"
    STAIN = "stain"
    CROSS_STAIN = "cross-stain"


#: What ``wsi-ssl pretrain`` and the Pretrain dock use unless told: the objective that the
#: label-efficiency study (docs/results.md) found best at 10 % labels and below, for the fast
#: head on frozen features. The papers' pixel L1 stays ``--objective l1``.
DEFAULT_OBJECTIVE = Objective.MIM.value


class ColourAugment(Choice):
    """Training's colour augmentation: HED stain jitter (the default), RGB colour jitter or none."""

    HED = "hed"
    RGB = "rgb"
    NONE = "none"


class BudgetUnit(Choice):
    EPOCHS = "epochs"
    STEPS = "steps"
    MINUTES = "minutes"


# -- classes -----------------------------------------------------------------------------------

#: The label value of pixels nobody labelled: never drawn, never trained on, never scored.
UNLABELLED = 0
#: Default names of the painted classes (a model's channel 0, never trained, is "background").
DEFAULT_CLASS_NAMES: dict[int, str] = {UNLABELLED: "background", 1: "tumour", 2: "normal"}
#: Default colours (RGBA, 0..1) of the painted classes; further classes share one colour.
CLASS_COLOURS: dict[int | None, tuple[float, float, float, float]] = {
    None: (0.35, 0.55, 1.0, 1.0),
    UNLABELLED: (0.0, 0.0, 0.0, 0.0),
    1: (0.92, 0.18, 0.18, 1.0),
    2: (0.18, 0.78, 0.32, 1.0),
}
#: Spellings of class names that mean the same class.
_SYNONYMS = {"tumor": "tumour", "unlabelled": "background", "unlabeled": "background"}
#: Nuclei segmentation's three classes.
NUCLEI_CLASS_NAMES = ("background", "foreground", "boundary")


def default_class_name(value: int) -> str:
    return DEFAULT_CLASS_NAMES.get(int(value), f"class {int(value)}")


def class_names_for(values: Iterable[int], names: Mapping[int, str] | None = None) -> list[str]:
    """The names of label values ``0..max(values)``: ``names`` where given, the defaults elsewhere.

    ``names`` carries what the user called the classes (the painted layer's, a GeoJSON's
    classification names); the list is what a checkpoint stores, so a model's output channel
    ``k`` is the class painted with value ``k``.
    """
    given = {int(k): str(v) for k, v in (names or {}).items() if str(v).strip()}
    top = max([int(v) for v in values] + [UNLABELLED])
    return [
        given.get(k, default_class_name(k)) if k else default_class_name(k) for k in range(top + 1)
    ]


def class_value(name: str, class_names: Iterable[str] | None) -> int | None:
    """The value of a class called ``name`` in ``class_names`` (a synonym or a digit counts)."""
    if name.isdigit():
        return int(name)
    wanted = _SYNONYMS.get(name.lower(), name.lower())
    lowered = [_SYNONYMS.get(c.lower(), c.lower()) for c in class_names or ()]
    return lowered.index(wanted) if wanted in lowered else None


# -- budget ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Budget:
    """How long a training runs: a number of epochs, optimizer steps or wall-clock minutes.

    An epoch is one pass over the training patches; the budget is checked after every step
    (steps, minutes) or at the end of each epoch (epochs).
    """

    value: float
    unit: str = BudgetUnit.EPOCHS.value

    def __post_init__(self) -> None:
        object.__setattr__(self, "unit", BudgetUnit.check(self.unit, "budget unit"))
        if not self.value >= 0:
            raise TrainingError(f"the {self.unit} budget must not be negative, got {self.value}")
        if self.unit != BudgetUnit.MINUTES and self.value != int(self.value):
            raise TrainingError(f"the {self.unit} budget must be whole, got {self.value}")

    @classmethod
    def parse(cls, value: float, unit: str) -> Budget:
        """From a number and its unit as a user types them: at least one epoch or step."""
        unit = BudgetUnit.check(unit, "budget unit")
        if unit == BudgetUnit.MINUTES:
            return cls(float(value), unit)
        return cls(max(1, int(value)), unit)

    @classmethod
    def of(
        cls, epochs: int | None = None, steps: int | None = None, minutes: float | None = None
    ) -> Budget | None:
        """From separate epochs/steps/minutes settings (steps win, then minutes); None when none is."""
        if steps is not None:
            return cls(steps, BudgetUnit.STEPS.value)
        if minutes is not None:
            return cls(minutes, BudgetUnit.MINUTES.value)
        if epochs is not None:
            return cls(epochs, BudgetUnit.EPOCHS.value)
        return None

    def total_steps(self, steps_per_epoch: int) -> int | None:
        """The number of steps the run will take; None for a wall-clock budget."""
        if self.unit == BudgetUnit.STEPS:
            return int(self.value)
        if self.unit == BudgetUnit.EPOCHS:
            return int(self.value) * steps_per_epoch
        return None

    def spent(self, step: int, elapsed_s: float, epoch: int = 0) -> bool:
        """Whether a run at ``step`` after ``elapsed_s`` seconds and ``epoch`` whole epochs is done."""
        if self.unit == BudgetUnit.STEPS:
            return step >= self.value
        if self.unit == BudgetUnit.MINUTES:
            return elapsed_s >= 60 * self.value
        return epoch >= self.value

    def progress(self, step: int, elapsed_s: float, steps_per_epoch: int) -> float:
        """The fraction (0..1) of the budget used (the lr schedule's clock)."""
        if self.unit == BudgetUnit.MINUTES:
            return min(elapsed_s / (60 * self.value), 1.0) if self.value else 1.0
        return step / max(self.total_steps(steps_per_epoch) or 1, 1)

    def describe(self) -> str:
        value = f"{self.value:g}"
        unit = self.unit[:-1] if value == "1" else self.unit
        return f"{value} {unit}"

    def to_dict(self) -> dict[str, float | str]:
        return {"value": self.value, "unit": self.unit}
