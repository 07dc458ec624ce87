"""Rotations and rigid transforms shared by plugins, solvers and the conformance suite (pure numpy).

Rotation matrices are 3x3, rotation vectors are axis * angle (radians), poses are 4x4 homogeneous
transforms (``T_world_x``: x's frame in the world frame, metres).
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["so3_log", "so3_exp", "rotation_angle", "skew", "to_frame", "from_frame", "zbuffer", "R_TOP_DOWN",
           "quat_from_matrix", "matrix_from_quat"]

R_TOP_DOWN = np.array([[1.0, 0.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, -1.0]])
"""Camera-to-world rotation of a virtual camera looking straight down world -z (OpenCV axes:
x = world +x, y = world -y, z = world -z); used by the graspers' virtual top-down views."""


def so3_log(R: np.ndarray) -> np.ndarray:
    """Rotation vector (axis * angle, radians) of a 3x3 rotation matrix; robust near 0 and pi."""
    R = np.asarray(R, dtype=np.float64)
    vee = np.array([R[2, 1] - R[1, 2], R[0, 2] - R[2, 0], R[1, 0] - R[0, 1]])
    cos = (R[0, 0] + R[1, 1] + R[2, 2] - 1.0) * 0.5
    cos = 1.0 if cos > 1.0 else (-1.0 if cos < -1.0 else cos)
    theta = math.acos(cos)
    if theta < 1e-6:
        return 0.5 * vee
    if math.pi - theta < 1e-4:  # near pi: axis from the symmetric part
        B = (R + np.eye(3)) * 0.5
        diag = np.sqrt(np.clip(np.diag(B), 0.0, None))
        k = int(np.argmax(diag))
        axis = B[k] / max(diag[k], 1e-12)
        axis = axis / np.linalg.norm(axis)
        if float(axis @ vee) < 0:
            axis = -axis
        return theta * axis
    return (theta / (2.0 * math.sin(theta))) * vee


def so3_exp(rv: np.ndarray) -> np.ndarray:
    """(..., 3) rotation vectors (radians) -> (..., 3, 3) rotation matrices (Rodrigues)."""
    rv = np.asarray(rv, dtype=np.float64)
    th = np.linalg.norm(rv, axis=-1, keepdims=True)
    k = rv / np.where(th > 1e-12, th, 1.0)
    K = skew(k)
    s, c = np.sin(th)[..., None], np.cos(th)[..., None]
    return np.eye(3) + s * K + (1 - c) * (K @ K)


def rotation_angle(R: np.ndarray) -> float:
    """Geodesic angle of a rotation matrix, radians in [0, pi]."""
    c = (float(np.trace(R)) - 1.0) * 0.5
    return math.acos(min(1.0, max(-1.0, c)))


def skew(v: np.ndarray) -> np.ndarray:
    """(..., 3) -> (..., 3, 3) cross-product matrices: skew(a) @ b == a x b."""
    v = np.asarray(v, dtype=np.float64)
    z = np.zeros(v.shape[:-1])
    return np.stack([np.stack([z, -v[..., 2], v[..., 1]], -1),
                     np.stack([v[..., 2], z, -v[..., 0]], -1),
                     np.stack([-v[..., 1], v[..., 0], z], -1)], -2)


