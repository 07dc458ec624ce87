"""Safety checks for commands to a real arm: every command is checked *before* it can be sent.

:class:`SafetyGuard` checks one joint-space command ``(q_cmd, gripper)`` against
:class:`SafetyLimits`, given the previous command ``q_prev`` (the target the arm is moving from):

1. shape and finite numbers (no NaN / inf in ``q_cmd`` or ``gripper``);
2. ``gripper`` in [-1, 1];
3. joint position limits shrunk by ``joint_margin`` on both sides: ``lo + m <= q <= hi - m`` (rad);
4. maximum joint step per command: ``|q_cmd - q_prev| <= max_joint_step`` (rad, every joint);
5. velocity: ``|q_cmd - q_prev| / dt <= velocity_scale * velocity_limit`` (rad/s, per joint), where
   ``dt`` is the command period (1 / control rate, seconds);
6. Cartesian workspace box: ``workspace_min <= fk(q_cmd)[:3, 3] <= workspace_max`` (metres, in the
   frame ``fk`` returns, the world frame for the Deoxys backend). Only the commanded end point is
   checked; between two commands the end-effector moves at most one joint step's worth (a few mm
   with the default limits), so keep the box a few cm inside anything the arm must not touch.

A violation raises :class:`SafetyError` (a ``ValueError``) naming the check, the joint, the value,
the limit and the fix. Commands are never clipped or otherwise changed: a rejected command is not
sent at all (there is deliberately no "clip" mode).

:meth:`SafetyGuard.interpolate` splits a joint move into the fewest equal steps that pass checks 4
and 5 (per joint the smaller of ``max_joint_step`` and ``velocity_scale * velocity_limit * dt``).

Units: radians, rad/s, seconds, metres. ``PANDA_JOINT_LIMITS`` / ``PANDA_VELOCITY_LIMITS`` are the
Franka Emika Panda datasheet values (they equal the ranges of robosuite's Panda MJCF).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

__all__ = ["SafetyError", "SafetyLimits", "SafetyGuard", "PANDA_JOINT_LIMITS", "PANDA_VELOCITY_LIMITS"]

PANDA_JOINT_LIMITS: tuple[tuple[float, float], ...] = (
    (-2.8973, 2.8973), (-1.7628, 1.7628), (-2.8973, 2.8973), (-3.0718, -0.0698),
    (-2.8973, 2.8973), (-0.0175, 3.7525), (-2.8973, 2.8973))
"""Franka Emika Panda joint position limits (rad), joints 1-7, from the robot's datasheet."""

PANDA_VELOCITY_LIMITS: tuple[float, ...] = (2.175, 2.175, 2.175, 2.175, 2.61, 2.61, 2.61)
"""Franka Emika Panda joint speed limits (rad/s), joints 1-7, from the robot's datasheet."""

_TOL = 1e-9  # rad / m: floating-point slack of the comparisons (not a safety margin)


class SafetyError(ValueError):
    """A command violates a safety limit; it was not sent.

    Attributes: ``check`` (one of "shape", "finite", "gripper", "joint_limit", "joint_step",
    "velocity", "workspace"), ``joint`` (index or None), ``value``, ``limit``.
    """

    def __init__(self, message: str, *, check: str, joint: int | None = None, value: Any = None,
                 limit: Any = None) -> None:
        super().__init__(message)
        self.check = check
        self.joint = joint
        self.value = value
        self.limit = limit


def _vec(x: Any, n: int, name: str) -> tuple[float, ...]:
    a = np.asarray(x, dtype=np.float64).reshape(-1)
    if a.size != n or not np.all(np.isfinite(a)):
        raise ValueError(f"{name}: expected {n} finite numbers, got {x!r}")
    return tuple(float(v) for v in a)


