"""Rendering without OpenGL: a torch z-buffer rasterizer and pictures.

Meshes are in the camera frame (OpenCV: x right, y down, z forward, metres), projected with
`fitter.geometry.perspective_project`; images are (H,W,3) uint8 RGB.
"""

from fitter.render.overlay import (
    colorize_part_labels,
    draw_keypoints,
    person_masks,
    render_overlay,
    render_shaded,
    render_side_view,
    vertex_normals,
)
from fitter.render.rasterizer import (
    Fragments,
    interpolate_vertex_attributes,
    rasterize,
    rasterize_projected,
    render_depth,
    render_mask,
    render_part_labels,
    vertex_visibility,
)

__all__ = [
    "Fragments",
    "rasterize",
    "rasterize_projected",
    "render_mask",
    "render_depth",
    "render_part_labels",
    "interpolate_vertex_attributes",
    "vertex_visibility",
    "render_overlay",
    "person_masks",
    "render_shaded",
    "render_side_view",
    "draw_keypoints",
    "colorize_part_labels",
    "vertex_normals",
]
