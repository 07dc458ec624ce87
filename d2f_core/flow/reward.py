"""The paper's 3D object flow reward (Open Door reinforcement learning), pure numpy.

``R = r_particle + r_ee`` with

* ``r_particle = w_particle * t* / t_end`` (``w_particle`` = 0.75 in the paper);
* ``t*`` = the flow step whose particle positions are nearest the current particles: the argmin
  over ``t`` of the mean per-point distance ``(1/n) sum_i ||x_now[i] - P_t[i]||``, recomputed on
  every call (never forced to increase);
* ``r_ee = w_ee * (1 - tanh(ee_scale * ||ee - x_bar||))`` (``w_ee`` = 0.25, ``ee_scale`` = 10 per
  metre), ``x_bar`` the mean of the current particles.

Index convention (0-based): the flow has ``T`` steps ``P_0 .. P_{T-1}``, ``P_0`` is the start (the
particles at reset) and ``t_end = T - 1``. The search runs over ``t`` in ``1 .. t_end``, the
paper's ``t in 1..t_end``: the start step is not a candidate, so ``r_particle`` lies in
``[w_particle / t_end, w_particle]`` whenever a step can be scored. Ties (a flow that holds still)
resolve to the earliest such step (``numpy.argmin``).

Visibility: the mean at step ``t`` runs over the points visible in the flow at ``t`` *and* in the
current estimate. A step with no such point is not a candidate. When no step has one (all
particles lost, or none visible in the flow), nothing can be scored: ``t* = 0``,
``r_particle = 0`` (no progress is credited for what cannot be seen) and ``mean_distance`` is NaN;
``r_ee`` still counts, with ``x_bar`` over all particles. ``x_bar`` is the mean of the visible
current particles (of all of them when none is visible).

Frames: particles and ``ee`` are metres in the world frame. ``frame`` (``T_world_frame``, 4x4
rigid) says the flow's points are expressed in that frame (e.g. the door's, so one flow serves every
door placement); the particles are then mapped into it (``inv(T_world_frame) @ x``) before the
distances are taken. ``r_ee`` does not depend on the frame (a rigid map keeps distances), so it
is computed in the world frame.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..geometry import to_frame
from ..types import DataError

__all__ = ["flow_reward", "nearest_flow_step", "FLOW_REWARD_DEFAULTS"]

FLOW_REWARD_DEFAULTS = {"w_particle": 0.75, "w_ee": 0.25, "ee_scale": 10.0}
"""The paper's weights (dimensionless) and tanh scale (1/m)."""


def _points(name: str, value: Any, shape: tuple) -> np.ndarray:
    a = np.asarray(value, dtype=np.float64) if value is not None else None
    if a is None or a.ndim != len(shape) or any(s is not None and s != v for s, v in zip(shape, a.shape)):
        want = " x ".join("?" if s is None else str(s) for s in shape)
        got = "None" if a is None else "x".join(map(str, a.shape))
        raise DataError(f"{name}: expected a float array {want} (metres), got shape {got}")
    return a


def _mask(name: str, value: Any, shape: tuple[int, ...]) -> np.ndarray:
    if value is None:
        return np.ones(shape, bool)
    m = np.asarray(value)
    if m.dtype != np.bool_ or m.shape != shape:
        raise DataError(f"{name}: expected a bool array of shape {shape}, got {m.dtype} {m.shape}; "
                        "use .astype(bool)")
    return m


def _rigid(name: str, value: Any) -> np.ndarray:
    T = np.asarray(value, dtype=np.float64)
    if T.shape != (4, 4) or not np.all(np.isfinite(T)):
        raise DataError(f"{name}: expected a finite 4x4 transform T_world_frame, got shape {T.shape}")
    R = T[:3, :3]
    if not np.allclose(T[3], [0, 0, 0, 1], atol=1e-6) or not np.allclose(R @ R.T, np.eye(3), atol=1e-4) \
            or np.linalg.det(R) < 0:
        raise DataError(f"{name}: not a rigid transform (rotation R R^T != I, det < 0 or last row != [0 0 0 1]); "
                        "pass T_world_frame of the frame the flow is expressed in")
    return T