def quat_from_matrix(R: np.ndarray) -> np.ndarray:
    """Unit quaternion (w, x, y, z), w >= 0, of a rotation matrix (MuJoCo's and viser's order)."""
    R = np.asarray(R, dtype=np.float64)
    tr = np.trace(R)
    if tr > 0:
        s = math.sqrt(tr + 1.0) * 2
        q = np.array([0.25 * s, (R[2, 1] - R[1, 2]) / s, (R[0, 2] - R[2, 0]) / s, (R[1, 0] - R[0, 1]) / s])
    elif R[0, 0] > R[1, 1] and R[0, 0] > R[2, 2]:
        s = math.sqrt(1.0 + R[0, 0] - R[1, 1] - R[2, 2]) * 2
        q = np.array([(R[2, 1] - R[1, 2]) / s, 0.25 * s, (R[0, 1] + R[1, 0]) / s, (R[0, 2] + R[2, 0]) / s])
    elif R[1, 1] > R[2, 2]:
        s = math.sqrt(1.0 + R[1, 1] - R[0, 0] - R[2, 2]) * 2
        q = np.array([(R[0, 2] - R[2, 0]) / s, (R[0, 1] + R[1, 0]) / s, 0.25 * s, (R[1, 2] + R[2, 1]) / s])
    else:
        s = math.sqrt(1.0 + R[2, 2] - R[0, 0] - R[1, 1]) * 2
        q = np.array([(R[1, 0] - R[0, 1]) / s, (R[0, 2] + R[2, 0]) / s, (R[1, 2] + R[2, 1]) / s, 0.25 * s])
    q /= np.linalg.norm(q)
    return -q if q[0] < 0 else q


def matrix_from_quat(q: np.ndarray) -> np.ndarray:
    """3x3 rotation of a quaternion (w, x, y, z)."""
    w, x, y, z = np.asarray(q, dtype=np.float64) / np.linalg.norm(q)
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                     [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                     [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])


def to_frame(T_world_x: np.ndarray, points: np.ndarray) -> np.ndarray:
    """World points (N, 3) -> their coordinates in frame x (``T_world_x``, 4x4)."""
    T = np.asarray(T_world_x, dtype=np.float64)
    return (np.asarray(points, dtype=np.float64) - T[:3, 3]) @ T[:3, :3]


def from_frame(T_world_x: np.ndarray, local: np.ndarray) -> np.ndarray:
    """Points fixed in frame x (N, 3) -> world points for each pose (K x 4 x 4) -> (K, N, 3)."""
    T = np.asarray(T_world_x, dtype=np.float64).reshape(-1, 4, 4)
    return np.einsum("kab,nb->kna", T[:, :3, :3], np.asarray(local, dtype=np.float64)) + T[:, None, :3, 3]


def zbuffer(points_cam: np.ndarray, K: np.ndarray, shape: tuple[int, int], *, splat: int = 1) -> np.ndarray:
    """Which point each pixel of a pinhole view sees: an (H, W) index image into ``points_cam``
    (-1 where no point lands).

    ``points_cam``: (N, 3) in the view's camera frame (OpenCV axes, z forward, metres); ``K``: 3x3
    intrinsics; each point in front of the camera (z > 0) is projected to its nearest pixel and
    splatted over the (2 * splat + 1)^2 pixels around it (so a cloud sampled about one pixel apart
    leaves no holes through which hidden points show); per pixel the nearest point (smallest z)
    wins, ties going to the lowest index. A point that wins no pixel is occluded in this view.
    """
    pc = np.asarray(points_cam, dtype=np.float64).reshape(-1, 3)
    H, W = int(shape[0]), int(shape[1])
    z = pc[:, 2]
    idx = np.nonzero(z > 1e-6)[0]
    win = np.full(H * W, -1, np.int64)
    if len(idx) == 0:
        return win.reshape(H, W)
    u = np.rint(K[0, 0] * pc[idx, 0] / z[idx] + K[0, 2]).astype(np.int64)
    v = np.rint(K[1, 1] * pc[idx, 1] / z[idx] + K[1, 2]).astype(np.int64)
    r = range(-int(splat), int(splat) + 1)
    offs = np.array([(dx, dy) for dy in r for dx in r])
    uu = (u[:, None] + offs[None, :, 0]).ravel()
    vv = (v[:, None] + offs[None, :, 1]).ravel()
    ii = np.repeat(idx, len(offs))
    inside = (uu >= 0) & (uu < W) & (vv >= 0) & (vv < H)
    uu, vv, ii = uu[inside], vv[inside], ii[inside]
    key = vv * W + uu
    order = np.lexsort((ii, z[ii], key))  # per pixel: nearest first (ties: lowest index)
    key, ii = key[order], ii[order]
    first = np.ones(len(key), bool)
    first[1:] = key[1:] != key[:-1]
    win[key[first]] = ii[first]
    return win.reshape(H, W)
