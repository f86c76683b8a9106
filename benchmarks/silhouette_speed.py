"""Speed and behaviour of the rasterizer and the chamfer silhouette objective, on this machine.

Run:  python benchmarks/silhouette_speed.py [--quick] [--device cpu|cuda]

A synthetic body-like mesh (capsule limbs, ellipsoid torso, sphere head; about 14k or 27k
faces, the face counts of SMPL and the default body model) stands 3.5 m in front of a camera
with the full-frame default focal length (image diagonal). Prints rich tables:
1. hard rasterizer: ms per call at 256..1024 px;
2. chamfer (`silhouette_chamfer_loss`): ms per forward+backward at 128/256 px, batch 1 and 8,
   plus the one-off target preparation;
3. loss and gradient along a sweep that slides the mesh sideways into the target mask;
4. 80 Adam steps on the mesh translation from a 12 % (of image width) offset: final hard-mask
   IoU with the target.
Times are medians, "wall / cpu" ms (cpu = this process's CPU time over all threads); on a
shared machine wall time is inflated by other jobs, CPU time much less so.
Dropped: soft silhouette + soft IoU (80 ms vs chamfer 15 ms fwd+bwd at 256 px, batch 1): 5x slower, and no fit used it.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
import trimesh
from rich.console import Console
from rich.table import Table

from fitter.geometry import default_focal_length, perspective_project
from fitter.objectives.silhouette import prepare_silhouette_target, silhouette_chamfer_loss
from fitter.render import rasterize, render_mask


def _capsule(start, end, radius: float, sections: int) -> trimesh.Trimesh:
    start, end = np.asarray(start, float), np.asarray(end, float)
    axis = end - start
    length = float(np.linalg.norm(axis))
    mesh = trimesh.creation.capsule(height=length, radius=radius, count=[sections, sections])
    # trimesh's capsule runs along +Z from z=0 to z=height.
    mesh.apply_transform(trimesh.geometry.align_vectors([0, 0, 1], axis / length))
    mesh.apply_translation(start)
    return mesh


def body_like_mesh(detail: int, max_edge: float = 0.03) -> tuple[torch.Tensor, torch.Tensor]:
    """A standing figure in the camera frame (y down), metres, centred at x=0, z=0; detail sets the face count."""
    head = trimesh.creation.icosphere(subdivisions=3 if detail < 40 else 4, radius=0.11)
    head.apply_translation([0, -0.72, 0])
    torso = trimesh.creation.icosphere(subdivisions=4 if detail < 40 else 5, radius=1.0)
    torso.apply_scale([0.19, 0.36, 0.12])
    torso.apply_translation([0, -0.25, 0])
    parts = [head, torso]
    for side in (-1, 1):
        parts.append(_capsule([0.16 * side, -0.52, 0], [0.42 * side, -0.22, 0.05], 0.05, detail))  # upper arm
        parts.append(_capsule([0.42 * side, -0.22, 0.05], [0.58 * side, 0.08, 0.12], 0.04, detail))  # forearm
        parts.append(_capsule([0.10 * side, 0.05, 0], [0.13 * side, 0.48, 0.02], 0.075, detail))  # thigh
        parts.append(_capsule([0.13 * side, 0.48, 0.02], [0.14 * side, 0.90, -0.02], 0.055, detail))  # shin
    mesh = trimesh.util.concatenate(parts)
    # Capsules have no rings along their straight part: split long edges so vertices are spread
    # over the surface the way a body model's are (at most max_edge metres apart).
    vertices, faces = trimesh.remesh.subdivide_to_size(mesh.vertices, mesh.faces, max_edge=max_edge)
    return torch.tensor(vertices, dtype=torch.float32), torch.tensor(faces, dtype=torch.long)


def _timed(fn, repeats: int) -> str:
    """'wall / cpu' milliseconds per call (medians). CPU time is this process's, all threads."""
    fn()  # warm-up
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return f"{1000.0 * statistics.median(walls):.0f} / {1000.0 * statistics.median(cpus):.0f}"


def _camera(size: int, batch: int, device):
    focal = torch.full((batch,), default_focal_length(size, size), device=device)
    pp = torch.full((batch, 2), size / 2.0, device=device)
    return focal, pp


def _placed(vertices: torch.Tensor, shift_x: float, batch: int) -> torch.Tensor:
    offset = torch.tensor([shift_x, 0.0, 3.5], device=vertices.device)
    return (vertices + offset)[None].expand(batch, -1, -1).contiguous()


def rasterizer_table(meshes, sizes, repeats, device) -> Table:
    table = Table(title="hard rasterizer: ms per call, wall / cpu (batch 1)")
    table.add_column("mesh")
    for size in sizes:
        table.add_column(f"{size} px", justify="right")
    for name, (vertices, faces) in meshes.items():
        row = [name]
        for size in sizes:
            focal, pp = _camera(size, 1, device)
            verts = _placed(vertices, 0.0, 1)
            row.append(_timed(lambda: rasterize(verts, faces, focal, pp, (size, size)), repeats))
        table.add_row(*row)
    return table


def _chamfer_step(vertices, faces, target, focal, pp):
    leaf = vertices.clone().requires_grad_(True)
    projected = perspective_project(leaf, focal, pp)
    loss = silhouette_chamfer_loss(projected, target.dist_maps, target.boundary_points, target.boundary_valid).sum()
    loss.backward()
    return loss


