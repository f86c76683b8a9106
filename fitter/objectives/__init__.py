"""Objective terms of the fitter: keypoints (reprojection, depth, 3D landmarks) and silhouettes."""

from fitter.objectives.keypoints import depth_term, gmof, landmarks3d_term, reprojection_term

__all__ = ["gmof", "reprojection_term", "depth_term", "landmarks3d_term"]
