"""Rotation conversions: axis-angle (rotation vectors), 3x3 matrices and the 6D representation,
and, batch innermost, cross-product matrices and SO(3) right Jacobians.

All functions take and return torch tensors with arbitrary leading batch dimensions and are
differentiable. Axis-angle vectors are in radians. This is the only place rotations are
converted; everything else in fitter imports from here. axis_angle_to_matrix is a lean
Rodrigues formula (it sits on the fitting hot path, where PyTorch's per-op overhead dominates);
the other conversions delegate to `roma` (installed with anny), whose small-angle handling is
numerically safe.
"""

from __future__ import annotations

import functools

import roma
import torch

__all__ = [
    "axis_angle_to_matrix",
    "rotation_matrix_rows",
    "cross_matrix_rows",
    "so3_right_jacobian_rows",
    "matrix_to_axis_angle",
    "rot6d_to_matrix",
    "matrix_to_rot6d",
    "axis_angle_to_rot6d",
    "rot6d_to_axis_angle",
    "rotation_about",
]


@functools.lru_cache(maxsize=None)
def _rodrigues_constants(dtype: torch.dtype, device: torch.device) -> tuple[torch.Tensor, ...]:
    """(skew (9,3), eye (9,1), angle_factors (2,1), adjoint (4,9), transpose (9,)) for `_Rodrigues`."""
    with torch.inference_mode(False), torch.no_grad():
        skew = torch.zeros(9, 3, dtype=dtype, device=device)  # skew @ v = [v]_x flattened row-major
        for entry, component, sign in ((1, 2, -1), (2, 1, 1), (3, 2, 1), (5, 0, -1), (6, 1, -1), (7, 0, 1)):
            skew[entry, component] = sign
        eye = torch.eye(3, dtype=dtype, device=device).reshape(9, 1)
        angle_factors = torch.tensor([[1.0], [0.5]], dtype=dtype, device=device)  # sin(t)/t, sin(t/2)/t
        adjoint = torch.cat([skew.T, eye.T])  # (4,9): omega (3 rows) and trace (1 row) of a 3x3 adjoint
        transpose = torch.tensor([0, 3, 6, 1, 4, 7, 2, 5, 8], device=device)  # row-major entries of M^T
    return skew, eye, angle_factors, adjoint, transpose


def rodrigues_rows_with_cache(v: torch.Tensor) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
    """Forward half of `rotation_matrix_rows` for fused autograd Functions (call without
    autograd): (3,N) rotation vectors -> ((9,N) matrix entries, cache for `rodrigues_rows_vjp`)."""
    skew, eye, angle_factors, _, _ = _rodrigues_constants(v.dtype, v.device)
    angle_sq = (v * v).sum(0, keepdim=True)  # (1,N)
    angle = angle_sq.clamp_min(torch.finfo(v.dtype).eps).sqrt()
    a_half = torch.sin(angle * angle_factors) / angle  # (2,N): sin(t)/t, sin(t/2)/t
    a, half = a_half[:1], a_half[1:]
    b = 2.0 * half * half
    cos = 1.0 - b * angle_sq
    outer = (v.unsqueeze(1) * v.unsqueeze(0)).reshape(9, -1)
    rows = torch.addmm(torch.addcmul(cos * eye, b, outer), skew, a * v)
    return rows, (v, a, b, cos, angle_sq)


def rodrigues_rows_vjp(cache: tuple[torch.Tensor, ...], grad: torch.Tensor) -> torch.Tensor:
    """Backward half: gradient (9,N) w.r.t. the matrix entries -> gradient (3,N) w.r.t. the
    rotation vectors, in closed form:
    d/dv sum(G * R) = a w + b (G + G^T) v + (-a tr G + beta v^T G v + alpha w.v) v, with
    w.u = sum(G * [u]_x), alpha = a'(t)/t = (cos - a)/t^2, beta = b'(t)/t = (a - 2b)/t^2 (their
    round-off, ~eps/t^2, meets factors ~t^2, so small angles are harmless)."""
    v, a, b, cos, angle_sq = cache
    _, _, _, adjoint, transpose = _rodrigues_constants(v.dtype, v.device)
    grad = grad.reshape(9, -1)
    omega_trace = adjoint @ grad  # (4,N)
    omega, trace = omega_trace[:3], omega_trace[3:]
    sym = (grad + grad.index_select(0, transpose)).view(3, 3, -1)
    sym_v = (sym * v.unsqueeze(0)).sum(1)  # (G + G^T) v
    vgv = 0.5 * (v * sym_v).sum(0, keepdim=True)
    wv = (omega * v).sum(0, keepdim=True)
    angle_sq = angle_sq.clamp_min(torch.finfo(v.dtype).eps)
    alpha = (cos - a) / angle_sq
    beta = torch.sub(a, b, alpha=2.0) / angle_sq
    radial = torch.addcmul(torch.addcmul(-a * trace, beta, vgv), alpha, wv)
    return torch.addcmul(torch.addcmul(a * omega, b, sym_v), radial, v)


