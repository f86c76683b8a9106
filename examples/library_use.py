"""Using fitter as a library: fit 2D keypoints (any detector's) and use the result.

    python examples/library_use.py

Here the keypoints are the example photo's, made by projecting the rendered body's COCO-17
points (examples/data/anny_walk_truth.npz); with your own detector, pass its (N, K, 3) array.
"""

from pathlib import Path

import numpy as np
import torch

import fitter
from fitter.geometry import perspective_project
from fitter.keypoints import keypoint_regressor

DATA = Path(__file__).resolve().parent / "data"


def main() -> None:
    model = fitter.load_body_model("anny")  # free default; "smpl" etc. when you have the files
    truth = np.load(DATA / "anny_walk_truth.npz")
    width, height = truth["image_size"][0]

    # 2D keypoints (pixels + confidence) in COCO-17 order, for one person.
    with torch.no_grad():
        out = model(*(torch.as_tensor(truth[k]) for k in ("betas", "body_pose", "global_orient", "transl")))
        points = keypoint_regressor(model, "coco17").from_vertices(out.joints, out.vertices)
        pixels = perspective_project(
            points, torch.as_tensor(truth["focal_length"]), torch.tensor([width / 2, height / 2])
        )
    keypoints = torch.cat([pixels, torch.ones_like(pixels[..., :1])], dim=-1).numpy()

    result = fitter.fit_keypoints(keypoints, "coco17", image_size=(width, height), body_model=model, config="default")
    print(
        "status:", result.status[0], "| prior:", result.info["prior"], "| focal from:", result.info["focal_source"][0]
    )
    print(f"mean reprojection error: {result.reprojection_error_px[0]:.2f} px")
    print(f"depth: fitted {result.transl[0, 2]:.2f} m, true {truth['transl'][0, 2]:.2f} m")
    err = np.linalg.norm(
        (result.joints[0] - result.joints[0, :1]) - (truth["joints"][0] - truth["joints"][0, :1]), axis=-1
    )
    print(f"MPJPE (24 joints, pelvis-aligned): {err.mean() * 1000:.0f} mm")
    vertices = result.vertices()  # (1, V, 3) metres, camera frame (x right, y down, z forward)
    print("mesh:", vertices.shape, "faces:", result.faces.shape)
    result.save("example_fit.npz")  # + example_fit.json; reload with fitter.FitResult.load
    print("saved example_fit.npz / example_fit.json")


if __name__ == "__main__":
    main()
