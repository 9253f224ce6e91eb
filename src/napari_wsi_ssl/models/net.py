"""The model of both papers: a ResNet34 encoder, an inverted-ResNet34 decoder and task heads.

``build_model(preset, task, num_classes, width)`` gives every variant; ``WsiModel.arch`` is the
plain dict that rebuilds it (stored in checkpoints). ``forward`` takes float (B, 3, H, W) in [0, 1];
the normalisation lives inside the model as buffers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..vocab import Preset, Task
from .decoder import DECODER_LAYERS, InvertedResNetDecoder, LightSegHead
from .resnet import RESNET34_LAYERS, ResNetEncoder

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
TASKS = Task.values()
SEG_HEADS = ("decoder", "light")

#: preset name -> (decoder skips, joint reconstruction head when segmenting)
PRESETS: dict[str, dict[str, Any]] = {
    # paper 1: ResNet34 autoencoder; segmentation uses the same inverted decoder without skips
    Preset.RESNET34_AE.value: {"skips": (), "joint_recon": False},
    # paper 2: UNet with the shallowest skip (stride 2) removed, fine-tuned on segmentation and
    # reconstruction together
    Preset.UNET_RESNET34.value: {"skips": (16, 8, 4), "joint_recon": True},
}


def make_arch(
    preset: str,
    task: str = Task.RECONSTRUCT.value,
    num_classes: int = 2,
    width: int = 64,
    *,
    skips: Sequence[int] | None = None,
    seg_head: str = "decoder",
    recon_head: bool | None = None,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
) -> dict[str, Any]:
    """The plain-dict architecture config of a preset (what a checkpoint stores)."""
    if preset not in Preset.values():
        raise ValueError(f"unknown preset {preset!r}; choose one of {sorted(PRESETS)}")
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; choose one of {list(TASKS)}")
    if seg_head not in SEG_HEADS:
        raise ValueError(f"unknown seg_head {seg_head!r}; choose one of {list(SEG_HEADS)}")
    preset, task = Preset(preset).value, Task(task).value  # plain strings in the checkpoint
    if task == Task.NUCLEI:
        num_classes = 3
    if task == Task.RECONSTRUCT:
        num_classes = 0
    elif num_classes < 2:
        raise ValueError(f"a {task} model needs at least 2 classes, got {num_classes}")
    spec = PRESETS[preset]
    if recon_head is None:
        recon_head = task == Task.RECONSTRUCT or (
            spec["joint_recon"] and task in (Task.SEGMENT, Task.NUCLEI) and seg_head == "decoder"
        )
    return {
        "preset": preset,
        "task": task,
        "num_classes": int(num_classes),
        "width": int(width),
        "encoder_layers": list(RESNET34_LAYERS),
        "decoder_layers": list(DECODER_LAYERS),
        "skips": [int(s) for s in (spec["skips"] if skips is None else skips)],
        "seg_head": seg_head if task in (Task.SEGMENT, Task.NUCLEI) else None,
        "recon_head": bool(recon_head),
        "mean": [float(m) for m in mean],
        "std": [float(s) for s in std],
    }


class WsiModel(nn.Module):
    """Encoder, optional decoder and heads; ``forward`` returns a dict of outputs.

    Outputs: ``"recon"`` (B, 3, H, W) in [0, 1], ``"seg"`` (B, C, H, W) logits, ``"logits"`` (B, C).
    """

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, arch: dict[str, Any]) -> None:
        super().__init__()
        self.arch = dict(arch)
        self.preset: str = arch["preset"]
        self.task: str = arch["task"]
        self.num_classes: int = arch["num_classes"]
        self.frozen_encoder = False
        w = arch["width"]
        self.register_buffer("mean", torch.tensor(arch["mean"]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(arch["std"]).view(1, 3, 1, 1))
        self.encoder = ResNetEncoder(arch["encoder_layers"], w)
        needs_decoder = arch["recon_head"] or arch["seg_head"] == "decoder"
        self.decoder = (
            InvertedResNetDecoder(w, arch["decoder_layers"], arch["skips"])
            if needs_decoder
            else None
        )
        self.recon_head = nn.Conv2d(w, 3, kernel_size=1) if arch["recon_head"] else None
        self.seg_head: nn.Module | None = None
        if arch["seg_head"] == "decoder":
            self.seg_head = nn.Conv2d(w, self.num_classes, kernel_size=1)
        elif arch["seg_head"] == "light":
            self.seg_head = LightSegHead(w, self.num_classes)
        self.classifier: nn.Module | None = None
        if self.task == Task.CLASSIFY:
            # paper 1: GAP, Linear(512->128), ReLU, Linear(128->C) at width 64
            self.classifier = nn.Sequential(
                nn.Linear(8 * w, 2 * w), nn.ReLU(inplace=True), nn.Linear(2 * w, self.num_classes)
            )

    def forward_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Normalise and encode; features at strides 2, 4, 8, 16 and 32."""
        return self.encoder((x - self.mean) / self.std)

    def forward_head(
        self, features: Sequence[torch.Tensor], size: tuple[int, int]
    ) -> dict[str, torch.Tensor]:
        """Heads over encoder features; ``size`` is the input (H, W)."""
        out: dict[str, torch.Tensor] = {}
        if self.classifier is not None:
            out["logits"] = self.classifier(features[4].mean(dim=(2, 3)))
        decoded = None
        if self.decoder is not None:
            decoded = self.decoder(features)
            if decoded.shape[-2:] != size:
                decoded = F.interpolate(decoded, size=size, mode="bilinear", align_corners=False)
        if self.recon_head is not None and decoded is not None:
            out["recon"] = torch.sigmoid(self.recon_head(decoded))
        if isinstance(self.seg_head, LightSegHead):
            out["seg"] = self.seg_head(features, size)
        elif self.seg_head is not None and decoded is not None:
            out["seg"] = self.seg_head(decoded)
        return out

    def forward(
        self,
        x: torch.Tensor | None,
        features: Sequence[torch.Tensor] | None = None,
        size: tuple[int, int] | None = None,
    ) -> dict[str, torch.Tensor]:
        """Outputs for images ``x``, or for precomputed encoder ``features`` of images of ``size``."""
        if features is None:
            if x is None:
                raise ValueError("give images or features")
            if self.frozen_encoder:
                with torch.no_grad():
                    features = self.forward_features(x)
            else:
                features = self.forward_features(x)
        if size is None:
            if x is None:
                raise ValueError("give the image size with features")
            size = (x.shape[-2], x.shape[-1])
        return self.forward_head(features, size)

    def train(self, mode: bool = True) -> WsiModel:
        super().train(mode)
        if self.frozen_encoder:
            self.encoder.eval()  # frozen means its batch-norm statistics too
        return self

    def trainable_parts(self, frozen_encoder: bool) -> list[nn.Parameter]:
        """Parameters to optimise; with a frozen encoder, only the decoder and heads."""
        self.frozen_encoder = frozen_encoder
        if frozen_encoder:
            self.encoder.eval()
            self.encoder.requires_grad_(False)
            return [p for n, p in self.named_parameters() if not n.startswith("encoder.")]
        return list(self.parameters())


