"""HRNet backbones (Sun et al. 2019) with the parameter names of the official checkpoints.

One implementation of the HRNet building blocks (basic / bottleneck residual blocks,
multi-resolution modules with fuse layers, transitions, the four-stage trunk), used by two
networks that differ only in width and output head:

- `HRNetW48Classification`: the ImageNet classification HRNet-W48 without its classifier, the
  backbone of CLIFF-hr48 (state-dict names = those under `encoder.` in
  checkpoint_layouts/cliff_hr48.json). forward: (N,3,H,W) -> (N,2048) pooled features.
- `HRNetW32Pose`: the HRNet-W32 pose net as PARE uses it (`hrnet_w32-conv`): the four branch
  outputs are brought to the highest resolution by [bilinear x2, conv3x3, BN, ReLU] stages and
  concatenated -> (N,480,H/4,W/4) (56x56 for a 224 input). It keeps the pose net's unused
  `final_layer` (24-joint heatmap conv) so that the checkpoint loads strictly.

Input height and width must be multiples of 32 (the lowest branch is 1/32 of the input and
the fuse layers upsample by exact powers of two). Inputs are RGB crops, /255, ImageNet
mean/std normalised.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "BasicBlock",
    "Bottleneck",
    "HighResolutionModule",
    "HRNetStageSpec",
    "HRNetTrunk",
    "HRNetClassification",
    "HRNetW48Classification",
    "HRNetPose",
    "HRNetW32Pose",
    "hrnet_stage_specs",
    "make_residual_layer",
]

# The official nets use BatchNorm2d(momentum=0.1, eps=1e-5), which are torch's defaults.


def _conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    """3x3 convolution, padding 1, no bias."""
    return nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=stride, padding=1, bias=False)


def _projection_shortcut(in_channels: int, out_channels: int, stride: int) -> nn.Sequential:
    """1x1 conv (no bias) + BN: the residual shortcut when channels or stride change (`downsample`)."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=stride, bias=False),
        nn.BatchNorm2d(out_channels),
    )


