"""``sim-particles`` estimator: the flow's particles moved by the simulator's object pose (a stand-in).

The paper's Open Door setting ("the current particles are the initial particles moved by the door's
current joint state"): no perception, the simulator says where the object is. On ``reset`` it
records ``T0 = observation.privileged["object_pose"]`` (T_world_object, 4x4, metres: the task's
moving rigid part, e.g. the robosuite door panel, the oven door, the bread, tabletop-2d's block)
and the flow's first-frame particles ``p0 = flow.points[0]``; ``estimate`` returns
``T_now @ inv(T0) @ p0`` for the observation's pose, i.e. every particle rides rigidly on the part.

Visible: every particle whose first-frame position the flow knows (``flow.visible[0]``, normally
all); the others keep their ``flow.points[0]`` entry and are not visible.

With option ``anchor: first_reset`` the particles' places on the object are recorded at the first
reset only and kept for every later episode, whatever the object's start pose then: the particles
of a dynamics training set on random scenes (Push-T: "particles from the simulator's object poses").

Privileged (declared: capabilities ``privileged``, ``stand_in``): worlds with capability
``object_pose`` provide the pose. A deformable object (robosuite ``cover_bowl``'s cloth) has none;
use the ``tracking`` estimator there.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from d2f_core import Manifest, ObjectFlow, Observation, hookimpl

__all__ = ["SimParticles", "SimParticlesOptions", "object_pose"]


def object_pose(observation: Any, who: str = "sim-particles") -> np.ndarray:
    """``observation.privileged["object_pose"]`` as a rigid 4x4 float64 array; ValueError naming the field,
    the task and the alternative when the world gives none."""
    if not isinstance(observation, Observation):
        raise ValueError(f"observation: expected a d2f_core.Observation, got {type(observation).__name__}")
    priv = observation.privileged if observation.privileged is not None else {}
    if "object_pose" not in priv:
        task = priv.get("task") if hasattr(priv, "get") else None
        what = f"task {task!r} has" if task else "this world's observations have"
        raise ValueError(f"observation.privileged['object_pose']: {who} moves the flow's particles with the "
                         f"simulator's object pose, but {what} none (no rigid moving part, e.g. a cloth, or a world "
                         "without capability 'object_pose'); use `estimator: {plugin: tracking}` (live camera; robosuite "
                         "needs world option render_steps: true)")
    try:
        T = np.asarray(priv["object_pose"], dtype=np.float64)
    except (TypeError, ValueError):
        T = np.zeros(0)
    if T.shape != (4, 4) or not np.all(np.isfinite(T)):
        raise ValueError(f"observation.privileged['object_pose']: expected a finite 4x4 T_world_object (metres), "
                         f"got shape {T.shape}")
    R = T[:3, :3]
    if not np.allclose(R @ R.T, np.eye(3), atol=1e-5) or np.linalg.det(R) < 0 \
            or not np.allclose(T[3], [0, 0, 0, 1], atol=1e-9):
        raise ValueError("observation.privileged['object_pose']: not a rigid transform (R R^T != I, det < 0 or last "
                         "row != [0 0 0 1]); the world must give T_world_object of a rigid part")
    return T


class SimParticlesOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    anchor: Literal["every_reset", "first_reset"] = Field(
        default="every_reset",
        description="'every_reset': each reset puts the flow's first-frame particles on the object where it is "
                    "then (the flow starts from the current scene); 'first_reset': the particles' places on the "
                    "object are taken at the first reset and kept for later episodes (other start poses), as for "
                    "collecting dynamics training data on random scenes (`d2f train` for Push-T)")


class SimParticles:
    """Particles riding on the simulator's object pose (see the module docstring)."""

    name, kind, Options = "sim-particles", "estimator", SimParticlesOptions
    capabilities = frozenset({"privileged", "stand_in", "deterministic"})
    description = ("the flow's first-frame particles moved rigidly by the simulator's object "
                   "pose (observation.privileged['object_pose'])")
    verified = ("known rigid motions of the tabletop-2d block and the robosuite door (hinge turned) within 1 mm "
                "(tests/test_estimators.py)")

    def __init__(self, options: "SimParticlesOptions | None" = None) -> None:
        self.options = options if isinstance(options, SimParticlesOptions) else SimParticlesOptions()
        self._local: np.ndarray | None = None  # p0 in the object frame at reset, N x 3
        self._p0: np.ndarray | None = None
        self._visible: np.ndarray | None = None
        self._flow: ObjectFlow | None = None

    def reset(self, observation: Observation, flow: ObjectFlow) -> None:
        """Record the object pose of ``observation`` and the flow's first-frame particles (N x 3, metres, world)."""
        if not isinstance(flow, ObjectFlow):
            raise ValueError(f"flow: expected a d2f_core.ObjectFlow (T x N x 3 metres, world frame), got "
                             f"{type(flow).__name__}")
        T0 = object_pose(observation)
        if self.options.anchor == "first_reset" and self._local is not None and self._flow is flow:
            return  # the particles stay where the first reset put them on the object
        self._flow = flow
        p0 = np.asarray(flow.points[0], dtype=np.float64)
        vis = np.array(flow.visible[0], dtype=bool)
        p0 = np.where(vis[:, None], p0, 0.0)  # invisible entries may be anything: keep them out of the maths
        self._p0 = np.array(flow.points[0], dtype=np.float32)
        self._local = (p0 - T0[:3, 3]) @ T0[:3, :3]  # inv(T0) @ p0
        self._visible = vis

    def estimate(self, observation: Observation) -> tuple[np.ndarray, np.ndarray]:
        """(T_now @ inv(T0) @ p0 as float32 N x 3 metres world frame, visible bool N) for ``observation``."""
        if self._local is None:
            raise RuntimeError("sim-particles: call reset(observation, flow) before estimate(observation)")
        T = object_pose(observation)
        p = self._local @ T[:3, :3].T + T[:3, 3]
        out = np.where(self._visible[:, None], p, self._p0).astype(np.float32)
        return out, self._visible.copy()


@hookimpl
def d2f_register(register):
    register(Manifest.of(SimParticles))