@dataclass(frozen=True)
class SafetyLimits:
    """Limits checked by :class:`SafetyGuard` (immutable; arrays are exposed as read-only copies).

    Fields:
        joint_limits: dof x 2 (low, high) hard joint limits, rad.
        velocity_limits: (dof,) joint speed limits, rad/s, > 0.
        dt: command period, s (1 / control rate), > 0.
        joint_margin: rad kept clear of each hard joint limit, >= 0.
        velocity_scale: fraction of ``velocity_limits`` a command may ask for, in (0, 1].
        max_joint_step: largest change of any joint between two commands, rad, > 0.
        workspace_min, workspace_max: (3,) corners of the end-effector box, metres, or None (no box).
        joint_names: names used in messages (default "joint 1" ...).
    """

    joint_limits: tuple[tuple[float, float], ...] = PANDA_JOINT_LIMITS
    velocity_limits: tuple[float, ...] = PANDA_VELOCITY_LIMITS
    dt: float = 0.05
    joint_margin: float = 0.05
    velocity_scale: float = 0.25
    max_joint_step: float = 0.05
    workspace_min: tuple[float, float, float] | None = None
    workspace_max: tuple[float, float, float] | None = None
    joint_names: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        lim = np.asarray(self.joint_limits, dtype=np.float64)
        if lim.ndim != 2 or lim.shape[1] != 2 or not np.all(np.isfinite(lim)) or np.any(lim[:, 0] >= lim[:, 1]):
            raise ValueError(f"joint_limits: expected dof x 2 finite (low, high) pairs with low < high, got "
                             f"{self.joint_limits!r}")
        dof = lim.shape[0]
        object.__setattr__(self, "joint_limits", tuple((float(a), float(b)) for a, b in lim))
        vel = _vec(self.velocity_limits, dof, "velocity_limits")
        if min(vel) <= 0:
            raise ValueError(f"velocity_limits: expected {dof} speeds > 0 rad/s, got {vel}")
        object.__setattr__(self, "velocity_limits", vel)
        for name, lo, hi in (("dt", 0.0, math.inf), ("max_joint_step", 0.0, math.inf),
                             ("velocity_scale", 0.0, 1.0)):
            v = float(getattr(self, name))
            if not (math.isfinite(v) and lo < v <= hi):
                raise ValueError(f"{name}: expected a finite number in ({lo}, {hi}], got {v!r}")
            object.__setattr__(self, name, v)
        m = float(self.joint_margin)
        if not math.isfinite(m) or m < 0 or np.any(lim[:, 1] - lim[:, 0] <= 2 * m):
            raise ValueError(f"joint_margin: expected a margin >= 0 rad leaving every joint a non-empty range, "
                             f"got {self.joint_margin!r}")
        object.__setattr__(self, "joint_margin", m)
        if (self.workspace_min is None) != (self.workspace_max is None):
            raise ValueError("workspace_min/workspace_max: give both corners of the box (metres) or neither")
        if self.workspace_min is not None:
            lo3 = _vec(self.workspace_min, 3, "workspace_min")
            hi3 = _vec(self.workspace_max, 3, "workspace_max")
            if any(a >= b for a, b in zip(lo3, hi3)):
                raise ValueError(f"workspace_min/workspace_max: expected min < max on x, y and z, got {lo3} and {hi3}")
            object.__setattr__(self, "workspace_min", lo3)
            object.__setattr__(self, "workspace_max", hi3)
        names = self.joint_names
        if names is None:
            names = tuple(f"joint {i + 1}" for i in range(dof))
        elif len(names) != dof:
            raise ValueError(f"joint_names: expected {dof} names, got {len(names)}")
        object.__setattr__(self, "joint_names", tuple(str(n) for n in names))

    @property
    def dof(self) -> int:
        return len(self.joint_limits)

    @property
    def safe_range(self) -> np.ndarray:
        """dof x 2 allowed joint range (rad): the joint limits shrunk by ``joint_margin``."""
        lim = np.array(self.joint_limits)
        lim[:, 0] += self.joint_margin
        lim[:, 1] -= self.joint_margin
        return lim

    @property
    def max_step(self) -> np.ndarray:
        """(dof,) largest allowed change per command of each joint (rad): the smaller of
        ``max_joint_step`` and ``velocity_scale * velocity_limit * dt``."""
        return np.minimum(self.max_joint_step, self.velocity_scale * np.array(self.velocity_limits) * self.dt)


