"""Push-T scene geometry shared by the ``pusht`` world, its estimator and the Push-T dynamics models.

gym-pusht (0.1.8) simulates a planar T and a circular pusher with pymunk in a 512 x 512 workspace
whose unit is a "pixel". dream2flow lifts it to 3D metres on a board lying in the world's z = 0
plane:

* **Scale**: :data:`PX_PER_M` = 1000 pixels per metre (one gym-pusht unit is one millimetre). The
  board is 0.512 m square, the T's bar 12 x 3 cm and its stem 3 x 9 cm (12 cm tall in all), the
  pusher's disk 1.5 cm in radius; the paper's success tolerance of 2 cm is 20 gym-pusht units.
* **Frame**: world ``x = (u - 256) / 1000``, ``y = (v - 256) / 1000`` for a gym-pusht point
  ``(u, v)``; z up, the board's surface at z = 0, its centre at the origin. The map is a
  translation and a scale, so pymunk's angles are yaw angles about +z.
* **The T** is extruded to :data:`T_HEIGHT` (3 cm) above the board.
* **Pose convention** ``(x, y, yaw)`` (metres, radians) of a T = gym-pusht's ``block.position`` (the
  world position of the body's *local origin*, the middle of the bar's outer edge, not its centre of
  gravity) and ``block.angle``: a point ``v`` of the T's local frame (metres) is at
  ``(x, y) + R(yaw) v``. gym-pusht's goal ``(256, 256, pi/4)`` is :data:`GOAL_POSE` = (0, 0, pi/4).
* **The paper's success**: the T's centre of area (local (0, 0.045 m)) within 2 cm of the goal's and
  its yaw within 15 degrees (:func:`paper_success`); gym-pusht's own is coverage > 0.95.

Everything here is pure numpy (no pymunk): the models and the estimator use it without the world.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["PX_PER_M", "BOARD_PX", "BOARD_SIZE", "T_HEIGHT", "PUSHER_RADIUS", "BAR_LOCAL", "STEM_LOCAL",
           "T_CENTRE_LOCAL", "GOAL_POSE", "SUCCESS_DISTANCE", "SUCCESS_YAW_DEG", "px_to_m", "m_to_px",
           "pose_from_px", "pose_to_px", "rotation2", "pose_matrix", "to_world", "to_local", "t_polygons",
           "inside_t", "t_surface_points", "t_centre", "pose_error", "paper_success", "wrap_pi", "fit_t_pose"]

PX_PER_M = 1000.0
"""gym-pusht units ("pixels") per metre."""
BOARD_PX = 512.0
"""gym-pusht's workspace side, units."""
BOARD_SIZE = BOARD_PX / PX_PER_M
"""the board's side, metres (0.512)."""
T_HEIGHT = 0.03
"""the T's extrusion height above the board, metres."""
PUSHER_RADIUS = 15.0 / PX_PER_M
"""radius of gym-pusht's pusher disk, metres (0.015)."""

_S = 30.0 / PX_PER_M
BAR_LOCAL = np.array([[-2 * _S, _S], [2 * _S, _S], [2 * _S, 0.0], [-2 * _S, 0.0]])
"""the bar's 4 corners in the T's local frame (metres)."""
STEM_LOCAL = np.array([[-_S / 2, _S], [-_S / 2, 4 * _S], [_S / 2, 4 * _S], [_S / 2, _S]])
"""the stem's 4 corners in the T's local frame (metres)."""
T_CENTRE_LOCAL = np.array([0.0, 2.5 * _S * 0.6])
"""the T's centre of gravity in its local frame (metres): the mean of the bar's and the stem's centres,
(0, 0.045), which is where gym-pusht puts ``block.center_of_gravity``."""
T_CENTRE_LOCAL[:] = (BAR_LOCAL.mean(0) + STEM_LOCAL.mean(0)) / 2
GOAL_POSE = (0.0, 0.0, math.pi / 4)
"""gym-pusht's goal (256, 256, pi/4) as a world pose (metres, radians)."""
SUCCESS_DISTANCE = 0.02
"""the paper's position tolerance, metres."""
SUCCESS_YAW_DEG = 15.0
"""the paper's yaw tolerance, degrees."""


def wrap_pi(a: Any) -> Any:
    """Angle(s) wrapped to [-pi, pi)."""
    return (np.asarray(a) + np.pi) % (2 * np.pi) - np.pi if isinstance(a, np.ndarray) else \
        (float(a) + math.pi) % (2 * math.pi) - math.pi


def px_to_m(uv: Any) -> np.ndarray:
    """gym-pusht point(s) (..., 2) in units -> world xy (..., 2) metres."""
    return (np.asarray(uv, dtype=np.float64) - BOARD_PX / 2) / PX_PER_M


def m_to_px(xy: Any) -> np.ndarray:
    """World xy (..., 2) metres -> gym-pusht point(s) (..., 2) units."""
    return np.asarray(xy, dtype=np.float64) * PX_PER_M + BOARD_PX / 2