class BasicBlock(nn.Module):
    """Residual block of two 3x3 convs; output channels = planes (expansion 1)."""

    expansion = 1

    def __init__(self, in_channels: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = _conv3x3(in_channels, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = _conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + shortcut)


class Bottleneck(nn.Module):
    """Residual block 1x1 -> 3x3 (stride) -> 1x1; output channels = 4 * planes."""

    expansion = 4

    def __init__(self, in_channels: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, planes, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = _conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return F.relu(out + shortcut)


ResidualBlock = type[BasicBlock] | type[Bottleneck]


def make_residual_layer(
    block: ResidualBlock, in_channels: int, planes: int, num_blocks: int, stride: int = 1
) -> nn.Sequential:
    """`num_blocks` residual blocks; the first gets a projection shortcut when shapes change."""
    out_channels = planes * block.expansion
    downsample = None
    if stride != 1 or in_channels != out_channels:
        downsample = _projection_shortcut(in_channels, out_channels, stride)
    blocks: list[nn.Module] = [block(in_channels, planes, stride, downsample)]
    blocks += [block(out_channels, planes) for _ in range(1, num_blocks)]
    return nn.Sequential(*blocks)


def _strided_conv_bn(in_channels: int, out_channels: int, relu: bool) -> nn.Sequential:
    """3x3 stride-2 conv (no bias) + BN (+ ReLU): one halving step of a transition/fuse path."""
    layers: list[nn.Module] = [_conv3x3(in_channels, out_channels, stride=2), nn.BatchNorm2d(out_channels)]
    if relu:
        layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class HighResolutionModule(nn.Module):
    """Parallel residual branches at resolutions 1, 1/2, 1/4, ... followed by all-to-all fusion.

    Branch i has `channels[i]` channels. Fusing into branch i sums every branch j after
    resampling: j > i by 1x1 conv + BN + nearest upsampling x2^(j-i); j < i by (i-j) stride-2
    3x3 convs (BN, ReLU between them, none after the last); then ReLU.
    forward: list of (N, channels[i], H/2^i, W/2^i) -> same list (only branch 0 when
    `multi_scale_output` is False).
    """

    def __init__(
        self,
        block: ResidualBlock,
        num_blocks: Sequence[int],
        in_channels: Sequence[int],
        planes: Sequence[int],
        multi_scale_output: bool = True,
    ):
        super().__init__()
        if not (len(num_blocks) == len(in_channels) == len(planes)):
            raise ValueError(
                f"HighResolutionModule needs one entry per branch: num_blocks {list(num_blocks)}, "
                f"in_channels {list(in_channels)}, planes {list(planes)} differ in length"
            )
        self.num_branches = len(planes)
        self.out_channels = [p * block.expansion for p in planes]
        self.branches = nn.ModuleList(
            make_residual_layer(block, c_in, p, n) for c_in, p, n in zip(in_channels, planes, num_blocks)
        )
        self.fuse_layers = self._make_fuse_layers(multi_scale_output) if self.num_branches > 1 else None

    def _make_fuse_layers(self, multi_scale_output: bool) -> nn.ModuleList:
        channels = self.out_channels
        fuse_layers = nn.ModuleList()
        for i in range(self.num_branches if multi_scale_output else 1):
            paths: list[nn.Module | None] = []
            for j in range(self.num_branches):
                if j > i:
                    paths.append(
                        nn.Sequential(
                            nn.Conv2d(channels[j], channels[i], kernel_size=1, bias=False),
                            nn.BatchNorm2d(channels[i]),
                            nn.Upsample(scale_factor=2 ** (j - i), mode="nearest"),
                        )
                    )
                elif j == i:
                    paths.append(None)
                else:
                    steps = [_strided_conv_bn(channels[j], channels[j], relu=True) for _ in range(i - j - 1)]
                    steps.append(_strided_conv_bn(channels[j], channels[i], relu=False))
                    paths.append(nn.Sequential(*steps))
            fuse_layers.append(nn.ModuleList(paths))
        return fuse_layers

    def forward(self, inputs: list[torch.Tensor]) -> list[torch.Tensor]:
        branch_outputs = [branch(x) for branch, x in zip(self.branches, inputs)]
        if self.fuse_layers is None:
            return branch_outputs
        fused = []
        for i, paths in enumerate(self.fuse_layers):
            # Summed in branch order 0, 1, 2, ... as the official code does (same rounding).
            total = branch_outputs[0] if i == 0 else paths[0](branch_outputs[0])
            for j in range(1, self.num_branches):
                total = total + (branch_outputs[j] if j == i else paths[j](branch_outputs[j]))
            fused.append(F.relu(total))
        return fused


def _make_transition(in_channels: Sequence[int], out_channels: Sequence[int]) -> nn.ModuleList:
    """Map the previous stage's branches to the next stage's (one more, at half resolution).

    Existing branch i: 3x3 conv + BN + ReLU if its channel count changes, else identity
    (None). New branch i: stride-2 3x3 convs + BN + ReLU from the previous lowest branch.
    """
    transition: list[nn.Module | None] = []
    for i, c_out in enumerate(out_channels):
        if i < len(in_channels):
            if c_out != in_channels[i]:
                transition.append(nn.Sequential(_conv3x3(in_channels[i], c_out), nn.BatchNorm2d(c_out), nn.ReLU()))
            else:
                transition.append(None)
        else:
            num_halvings = i + 1 - len(in_channels)
            c_last = in_channels[-1]
            steps = [
                _strided_conv_bn(c_last, c_out if k == num_halvings - 1 else c_last, relu=True)
                for k in range(num_halvings)
            ]
            transition.append(nn.Sequential(*steps))
    return nn.ModuleList(transition)


@dataclass(frozen=True)
class HRNetStageSpec:
    """One HRNet stage: `num_modules` HighResolutionModules of BasicBlocks.

    `num_blocks[i]` blocks and `channels[i]` channels on branch i (branch i at 1/2^i of the
    stage's highest resolution).
    """

    num_modules: int
    num_blocks: tuple[int, ...]
    channels: tuple[int, ...]


def hrnet_stage_specs(width: int) -> tuple[HRNetStageSpec, HRNetStageSpec, HRNetStageSpec]:
    """Stages 2-4 of the standard HRNet-W`width` (the config of both HRNet-W32 and -W48).

    Stage 2: 1 module, 2 branches; stage 3: 4 modules, 3 branches; stage 4: 3 modules,
    4 branches; 4 basic blocks per branch; channels width * (1, 2, 4, 8).
    """
    return (
        HRNetStageSpec(1, (4, 4), (width, 2 * width)),
        HRNetStageSpec(4, (4, 4, 4), (width, 2 * width, 4 * width)),
        HRNetStageSpec(3, (4, 4, 4, 4), (width, 2 * width, 4 * width, 8 * width)),
    )


class HRNetTrunk(nn.Module):
    """Stem + stages 1-4 shared by the classification and pose HRNets.

    Stem: two stride-2 3x3 convs (3 -> 64 -> 64) with BN + ReLU; stage 1 (`layer1`): 4
    bottlenecks (64 -> 256); then transition1, stage2, transition2, stage3, transition3,
    stage4. `forward_branches`: (N,3,H,W) -> list of 4 tensors (N, width*2^i, H/2^(i+2),
    W/2^(i+2)), i = 0..3.
    """

    def __init__(self, width: int):
        super().__init__()
        if width <= 0:
            raise ValueError(f"HRNet width must be a positive channel count, got {width}")
        self.width = width
        self.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.conv2 = nn.Conv2d(64, 64, kernel_size=3, stride=2, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(64)
        self.layer1 = make_residual_layer(Bottleneck, 64, 64, 4)

        channels: list[int] = [64 * Bottleneck.expansion]
        for index, spec in enumerate(hrnet_stage_specs(width), start=2):
            setattr(self, f"transition{index - 1}", _make_transition(channels, spec.channels))
            modules = []
            in_channels = list(spec.channels)
            for _ in range(spec.num_modules):
                module = HighResolutionModule(BasicBlock, spec.num_blocks, in_channels, spec.channels)
                in_channels = module.out_channels
                modules.append(module)
            setattr(self, f"stage{index}", nn.Sequential(*modules))
            channels = in_channels
        self.branch_channels: list[int] = channels

    @staticmethod
    def _check_input(images: torch.Tensor) -> None:
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"HRNet expects images of shape (N,3,H,W), got {tuple(images.shape)}")
        height, width = images.shape[-2:]
        if height % 32 or width % 32:
            raise ValueError(
                f"HRNet input height and width must be multiples of 32, got {height}x{width}: "
                "resize or pad the crop (e.g. 256x192 for CLIFF, 224x224 for PARE)"
            )

    @staticmethod
    def _apply_transition(transition: nn.ModuleList, branches: list[torch.Tensor]) -> list[torch.Tensor]:
        # New (lower-resolution) branches start from the previous stage's lowest branch.
        return [
            (branches[i] if layer is None else layer(branches[i])) if i < len(branches) else layer(branches[-1])
            for i, layer in enumerate(transition)
        ]

    def forward_branches(self, images: torch.Tensor) -> list[torch.Tensor]:
        """(N,3,H,W) normalised RGB -> the 4 stage-4 branch outputs, highest resolution first."""
        self._check_input(images)
        x = F.relu(self.bn1(self.conv1(images)))
        x = F.relu(self.bn2(self.conv2(x)))
        branches = [self.layer1(x)]
        for index in (2, 3, 4):
            branches = self._apply_transition(getattr(self, f"transition{index - 1}"), branches)
            branches = getattr(self, f"stage{index}")(branches)
        return branches


class HRNetClassification(HRNetTrunk):
    """Classification HRNet without the classifier: (N,3,H,W) -> (N,2048) average-pooled features.

    Head: each branch i goes through one bottleneck to 128*2^i channels (`incre_modules`);
    from the highest resolution down, a stride-2 3x3 conv (with bias) + BN + ReLU
    (`downsamp_modules`) halves and adds into the next branch; `final_layer` = 1x1 conv
    1024 -> 2048 (with bias) + BN + ReLU; global average pooling over whatever size remains.
    """

    head_planes = (32, 64, 128, 256)

    def __init__(self, width: int = 48):
        super().__init__(width)
        self.incre_modules = nn.ModuleList(
            make_residual_layer(Bottleneck, c, planes, 1) for c, planes in zip(self.branch_channels, self.head_planes)
        )
        head_channels = [p * Bottleneck.expansion for p in self.head_planes]
        self.downsamp_modules = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(c_in, c_out, kernel_size=3, stride=2, padding=1),
                nn.BatchNorm2d(c_out),
                nn.ReLU(),
            )
            for c_in, c_out in zip(head_channels[:-1], head_channels[1:])
        )
        self.final_layer = nn.Sequential(
            nn.Conv2d(head_channels[-1], 2048, kernel_size=1),
            nn.BatchNorm2d(2048),
            nn.ReLU(),
        )
        self.out_features = 2048

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(N,3,H,W) normalised RGB, H and W multiples of 32 -> (N,2048)."""
        branches = self.forward_branches(images)
        y = self.incre_modules[0](branches[0])
        for i, downsample in enumerate(self.downsamp_modules):
            y = self.incre_modules[i + 1](branches[i + 1]) + downsample(y)
        y = self.final_layer(y)
        return F.avg_pool2d(y, kernel_size=y.shape[2:]).flatten(1)


class HRNetW48Classification(HRNetClassification):
    """HRNet-W48 classification net (CLIFF-hr48 `encoder`): (N,3,H,W) -> (N,2048); ~79M floats."""

    def __init__(self) -> None:
        super().__init__(width=48)


class HRNetPose(HRNetTrunk):
    """HRNet pose net with convolutional upsampling (PARE's `hrnet_w<width>-conv`).

    forward: (N,3,H,W) -> (N, 15*width, H/4, W/4): branch 0 concatenated with branches 1-3,
    each brought up by 1/2/3 x [bilinear x2 (align_corners=True), 3x3 conv no bias, BN, ReLU]
    (`upsample_stage_2/3/4`). `final_layer` (1x1 conv to `num_joints` heatmaps) is kept for
    checkpoint compatibility only: PARE never calls it.
    """

    def __init__(self, width: int = 32, num_joints: int = 24):
        super().__init__(width)
        self.final_layer = nn.Conv2d(self.branch_channels[0], num_joints, kernel_size=1)
        for level in (1, 2, 3):
            setattr(self, f"upsample_stage_{level + 1}", self._make_upsample(level, self.branch_channels[level]))
        self.out_channels = sum(self.branch_channels)

    @staticmethod
    def _make_upsample(num_doublings: int, channels: int) -> nn.Sequential:
        layers: list[nn.Module] = []
        for _ in range(num_doublings):
            layers += [
                nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True),
                _conv3x3(channels, channels),
                nn.BatchNorm2d(channels),
                nn.ReLU(),
            ]
        return nn.Sequential(*layers)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(N,3,H,W) normalised RGB, H and W multiples of 32 -> (N, 15*width, H/4, W/4)."""
        branches = self.forward_branches(images)
        upsampled = [branches[0]] + [
            getattr(self, f"upsample_stage_{level + 1}")(branches[level]) for level in (1, 2, 3)
        ]
        return torch.cat(upsampled, dim=1)


class HRNetW32Pose(HRNetPose):
    """HRNet-W32 pose net as PARE's backbone: (N,3,224,224) -> (N,480,56,56)."""

    def __init__(self) -> None:
        super().__init__(width=32, num_joints=24)
