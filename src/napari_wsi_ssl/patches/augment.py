"""Augmentation in plain torch: the 8 dihedral transforms, HED stain jitter and RGB colour jitter.

``augment_for("hed")`` (the default) perturbs the haematoxylin, eosin and DAB channels of
``skimage.color.rgb2hed`` by a small random scale and shift (Tellez et al. 2018);
``augment_for("rgb")`` is paper 2's brightness/contrast/saturation/hue jitter.

Every function takes a ``torch.Generator`` so that a sample's augmentation depends only on
(seed, epoch, index): runs are reproducible with any number of DataLoader workers and resume
exactly where they stopped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..vocab import ColourAugment

#: The colour augmentations a config may name; ``True`` means ``"hed"``, ``False`` ``"none"``.
AUGMENTS = ColourAugment.values()
_LOG_ADJUST = math.log(1e-6)  # skimage's optical-density scale (rgb2hed/hed2rgb)


def dihedral(x: torch.Tensor, k: int) -> torch.Tensor:
    """Apply dihedral transform ``k`` (0..7) to the last two axes: ``k % 4`` quarter turns, flipped if ``k >= 4``."""
    if not 0 <= k < 8:
        raise ValueError(f"dihedral index must be in 0..7, got {k}")
    if k >= 4:
        x = torch.flip(x, dims=(-1,))
    return torch.rot90(x, k % 4, dims=(-2, -1))


def _grey(x: torch.Tensor) -> torch.Tensor:
    return (0.299 * x[0] + 0.587 * x[1] + 0.114 * x[2]).unsqueeze(0)


def _rotate_hue(x: torch.Tensor, turns: float) -> torch.Tensor:
    """Rotate hue by ``turns`` of a full circle, in YIQ space (cheap and smooth)."""
    rgb_to_yiq = torch.tensor(
        [[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]], dtype=x.dtype
    )
    yiq_to_rgb = torch.linalg.inv(rgb_to_yiq)
    theta = torch.tensor(turns * 2 * torch.pi, dtype=x.dtype)
    c, s = torch.cos(theta), torch.sin(theta)
    rot = torch.eye(3, dtype=x.dtype)
    rot[1, 1], rot[1, 2], rot[2, 1], rot[2, 2] = c, -s, s, c
    m = yiq_to_rgb @ rot @ rgb_to_yiq
    return torch.einsum("ij,jhw->ihw", m, x)


def _hed_matrices(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    from skimage.color import hed_from_rgb, rgb_from_hed

    def put(m: object) -> torch.Tensor:
        return torch.as_tensor(m, dtype=x.dtype, device=x.device)

    return put(hed_from_rgb), put(rgb_from_hed)


def rgb_to_hed(x: torch.Tensor) -> torch.Tensor:
    """``skimage.color.rgb2hed`` on (..., 3, H, W) in [0, 1], batched, without its clip at 0.

    Unclipped, ``hed_to_rgb(rgb_to_hed(x))`` gives ``x`` back (up to the floor of 1e-6).
    """
    hed_from_rgb, _ = _hed_matrices(x)
    od = torch.log(x.clamp_min(1e-6)) / _LOG_ADJUST
    return torch.einsum("...chw,cd->...dhw", od, hed_from_rgb)


def hed_to_rgb(stains: torch.Tensor) -> torch.Tensor:
    """``skimage.color.hed2rgb`` on (..., 3, H, W): RGB in [0, 1]."""
    _, rgb_from_hed = _hed_matrices(stains)
    od = torch.einsum("...dhw,dc->...chw", stains, rgb_from_hed)
    return torch.exp(od * _LOG_ADJUST).clamp(0.0, 1.0)


def hed_perturb(x: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Stains times ``scale`` plus ``shift`` (each (..., 3, 1, 1) or broadcastable), back in RGB."""
    return hed_to_rgb(rgb_to_hed(x) * scale + shift)