class SafetyGuard:
    """Checks joint commands against :class:`SafetyLimits` (see the module docstring).

    ``fk``: callable q (dof,) -> 4x4 end-effector pose, needed when the limits have a workspace box.
    """

    def __init__(self, limits: SafetyLimits, fk: Callable[[np.ndarray], np.ndarray] | None = None) -> None:
        if limits.workspace_min is not None and fk is None:
            raise ValueError("fk: the limits have a workspace box; pass fk (q -> 4x4 end-effector pose) to check it")
        self.limits = limits
        self.fk = fk

    def _name(self, i: int) -> str:
        return f"joint {i + 1} ({self.limits.joint_names[i]})"

    def _q(self, q: Any, name: str) -> np.ndarray:
        dof = self.limits.dof
        try:
            a = np.array(q, dtype=np.float64)
        except (TypeError, ValueError):
            raise SafetyError(f"{name}: expected {dof} joint positions (rad), got {q!r}; command rejected, nothing "
                              "sent", check="shape") from None
        if a.shape != (dof,):
            raise SafetyError(f"{name}: expected shape ({dof},), got {a.shape}; command rejected, nothing sent. Fix: "
                              f"pass one target per arm joint", check="shape", value=a.shape)
        bad = np.nonzero(~np.isfinite(a))[0]
        if bad.size:
            i = int(bad[0])
            raise SafetyError(f"{name}: {self._name(i)} is {a[i]}; command rejected, nothing sent. Fix: joint targets "
                              "must be finite radians (check the IK / trajectory that produced them)",
                              check="finite", joint=i, value=float(a[i]))
        return a

    def check(self, q_cmd: Any, gripper: Any, q_prev: Any) -> np.ndarray:
        """Raise :class:`SafetyError` unless the command passes every check; returns ``q_cmd`` as float64.

        ``q_prev``: the previous commanded joint target (or the measured joints before the first
        command), rad.
        """
        L = self.limits
        q = self._q(q_cmd, "q_cmd")
        prev = self._q(q_prev, "q_prev")
        try:
            g = float(gripper)
        except (TypeError, ValueError):
            raise SafetyError(f"gripper: expected a number in [-1, 1], got {gripper!r}; command rejected, nothing "
                              "sent", check="gripper", value=gripper) from None
        if not math.isfinite(g):
            raise SafetyError(f"gripper: is {g}; command rejected, nothing sent. Fix: a finite number in [-1, 1] "
                              "(-1 open, +1 closed)", check="finite", value=g)
        if g < -1.0 or g > 1.0:
            raise SafetyError(f"gripper: {g} is outside [-1, 1]; command rejected, nothing sent. Fix: -1 open ... "
                              "+1 closed", check="gripper", value=g, limit=(-1.0, 1.0))
        safe = L.safe_range
        for i in range(L.dof):
            lo, hi = safe[i]
            if q[i] < lo - _TOL or q[i] > hi + _TOL:
                hlo, hhi = L.joint_limits[i]
                raise SafetyError(
                    f"joint limit: {self._name(i)} command {q[i]:.4f} rad is outside the safe range [{lo:.4f}, "
                    f"{hi:.4f}] (limit [{hlo:.4f}, {hhi:.4f}] minus joint_margin {L.joint_margin} rad); command "
                    "rejected, nothing sent. Fix: keep targets inside the safe range (plan/IK within it) or lower "
                    "joint_margin", check="joint_limit", joint=i, value=float(q[i]), limit=(float(lo), float(hi)))
        step = np.abs(q - prev)
        i = int(np.argmax(step - L.max_joint_step))
        if step[i] > L.max_joint_step + _TOL:
            raise SafetyError(
                f"joint step: {self._name(i)} moves {step[i]:.4f} rad in one command, more than max_joint_step "
                f"{L.max_joint_step} rad (from {prev[i]:.4f} to {q[i]:.4f}); command rejected, nothing sent. Fix: "
                "send smaller steps (execute() interpolates a trajectory) or raise max_joint_step",
                check="joint_step", joint=i, value=float(step[i]), limit=L.max_joint_step)
        vmax = L.velocity_scale * np.array(L.velocity_limits)
        speed = step / L.dt
        i = int(np.argmax(speed / vmax))
        if speed[i] > vmax[i] * (1 + 1e-9) + _TOL:
            raise SafetyError(
                f"velocity: {self._name(i)} would move at {speed[i]:.4f} rad/s ({step[i]:.4f} rad in one command "
                f"period of {L.dt:.4f} s), over velocity_scale {L.velocity_scale} x limit {L.velocity_limits[i]} = "
                f"{vmax[i]:.4f} rad/s; command rejected, nothing sent. Fix: send smaller steps (execute() "
                "interpolates a trajectory), or raise velocity_scale", check="velocity", joint=i,
                value=float(speed[i]), limit=float(vmax[i]))
        if L.workspace_min is not None:
            assert self.fk is not None and L.workspace_max is not None
            p = np.asarray(self.fk(q), dtype=np.float64)[:3, 3]
            lo3, hi3 = np.array(L.workspace_min), np.array(L.workspace_max)
            out = np.nonzero((p < lo3 - _TOL) | (p > hi3 + _TOL) | ~np.isfinite(p))[0]
            if out.size:
                k = int(out[0])
                axis = "xyz"[k]
                raise SafetyError(
                    f"workspace: the end-effector would be at {np.round(p, 4).tolist()} m, {axis} = {p[k]:.4f} outside "
                    f"[{lo3[k]:.4f}, {hi3[k]:.4f}] (workspace_min/workspace_max); command rejected, nothing sent. Fix: "
                    "plan the motion inside the box, or enlarge the box if the cell is clear",
                    check="workspace", value=p.tolist(), limit=(lo3.tolist(), hi3.tolist()))
        return q

    def check_action(self, action: Any, q_prev: Any) -> np.ndarray:
        """Check a (dof + 1,) action ``[q_cmd, gripper]``; returns it as float64."""
        n = self.limits.dof + 1
        try:
            a = np.array(action, dtype=np.float64)
        except (TypeError, ValueError):
            raise SafetyError(f"action: expected {n} numbers ({n - 1} joint targets then the gripper), got "
                              f"{action!r}; command rejected, nothing sent", check="shape") from None
        if a.shape != (n,):
            raise SafetyError(f"action: expected shape ({n},) ({n - 1} joint targets then the gripper), got "
                              f"{a.shape}; command rejected, nothing sent", check="shape", value=a.shape)
        self.check(a[:-1], a[-1], q_prev)
        return a

    def interpolate(self, q_from: Any, q_to: Any) -> np.ndarray:
        """N x dof equal steps from ``q_from`` (excluded) to ``q_to`` (the last row, exact), N >= 1, each
        within ``limits.max_step``. Only the step sizes are guaranteed: check each row."""
        a = self._q(q_from, "q_from")
        b = self._q(q_to, "q_to")
        n = max(1, int(math.ceil(float(np.max(np.abs(b - a) / self.limits.max_step)) - 1e-9)))
        t = np.arange(1, n + 1, dtype=np.float64)[:, None] / n
        steps = a + t * (b - a)
        steps[-1] = b
        return steps
