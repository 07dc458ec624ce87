"""``point-mass`` embodiment: a 3-DoF Cartesian pusher (prismatic joints x, y, z).

The joints are the pusher tip's position in the **world frame, metres**: ``q = (x, y, z)``.
The end-effector frame has its origin at the tip and a fixed orientation pointing down
(rotation ``diag(1, -1, -1)``: ee z axis = world -z), so

* ``fk(q)`` is a pure translation by ``q`` with that fixed rotation,
* the geometric Jacobian (rows v; omega, world frame) is ``[I3; 0]``,
* IK is exact inside the joint box: the position is clipped to the joint limits, and success
  means the clipped position is the target (1e-6 m) and, unless ``position_only``, the target
  orientation is the fixed one (1e-3 rad).

``joint_action(q_target, gripper)`` turns joint targets into the bound world's action vector: for a
world with 3 action entries (``tabletop-2d``) the clipped target position; a world with 4
entries gets ``(x, y, z, gripper)``. ``gripper`` follows d2f's one convention
(:data:`d2f_core.protocols.GRIPPER_OPEN` = -1 open .. :data:`~d2f_core.protocols.GRIPPER_CLOSED` = +1
closed) and is passed through unchanged; the pusher itself has no gripper.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from d2f_core import IKResult, Manifest, hookimpl
from d2f_core.geometry import rotation_angle
from d2f_core.protocols import GRIPPER_CLOSED, GRIPPER_OPEN

__all__ = ["PointMassOptions", "PointMass", "EE_ROTATION"]

EE_ROTATION = np.diag([1.0, -1.0, -1.0])
"""Fixed end-effector orientation in the world frame (tool z axis pointing down, world -z)."""

POSITION_TOL = 1e-6
"""IK position tolerance, metres."""

ROTATION_TOL = 1e-3
"""IK rotation tolerance, radians."""


class PointMassOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    joint_limits: list[list[float]] = Field(
        default=[[-0.3, 0.3], [-0.3, 0.3], [0.0, 0.3]],
        description="per joint (x, y, z) [low, high] limits of the pusher tip position, metres, "
                    "world frame")
    velocity_limits: list[float] = Field(
        default=[0.5, 0.5, 0.5],
        description="per joint (x, y, z) speed limit, metres per second, > 0")

    @field_validator("joint_limits")
    @classmethod
    def _limits(cls, v: list[list[float]]) -> list[list[float]]:
        a = np.asarray(v, dtype=np.float64)
        if a.shape != (3, 2):
            raise ValueError(f"expected 3 rows [low, high] for x, y, z (metres), got shape {a.shape}")
        if not np.all(np.isfinite(a)) or np.any(a[:, 0] >= a[:, 1]):
            raise ValueError("every row must be finite with low < high (metres)")
        return v

    @field_validator("velocity_limits")
    @classmethod
    def _vel(cls, v: list[float]) -> list[float]:
        a = np.asarray(v, dtype=np.float64)
        if a.shape != (3,) or not np.all(np.isfinite(a)) or np.any(a <= 0):
            raise ValueError("expected 3 finite speeds > 0 (m/s) for x, y, z")
        return v


def _check_vector(name: str, value: Any, n: int) -> np.ndarray:
    try:
        a = np.array(value, dtype=np.float64)  # a copy: inputs are never mutated or aliased
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected {n} numbers, got {value!r}") from None
    if a.shape != (n,):
        raise ValueError(f"{name}: expected shape ({n},) (x, y, z in metres), got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name}: contains NaN or inf; joint positions must be finite metres")
    return a


class PointMass:
    """A Cartesian 3-DoF pusher (see the module docstring). Joints x, y, z in metres."""

    name, kind, Options = "point-mass", "embodiment", PointMassOptions
    robot = "point-mass"
    capabilities = frozenset({"ik", "deterministic"})
    description = "3-DoF Cartesian pusher (x, y, z prismatic joints, metres), exact FK/IK"
    verified = "FK/Jacobian against finite differences, IK round trip and clipping"
    dof = 3
    joint_names = ("x", "y", "z")

    def __init__(self, options: PointMassOptions | None = None) -> None:
        self.options = options or PointMassOptions()
        lim = np.asarray(self.options.joint_limits, dtype=np.float64)
        vel = np.asarray(self.options.velocity_limits, dtype=np.float64)
        lim.flags.writeable = False
        vel.flags.writeable = False
        self.joint_limits = lim
        self.velocity_limits = vel
        self.world: Any = None
        self._action_dim: int | None = None

    # ------------------------------------------------------------------ kinematics
    def _q(self, q: Any, name: str = "q") -> np.ndarray:
        return _check_vector(name, q, self.dof)

    def fk(self, q: np.ndarray) -> np.ndarray:
        """4x4 T_world_ee: translation ``q`` (metres), fixed downward orientation diag(1,-1,-1)."""
        q = self._q(q)
        T = np.eye(4)
        T[:3, :3] = EE_ROTATION
        T[:3, 3] = q
        return T

    def jacobian(self, q: np.ndarray) -> np.ndarray:
        """6 x 3 geometric Jacobian (rows vx, vy, vz, wx, wy, wz; world frame): ``[I3; 0]``."""
        self._q(q)
        J = np.zeros((6, 3))
        J[:3, :3] = np.eye(3)
        return J

    def ik(self, T_world_ee: np.ndarray, q_init: np.ndarray | None = None, *,
           position_only: bool = False) -> IKResult:
        """Closed-form IK: the target position clipped to the joint limits.

        ``q_init`` is accepted for the protocol (validated, otherwise unused: the solution is
        unique). Errors are honest: ``position_error`` is the distance (metres) between the
        reached and the target position, ``rotation_error`` the angle (radians) between the
        fixed end-effector orientation and the target's.
        """
        try:
            T = np.array(T_world_ee, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"T_world_ee: expected a 4x4 matrix, got {T_world_ee!r}") from None
        if T.shape != (4, 4):
            raise ValueError(f"T_world_ee: expected a 4x4 homogeneous transform, got shape {T.shape}")
        if not np.all(np.isfinite(T)):
            raise ValueError("T_world_ee: contains NaN or inf")
        R = T[:3, :3]
        if not np.allclose(R @ R.T, np.eye(3), atol=1e-4) or np.linalg.det(R) < 0:
            raise ValueError("T_world_ee: rotation part is not a proper rotation (R R^T != I or det < 0); "
                             "pass a rigid world-from-end-effector transform")
        if q_init is not None:
            self._q(q_init, "q_init")
        target = T[:3, 3]
        q = np.clip(target, self.joint_limits[:, 0], self.joint_limits[:, 1])
        pos_err = float(np.linalg.norm(q - target))
        rot_err = rotation_angle(EE_ROTATION.T @ R)
        ok = pos_err <= POSITION_TOL and (position_only or rot_err <= ROTATION_TOL)
        return IKResult(q=q, success=bool(ok), position_error=pos_err, rotation_error=rot_err)

    # ------------------------------------------------------------------ control
    def joint_action(self, q_target: np.ndarray, gripper: float = 0.0) -> np.ndarray:
        """The bound world's action for joint target ``q_target`` (metres), clipped to the limits.

        3-entry action worlds (and no world bound): ``(x, y, z)``; 4-entry worlds:
        ``(x, y, z, gripper)`` with ``gripper`` in [-1, 1] (GRIPPER_OPEN -1 open, GRIPPER_CLOSED +1 closed),
        checked even when the world takes no gripper entry.
        """
        q = np.clip(self._q(q_target, "q_target"), self.joint_limits[:, 0], self.joint_limits[:, 1])
        try:
            g = float(gripper)
        except (TypeError, ValueError):
            g = math.nan
        if not math.isfinite(g) or g < GRIPPER_OPEN or g > GRIPPER_CLOSED:
            raise ValueError(f"gripper: expected a number in [{GRIPPER_OPEN:g}, {GRIPPER_CLOSED:g}] ({GRIPPER_OPEN:g} "
                             f"open, {GRIPPER_CLOSED:g} closed: d2f_core.protocols.GRIPPER_OPEN/GRIPPER_CLOSED), got "
                             f"{gripper!r}")
        if self._action_dim == 4:
            return np.concatenate([q, [g]])
        return q

    def bind(self, world: Any) -> None:
        """Attach to ``world``; its action vector must have 3 (x, y, z) or 4 (+ gripper) entries."""
        low = getattr(world, "action_low", None)
        if low is None:
            raise ValueError(f"world: {type(world).__name__} has no action_low; a point-mass binds to "
                             "worlds whose actions are pusher positions (x, y, z[, gripper])")
        n = int(np.asarray(low).size)
        if n not in (3, 4):
            raise ValueError(f"world: its action vector has {n} entries; the point-mass embodiment drives "
                             "worlds whose action is (x, y, z) or (x, y, z, gripper) in metres")
        self.world = world
        self._action_dim = n


@hookimpl
def d2f_register(register):
    register(Manifest.of(PointMass))
