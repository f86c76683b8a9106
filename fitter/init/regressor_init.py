"""Initial bodies from learned regressors (HMR/SPIN, CLIFF, PARE, fitter's NBF), in the full-frame camera.

Per person: a crop box from the 2D keypoints by the published rule of the model
(`fitter.regressors.box_from_keypoints`: SPIN's 1.2 x the keypoint box; CLIFF's 4:3 size rule),
the crop (RGB, ImageNet-normalised; NBF: a 12-part map, see below), a batched forward pass, and
the crop camera turned into the full image's camera with the image's own focal length
(`regressor_output_to_full_frame`; CLIFF also gets bbox_info computed with that focal).

NBF's input on a photo: the person mask (mediapipe's, when given) split into the 12 parts of
`fitter.body.parts` by the 2D skeleton (`fitter.keypoints.part_split`); without a mask one is drawn
from the skeleton. The crop is made at the resolution the checkpoint was trained at (its
config's input_size).

Shape: HMR/CLIFF/PARE regress SMPL's betas, which mean something else on other body models
(anny's 10 betas are its own PCA): their betas are kept only for SMPL-family models and set to 0
otherwise. NBF's betas are kept when its checkpoint was trained on the same body model.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor, nn

from fitter.body.model import BodyModel
from fitter.init.start import Start, StartInputs
from fitter.regressors import (
    MODEL_INPUT_SIZE,
    CheckpointMismatchError,
    CropBox,
    box_from_keypoints,
    cliff_bbox_info,
    crop_for_model,
    crop_image,
    find_checkpoint,
    load_regressor,
    part_labels_to_one_hot,
    regressor_output_to_full_frame,
)
from fitter.regressors.preprocess import full_to_crop_points

if TYPE_CHECKING:
    from fitter.refine.eft import EFTConfig

__all__ = [
    "INITIALIZER_REGRESSORS",
    "SMPL_FAMILY",
    "regressor_for",
    "load_initializer_regressor",
    "nbf_checkpoint_info",
    "person_boxes",
    "regressor_inputs",
    "run_regressor",
    "RegressorInitializer",
]

# initializer name -> regressor names it may use, preferred first
INITIALIZER_REGRESSORS: dict[str, tuple[str, ...]] = {
    "cliff": ("cliff_hr48", "cliff_res50"),
    "pare": ("pare",),
    "hmr": ("hmr",),
    "nbf": ("nbf",),
}
SMPL_FAMILY = ("smpl", "smplh", "smplx")


def regressor_for(initializer: str, search_dirs: list[Path] | None = None) -> str | None:
    """The regressor name an initializer would use (first one whose checkpoint is found), or None."""
    if initializer not in INITIALIZER_REGRESSORS:
        raise ValueError(
            f"unknown regressor initializer {initializer!r}: choose one of {', '.join(INITIALIZER_REGRESSORS)}"
        )
    for name in INITIALIZER_REGRESSORS[initializer]:
        if find_checkpoint(name, search_dirs) is not None:
            return name
    return None


def load_initializer_regressor(initializer: str, checkpoint_path: str | Path | None = None,
                               device: str | torch.device = "cpu") -> tuple[str, nn.Module, Path | None]:  # fmt: skip
    """(regressor name, module in eval mode, checkpoint path) for an initializer name or a regressor name.

    Missing checkpoint -> the loader's one-line FileNotFoundError (file, folder searched, where
    it is published); for "cliff" both CLIFF files are named.
    """
    key = initializer.strip().lower()
    if key in MODEL_INPUT_SIZE:  # a regressor name such as "cliff_res50"
        candidates: tuple[str, ...] = (key,)
    elif key in INITIALIZER_REGRESSORS:
        candidates = INITIALIZER_REGRESSORS[key]
    else:
        raise ValueError(
            f"unknown regressor initializer {initializer!r}: choose one of {', '.join(INITIALIZER_REGRESSORS)}"
        )
    if checkpoint_path is not None:
        path = Path(checkpoint_path).expanduser()
        named = [c for c in candidates if c.split("_")[-1] in path.name]  # "hr48" / "res50" in the file name
        tried = named or list(candidates)
        for name in tried:
            try:
                return name, load_regressor(name, path, device), path
            except CheckpointMismatchError:
                if name == tried[-1]:
                    raise
    errors = []
    for name in candidates:
        try:  # the loader looks the file up and words the error when it is missing
            module = load_regressor(name, None, device)
        except FileNotFoundError as exc:
            errors.append(str(exc))
            continue
        return name, module, find_checkpoint(name)
    raise FileNotFoundError(" | ".join(errors))


def nbf_checkpoint_info(path: str | Path) -> dict:
    """The 'config' (and training record 'train', if any) of a fitter NBF checkpoint; input_size (H,W) px."""
    checkpoint = torch.load(Path(path), map_location="cpu", weights_only=True, mmap=True)
    config = dict(checkpoint.get("config") or {}) if isinstance(checkpoint, dict) else {}
    train = dict(checkpoint.get("train") or {}) if isinstance(checkpoint, dict) else {}
    size = config.get("input_size", MODEL_INPUT_SIZE["nbf"])
    return {
        "input_size": (int(size[0]), int(size[1])),
        "body_model": train.get("body_model"),
        "config": config,
        "train": train,
    }


def person_boxes(regressor_name: str, keypoints, conf_threshold: float = 0.2) -> CropBox:
    """Crop boxes (N) from keypoints (N,K,3) px by the model's published rule (see module docstring)."""
    return box_from_keypoints(torch.as_tensor(np.asarray(keypoints, dtype=np.float32)), regressor_name, conf_threshold)


