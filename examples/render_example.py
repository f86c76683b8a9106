"""Render the example photo: the free `anny` body in a known pose, shaded, on a plain backdrop.

Writes examples/data/anny_walk.png and examples/data/anny_walk_truth.npz (the parameters, the
camera and the SMPL-24 joints in the camera frame), so `fitter fit examples/data/anny_walk.png`
can be scored against the truth (see examples/score_example.py).

    python examples/render_example.py
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from fitter.body import load_body_model
from fitter.io.atomic import atomic_save_npz, atomic_save_png
from fitter.render.overlay import render_shaded

HERE = Path(__file__).resolve().parent / "data"
SKIN = (224, 172, 140)


def example_pose() -> torch.Tensor:
    """(69,) a walking pose with arms down (SMPL body_pose, axis-angle, radians)."""
    pose = torch.zeros(23, 3)
    pose[0] = torch.tensor([-0.45, 0.0, 0.05])  # left hip flexed (forward)
    pose[1] = torch.tensor([0.25, 0.0, -0.05])  # right hip extended
    pose[3] = torch.tensor([0.35, 0.0, 0.0])  # left knee bent
    pose[4] = torch.tensor([0.6, 0.0, 0.0])  # right knee bent
    pose[15] = torch.tensor([0.0, 0.3, -1.2])  # left shoulder: arm down, slightly back
    pose[16] = torch.tensor([0.0, -0.2, 1.15])  # right shoulder
    pose[17] = torch.tensor([0.0, -0.5, 0.0])  # left elbow flexed
    pose[18] = torch.tensor([0.0, 0.35, 0.0])  # right elbow flexed
    return pose.reshape(69)


def render(width: int = 640, height: int = 800) -> tuple[np.ndarray, dict]:
    model = load_body_model("anny")
    betas = torch.tensor([[0.6, -0.3, 0.2, 0, 0, 0, 0, 0, 0, 0]], dtype=torch.float32)
    yaw = math.radians(20)
    orient = torch.tensor([[math.pi, 0.0, 0.0]])
    from fitter.geometry import axis_angle_to_matrix, matrix_to_axis_angle

    R = axis_angle_to_matrix(orient) @ axis_angle_to_matrix(torch.tensor([[0.0, yaw, 0.0]]))
    global_orient = matrix_to_axis_angle(R)
    transl = torch.tensor([[0.0, 0.05, 4.0]])
    focal = float(math.hypot(width, height))
    body_pose = example_pose()[None]
    with torch.no_grad():
        out = model(betas, body_pose, global_orient, transl)
    rgb, mask = render_shaded(out.vertices[0], model.faces, focal, (width / 2, height / 2), (width, height), SKIN)
    ys = np.linspace(0, 1, height)[:, None, None]
    backdrop = (np.array([205, 215, 225]) * (1 - ys) + np.array([150, 150, 140]) * ys).astype(np.uint8)
    image = np.where(mask[..., None], rgb, np.broadcast_to(backdrop, (height, width, 3)))
    truth = {
        "betas": betas.numpy(), "body_pose": body_pose.numpy(), "global_orient": global_orient.numpy(),
        "transl": transl.numpy(), "joints": out.joints.numpy(), "focal_length": np.array([focal], np.float32),
        "image_size": np.array([[width, height]], np.float32), "mask": mask,
    }  # fmt: skip
    return image.astype(np.uint8), truth


def main() -> None:
    image, truth = render()
    HERE.mkdir(parents=True, exist_ok=True)
    atomic_save_png(HERE / "anny_walk.png", image)
    atomic_save_npz(HERE / "anny_walk_truth.npz", compress=True, **truth)
    print(f"wrote {HERE / 'anny_walk.png'} and {HERE / 'anny_walk_truth.npz'}")


if __name__ == "__main__":
    main()
