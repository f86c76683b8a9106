"""ResNet-50 backbone with torchvision's parameter names (the layout SPIN's HMR and CLIFF load).

torchvision has no CPU wheel here, so the network is written out: stem (conv1 7x7/2, bn1,
relu, maxpool 3x3/2), then layer1..layer4 of Bottleneck blocks [3, 4, 6, 3] with the stride
on the 3x3 convolution (torchvision >= 0.2 / SPIN / CLIFF), and a `downsample.0` (1x1 conv)
/ `downsample.1` (BatchNorm) shortcut where the shape changes. No `fc`. State-dict names and
order equal torchvision's `resnet50()` minus `fc.*`.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

__all__ = ["Bottleneck", "ResNet50Features", "init_like_spin"]


class Bottleneck(nn.Module):
    """1x1 -> 3x3 (stride) -> 1x1 (x4 channels) residual block, torchvision names."""

    expansion = 4

    def __init__(self, in_channels: int, width: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, width, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, width * self.expansion, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(width * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + shortcut)


class ResNet50Features(nn.Module):
    """ResNet-50 trunk: (N, in_channels, H, W) -> pooled features (N, 2048).

    pool: "avg7" = AvgPool2d(7, stride=1) as in SPIN's HMR (needs a 224x224 input, giving a 7x7
    map); "avg8x6" = AvgPool2d((8, 6), stride=1) as in CLIFF res50 (needs 256x192); "global" =
    adaptive average pooling (any input size, used by NBF). A fixed pool on the wrong size raises
    ValueError instead of silently returning a spatial map.
    """

    _FIXED_POOLS = {"avg7": (7, 7), "avg8x6": (8, 6)}

    def __init__(self, in_channels: int = 3, pool: str = "avg7", layers: tuple[int, ...] = (3, 4, 6, 3)):
        super().__init__()
        if pool not in ("avg7", "avg8x6", "global"):
            raise ValueError(f"unknown pool {pool!r}: use 'avg7' (HMR), 'avg8x6' (CLIFF res50) or 'global'")
        self.pool_kind = pool
        self.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        channels = 64
        stages = []
        for index, (blocks, width) in enumerate(zip(layers, (64, 128, 256, 512))):
            stride = 1 if index == 0 else 2
            stage, channels = self._make_stage(channels, width, blocks, stride)
            stages.append(stage)
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.out_channels = channels
        if pool == "global":
            self.avgpool: nn.Module = nn.AdaptiveAvgPool2d(1)
        else:
            self.avgpool = nn.AvgPool2d(self._FIXED_POOLS[pool], stride=1)

    @staticmethod
    def _make_stage(in_channels: int, width: int, blocks: int, stride: int) -> tuple[nn.Sequential, int]:
        out_channels = width * Bottleneck.expansion
        downsample = None
        if stride != 1 or in_channels != out_channels:
            downsample = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )
        modules = [Bottleneck(in_channels, width, stride, downsample)]
        modules += [Bottleneck(out_channels, width) for _ in range(1, blocks)]
        return nn.Sequential(*modules), out_channels

    def feature_map(self, x: Tensor) -> Tensor:
        """(N, C, H, W) -> layer4 output (N, 2048, H/32, W/32)."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def forward(self, x: Tensor) -> Tensor:
        fmap = self.feature_map(x)
        if self.pool_kind != "global" and tuple(fmap.shape[-2:]) != self._FIXED_POOLS[self.pool_kind]:
            need = {"avg7": "224x224", "avg8x6": "256x192 (HxW)"}[self.pool_kind]
            raise ValueError(
                f"input {tuple(x.shape[-2:])} gives a {tuple(fmap.shape[-2:])} feature map; this backbone "
                f"was trained on {need} crops: resize the crop (fitter.regressors.preprocess.crop_for_model)"
            )
        return self.avgpool(fmap).flatten(1)


def init_like_spin(module: nn.Module) -> None:
    """SPIN/CLIFF initialisation: conv weights ~ N(0, sqrt(2 / (k*k*out))), BatchNorm weight 1 bias 0."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
            with torch.no_grad():
                m.weight.normal_(0.0, math.sqrt(2.0 / fan_out))
        elif isinstance(m, nn.BatchNorm2d):
            with torch.no_grad():
                m.weight.fill_(1.0)
                m.bias.zero_()