def hed_jitter(
    x: torch.Tensor, g: torch.Generator, scale: float = 0.1, shift: float = 0.005
) -> torch.Tensor:
    """Random HED stain jitter of a (3, H, W) image in [0, 1]: factors 1 +- ``scale``, shifts +- ``shift``.

    ``shift`` is in rgb2hed's units (optical density over 13.8): 0.005 moves a channel's
    density by about 0.07, a visible but plausible change of staining.
    """
    u = torch.rand((2, 3, 1, 1), generator=g).to(dtype=x.dtype, device=x.device) * 2.0 - 1.0
    return hed_perturb(x, 1.0 + scale * u[0], shift * u[1])


def color_jitter(
    x: torch.Tensor,
    g: torch.Generator,
    brightness: float = 0.1,
    contrast: float = 0.1,
    saturation: float = 0.1,
    hue: float = 0.02,
) -> torch.Tensor:
    """Random brightness, contrast, saturation (factors in 1 +- value) and hue (+- value turns) on (3, H, W) in [0, 1]."""

    def factor(amount: float) -> float:
        return 1.0 + amount * (2.0 * float(torch.rand((), generator=g)) - 1.0)

    x = x * factor(brightness)
    mean = _grey(x).mean()
    x = (x - mean) * factor(contrast) + mean
    grey = _grey(x)
    x = (x - grey) * factor(saturation) + grey
    if hue > 0:
        x = _rotate_hue(x, hue * (2.0 * float(torch.rand((), generator=g)) - 1.0))
    return x.clamp_(0.0, 1.0)


@dataclass(frozen=True)
class Augment:
    """What a training sample goes through; ``Augment(False, 0, 0, 0, 0)`` does nothing."""

    dihedral: bool = True
    brightness: float = 0.1
    contrast: float = 0.1
    saturation: float = 0.1
    hue: float = 0.02
    hed_scale: float = 0.0
    hed_shift: float = 0.0

    @property
    def active(self) -> bool:
        return self.dihedral or any(
            (
                self.brightness,
                self.contrast,
                self.saturation,
                self.hue,
                self.hed_scale,
                self.hed_shift,
            )
        )

    def __call__(
        self, image: torch.Tensor, target: torch.Tensor | None, g: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Augment a (3, H, W) image and, geometrically only, its (H, W) target."""
        if self.dihedral:
            k = int(torch.randint(8, (), generator=g))
            image = dihedral(image, k)
            if target is not None:
                target = dihedral(target, k)
        if any((self.brightness, self.contrast, self.saturation, self.hue)):
            image = color_jitter(
                image, g, self.brightness, self.contrast, self.saturation, self.hue
            )
        if self.hed_scale or self.hed_shift:
            image = hed_jitter(image, g, self.hed_scale, self.hed_shift)
        return image.contiguous(), None if target is None else target.contiguous()


NO_AUGMENT = Augment(False, 0.0, 0.0, 0.0, 0.0)
#: Dihedral transforms and HED stain jitter: the default of pretraining and fine-tuning.
HED_AUGMENT = Augment(True, 0.0, 0.0, 0.0, 0.0, hed_scale=0.1, hed_shift=0.005)


def augment_name(kind: bool | str) -> str:
    """The name of a colour augmentation setting: ``True`` is ``"hed"``, ``False`` ``"none"``."""
    if isinstance(kind, bool):
        return ColourAugment.HED.value if kind else ColourAugment.NONE.value
    if kind not in AUGMENTS:
        raise ValueError(f"unknown augmentation {kind!r}; choose one of {', '.join(AUGMENTS)}")
    return kind


def augment_for(kind: bool | str) -> Augment:
    """The augmentation a config names: ``"hed"`` (or True), ``"rgb"`` (paper 2's jitter) or ``"none"``."""
    return {"hed": HED_AUGMENT, "rgb": Augment(), "none": NO_AUGMENT}[augment_name(kind)]


def sample_generator(seed: int, epoch: int, index: int) -> torch.Generator:
    """The generator of one sample's randomness."""
    g = torch.Generator()
    g.manual_seed((seed * 1_000_003 + epoch) * 10_000_019 + index)
    return g
