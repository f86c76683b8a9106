"""Face keypoints "face51" (the 51 static iBUG-68 landmarks) from mediapipe's 468-landmark face mesh.

The correspondence is Peizhi Yan's published MediaPipe-to-dlib-68 table
(https://github.com/PeizhiYan/Mediapipe_2_Dlib_Landmarks, mediapipe2dlib/mp2dlib.py, 2024): each
iBUG point is one face-mesh landmark or the mean of two. Only its points 18-68 are used: the 17
jaw-contour points of iBUG follow the face's silhouette, which moves over the skin with the
head's rotation, so SMPL-X embeds them dynamically and face51 leaves them out. Sides are the
person's own (mesh landmark 33 is the right eye's outer corner, on the image's left for a
frontal face), as in the iBUG and face51 orders.
"""

from __future__ import annotations

import numpy as np

__all__ = ["FACE51_MESH_IDS", "face51_from_mesh"]

FACE51_MESH_IDS: tuple[tuple[int, ...], ...] = (
    (70,), (63,), (105,), (66,), (107,),  # right brow, outer to inner (iBUG 18-22)
    (336,), (296,), (334,), (293,), (300,),  # left brow, inner to outer (23-27)
    (168, 6), (197, 195), (5,), (4,),  # nose bridge, top to tip (28-31)
    (75,), (97,), (2,), (326,), (305,),  # nostrils, right to left (32-36)
    (33,), (160,), (158,), (133,), (153,), (144,),  # right eye: outer corner, upper lid, inner corner, lower lid (37-42)
    (362,), (385,), (387,), (263,), (373,), (380,),  # left eye: inner corner, upper lid, outer corner, lower lid (43-48)
    (61,), (39,), (37,), (0,), (267,), (269,), (291,),  # outer lips: right corner, upper lip, left corner (49-55)
    (321,), (314,), (17,), (84,), (91,),  # outer lower lip, left to right (56-60)
    (78,), (82,), (13,), (312,), (308,),  # inner lips: right corner, upper lip, left corner (61-65)
    (317,), (14,), (87,),  # inner lower lip, left to right (66-68)
)  # fmt: skip
"""Face-mesh landmark indices averaged for each face51 point, in face51 order."""


def face51_from_mesh(face_mesh: np.ndarray, confidence: float = 1.0) -> np.ndarray:
    """(51, 3) float32 [x px, y px, confidence]: the face51 keypoints of a (468, >=2) face mesh in
    pixels (mediapipe's 478-point refined mesh works too: its first 468 are the same)."""
    mesh = np.asarray(face_mesh, dtype=np.float64)
    if mesh.ndim != 2 or mesh.shape[0] < 468 or mesh.shape[1] < 2:
        raise ValueError(f"face_mesh must be the 468 face-mesh landmarks (468, 2+) in pixels, got {mesh.shape}")
    xy = np.stack([mesh[list(ids), :2].mean(0) for ids in FACE51_MESH_IDS])
    return np.concatenate([xy, np.full((len(xy), 1), confidence)], 1).astype(np.float32)