def build_model(
    preset: str,
    task: str = Task.RECONSTRUCT.value,
    num_classes: int = 2,
    width: int = 64,
    **options: Any,
) -> WsiModel:
    """Build a model from a preset.

    Parameters
    ----------
    preset
        ``"resnet34-ae"`` (paper 1, no skips) or ``"unet-resnet34"`` (paper 2, skips at strides
        16, 8 and 4; the shallowest, stride 2, is absent).
    task
        ``"reconstruct"``, ``"segment"``, ``"classify"`` or ``"nuclei"`` (3-class segmentation:
        background, foreground, boundary).
    num_classes
        Classes of a segment or classify model (ignored for reconstruct and nuclei).
    width
        Channels of the first stage: 64 is ResNet34; 8 gives a tiny model for tests.
    **options
        ``skips``, ``seg_head`` (``"decoder"`` or ``"light"``), ``recon_head``, ``mean``, ``std``.
    """
    return WsiModel(make_arch(preset, task, num_classes, width, **options))


def build_from_arch(arch: dict[str, Any]) -> WsiModel:
    """Rebuild a model from the ``arch`` dict of a checkpoint (validated)."""
    keys = (
        "preset",
        "task",
        "num_classes",
        "width",
        "skips",
        "seg_head",
        "recon_head",
        "mean",
        "std",
    )
    missing = [k for k in keys if k not in arch]
    if missing:
        raise ValueError(f"architecture config lacks {missing}")
    ref = make_arch(
        arch["preset"],
        arch["task"],
        arch["num_classes"],
        arch["width"],
        skips=arch["skips"],
        seg_head=arch["seg_head"] or "decoder",
        recon_head=arch["recon_head"],
        mean=arch["mean"],
        std=arch["std"],
    )
    ref["encoder_layers"] = list(arch.get("encoder_layers", ref["encoder_layers"]))
    ref["decoder_layers"] = list(arch.get("decoder_layers", ref["decoder_layers"]))
    return WsiModel(ref)


def load_encoder_state_dict(
    model: WsiModel | nn.Module, state_dict: dict[str, torch.Tensor]
) -> list[str]:
    """Load a torchvision-layout ResNet state_dict (``fc.*`` ignored) into the model's encoder.

    Keys may carry an ``encoder.`` or ``module.`` prefix. Returns the encoder keys left missing;
    raises ``ValueError`` on shape mismatches or when nothing matched.
    """
    encoder = model.encoder if isinstance(model, WsiModel) else model
    clean: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        for prefix in ("module.", "encoder."):
            if key.startswith(prefix):
                key = key[len(prefix) :]
        if not key.startswith("fc."):
            clean[key] = value
    try:
        result = encoder.load_state_dict(clean, strict=False)
    except RuntimeError as exc:  # size mismatches
        raise ValueError(
            str(exc).split("\n")[0] + " (shapes do not fit this encoder width)"
        ) from None
    if result.unexpected_keys and len(result.unexpected_keys) == len(clean):
        raise ValueError("no key of the state_dict matches a ResNet encoder")
    return list(result.missing_keys)