def pose_from_px(position_px: Any, angle: float) -> tuple[float, float, float]:
    """gym-pusht ``block.position`` (units) and ``block.angle`` -> pose (x, y, yaw) metres, radians."""
    x, y = px_to_m(np.asarray(position_px, dtype=np.float64)[:2])
    return float(x), float(y), float(angle)


def pose_to_px(pose: Any) -> tuple[float, float, float]:
    """Pose (x, y, yaw) -> gym-pusht (u, v, angle)."""
    u, v = m_to_px(np.asarray(pose, dtype=np.float64)[:2])
    return float(u), float(v), float(pose[2])


def rotation2(yaw: float) -> np.ndarray:
    c, s = math.cos(yaw), math.sin(yaw)
    return np.array([[c, -s], [s, c]])


def pose_matrix(pose: Any) -> np.ndarray:
    """T_world_T (4x4): yaw about z, origin at the pose's (x, y) on the board (z = 0)."""
    x, y, yaw = (float(v) for v in pose)
    T = np.eye(4)
    T[:2, :2] = rotation2(yaw)
    T[:2, 3] = (x, y)
    return T


def to_world(points_local: np.ndarray, pose: Any) -> np.ndarray:
    """Local points (..., 2) or (..., 3) (metres) -> world, for the T at ``pose``."""
    p = np.asarray(points_local, dtype=np.float64)
    out = p.copy()
    out[..., :2] = p[..., :2] @ rotation2(float(pose[2])).T + np.array(pose[:2], dtype=np.float64)
    return out


def to_local(points_world: np.ndarray, pose: Any) -> np.ndarray:
    """World points (..., 2|3) -> the T's local frame at ``pose``."""
    p = np.asarray(points_world, dtype=np.float64)
    out = p.copy()
    out[..., :2] = (p[..., :2] - np.array(pose[:2], dtype=np.float64)) @ rotation2(float(pose[2]))
    return out


def t_polygons(pose: Any) -> tuple[np.ndarray, np.ndarray]:
    """The bar's and the stem's corners (4 x 2 each), world xy metres, for the T at ``pose``."""
    return to_world(BAR_LOCAL, pose), to_world(STEM_LOCAL, pose)


def _in_rect(p: np.ndarray, rect: np.ndarray, pad: float) -> np.ndarray:
    lo, hi = rect.min(0) - pad, rect.max(0) + pad
    return np.all((p >= lo) & (p <= hi), axis=-1)


def inside_t(xy_local: np.ndarray, pad: float = 0.0) -> np.ndarray:
    """bool (...): local xy points (metres) inside the T's footprint grown by ``pad`` metres."""
    p = np.asarray(xy_local, dtype=np.float64)[..., :2]
    return _in_rect(p, BAR_LOCAL, pad) | _in_rect(p, STEM_LOCAL, pad)