class _Rodrigues(torch.autograd.Function):
    """(3,N) rotation vectors -> (9,N) matrix entries with the closed-form backward (a few fused
    ops instead of autograd through ~20 elementwise ones; PyTorch's per-op cost rules the fit)."""

    @staticmethod
    def forward(ctx, v: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        rows, cache = rodrigues_rows_with_cache(v)
        ctx.save_for_backward(*cache)
        return rows

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return rodrigues_rows_vjp(ctx.saved_tensors, grad)


def rotation_matrix_rows(axis_angle_rows: torch.Tensor) -> torch.Tensor:
    """Rodrigues in a components-first layout: (3, N) rotation vectors (radians) -> (9, N)
    row-major rotation-matrix entries. Used directly by the body model's fast path, where
    keeping the batch innermost keeps every op vectorised.

    R = cos(t) I + b v v^T + a [v]_x with t = |v|, a = sin(t)/t, b = (1 - cos t)/t^2 =
    2 (sin(t/2)/t)^2 and cos(t) = 1 - b t^2 (no 1 - cos cancellation). Exact at any angle (also
    beyond pi). Near zero the angle inside sin(.)/t is clamped to sqrt(dtype eps), which changes
    a and b by less than eps; the gradient is written out in closed form, exact at zero too.
    """
    return _Rodrigues.apply(axis_angle_rows)


def cross_matrix_rows(v: torch.Tensor) -> torch.Tensor:
    """Cross-product matrices, batch innermost: (..., 3, B) vectors -> (..., 3, 3, B) matrices
    [v]_x (with [v]_x w = v x w)."""
    x, y, z = v.unbind(-2)
    zero = torch.zeros_like(x)
    return torch.stack([torch.stack([zero, -z, y], -2), torch.stack([z, zero, -x], -2),
                        torch.stack([-y, x, zero], -2)], -3)  # fmt: skip


def so3_right_jacobian_rows(u: torch.Tensor) -> torch.Tensor:
    """Right Jacobians of SO(3), batch innermost: (..., 3, B) rotation vectors (radians) ->
    (..., 3, 3, B) J_r(u), with R(u + d) ~ R(u) R(J_r(u) d). J_r = I - a [u]_x + b [u]_x^2,
    a = (1 - cos t)/t^2, b = (t - sin t)/t^3 (t = |u|; their Taylor series below t = 1e-4)."""
    theta_sq = (u * u).sum(-2, keepdim=True).clamp_min(1e-12)  # (...,1,B)
    theta = theta_sq.sqrt()
    a = torch.where(theta > 1e-4, (1.0 - torch.cos(theta)) / theta_sq, 0.5 - theta_sq / 24.0)
    b = torch.where(theta > 1e-4, (theta - torch.sin(theta)) / (theta_sq * theta), 1.0 / 6.0 - theta_sq / 120.0)
    eye = torch.eye(3, dtype=u.dtype, device=u.device)[..., None]
    k_squared = u.unsqueeze(-2) * u.unsqueeze(-3) - theta_sq.unsqueeze(-2) * eye  # [u]_x^2 = u u^T - |u|^2 I
    return eye - a[..., None, :] * cross_matrix_rows(u) + b[..., None, :] * k_squared


def axis_angle_to_matrix(axis_angle: torch.Tensor) -> torch.Tensor:
    """(..., 3) rotation vectors (radians) -> (..., 3, 3) rotation matrices (Rodrigues, see
    `rotation_matrix_rows`; exact at zero, where the gradient is the true one)."""
    rows = rotation_matrix_rows(axis_angle.reshape(-1, 3).T)
    return rows.T.reshape(*axis_angle.shape[:-1], 3, 3)


def matrix_to_axis_angle(matrix: torch.Tensor) -> torch.Tensor:
    """(..., 3, 3) rotation matrices -> (..., 3) rotation vectors (radians, angle in [0, pi])."""
    return roma.rotmat_to_rotvec(matrix)


def rotation_angle_between(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Geodesic angle (...,) radians in [0, pi] between rotations given as (..., 3) rotation
    vectors: the angle of R(a)^T R(b), from its trace (clamped against rounding)."""
    relative = axis_angle_to_matrix(a).transpose(-1, -2) @ axis_angle_to_matrix(b)
    cos = (relative.diagonal(dim1=-2, dim2=-1).sum(-1) - 1.0) / 2.0
    return torch.acos(cos.clamp(-1.0, 1.0))


def rot6d_to_matrix(rot6d: torch.Tensor) -> torch.Tensor:
    """(..., 6) -> (..., 3, 3), the convention of Zhou et al. used by HMR/SPIN/CLIFF/PARE.

    The 6 values are viewed as a (3, 2) matrix (row-major); its two columns are
    Gram-Schmidt-orthonormalised into b1, b2, and b3 = b1 x b2. The result has columns
    [b1 b2 b3].
    """
    return roma.special_gramschmidt(rot6d.reshape(*rot6d.shape[:-1], 3, 2))


def matrix_to_rot6d(matrix: torch.Tensor) -> torch.Tensor:
    """(..., 3, 3) -> (..., 6): the first two columns, flattened row-major (inverse of rot6d_to_matrix)."""
    return matrix[..., :, :2].reshape(*matrix.shape[:-2], 6)


def axis_angle_to_rot6d(axis_angle: torch.Tensor) -> torch.Tensor:
    """(..., 3) rotation vectors -> (..., 6)."""
    return matrix_to_rot6d(axis_angle_to_matrix(axis_angle))


def rot6d_to_axis_angle(rot6d: torch.Tensor) -> torch.Tensor:
    """(..., 6) -> (..., 3) rotation vectors."""
    return matrix_to_axis_angle(rot6d_to_matrix(rot6d))


def rotation_about(axis: str, angle: float | torch.Tensor, dtype=torch.float32) -> torch.Tensor:
    """3x3 rotation of `angle` radians about the coordinate axis 'x', 'y' or 'z' (right-handed)."""
    vec = torch.zeros(3, dtype=dtype)
    vec["xyz".index(axis)] = float(angle) if not torch.is_tensor(angle) else angle
    return axis_angle_to_matrix(vec)
