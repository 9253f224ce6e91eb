"""Pretraining objectives: how each corrupts the input patch, and the loss it reconstructs with.

Every objective trains the same model (a preset's encoder, decoder and reconstruction head) to
output the clean patch; they differ in what the model sees:

- ``l1``: the clean patch itself (the papers' autoencoder; the UNet's shallow skips are removed
  so that it cannot copy its input);
- ``mim``: the patch with ``MASK_RATIO`` of a grid of small squares filled with the model's
  normalisation mean; the loss counts the masked pixels only, so copying is useless;
- ``stain``: the patch with a strong random HED stain jitter and Gaussian noise (denoising);
- ``cross-stain``: the patch rendered from its haematoxylin layer alone, or from its eosin layer
  alone (half the samples each): the model predicts the missing stain.

The randomness of a sample's corruption depends only on (seed, epoch, sample index), like its
augmentation, so runs are reproducible and resume exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..patches.augment import hed_perturb, hed_to_rgb, rgb_to_hed
from ..vocab import Objective

#: The fraction of a patch's grid squares that ``mim`` masks.
MASK_RATIO = 0.6
#: ``stain``: HED factors 1 +- STAIN_SCALE, shifts +- STAIN_SHIFT (rgb2hed units), noise sd.
STAIN_SCALE = 0.3
STAIN_SHIFT = 0.02
NOISE_SD = 0.05


def mask_cell(patch_size: int) -> int:
    """The side of ``mim``'s masked squares: 8 px below 128 px patches, 16 px from there."""
    return 8 if patch_size < 128 else 16


@dataclass
class Corrupted:
    """What the model sees, what it must output, and which pixels the loss counts (None: all)."""

    inputs: torch.Tensor
    target: torch.Tensor
    weight: torch.Tensor | None = None


def corruption_generator(seed: int, epoch: int, index: int) -> torch.Generator:
    """The generator of one sample's corruption (independent of its augmentation's)."""
    g = torch.Generator()
    g.manual_seed((((seed * 1_000_003 + epoch) * 10_000_019 + index) * 31 + 17) & (2**63 - 1))
    return g


def grid_mask(height: int, width: int, cell: int, ratio: float, g: torch.Generator) -> torch.Tensor:
    """A (1, H, W) float mask, 1 on ``round(ratio * n)`` of the ``n`` grid squares of side ``cell``."""
    gh, gw = math.ceil(height / cell), math.ceil(width / cell)
    n = gh * gw
    chosen = torch.randperm(n, generator=g)[: round(ratio * n)]
    cells = torch.zeros(n)
    cells[chosen] = 1.0
    grid = cells.view(1, gh, gw).repeat_interleave(cell, -2).repeat_interleave(cell, -1)
    return grid[:, :height, :width]


def corrupt(
    objective: str,
    images: torch.Tensor,
    indices: torch.Tensor,
    seed: int,
    epoch: int,
    fill: torch.Tensor,
) -> Corrupted:
    """Corrupt a batch ``images`` (B, 3, H, W) in [0, 1] for ``objective``.

    ``indices`` are the samples' dataset indices (their corruption's seeds); ``fill`` (1, 3, 1,
    1) is the colour of ``mim``'s masked squares.
    """
    objective = Objective(objective).value
    x = images.float()
    if objective == Objective.L1:
        return Corrupted(x, x)
    gens = [corruption_generator(seed, epoch, int(i)) for i in indices.tolist()]
    device = x.device
    b, _, h, w = x.shape
    with torch.autocast(device.type, enabled=False):
        if objective == Objective.MIM:
            cell = mask_cell(max(h, w))
            m = torch.stack([grid_mask(h, w, cell, MASK_RATIO, g) for g in gens]).to(device)
            return Corrupted(x * (1 - m) + fill.float() * m, x, m)
        if objective == Objective.STAIN:
            u = torch.stack([torch.rand(2, 3, generator=g) for g in gens]).to(device) * 2 - 1
            scale = (1 + STAIN_SCALE * u[:, 0]).view(b, 3, 1, 1)
            shift = (STAIN_SHIFT * u[:, 1]).view(b, 3, 1, 1)
            noise = torch.stack([torch.randn(3, h, w, generator=g) for g in gens]).to(device)
            jittered = hed_perturb(x, scale, shift) + NOISE_SD * noise
            return Corrupted(jittered.clamp(0.0, 1.0), x)
        # cross-stain: keep H (channel 0) or E (channel 1) only, alternating by a coin per sample
        keep = torch.tensor([int(torch.randint(2, (), generator=g)) for g in gens], device=device)
        only = torch.nn.functional.one_hot(keep, 3).to(x.dtype).view(b, 3, 1, 1)
        return Corrupted(hed_to_rgb(rgb_to_hed(x) * only), x)


def loss(recon: torch.Tensor, corrupted: Corrupted) -> torch.Tensor:
    """Mean L1 between ``recon`` and the target, over the pixels the objective counts."""
    diff = (recon.float() - corrupted.target).abs()
    if corrupted.weight is None:
        return diff.mean()
    w = corrupted.weight
    return (diff * w).sum() / (w.sum() * diff.shape[1]).clamp_min(1.0)
