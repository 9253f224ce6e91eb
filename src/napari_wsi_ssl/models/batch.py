"""A model applied to a batch of uint8 images: the one path from pixels to class probabilities."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .device import autocast_for


def predict_batch(
    model: Any,
    images: np.ndarray,
    device: torch.device | str,
    output: str = "seg",
    *,
    inference_mode: bool = True,
) -> np.ndarray:
    """Float32 softmax probabilities of ``model``'s ``output`` on (B, H, W, 3) uint8 ``images``.

    Segmentation outputs come back as (B, C, H, W), classifier logits as (B, C). The batch goes
    to ``device`` as ``channels_last`` floats in [0, 1] (the model normalises them) and runs under
    the device's autocast; the model is expected on ``device`` in eval mode already.
    ``inference_mode=False`` runs under ``no_grad`` instead (a compiled model freezes its weights
    there).
    """
    x = torch.from_numpy(np.ascontiguousarray(images[..., :3])).to(device, non_blocking=True)
    x = x.permute(0, 3, 1, 2).float().div_(255.0).contiguous(memory_format=torch.channels_last)
    grad = torch.inference_mode() if inference_mode else torch.no_grad()
    with grad, autocast_for(device):
        out = model(x)[output]
    return torch.softmax(out.float(), dim=1).cpu().numpy()
