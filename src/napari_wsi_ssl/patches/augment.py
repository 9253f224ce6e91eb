"""Augmentation in plain torch: the 8 dihedral transforms and colour jitter (paper 2).

Every function takes a ``torch.Generator`` so that a sample's augmentation depends only on
(seed, epoch, index): runs are reproducible with any number of DataLoader workers and resume
exactly where they stopped.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


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

    @property
    def active(self) -> bool:
        return self.dihedral or any((self.brightness, self.contrast, self.saturation, self.hue))

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
        return image.contiguous(), None if target is None else target.contiguous()


NO_AUGMENT = Augment(False, 0.0, 0.0, 0.0, 0.0)


def sample_generator(seed: int, epoch: int, index: int) -> torch.Generator:
    """The generator of one sample's randomness."""
    g = torch.Generator()
    g.manual_seed((seed * 1_000_003 + epoch) * 10_000_019 + index)
    return g
