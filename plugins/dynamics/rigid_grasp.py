"""``rigid-grasp`` dynamics: once grasped, the object's points move rigidly with the end-effector.

The real-robot model of Dream2Flow (§4.5). After :meth:`RigidGraspDynamics.attach` with the
end-effector pose at the grasp (4x4 ``T_world_ee``, world frame, metres), a point ``p`` has the
fixed end-effector coordinates ``l = T_world_ee^-1 p``; for a new end-effector pose ``T`` it is
at ``T l``.

Action (``predict``): the end-effector's rigid motion from its attached pose, 6 numbers
``(dx, dy, dz, rx, ry, rz)``: a translation of the end-effector origin (metres, world axes) and a
rotation vector (radians, world axes) about the end-effector origin. ``predict(points, actions)``
returns, for each action, where the held points go. :meth:`moved` does the same for whole
end-effector pose sequences (what the ``trajopt`` solver optimises).

Which points are held: :meth:`grasped` keeps the points within ``max_distance`` of the grasp
(default 0.6 m: the whole part for the paper's objects; lower it for a long object whose far end
is not held rigidly).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from d2f_core import Manifest, hookimpl
from d2f_core.geometry import from_frame, so3_exp, to_frame

__all__ = ["RigidGraspOptions", "RigidGraspDynamics"]


class RigidGraspOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_distance: float = Field(default=0.6, gt=0.0,
                                description="points farther than this from the grasp point are not held, metres")


def _pose(T: Any, name: str) -> np.ndarray:
    T = np.asarray(T, dtype=np.float64)
    if T.shape[-2:] != (4, 4) or not np.all(np.isfinite(T)):
        raise ValueError(f"{name}: expected finite 4x4 pose(s) (world frame, metres), got shape {T.shape}")
    return T


class RigidGraspDynamics:
    """Rigid-grasp model (see the module docstring)."""

    name, kind, Options = "rigid-grasp", "dynamics", RigidGraspOptions
    capabilities = frozenset({"deterministic", "rigid_grasp"})
    description = "grasped points move rigidly with the end-effector (the paper's real-robot model)"
    verified = "known rigid motions reproduced exactly (tests/test_trajopt.py)"
    action_dim = 6
    action_names = ("dx_m", "dy_m", "dz_m", "rx_rad", "ry_rad", "rz_rad")

    def __init__(self, options: RigidGraspOptions | None = None) -> None:
        self.options = options or RigidGraspOptions()
        self.T_world_ee = np.eye(4)

    def attach(self, T_world_ee: np.ndarray) -> None:
        """The end-effector pose at the grasp: predictions move points relative to it."""
        self.T_world_ee = _pose(T_world_ee, "T_world_ee").copy()

    def grasped(self, points: np.ndarray, grasp_point: np.ndarray) -> np.ndarray:
        """bool (N,): which ``points`` (N x 3) the grasp at ``grasp_point`` (3,) holds."""
        p = np.asarray(points, dtype=np.float64)
        return np.linalg.norm(p - np.asarray(grasp_point, dtype=np.float64).reshape(1, 3), axis=1) \
            <= self.options.max_distance

    def local(self, points: np.ndarray, T_world_ee: np.ndarray | None = None) -> np.ndarray:
        """Points (N x 3, world) in the end-effector frame at the grasp (default: the attached pose)."""
        return to_frame(self.T_world_ee if T_world_ee is None else _pose(T_world_ee, "T_world_ee"), points)

    def moved(self, local: np.ndarray, T_world_ee: np.ndarray) -> np.ndarray:
        """Held points (N x 3 in the end-effector frame) for poses (K x 4 x 4) -> K x N x 3 world."""
        return from_frame(_pose(T_world_ee, "T_world_ee"), local)

    def predict(self, points: np.ndarray, actions: np.ndarray) -> np.ndarray:
        p = np.asarray(points, dtype=np.float64)
        a = np.asarray(actions, dtype=np.float64)
        if p.ndim != 2 or p.shape[1] != 3:
            raise ValueError(f"points: expected N x 3 metres, got shape {p.shape}")
        if a.ndim != 2 or a.shape[1] != 6:
            raise ValueError(f"actions: expected B x 6 (dx, dy, dz m; rx, ry, rz rad), got shape {a.shape}")
        if not (np.all(np.isfinite(p)) and np.all(np.isfinite(a))):
            raise ValueError("points/actions: contain NaN or inf")
        o = self.T_world_ee[:3, 3]
        R = so3_exp(a[:, 3:])
        out = np.einsum("bij,nj->bni", R, p - o) + o + a[:, None, :3]
        return out.astype(np.float32)


@hookimpl
def d2f_register(register):
    register(Manifest.of(RigidGraspDynamics))