def objective_speed_table(vertices, faces, sizes, batches, repeats, device) -> Table:
    table = Table(title=f"silhouette objectives: ms per forward+backward, wall / cpu ({faces.shape[0]} faces)")
    for column in ("size", "batch", "target prep (once)", "chamfer"):
        table.add_column(column, justify="right")
    for size in sizes:
        for batch in batches:
            focal, pp = _camera(size, batch, device)
            target_mask = render_mask(_placed(vertices, 0.0, batch), faces, focal, pp, (size, size))
            prep_ms = _timed(lambda: prepare_silhouette_target(target_mask), max(1, repeats // 2))
            target = prepare_silhouette_target(target_mask)
            start = _placed(vertices, 0.08, batch)
            chamfer_ms = _timed(lambda: _chamfer_step(start, faces, target, focal, pp), repeats)
            table.add_row(str(size), str(batch), prep_ms, chamfer_ms)
    return table


def sweep_table(vertices, faces, size, device) -> tuple[Table, bool]:
    focal, pp = _camera(size, 1, device)
    target_mask = render_mask(_placed(vertices, 0.0, 1), faces, focal, pp, (size, size))
    target = prepare_silhouette_target(target_mask)
    metres_per_px = 3.5 / float(focal[0])
    table = Table(title=f"sliding the mesh sideways into its target mask ({size} px)")
    for column in ("offset px", "chamfer", "d chamfer/dx"):
        table.add_column(column, justify="right")
    chamfer_values = []
    for offset_px in (64, 32, 16, 8, 4, 2, 1, 0):
        shift = torch.tensor([offset_px * metres_per_px, 0.0, 0.0], device=device, requires_grad=True)
        verts = _placed(vertices, 0.0, 1) + shift
        chamfer = silhouette_chamfer_loss(
            perspective_project(verts, focal, pp), target.dist_maps, target.boundary_points, target.boundary_valid
        ).sum()
        (chamfer_grad,) = torch.autograd.grad(chamfer, shift)
        chamfer_values.append(float(chamfer.detach()))
        table.add_row(str(offset_px), f"{chamfer_values[-1]:.2e}", f"{float(chamfer_grad[0]):+.2e}")
    return table, all(a > b for a, b in zip(chamfer_values, chamfer_values[1:]))


def _hard_iou(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a & b).sum()) / max(1.0, float((a | b).sum()))


def optimisation_table(vertices, faces, size, device, steps: int = 80) -> Table:
    focal, pp = _camera(size, 1, device)
    target_mask = render_mask(_placed(vertices, 0.0, 1), faces, focal, pp, (size, size))
    target = prepare_silhouette_target(target_mask)
    metres_per_px = 3.5 / float(focal[0])
    table = Table(
        title=f"{steps} Adam steps (lr 0.01 m) on the translation, start offset {0.12 * size:.0f} px right, {0.06 * size:.0f} px down ({size} px)"
    )
    for column in ("loss", "start IoU", "final IoU", "final offset px", "ms total"):
        table.add_column(column, justify="right")
    start_offset = torch.tensor([0.12 * size * metres_per_px, 0.06 * size * metres_per_px, 0.0], device=device)
    offset = start_offset.clone().requires_grad_(True)
    optimiser = torch.optim.Adam([offset], lr=0.01)
    start_iou = _hard_iou(
        render_mask(_placed(vertices, 0.0, 1) + start_offset, faces, focal, pp, (size, size)), target_mask
    )
    began = time.perf_counter()
    for _ in range(steps):
        optimiser.zero_grad()
        verts = _placed(vertices, 0.0, 1) + offset
        loss = silhouette_chamfer_loss(
            perspective_project(verts, focal, pp), target.dist_maps, target.boundary_points, target.boundary_valid
        )
        loss.sum().backward()
        optimiser.step()
    elapsed = 1000.0 * (time.perf_counter() - began)
    with torch.no_grad():
        final = render_mask(_placed(vertices, 0.0, 1) + offset, faces, focal, pp, (size, size))
        final_px = float(torch.linalg.norm(offset[:2])) / metres_per_px
    table.add_row(
        "chamfer", f"{start_iou:.3f}", f"{_hard_iou(final, target_mask):.3f}", f"{final_px:.1f}", f"{elapsed:.0f}"
    )
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats and sizes")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device available")
    console = Console()
    meshes = {}
    for detail, max_edge in ((6, 0.05), (12, 0.03)):  # about SMPL's and the default model's face counts
        vertices, faces = body_like_mesh(detail, max_edge)
        meshes[f"{faces.shape[0]} faces / {vertices.shape[0]} verts"] = (vertices.to(device), faces.to(device))
    repeats = 2 if args.quick else 5
    console.print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, device {device}")
    sizes = (256, 512) if args.quick else (256, 512, 1024)
    console.print(rasterizer_table(meshes, sizes, repeats, device))
    vertices, faces = next(iter(meshes.values()))
    console.print(objective_speed_table(vertices, faces, (128, 256), (1, 8), repeats, device))
    table, monotone = sweep_table(vertices, faces, 128, device)
    console.print(table)
    console.print(f"decreases monotonically as the mesh moves in: chamfer: {'yes' if monotone else 'no'}")
    console.print(optimisation_table(vertices, faces, 128, device))


if __name__ == "__main__":
    main()