def nearest_flow_step(flow_points: np.ndarray, particles: np.ndarray, *, flow_visible: np.ndarray | None = None,
                      visible: np.ndarray | None = None, frame: np.ndarray | None = None
                      ) -> tuple[int, float, int, np.ndarray]:
    """``(t*, mean distance at t* in metres, points used at t*, mean distance per step T)``.

    ``flow_points``: T x N x 3 metres (world frame, or ``frame``'s); ``particles``: N x 3 metres,
    world frame; ``flow_visible``: bool T x N; ``visible``: bool N (the estimator's). Steps that
    cannot be scored have distance inf (step 0 always: it is not a candidate). See the module
    docstring for the index convention and what happens with no visible point (``t* = 0``,
    distance NaN, 0 points).
    """
    P = _points("flow_points", flow_points, (None, None, 3))
    T, N = P.shape[:2]
    if T < 2:
        raise DataError(f"flow_points: the flow has {T} step(s); the reward needs at least 2 (a start and a goal)")
    x = _points("particles", particles, (N, 3))
    fv = _mask("flow_visible", flow_visible, (T, N))
    v = _mask("visible", visible, (N,))
    if not np.all(np.isfinite(x[v])):
        raise DataError("particles: visible particles contain NaN or inf; positions must be finite metres")
    if frame is not None:
        x = to_frame(_rigid("frame", frame), x)  # inv(T_world_frame) @ x
    use = fv & v[None, :]  # T x N
    use[0] = False  # the start step is not a candidate (t in 1..t_end)
    with np.errstate(invalid="ignore"):
        d = np.linalg.norm(np.where(use[..., None], P - x[None], 0.0), axis=-1)  # T x N
    counts = use.sum(axis=1)
    per_step = np.full(T, np.inf)
    ok = counts > 0
    per_step[ok] = (d * use).sum(axis=1)[ok] / counts[ok]
    if not ok.any():
        return 0, math.nan, 0, per_step
    t_star = int(np.argmin(per_step))  # ties: the earliest step
    return t_star, float(per_step[t_star]), int(counts[t_star]), per_step


def flow_reward(flow_points: np.ndarray, particles: np.ndarray, ee: np.ndarray | None, *,
                flow_visible: np.ndarray | None = None, visible: np.ndarray | None = None,
                frame: np.ndarray | None = None, w_particle: float = 0.75, w_ee: float = 0.25,
                ee_scale: float = 10.0) -> tuple[float, dict[str, Any]]:
    """The 3D object flow reward and its parts (see the module docstring for every convention).

    Args:
        flow_points: T x N x 3 metres, the flow's particle positions per step (world frame, or the
            frame ``frame`` when given).
        particles: N x 3 metres, world frame: where the flow's particles are now (same order).
        ee: (3,) end-effector position, metres, world frame; may be None only when ``w_ee`` is 0.
        flow_visible: bool T x N (None: all visible).
        visible: bool N, the estimator's visibility of ``particles`` (None: all visible).
        frame: T_world_frame (4x4 rigid) of the frame ``flow_points`` are expressed in; None: world.
        w_particle, w_ee: weights (dimensionless), the paper's 0.75 and 0.25.
        ee_scale: tanh scale of the end-effector term, 1/metre (the paper's 10).

    Returns:
        (reward, info) with info ``t_star`` (int), ``t_end`` (int), ``r_particle``, ``r_ee``,
        ``mean_distance`` (metres at ``t_star``; NaN when nothing could be scored),
        ``points_used`` (count at ``t_star``) and ``ee_distance`` (metres from ``ee`` to ``x_bar``;
        NaN without ``ee``).
    """
    for name, val in (("w_particle", w_particle), ("w_ee", w_ee), ("ee_scale", ee_scale)):
        if not isinstance(val, (int, float, np.floating, np.integer)) or not math.isfinite(float(val)) or val < 0:
            raise DataError(f"{name}: expected a finite number >= 0, got {val!r}")
    t_star, dist, used, _ = nearest_flow_step(flow_points, particles, flow_visible=flow_visible, visible=visible,
                                              frame=frame)
    P = np.asarray(flow_points)
    t_end = int(P.shape[0] - 1)
    r_particle = float(w_particle) * t_star / t_end
    x = np.asarray(particles, dtype=np.float64)
    v = _mask("visible", visible, (x.shape[0],))
    r_ee, ee_dist = 0.0, math.nan
    if ee is not None:
        e = np.asarray(ee, dtype=np.float64)
        if e.shape != (3,) or not np.all(np.isfinite(e)):
            raise DataError(f"ee: expected the end-effector position (x, y, z) in metres, got {ee!r}")
        pts = x[v] if v.any() else x
        if not np.all(np.isfinite(pts)):
            raise DataError("particles: contain NaN or inf; positions must be finite metres")
        x_bar = pts.mean(axis=0) if len(pts) else np.zeros(3)
        ee_dist = float(np.linalg.norm(e - x_bar))
        r_ee = float(w_ee) * (1.0 - math.tanh(float(ee_scale) * ee_dist))
    elif w_ee != 0:
        raise DataError("ee: the end-effector term (w_ee > 0) needs the end-effector position; pass ee or set "
                        "w_ee=0")
    reward = r_particle + r_ee
    return float(reward), {"t_star": t_star, "t_end": t_end, "r_particle": r_particle, "r_ee": r_ee,
                           "mean_distance": dist, "points_used": used, "ee_distance": ee_dist}
