"""The inverted ResNet34 decoder, with optional UNet skips, and a light segmentation head.

The decoder mirrors the encoder: stages of (3, 6, 4, 3) blocks from the deepest to the shallowest,
the last block of each stage upsampling by 2 where the encoder's first block downsampled, and a
final upsampling that undoes the stem's strided convolution, back to full resolution.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .resnet import conv1x1, conv3x3

DECODER_LAYERS = (3, 6, 4, 3)
SKIP_STRIDES = (16, 8, 4, 2)  # the encoder features a decoder may take, deepest first


class UpBlock(nn.Module):
    """An inverted ``BasicBlock``: upsampling by 2 (nearest) replaces the strided convolution."""

    def __init__(self, in_ch: int, out_ch: int, upsample: bool = False) -> None:
        super().__init__()
        self.upsample = upsample
        self.conv1 = conv3x3(in_ch, out_ch)
        self.bn1 = nn.BatchNorm2d(out_ch)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(out_ch, out_ch)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.shortcut: nn.Module | None = None
        if in_ch != out_ch:
            self.shortcut = nn.Sequential(conv1x1(in_ch, out_ch), nn.BatchNorm2d(out_ch))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.upsample:
            x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        identity = x if self.shortcut is None else self.shortcut(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class InvertedResNetDecoder(nn.Module):
    """Decoder from stride 32 back to stride 1.

    Parameters
    ----------
    width
        The encoder's base width; stage channels go 8w, 4w, 2w, w, w.
    layers
        Blocks per stage, deepest first; ``(3, 6, 4, 3)`` inverts ResNet34.
    skips
        Strides of the encoder features concatenated in (a subset of 16, 8, 4, 2). Empty: a plain
        autoencoder decoder. ``(16, 8, 4)``: a UNet without its shallowest skip.
    """

    def __init__(
        self, width: int = 64, layers: Sequence[int] = DECODER_LAYERS, skips: Sequence[int] = ()
    ) -> None:
        super().__init__()
        bad = set(skips) - set(SKIP_STRIDES)
        if bad or len(layers) != 4 or min(layers) < 1:
            raise ValueError(f"bad decoder shape: layers={list(layers)}, skips={list(skips)}")
        self.skips = tuple(sorted(set(skips), reverse=True))
        w = width
        stage_io = [(8 * w, 4 * w), (4 * w, 2 * w), (2 * w, w), (w, w)]
        self.stages = nn.ModuleList(
            self._make_stage(cin, cout, n) for (cin, cout), n in zip(stage_io, layers, strict=True)
        )
        skip_ch = {16: 4 * w, 8: 2 * w, 4: w, 2: w}
        self.fuse = nn.ModuleDict(
            {
                str(s): nn.Sequential(
                    conv1x1(2 * skip_ch[s], skip_ch[s]),
                    nn.BatchNorm2d(skip_ch[s]),
                    nn.ReLU(inplace=True),
                )
                for s in self.skips
            }
        )
        self.final = UpBlock(w, w, upsample=True)
        self.out_channels = w

    @staticmethod
    def _make_stage(in_ch: int, out_ch: int, blocks: int) -> nn.Sequential:
        mods = [UpBlock(in_ch, in_ch) for _ in range(blocks - 1)]
        mods.append(UpBlock(in_ch, out_ch, upsample=True))
        return nn.Sequential(*mods)

    def forward(self, features: Sequence[torch.Tensor]) -> torch.Tensor:
        """Take the encoder's features at strides (2, 4, 8, 16, 32); return stride-1 features."""
        by_stride = dict(zip((2, 4, 8, 16, 32), features, strict=True))
        x = by_stride[32]
        for stage, stride in zip(self.stages, (16, 8, 4, 2), strict=True):
            x = stage(x)
            if stride in self.skips:
                skip = by_stride[stride]
                if skip.shape[-2:] != x.shape[-2:]:
                    x = F.interpolate(x, size=skip.shape[-2:], mode="nearest")
                x = self.fuse[str(stride)](torch.cat([x, skip], dim=1))
        return self.final(x)


class LightSegHead(nn.Module):
    """A small FPN-like head over the frozen encoder's stride 8, 16 and 32 features.

    It is the fast interactive alternative to the full decoder: a few 1x1 projections summed at
    stride 8, one 3x3 convolution, and bilinear upsampling to the input size.
    """

    def __init__(self, width: int, num_classes: int, hidden: int | None = None) -> None:
        super().__init__()
        h = hidden or max(2 * width, 16)
        self.proj = nn.ModuleList(conv1x1(c, h) for c in (2 * width, 4 * width, 8 * width))
        self.bn = nn.BatchNorm2d(h)
        self.conv = conv3x3(h, h)
        self.bn2 = nn.BatchNorm2d(h)
        self.out = nn.Conv2d(h, num_classes, kernel_size=1)

    def forward(self, features: Sequence[torch.Tensor], size: tuple[int, int]) -> torch.Tensor:
        s8 = features[2]
        x = self.proj[0](s8)
        for proj, f in zip(self.proj[1:], features[3:5], strict=True):
            x = x + F.interpolate(proj(f), size=s8.shape[-2:], mode="bilinear", align_corners=False)
        x = F.relu(self.bn(x))
        x = F.relu(self.bn2(self.conv(x)))
        return F.interpolate(self.out(x), size=size, mode="bilinear", align_corners=False)