def t_surface_points(spacing: float = 0.005, sides: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Points on the T's surface in its local frame (M x 3, metres) and their outward normals (M x 3).

    The top face (z = T_HEIGHT) on a ``spacing`` grid, and with ``sides`` the vertical faces of the
    outline on a ``spacing`` grid in (arc length, z). Deterministic."""
    if not (0 < spacing <= 0.05):
        raise ValueError(f"spacing: expected 0 < spacing <= 0.05 metres, got {spacing!r}")
    xs = np.arange(BAR_LOCAL[:, 0].min() + spacing / 2, BAR_LOCAL[:, 0].max(), spacing)
    ys = np.arange(spacing / 2, STEM_LOCAL[:, 1].max(), spacing)
    gx, gy = np.meshgrid(xs, ys)
    g = np.stack([gx.ravel(), gy.ravel()], -1)
    g = g[inside_t(g)]
    pts = [np.column_stack([g, np.full(len(g), T_HEIGHT)])]
    nrm = [np.tile([0.0, 0.0, 1.0], (len(g), 1))]
    if sides:
        # the T's outline, counter-clockwise (outward normal = edge direction rotated by -90 degrees)
        b, s = BAR_LOCAL, STEM_LOCAL
        outline = np.array([b[3], b[2], b[1], s[3], s[2], s[1], s[0], b[0]])
        zs = np.arange(spacing / 2, T_HEIGHT, spacing)
        for i in range(len(outline)):
            a, c = outline[i], outline[(i + 1) % len(outline)]
            e = c - a
            length = float(np.linalg.norm(e))
            u = e / length
            n = np.array([u[1], -u[0], 0.0])
            ts = np.arange(spacing / 2, length, spacing)
            for z in zs:
                q = a[None] + ts[:, None] * u[None]
                pts.append(np.column_stack([q, np.full(len(q), z)]))
                nrm.append(np.tile(n, (len(q), 1)))
    return np.concatenate(pts), np.concatenate(nrm)


def t_centre(pose: Any) -> np.ndarray:
    """World xy (metres) of the T's centre of gravity at ``pose``."""
    return to_world(T_CENTRE_LOCAL, pose)


def pose_error(pose: Any, goal: Any = GOAL_POSE) -> tuple[float, float]:
    """(distance between the T's centres, metres; |yaw error|, degrees in [0, 180])."""
    d = float(np.linalg.norm(t_centre(pose) - t_centre(goal)))
    return d, abs(math.degrees(wrap_pi(float(pose[2]) - float(goal[2]))))


def paper_success(pose: Any, goal: Any = GOAL_POSE) -> bool:
    """The paper's criterion: centres within :data:`SUCCESS_DISTANCE` and yaw within :data:`SUCCESS_YAW_DEG`."""
    d, a = pose_error(pose, goal)
    return d <= SUCCESS_DISTANCE and a <= SUCCESS_YAW_DEG


_TEMPLATE: dict[float, Any] = {}


def _template(spacing: float) -> tuple[np.ndarray, Any]:
    """The T's footprint on a ``spacing`` grid (M x 2, local metres) and its KD-tree (cached)."""
    if spacing not in _TEMPLATE:
        from scipy.spatial import cKDTree

        g = t_surface_points(spacing, sides=False)[0][:, :2]
        _TEMPLATE[spacing] = (g, cKDTree(g))
    return _TEMPLATE[spacing]


def _kabsch2(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """R (2x2), t (2) minimising |R a + t - b|^2 (rows are points)."""
    ca, cb = a.mean(0), b.mean(0)
    H = (a - ca).T @ (b - cb)
    U, _, Vt = np.linalg.svd(H)
    D = np.diag([1.0, np.sign(np.linalg.det(Vt.T @ U.T))])
    R = Vt.T @ D @ U.T
    return R, cb - R @ ca


def fit_t_pose(points: np.ndarray, *, starts: int = 24, iterations: int = 20,
               spacing: float = 0.003) -> tuple[float, float, float]:
    """The T pose (x, y, yaw) that best explains ``points`` (N x 2 or N x 3, metres, world frame; any
    part of the T's surface, top or sides: only xy is used).

    Each point should lie on the T's footprint: point-to-point ICP in the plane from ``starts``
    initial yaws (the template's centre on the points' centroid), each point matched to the nearest
    point of the footprint sampled every ``spacing`` metres, refined by 2D Kabsch; the start with the
    smallest two-sided mean distance (points to footprint, and footprint to points, so a T half off
    the points loses) wins, and is refined by symmetric ICP (pairs both ways; a footprint point pairs
    only with a point within 1 cm, so an unseen part of the T pulls nothing). Deterministic. ValueError for fewer than 3 finite points."""
    from scipy.spatial import cKDTree

    p = np.asarray(points, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] not in (2, 3):
        raise ValueError(f"points: expected N x 3 (or N x 2) metres, got shape {p.shape}")
    p = p[np.all(np.isfinite(p), axis=1)][:, :2]
    if len(p) < 3:
        raise ValueError(f"points: fitting the T needs at least 3 finite points, got {len(p)}")
    tmpl, tree = _template(spacing)
    ptree = cKDTree(p)
    c = p.mean(0)
    best = (np.inf, (0.0, 0.0, 0.0))
    for k in range(starts):
        yaw = 2 * math.pi * k / starts
        R = rotation2(yaw)
        t = c - R @ tmpl.mean(0)      # template centroid on the points' centroid
        prev = np.inf
        for _ in range(iterations):
            local = (p - t) @ R        # points in the T frame (R^T (p - t))
            d, j = tree.query(local)
            cost = float(d.mean())
            if prev - cost < 1e-7:
                break
            prev = cost
            R, t = _kabsch2(tmpl[j], p)
        local = (p - t) @ R
        d1 = float(tree.query(local)[0].mean())
        d2 = float(ptree.query(tmpl @ R.T + t)[0].mean())
        score = d1 + d2
        if score < best[0]:
            best = (score, (R, t))
    R, t = best[1]
    # symmetric refinement: points -> footprint pairs, and footprint -> points pairs where the footprint point
    # has a point within ``reach`` (an occluded part of the T pulls nothing). One-sided ICP alone is flat
    # inside the footprint (every inner point is within spacing / 2 of it) and stops a few degrees off.
    reach = 0.01
    prev = np.inf
    for _ in range(3 * iterations):
        local = (p - t) @ R
        d, j = tree.query(local)
        world_t = tmpl @ R.T + t
        e, k = ptree.query(world_t)
        near = e <= reach
        cost = float(d.mean() + e[near].mean()) if near.any() else float(d.mean())
        if prev - cost < 1e-8:
            break
        prev = cost
        R, t = _kabsch2(np.concatenate([tmpl[j], tmpl[near]]), np.concatenate([p, p[k[near]]]))
    return float(t[0]), float(t[1]), float(math.atan2(R[1, 0], R[0, 0]))