def regressor_inputs(
    regressor_name: str,
    images: list[np.ndarray],
    keypoints,
    keypoint_set: str,
    owners: list[int],
    image_sizes,
    focal,
    masks: list[np.ndarray | None] | None = None,
    nbf_input_size: tuple[int, int] | None = None,
) -> tuple[Tensor, Tensor | None, CropBox]:
    """Network inputs for N people: (inputs (N,C,H,W) float32, bbox_info (N,3) or None, boxes).

    images: RGB uint8 (H,W,3) per image; keypoints (N,K,3) px; owners[i] = image of person i;
    image_sizes (N,2) (W,H) px; focal (N,) px; masks: per person (H,W) bool full-image mask or
    None (NBF only).
    """
    kp = np.asarray(keypoints, dtype=np.float32)
    n = kp.shape[0]
    if len(owners) != n:
        raise ValueError(f"owners must name the image of each of the {n} people, got {len(owners)} entries")
    if any(o < 0 or o >= len(images) for o in owners):
        raise ValueError(f"owners must index the {len(images)} images, got {list(owners)}")
    box = person_boxes(regressor_name, kp)
    if regressor_name == "nbf":
        from fitter.keypoints.part_split import split_mask_by_skeleton

        size = nbf_input_size or MODEL_INPUT_SIZE["nbf"]
        crop_kp = full_to_crop_points(torch.as_tensor(kp[..., :2]), box, size).numpy()
        crop_kp = np.concatenate([crop_kp, kp[..., 2:]], axis=-1)
        labels = []
        for i in range(n):
            mask = None if masks is None else masks[i]
            one = CropBox(box.center[i : i + 1], box.scale[i : i + 1])
            crop_mask = (
                None if mask is None else crop_image(np.asarray(mask).astype(np.uint8), one, size, "nearest")[0] > 0.5
            )
            labels.append(split_mask_by_skeleton(crop_mask, crop_kp[i], keypoint_set, image_size=(size[1], size[0])))
        return part_labels_to_one_hot(np.stack(labels), 12), None, box
    crops = []
    for i in range(n):
        one = CropBox(box.center[i : i + 1], box.scale[i : i + 1])
        crops.append(crop_for_model(images[owners[i]], one, regressor_name))
    inputs = torch.cat(crops)
    bbox_info = None
    if regressor_name.startswith("cliff"):
        bbox_info = cliff_bbox_info(box, torch.as_tensor(np.asarray(image_sizes, dtype=np.float32)),
                                    torch.as_tensor(np.asarray(focal, dtype=np.float32)))  # fmt: skip
        bbox_info = bbox_info.float()
    return inputs, bbox_info, box


def run_regressor(module: nn.Module, inputs: Tensor, bbox_info: Tensor | None = None, batch_size: int = 16,
                  device: str | torch.device = "cpu") -> dict[str, Tensor]:  # fmt: skip
    """Forward in batches without gradients; returns the outputs concatenated, on the CPU."""
    outs: list[dict[str, Tensor]] = []
    with torch.no_grad():
        for start in range(0, inputs.shape[0], batch_size):
            x = inputs[start : start + batch_size].to(device)
            args = (x,) if bbox_info is None else (x, bbox_info[start : start + batch_size].to(device))
            outs.append({k: v.detach().cpu() for k, v in module(*args).items()})
    return {k: torch.cat([o[k] for o in outs]) for k in outs[0]}


