"""ResNet34 encoder in plain torch, with torchvision's parameter names.

The names (``conv1``, ``bn1``, ``layer1`` .. ``layer4``, each block ``conv1/bn1/conv2/bn2`` and
``downsample.0/.1``) match ``torchvision.models.resnet34`` so that its state_dict loads as is.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

RESNET34_LAYERS = (3, 4, 6, 3)


def conv3x3(in_ch: int, out_ch: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, kernel_size=3, stride=stride, padding=1, bias=False)


def conv1x1(in_ch: int, out_ch: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, kernel_size=1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a residual connection (torchvision's ``BasicBlock``)."""

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = conv3x3(in_ch, out_ch, stride)
        self.bn1 = nn.BatchNorm2d(out_ch)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(out_ch, out_ch)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.downsample: nn.Module | None = None
        if stride != 1 or in_ch != out_ch:
            self.downsample = nn.Sequential(conv1x1(in_ch, out_ch, stride), nn.BatchNorm2d(out_ch))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ResNetEncoder(nn.Module):
    """ResNet trunk without its classifier; returns the features at strides 2, 4, 8, 16 and 32.

    Parameters
    ----------
    layers
        Blocks per stage; ``(3, 4, 6, 3)`` is ResNet34.
    width
        Channels of the first stage (64 in ResNet34); later stages have 2x, 4x and 8x that.
    """

    def __init__(self, layers: Sequence[int] = RESNET34_LAYERS, width: int = 64) -> None:
        super().__init__()
        if width < 1 or len(layers) != 4 or min(layers) < 1:
            raise ValueError(f"bad encoder shape: layers={list(layers)}, width={width}")
        self.width = width
        self.conv1 = nn.Conv2d(3, width, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(width, width, layers[0], stride=1)
        self.layer2 = self._make_layer(width, 2 * width, layers[1], stride=2)
        self.layer3 = self._make_layer(2 * width, 4 * width, layers[2], stride=2)
        self.layer4 = self._make_layer(4 * width, 8 * width, layers[3], stride=2)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    @staticmethod
    def _make_layer(in_ch: int, out_ch: int, blocks: int, stride: int) -> nn.Sequential:
        mods = [BasicBlock(in_ch, out_ch, stride)]
        mods += [BasicBlock(out_ch, out_ch) for _ in range(blocks - 1)]
        return nn.Sequential(*mods)

    @property
    def channels(self) -> tuple[int, int, int, int, int]:
        """Channels of the features at strides 2, 4, 8, 16 and 32."""
        w = self.width
        return (w, w, 2 * w, 4 * w, 8 * w)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        s2 = self.relu(self.bn1(self.conv1(x)))
        s4 = self.layer1(self.maxpool(s2))
        s8 = self.layer2(s4)
        s16 = self.layer3(s8)
        s32 = self.layer4(s16)
        return [s2, s4, s8, s16, s32]


def torchvision_resnet_keys(layers: Sequence[int] = RESNET34_LAYERS) -> list[str]:
    """The state_dict keys of torchvision's ResNet trunk (without ``fc``), built by hand."""
    keys: list[str] = []

    def bn(prefix: str) -> None:
        keys.extend(
            f"{prefix}.{n}"
            for n in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
        )

    keys.append("conv1.weight")
    bn("bn1")
    for stage, blocks in enumerate(layers, start=1):
        for b in range(blocks):
            p = f"layer{stage}.{b}"
            keys.append(f"{p}.conv1.weight")
            bn(f"{p}.bn1")
            keys.append(f"{p}.conv2.weight")
            bn(f"{p}.bn2")
            if b == 0 and stage > 1:
                keys.append(f"{p}.downsample.0.weight")
                bn(f"{p}.downsample.1")
    return keys
