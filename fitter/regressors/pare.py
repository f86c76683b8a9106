"""PARE (Kocabas et al., ICCV 2021): Part Attention REgressor, HRNet-W32 backbone.

Follows the released model (mkocabas/PARE @ f848b2f, config of checkpoint_layouts/README.md:
`hrnet_w32-conv`, USE_HEATMAPS 'part_segm', keypoint attention on, 2 conv layers of 128
filters, 64 SMPL features, USE_MEAN_CAMSHAPE / USE_MEAN_POSE False) with the same state-dict
names (`backbone.*`, `head.*` = the checkpoint's `model.*` without `model.`) and the same
forward computation:

    features (N,480,h,w)            = backbone(images)             h, w = H/4, W/4 (56 for 224)
    part branch   P (N,25,h,w)      = keypoint_final_layer(keypoint_deconv_layers(features))
    SMPL branch   F (N,128,h,w)     = smpl_deconv_layers(features); F64 = smpl_final_layer(F)
    attention     a_j = softmax over h*w of P[:, 1 + j]       (24 parts; channel 0 = background)
    pooled        pose_feats (N,128,24) = sum_hw a_j * F;  cam_shape_feats (N,64,24) = same on F64
    pose 6D       (N,24,6) = pose_mlp (one 128 -> 6 linear map per joint, no bias)
    betas, cam    shape_mlp / cam_mlp (Linear 1536 -> 10 / 3) on cam_shape_feats flattened
                  channel-major (index c*24 + j)

The mean-parameter buffers (`init_pose`, `init_shape`, `init_cam`) and `temperature` are in the
state dict but unused by this configuration (predictions are not added to the mean).

Self-attention variant (`build_pare(use_self_attention=True)`): the multi-head self-attention
over part maps of López Escoriza, Meyer & Oezdemir, "Machine Perception Report [Learners]"
(seed 004, ETH Machine Perception project extending PARE), inserted after the part branch and
before the attention pooling; see `PartMapSelfAttention` for the formula, the chosen heads and
dimensions, and why. Its parameters live under `head.part_self_attention.*`, after all PARE keys.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fitter.geometry import rot6d_to_matrix
from fitter.regressors.heads import MeanParams, default_mean_params, load_smpl_mean_params
from fitter.regressors.hrnet import HRNetPose, HRNetW32Pose

__all__ = [
    "NUM_PARTS",
    "LocallyConnected2d",
    "PartMapSelfAttention",
    "PareHead",
    "PARERegressor",
    "build_pare",
]

NUM_PARTS = 24  # body parts = SMPL joints; the part branch adds one background channel
SELF_ATTENTION_KEY = "part_self_attention"


class LocallyConnected2d(nn.Module):
    """Unshared 1x1 "convolution": a separate linear map (no bias) at every output location.

    PARE uses it as 24 independent per-joint MLPs. Own implementation because torch has no
    locally connected layer; only kernel 1 / stride 1 (PARE's setting) is supported.
    weight: (1, out_channels, in_channels, rows, cols, 1), the official layout.
    forward: (N, in_channels, rows, cols) -> (N, out_channels, rows, cols).
    """

    def __init__(self, in_channels: int, out_channels: int, rows: int, cols: int = 1):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(1, out_channels, in_channels, rows, cols, 1))

    def forward(self, x: Tensor) -> Tensor:
        expected = self.weight.shape[2:5]
        if x.ndim != 4 or x.shape[1:] != expected:
            raise ValueError(f"LocallyConnected2d expects (N, {', '.join(map(str, expected))}), got {tuple(x.shape)}")
        # Same arithmetic as the original (broadcast product summed over input channels).
        return (x.unsqueeze(-1).unsqueeze(1) * self.weight).sum(dim=(2, -1))


class PartMapSelfAttention(nn.Module):
    """Multi-head self-attention across the pixels of the 24 part maps (seed 004), gated.

    Seed 004: flatten the part maps H (h*w, J); Q = H W_q, K = H W_k with W_q, W_k in R^{J x D_k};
    A = softmax(Q K^T / sqrt(D_k)) in R^{hw x hw}; corrected maps H~ = A H replace H before the
    spatial-softmax pooling. The values are the part maps themselves (no value projection), so
    H~ stays in part-map space.

    Choices (the report gives none):
    - `num_heads` = 4, `key_dim` = 6 = J / num_heads: the Transformer convention d_k =
      d_model / h with d_model = J = 24, so four heads cost the same as one full-width head; a
      6-d key lets each head group the 24 parts into a few regions (e.g. limbs, torso, head).
      Q/K projections have no bias, as the report's W_q, W_k.
    - Heads are combined by learnable per-head gates g (shape (num_heads,)):
          H_out = H + sum_h g_h (A_h H - H).
      g_h = 1/num_heads is the report's H~ averaged over heads (1 head, g = 1: exactly H~ = A H);
      g = 0 (the initial value) is plain PARE, so a released PARE checkpoint loaded into this
      model gives PARE's outputs until the attention is fine-tuned, instead of near-uniform maps
      from an untrained A.
    Acts on the part-map logits (pre-softmax), background channel excluded. Uses
    `scaled_dot_product_attention`, which avoids materialising the (hw x hw) matrix when a fused
    kernel is available (hw = 3136 at 56x56).
    forward: (N, J, h, w) logits -> (N, J, h, w).
    Parameters: query.weight, key.weight (num_heads*key_dim, J); head_gates (num_heads,).
    """

    def __init__(self, num_parts: int = NUM_PARTS, num_heads: int = 4, key_dim: int = 6):
        super().__init__()
        if num_parts < 1 or num_heads < 1 or key_dim < 1:
            raise ValueError(f"num_parts, num_heads and key_dim must be >= 1, got {num_parts}, {num_heads}, {key_dim}")
        self.num_parts = num_parts
        self.num_heads = num_heads
        self.key_dim = key_dim
        self.query = nn.Linear(num_parts, num_heads * key_dim, bias=False)
        self.key = nn.Linear(num_parts, num_heads * key_dim, bias=False)
        self.head_gates = nn.Parameter(torch.zeros(num_heads))

    def attention_weights(self, part_maps: Tensor) -> Tensor:
        """(N, J, h, w) -> A (N, num_heads, h*w, h*w), rows summing to 1 (materialised: small maps only)."""
        queries, keys = self._queries_keys(part_maps)
        return torch.softmax(queries @ keys.transpose(-1, -2) / math.sqrt(self.key_dim), dim=-1)

    def _queries_keys(self, part_maps: Tensor) -> tuple[Tensor, Tensor]:
        batch = part_maps.shape[0]
        pixels = part_maps.flatten(2).transpose(1, 2)  # (N, hw, J)
        queries = self.query(pixels).reshape(batch, -1, self.num_heads, self.key_dim).transpose(1, 2)
        keys = self.key(pixels).reshape(batch, -1, self.num_heads, self.key_dim).transpose(1, 2)
        return queries, keys

    def forward(self, part_maps: Tensor) -> Tensor:
        if part_maps.ndim != 4 or part_maps.shape[1] != self.num_parts:
            raise ValueError(f"part maps must be (N, {self.num_parts}, h, w), got {tuple(part_maps.shape)}")
        batch, parts, height, width = part_maps.shape
        queries, keys = self._queries_keys(part_maps)
        values = part_maps.flatten(2).transpose(1, 2).unsqueeze(1).expand(-1, self.num_heads, -1, -1)
        corrected = F.scaled_dot_product_attention(queries, keys, values)  # (N, heads, hw, J); scale 1/sqrt(key_dim)
        corrected = corrected.transpose(-1, -2).reshape(batch, self.num_heads, parts, height, width)
        gates = self.head_gates.reshape(1, -1, 1, 1, 1).to(part_maps.dtype)
        return part_maps + (gates * (corrected - part_maps.unsqueeze(1))).sum(dim=1)


def _conv_bn_relu_layers(in_channels: int, channels: int, num_layers: int) -> nn.Sequential:
    """num_layers x [3x3 conv (no bias), BN, ReLU]: PARE's `_make_conv_layer` for HRNet backbones."""
    layers: list[nn.Module] = []
    for i in range(num_layers):
        layers += [
            nn.Conv2d(in_channels if i == 0 else channels, channels, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(channels),
            nn.ReLU(),
        ]
    return nn.Sequential(*layers)


def _part_attention_pool(features: Tensor, part_logits: Tensor) -> Tensor:
    """Spatial-softmax pooling: features (N,C,h,w), part logits (N,J,h,w) -> (N,C,J)."""
    batch, parts = part_logits.shape[:2]
    attention = torch.softmax(part_logits.reshape(batch, parts, -1), dim=-1)
    pooled = torch.matmul(attention, features.reshape(batch, features.shape[1], -1).transpose(2, 1))
    return pooled.transpose(2, 1)


class PareHead(nn.Module):
    """PARE's head for an HRNet backbone (`part_segm` attention, non-iterative regression).

    forward(features (N, in_channels, h, w)) -> dict:
      pred_rotmat (N,24,3,3) SMPL rotations (0 = global orientation, crop camera frame),
      pred_betas (N,10), pred_cam (N,3) weak-perspective [s, tx, ty] of the crop,
      pred_pose6d (N,144) (24 x 6, rot6d layout of fitter.geometry),
      pred_segm_mask (N,25,h,w) part-segmentation logits (channel 0 background; before any
      self-attention).
    """

    def __init__(
        self,
        in_channels: int = 480,
        num_joints: int = NUM_PARTS,
        conv_channels: int = 128,
        num_conv_layers: int = 2,
        smpl_feature_channels: int = 64,
        mean_params: MeanParams | None = None,
        self_attention: PartMapSelfAttention | None = None,
    ):
        super().__init__()
        self.num_joints = num_joints
        mean = default_mean_params() if mean_params is None else mean_params
        # Buffers first (state-dict order of the original): softmax temperature (unused with
        # part_segm), SMPL mean parameters (unused with USE_MEAN_CAMSHAPE/POSE False).
        self.register_buffer("temperature", torch.tensor(1.0))
        self.register_buffer("init_pose", torch.as_tensor(mean["pose"], dtype=torch.float32).reshape(1, num_joints * 6))
        self.register_buffer("init_shape", torch.as_tensor(mean["shape"], dtype=torch.float32).reshape(1, 10))
        self.register_buffer("init_cam", torch.as_tensor(mean["cam"], dtype=torch.float32).reshape(1, 3))
        self.keypoint_deconv_layers = _conv_bn_relu_layers(in_channels, conv_channels, num_conv_layers)
        self.smpl_deconv_layers = _conv_bn_relu_layers(in_channels, conv_channels, num_conv_layers)
        self.keypoint_final_layer = nn.Conv2d(conv_channels, num_joints + 1, kernel_size=1)
        self.smpl_final_layer = nn.Conv2d(conv_channels, smpl_feature_channels, kernel_size=1)
        self.shape_mlp = nn.Linear(num_joints * smpl_feature_channels, 10)
        self.cam_mlp = nn.Linear(num_joints * smpl_feature_channels, 3)
        self.pose_mlp = LocallyConnected2d(conv_channels, 6, num_joints, 1)
        if self_attention is not None:
            if self_attention.num_parts != num_joints:
                raise ValueError(
                    f"self-attention is built for {self_attention.num_parts} parts, the head has {num_joints}"
                )
            self.add_module(SELF_ATTENTION_KEY, self_attention)
        else:
            self.part_self_attention = None

    def forward(self, features: Tensor) -> dict[str, Tensor]:
        batch = features.shape[0]
        segm_logits = self.keypoint_final_layer(self.keypoint_deconv_layers(features))
        part_logits = segm_logits[:, 1:]  # drop the background channel
        if self.part_self_attention is not None:
            part_logits = self.part_self_attention(part_logits)
        smpl_feats = self.smpl_deconv_layers(features)
        cam_shape_feats = self.smpl_final_layer(smpl_feats)
        pose_feats = _part_attention_pool(smpl_feats, part_logits)  # (N,128,J)
        cam_shape_feats = _part_attention_pool(cam_shape_feats, part_logits).flatten(1)  # (N,64*J)
        pose6d = self.pose_mlp(pose_feats.unsqueeze(-1)).squeeze(-1).transpose(2, 1)  # (N,J,6)
        return {
            "pred_rotmat": rot6d_to_matrix(pose6d),
            "pred_betas": self.shape_mlp(cam_shape_feats),
            "pred_cam": self.cam_mlp(cam_shape_feats),
            "pred_pose6d": pose6d.reshape(batch, -1),
            "pred_segm_mask": segm_logits,
        }


class PARERegressor(nn.Module):
    """PARE = HRNet-W32 pose backbone (`backbone`) + `PareHead` (`head`).

    forward(images (N,3,H,W) RGB crops, /255, ImageNet mean/std; 224x224 as trained; H, W
    multiples of 32) -> PareHead's dict (pred_rotmat, pred_betas, pred_cam, pred_pose6d,
    pred_segm_mask (N,25,H/4,W/4)).
    """

    input_size = (224, 224)
    needs_bbox_info = False

    def __init__(self, backbone: HRNetPose, head: PareHead):
        super().__init__()
        self.backbone = backbone
        self.head = head

    @property
    def uses_self_attention(self) -> bool:
        return self.head.part_self_attention is not None

    def forward(self, images: Tensor) -> dict[str, Tensor]:
        return self.head(self.backbone(images))


def build_pare(
    use_self_attention: bool = False,
    mean_params: MeanParams | str | Path | None = None,
    num_attention_heads: int = 4,
    attention_key_dim: int = 6,
) -> PARERegressor:
    """Untrained PARE (load weights with `fitter.regressors.checkpoints.load_pare` or
    `fitter.regressors.load_regressor("pare")`).

    use_self_attention: add `PartMapSelfAttention(24, num_attention_heads, attention_key_dim)`
    (gates 0: identical outputs to plain PARE until trained). mean_params: SPIN's
    smpl_mean_params.npz path or dict (only fills the unused init buffers; a checkpoint
    overwrites them); None = identity pose, zero betas, cam [0.9, 0, 0].
    """
    if isinstance(mean_params, (str, Path)):
        mean_params = load_smpl_mean_params(mean_params)
    backbone = HRNetW32Pose()
    attention = PartMapSelfAttention(NUM_PARTS, num_attention_heads, attention_key_dim) if use_self_attention else None
    head = PareHead(in_channels=backbone.out_channels, mean_params=mean_params, self_attention=attention)
    return PARERegressor(backbone, head)