def _keep_betas(regressor_name: str, body_model: BodyModel, nbf_body_model: str | None) -> bool:
    if regressor_name == "nbf":
        return nbf_body_model is not None and nbf_body_model == body_model.name
    return body_model.name in SMPL_FAMILY


class RegressorInitializer:
    """The initializer of a learned regressor ("cliff", "pare", "hmr", "nbf" or a regressor name
    such as "cliff_res50"): loads the network once, then gives a `Start` per batch of people.

    refine="eft" fine-tunes the network per person on the 2D keypoints first
    (`fitter.refine.eft_refine`; diagnostics eft_error_before_px / eft_error_after_px (N,));
    checkpoint_path: a file instead of the one found in $FITTER_HOME/data/checkpoints. Missing
    checkpoint -> the loader's one-line FileNotFoundError (file, folder searched, where published).
    """

    def __init__(self, initializer: str, body_model: BodyModel, device: str | torch.device = "cpu",
                 refine: str | None = None, eft_config: EFTConfig | None = None,
                 checkpoint_path: str | Path | None = None, batch_size: int = 16) -> None:  # fmt: skip
        if refine not in (None, "", "none", "eft"):
            raise ValueError(f"unknown refine {refine!r}: use 'eft' or None")
        self.name, self.module, path = load_initializer_regressor(initializer, checkpoint_path, device)
        self.nbf_info = (nbf_checkpoint_info(path) if self.name == "nbf" and path is not None
                         else {"input_size": None, "body_model": None})  # fmt: skip
        self.keep_betas = _keep_betas(self.name, body_model, self.nbf_info["body_model"])
        self.body_model, self.device, self.batch_size = body_model, device, batch_size
        self.refine = None if refine in (None, "", "none") else refine
        self.eft_config = eft_config
        self.source = initializer.strip().lower()

    def __call__(self, inputs: StartInputs) -> Start:
        kp = inputs.keypoints.detach().cpu().numpy().astype(np.float32)
        sizes = inputs.image_sizes.detach().cpu().numpy().astype(np.float32)
        focal = inputs.focal.detach().cpu().numpy().astype(np.float32)
        if inputs.images is None or inputs.owners is None:
            raise ValueError(
                f"the {self.source} initializer needs the images and which image each person is in (owners)"
            )
        model_inputs, bbox_info, box = regressor_inputs(self.name, inputs.images, kp, inputs.keypoint_set,
                                                        list(inputs.owners), sizes, focal, inputs.masks,
                                                        self.nbf_info["input_size"])  # fmt: skip
        diagnostics: dict[str, np.ndarray] = {}
        if self.refine is None:
            out = run_regressor(self.module, model_inputs, bbox_info, self.batch_size, self.device)
            full = regressor_output_to_full_frame(out, box, torch.as_tensor(sizes), torch.as_tensor(focal))
            params = {k: full[k].float() for k in ("global_orient", "body_pose", "betas", "transl")}
        else:
            from fitter.refine.eft import eft_refine

            result = eft_refine(self.name, self.module, model_inputs, kp, inputs.keypoint_set, box, sizes, focal,
                                self.body_model, bbox_info=bbox_info, config=self.eft_config, device=self.device,
                                use_betas=self.keep_betas)  # fmt: skip
            params = {k: torch.as_tensor(result[k]) for k in ("global_orient", "body_pose", "betas", "transl")}
            diagnostics = {
                "eft_error_before_px": result["error_before_px"],
                "eft_error_after_px": result["error_after_px"],
            }
        if not self.keep_betas:
            params["betas"] = torch.zeros_like(params["betas"])
        dev = inputs.keypoints.device
        n, num_betas = kp.shape[0], self.body_model.num_betas
        betas = torch.zeros(n, num_betas, dtype=torch.float32)
        k = min(num_betas, params["betas"].shape[1])
        betas[:, :k] = params["betas"][:, :k].detach().cpu().float()
        return Start(body_pose=params["body_pose"].detach().float().reshape(n, 69).to(dev),
                     global_orient=params["global_orient"].detach().float().reshape(n, 3).to(dev),
                     betas=betas.to(dev), transl=params["transl"].detach().float().reshape(n, 3).to(dev),
                     source=[self.source] * n, diagnostics=diagnostics)  # fmt: skip
