"""From an optimised joint trajectory to joint-position targets: B-spline, resampling, IK, phases.

As in the paper's real-robot pipeline: the end-effector path of the optimised trajectory is fitted
with a B-spline (positions: a cubic smoothing spline; orientations: the rotation vectors relative
to the first pose, fitted on the same parameter), resampled so that consecutive poses are at least
``min_step_m`` (1 cm) **or** ``min_step_rad`` (20°) apart, and every pose is solved by IK (the
``mujoco`` or ``pybullet`` backend), each seeded by the previous solution.

:class:`PhasePolicy` then drives the robot through the phases, streaming absolute joint targets
no faster than ``speed`` x the arm's velocity limits and waiting at the end of each phase until
the joints have converged (closed loop on ``observation.joints``):

* ``pregrasp``: to the grasp pose backed off ``approach_distance`` along the approach axis, open;
* ``approach``: straight in to the grasp pose (1 cm IK steps), open;
* ``close``: close the gripper (``grip_steps`` steps);
* ``follow``: the resampled path, closed;
* ``release`` / ``retreat`` (when the task needs it): open, then back off along the approach axis.

World frame, metres, radians.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from d2f_core import IKResult
from d2f_core.geometry import so3_exp, so3_log

__all__ = ["fit_pose_spline", "resample_poses", "ik_chain", "Segment", "PhasePolicy"]

IKFn = Callable[[np.ndarray, np.ndarray], IKResult]


def fit_pose_spline(poses: np.ndarray, smoothing: float = 0.0) -> Callable[[np.ndarray], np.ndarray]:
    """Cubic B-spline through end-effector poses (K x 4 x 4); returns u in [0, 1] -> (M, 4, 4).

    Parameter: cumulative path length (translation + 0.1 m per radian), so u runs with the motion.
    ``smoothing``: scipy's ``s`` per point (metres^2); 0 interpolates.
    """
    from scipy.interpolate import make_splprep

    P = np.asarray(poses, dtype=np.float64)
    R0 = P[0, :3, :3]
    rv = [np.zeros(3)]
    for k in range(1, len(P)):  # relative rotations, unwrapped to stay continuous
        v = so3_log(R0.T @ P[k, :3, :3])
        prev = rv[-1]
        th = np.linalg.norm(v)
        if th > 1e-9:
            axis = v / th
            alt = axis * (th - 2 * math.pi)
            if np.linalg.norm(alt - prev) < np.linalg.norm(v - prev):
                v = alt
        rv.append(v)
    rv = np.array(rv)
    x = np.hstack([P[:, :3, 3], 0.1 * rv])
    steps = np.linalg.norm(np.diff(x, axis=0), axis=1)
    keep = np.concatenate([[True], steps > 1e-6])
    x = x[keep]
    if len(x) < 2:
        def still(u: np.ndarray) -> np.ndarray:
            return np.repeat(P[:1], np.size(u), 0)
        return still
    u = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(x, axis=0), axis=1))])
    u /= u[-1]
    k = min(3, len(x) - 1)
    spl, _ = make_splprep(x.T, u=u, k=k, s=smoothing * len(x))

    def at(us: np.ndarray) -> np.ndarray:
        us = np.clip(np.atleast_1d(np.asarray(us, dtype=np.float64)), 0.0, 1.0)
        y = np.asarray(spl(us)).T.reshape(len(us), 6)
        out = np.repeat(np.eye(4)[None], len(us), 0)
        out[:, :3, 3] = y[:, :3]
        out[:, :3, :3] = R0 @ so3_exp(y[:, 3:] / 0.1)
        return out
    return at


def resample_poses(path: Callable[[np.ndarray], np.ndarray], min_step_m: float = 0.01,
                   min_step_rad: float = math.radians(20.0), samples: int = 2000) -> np.ndarray:
    """Poses along ``path`` such that consecutive ones are >= min_step_m apart OR >= min_step_rad
    turned (the paper's 1 cm / 20°); the first and last poses are always included."""
    fine = path(np.linspace(0.0, 1.0, samples))
    out = [fine[0]]
    for T in fine[1:-1]:
        last = out[-1]
        d = float(np.linalg.norm(T[:3, 3] - last[:3, 3]))
        a = float(np.linalg.norm(so3_log(last[:3, :3].T @ T[:3, :3])))
        if d >= min_step_m or a >= min_step_rad:
            out.append(T)
    end = fine[-1]
    if len(out) > 1 and np.linalg.norm(end[:3, 3] - out[-1][:3, 3]) < 0.3 * min_step_m \
            and np.linalg.norm(so3_log(out[-1][:3, :3].T @ end[:3, :3])) < 0.3 * min_step_rad:
        out[-1] = end  # drop a sliver step before the end
    else:
        out.append(end)
    return np.stack(out)


@dataclass
class IKChain:
    q: np.ndarray
    """(M, dof) joint solutions."""
    position_errors: np.ndarray
    rotation_errors: np.ndarray
    failures: list[int]
    """indices of poses whose IK missed the tolerances."""


def ik_chain(ik: IKFn, poses: np.ndarray, q_seed: np.ndarray, *, position_tolerance: float = 0.005,
             rotation_tolerance: float = 0.05) -> IKChain:
    """IK for each pose, each seeded by the previous solution (the first by ``q_seed``)."""
    q_prev = np.asarray(q_seed, dtype=np.float64)
    qs, pe, re, bad = [], [], [], []
    for i, T in enumerate(poses):
        res = ik(T, q_prev)
        qs.append(np.asarray(res.q, dtype=np.float64))
        pe.append(res.position_error)
        re.append(res.rotation_error)
        if res.position_error > position_tolerance or res.rotation_error > rotation_tolerance:
            bad.append(i)
        q_prev = qs[-1]
    return IKChain(q=np.array(qs), position_errors=np.array(pe), rotation_errors=np.array(re), failures=bad)


@dataclass
class Segment:
    """One phase: joint waypoints (M, dof) to stream through, a gripper command, then a wait.

    ``hold`` extra steps at the last waypoint (e.g. closing the gripper); ``settle``: wait until
    every joint is within ``tolerance`` rad of the last waypoint (at most ``max_wait`` steps).
    """

    name: str
    q: np.ndarray
    gripper: float
    hold: int = 0
    settle: bool = True


@dataclass
class PhasePolicy:
    """Streams the segments as absolute joint targets (see the module docstring).

    ``joint_action(q, gripper)`` is the embodiment's; ``max_step`` (dof,) radians per control step.
    """

    segments: list[Segment]
    joint_action: Callable[[np.ndarray, float], np.ndarray]
    max_step: np.ndarray
    tolerance: float = 0.02
    max_wait: int = 30
    info: dict[str, Any] = field(default_factory=dict)
    executable: bool = True
    max_actions: int | None = None
    """stop (return None) after this many actions, e.g. the world's horizon"""

    def __post_init__(self) -> None:
        self._targets: list[tuple[np.ndarray, float, str, str]] = []  # (q, gripper, segment, kind)
        self._i = 0
        self._cmd: np.ndarray | None = None
        self._waited = 0
        self._sent = 0
        self.log: list[dict[str, Any]] = []

    @property
    def refused(self) -> str | None:
        """Why this agent will not act (the solver refused the plan), or None."""
        if self.executable:
            return None
        return str(self.info.get("reason") or "the solver refused the plan")

    def reset(self, observation: Any) -> None:
        """Start (again) from ``observation``: the phases are re-expanded from its joints on the next act()."""
        self._targets = []
        self._i = 0
        self._cmd = None
        self._waited = 0
        self._sent = 0
        self.log = []

    def _expand(self, q_from: np.ndarray) -> None:
        cur = np.asarray(q_from, dtype=np.float64)
        for seg in self.segments:
            for q in np.atleast_2d(seg.q):
                n = int(np.ceil(np.max(np.abs(q - cur) / self.max_step))) if q.size else 0
                for j in range(1, max(n, 1) + 1):
                    self._targets.append((cur + (q - cur) * j / max(n, 1), seg.gripper, seg.name, "move"))
                cur = q
            for _ in range(seg.hold):
                self._targets.append((cur, seg.gripper, seg.name, "hold"))
            if seg.settle:
                self._targets.append((cur, seg.gripper, seg.name, "settle"))

    def act(self, observation: Any) -> np.ndarray | None:
        if not self.executable or (self.max_actions is not None and self._sent >= self.max_actions):
            return None
        q_now = np.asarray(observation.joints, dtype=np.float64)
        if not self._targets and self._i == 0:
            self._expand(q_now)
        while self._i < len(self._targets):
            q, g, seg, kind = self._targets[self._i]
            if kind == "settle":
                err = float(np.max(np.abs(q_now - q)))
                if err > self.tolerance and self._waited < self.max_wait:
                    self._waited += 1
                    self._sent += 1
                    return self.joint_action(q, g)
                self.log.append({"segment": seg, "settle_error_rad": round(err, 4), "waited": self._waited})
                self._waited = 0
                self._i += 1
                continue
            self._i += 1
            self._sent += 1
            return self.joint_action(q, g)
        return None

    @property
    def num_targets(self) -> int:
        return len(self._targets)
