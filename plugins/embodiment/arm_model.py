"""The kinematic model of one arm of a robosuite robot: what every embodiment of that arm shares.

:class:`ArmModel` needs neither a simulation nor hardware: the robot's joints, limits, speed
limits, home pose, end-effector (the gripper's grip site), grasp frame, FK / Jacobian / IK on a
standalone MuJoCo model of the robot (:mod:`.robosuite_kinematics`). Two kinds of embodiment build
on it, and neither imports the other:

* :class:`~.robosuite_robots.RobosuiteArm` (``franka``, ``spot``, ``gr1``, ``robosuite-arm``):
  subclasses it and adds robosuite control (controller config, ``bind``, ``joint_action``);
* :class:`~.deoxys_backend.DeoxysFranka` (``franka-deoxys``): holds a Panda ``ArmModel`` for its
  kinematics and safety checks and drives the real arm.

**Frames** (metres, radians): standalone, the robot's root body (``robot0_base``) is the world
origin; ``fk(q)`` is ``T_world_ee``, the grip site's pose. A subclass that binds to a world swaps
:attr:`ArmModel.kinematics` for one on the world's model (then everything is in the world frame).

**Velocity limits** (rad/s) when the option ``velocity_limits`` is not given: the vendor's figures
of :data:`DEFAULT_VELOCITY_LIMITS`, found by the robosuite robot's name or the name of a robosuite
model class it derives from (``PandaOmron`` -> ``Panda``, ``SpotWithArm`` -> ``SpotArm``); robots
without figures get :data:`CONSERVATIVE_VELOCITY_LIMIT` per joint.

Heavy imports (mujoco, robosuite) happen inside functions only.
"""

from __future__ import annotations

import functools
import math
from typing import Any, Mapping, Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from d2f_core import IKResult
from d2f_core.protocols import GRIPPER_CLOSED, GRIPPER_OPEN

from .robosuite_kinematics import import_robosuite

__all__ = ["ArmKinematicsOptions", "ArmModel", "DEFAULT_VELOCITY_LIMITS", "CONSERVATIVE_VELOCITY_LIMIT",
           "VELOCITY_LIMIT_SOURCES", "default_velocity_limits", "single_arm_robots", "import_robosuite"]

_DEG = math.pi / 180.0

DEFAULT_VELOCITY_LIMITS: dict[str, tuple[float, ...]] = {
    "Panda": (2.175, 2.175, 2.175, 2.175, 2.61, 2.61, 2.61),
    "UR5e": (math.pi,) * 6,
    "Kinova3": (1.3963, 1.3963, 1.3963, 1.3963, 1.2218, 1.2218, 1.2218),
    "IIWA": tuple(d * _DEG for d in (98.0, 98.0, 100.0, 130.0, 140.0, 180.0, 180.0)),
    "Sawyer": (1.74, 1.328, 1.957, 1.957, 3.485, 3.485, 4.545),
    "XArm7": (math.pi,) * 7,
    # assumed (the robosuite models carry none and we have no vendor figures): see VELOCITY_LIMIT_SOURCES
    "SpotArm": (2.0,) * 6,
    "GR1": (2.0,) * 7,
}
"""Per-joint speed limits, rad/s, keyed by robosuite robot (or robot model class) name."""

VELOCITY_LIMIT_SOURCES: dict[str, str] = {
    "Panda": "Franka Emika Panda datasheet: 2.175 rad/s joints 1-4, 2.61 rad/s joints 5-7",
    "UR5e": "Universal Robots UR5e datasheet: 180 deg/s on every joint",
    "Kinova3": "Kinova Gen3 (7 DoF) specifications: large actuators 80 deg/s (joints 1-4), small 70 deg/s (5-7)",
    "IIWA": "KUKA LBR iiwa 7 R800 datasheet (robosuite's model has its 0.34/0.40/0.40 m links): "
            "98, 98, 100, 130, 140, 180, 180 deg/s",
    "Sawyer": "Rethink Robotics' Sawyer robot description (intera URDF joint velocity limits)",
    "XArm7": "UFACTORY xArm 7 datasheet: 180 deg/s on every joint",
    "SpotArm": "assumed 2.0 rad/s (no vendor figure known here); set the velocity_limits option",
    "GR1": "assumed 2.0 rad/s (no vendor figure known here); set the velocity_limits option",
}
"""Where each entry of :data:`DEFAULT_VELOCITY_LIMITS` comes from."""

CONSERVATIVE_VELOCITY_LIMIT: float = 1.0
"""rad/s per joint for robots without figures in :data:`DEFAULT_VELOCITY_LIMITS` (e.g. Jaco): below
every vendor figure in that table, so a planner that keeps to it stays slow on an unknown arm."""


class ArmKinematicsOptions(BaseModel):
    """Options of every embodiment built on :class:`ArmModel` (kinematics and speed limits)."""

    model_config = ConfigDict(extra="forbid")

    velocity_limits: list[float] | None = Field(
        default=None, description="per-joint speed limits of the arm, rad/s, > 0 (default: the vendor's figures "
                                  "in DEFAULT_VELOCITY_LIMITS, else 1.0 rad/s per joint)")
    ik_position_tolerance: float = Field(default=1e-3, gt=0.0, le=0.1,
                                         description="IK success threshold on the position error, metres")
    ik_rotation_tolerance: float = Field(default=1e-2, gt=0.0, le=1.0,
                                         description="IK success threshold on the rotation error, radians")
    ik_max_iterations: int = Field(default=150, ge=1, le=10000,
                                   description="Levenberg-Marquardt iterations per IK start")
    ik_restarts: int = Field(default=20, ge=0, le=1000,
                             description="extra IK starts from seeded random joint vectors when q_init fails")
    ik_rotation_weight: float = Field(default=0.2, gt=0.0,
                                      description="metres per radian weighing rotation against position in IK")
    ik_seed: int = Field(default=0, description="seed of the IK random restarts (same call, same answer)")

    @field_validator("velocity_limits")
    @classmethod
    def _vel(cls, v: list[float] | None) -> list[float] | None:
        if v is not None and (not all(math.isfinite(x) and x > 0 for x in v)):
            raise ValueError("expected finite speeds > 0 (rad/s), one per arm joint")
        return v


@functools.lru_cache(maxsize=1)
def single_arm_robots() -> tuple[str, ...]:
    """robosuite robots with exactly one arm that ``robosuite.make(robots=...)`` accepts, sorted
    (robosuite 1.5.2: IIWA, Jaco, Kinova3, Panda, PandaDexLH, PandaDexRH, PandaOmron, Sawyer,
    SpotWithArm, SpotWithArmFloating, UR5e, XArm7)."""
    import_robosuite()
    from robosuite.models.robots.robot_model import REGISTERED_ROBOTS
    from robosuite.robots import ROBOT_CLASS_MAPPING

    return tuple(sorted(n for n, cls in REGISTERED_ROBOTS.items()
                        if n in ROBOT_CLASS_MAPPING and len(getattr(cls, "arms", None) or ()) == 1))


def default_velocity_limits(robot: str, dof: int) -> tuple[np.ndarray, str]:
    """(dof,) speed limits (rad/s) for robosuite robot ``robot`` and where they come from.

    Looks ``robot`` up in :data:`DEFAULT_VELOCITY_LIMITS`, then the names of the robosuite model
    classes it derives from; else :data:`CONSERVATIVE_VELOCITY_LIMIT` for every joint."""
    names = [robot]
    try:
        import_robosuite()
        from robosuite.models.robots.robot_model import REGISTERED_ROBOTS

        cls = REGISTERED_ROBOTS.get(robot)
        names += [c.__name__ for c in getattr(cls, "__mro__", ())]
    except ImportError:
        pass
    for n in names:
        v = DEFAULT_VELOCITY_LIMITS.get(n)
        if v is not None and len(v) == dof:
            return np.array(v, dtype=np.float64), VELOCITY_LIMIT_SOURCES.get(n, n)
    return (np.full(dof, CONSERVATIVE_VELOCITY_LIMIT),
            f"no vendor figure known for {robot}: conservative default {CONSERVATIVE_VELOCITY_LIMIT} rad/s per joint")


class ArmModel:
    """Kinematic model of one arm of a robosuite robot (see the module docstring).

    Args:
        name: the embodiment's plugin name (used in error messages), e.g. "franka".
        robot: robosuite robot name, e.g. "Panda", "UR5e" (``robosuite.make(robots=robot)``).
        options: :class:`ArmKinematicsOptions` (or a subclass); default: all defaults.
        arm: which arm ("right", or "left" on a two-armed robot).
        velocity_limits: (dof,) rad/s used when ``options.velocity_limits`` is None (default:
            :func:`default_velocity_limits`).
        joint_limit_overrides: joint index -> (low, high), radians, intersected with the model's range.

    Attributes:
        name, robot, arm, options.
        joint_names: the arm's joint names in the robosuite model (e.g. "robot0_joint1"); dof = len.
        joint_limits: dof x 2 (low, high), radians (read-only array).
        velocity_limits: (dof,) rad/s (read-only); ``velocity_limit_source`` says where they come from.
        home_q: (dof,) robosuite's initial arm pose, clipped to the limits.
        ee_site: the end-effector site (the gripper's grip site, e.g. "gripper0_right_grip_site").
        gripper_dof: gripper action entries of the arm (1 for parallel grippers, 6 for GR1's hand).
        T_ee_grasp: 4x4 grasp frame in the end-effector frame (d2f_core.Grasp convention: origin between
            the closed fingertips, z approach, x closing); ``fixed_jaw``: one jaw does not move (Spot).
        gripper_open, gripper_closed: :data:`~d2f_core.protocols.GRIPPER_OPEN` (-1) and
            :data:`~d2f_core.protocols.GRIPPER_CLOSED` (+1).
        info: :class:`~.robosuite_kinematics.RobotModelInfo` of the robot.
        ik_settings: :class:`~.robosuite_kinematics.IKSettings` from the options.
        kinematics: the active :class:`~.robosuite_kinematics.ArmKinematics` (the standalone one here).
        T_world_base: 4x4 pose of the robot's root body in the world frame (identity standalone).
    """

    gripper_open: float = GRIPPER_OPEN
    gripper_closed: float = GRIPPER_CLOSED

    def __init__(self, name: str, robot: str, options: ArmKinematicsOptions | None = None, *, arm: str = "right",
                 velocity_limits: Sequence[float] | None = None,
                 joint_limit_overrides: Mapping[int, tuple[float, float]] | None = None) -> None:
        from .robosuite_kinematics import ArmKinematics, IKSettings, build_robot_model

        options = options if options is not None else ArmKinematicsOptions()
        self.name = name
        self.robot = robot
        self.arm = arm
        self.options = options
        model, info = build_robot_model(robot)
        if arm not in info.arms:
            raise ValueError(f"arm: robot {robot} has arms {list(info.arms)}, not {arm!r}")
        self.info = info
        self.joint_names = tuple(info.arm_joints[arm])
        self.dof = len(self.joint_names)
        self.ee_site = info.grip_sites[arm]
        self.gripper_dof = int(info.gripper_dof[arm])
        lim = np.array([info.joint_ranges[j] for j in self.joint_names], dtype=np.float64)
        for i, (lo, hi) in (joint_limit_overrides or {}).items():
            lim[i] = (max(lim[i, 0], lo), min(lim[i, 1], hi))
        lim.flags.writeable = False
        self.joint_limits = lim
        if options.velocity_limits is not None:
            vel, source = np.array(options.velocity_limits, dtype=np.float64), "option velocity_limits"
        elif velocity_limits is not None:
            vel, source = np.array(velocity_limits, dtype=np.float64), f"given by the {name} embodiment"
        else:
            vel, source = default_velocity_limits(robot, self.dof)
        if vel.shape != (self.dof,):
            raise ValueError(f"velocity_limits: expected {self.dof} speeds (rad/s) for {self.joint_names}, "
                             f"got {vel.size}")
        vel.flags.writeable = False
        self.velocity_limits = vel
        self.velocity_limit_source = source
        self.home_q = np.clip(info.home_q(arm), lim[:, 0], lim[:, 1])
        self.home_q.flags.writeable = False
        T_eg = np.array(info.T_ee_grasp[arm], dtype=np.float64)
        T_eg.flags.writeable = False
        self.T_ee_grasp = T_eg
        self._T_grasp_ee = np.linalg.inv(T_eg)
        self.fixed_jaw = bool(info.fixed_jaw[arm])
        self.ik_settings = IKSettings(
            position_tolerance=options.ik_position_tolerance, rotation_tolerance=options.ik_rotation_tolerance,
            max_iterations=options.ik_max_iterations, restarts=options.ik_restarts,
            rotation_weight=options.ik_rotation_weight, seed=options.ik_seed)
        self._standalone = ArmKinematics(model, self.joint_names, self.ee_site,
                                         qpos=info.standalone_qpos(model), joint_limits=np.array(lim))
        self.kinematics = self._standalone
        self.T_world_base = np.eye(4)

    # ------------------------------------------------------------------ kinematics
    def _q(self, q: Any, name: str = "q") -> np.ndarray:
        from .robosuite_kinematics import check_q

        return check_q(q, self.dof, name)

    def _default_q_init(self) -> np.ndarray:
        """IK start when none is given: ``home_q`` (a bound subclass returns the current joints)."""
        return np.array(self.home_q)

    def fk(self, q: np.ndarray) -> np.ndarray:
        """4x4 T_world_ee (grip site pose, metres) for arm joint positions ``q`` (dof,), radians."""
        return self.kinematics.fk_raw(self._q(q))

    def jacobian(self, q: np.ndarray) -> np.ndarray:
        """6 x dof geometric Jacobian of the grip site: rows (v; omega), world frame, at its origin."""
        return self.kinematics.fk_jacobian_raw(self._q(q))[1]

    def fk_jacobian(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(T 4x4, J 6 x dof) for q (dof,); (N x 4 x 4, N x 6 x dof) for q (N, dof). One FK pass each."""
        return self.kinematics.fk_jacobian(q)

    def fk_batch(self, q: np.ndarray) -> np.ndarray:
        """N x 4 x 4 end-effector poses for q (N, dof)."""
        return self.kinematics.fk_batch(q)

    def ik(self, T_world_ee: np.ndarray, q_init: np.ndarray | None = None, *,
           position_only: bool = False) -> IKResult:
        """Joint positions (within joint_limits) putting the grip site at ``T_world_ee`` (4x4, world frame).

        Starts from ``q_init`` (default: ``home_q``, or the current joints when bound), then from
        ``ik_restarts`` seeded random joint vectors; returns the first solution within
        ``ik_position_tolerance`` / ``ik_rotation_tolerance`` (rotation ignored when
        ``position_only``), else the best found with ``success=False``. Errors are measured
        (metres, radians).
        """
        if q_init is None:
            q_init = self._default_q_init()
        return self.kinematics.ik(T_world_ee, q_init, position_only=position_only, settings=self.ik_settings)

    # ------------------------------------------------------------------ grasping (GraspingArm)
    def grasp_to_ee(self, T_world_grasp: np.ndarray, width: float = 0.0) -> np.ndarray:
        """End-effector (grip site) pose, 4x4 world frame, that puts the gripper's grasp frame at
        ``T_world_grasp`` (:class:`d2f_core.Grasp` convention: z approach, x closing, origin between the
        fingertips).

        ``width`` (metres, the object's width along x) matters only for grippers with a fixed jaw
        (``fixed_jaw``: Spot): the gripper shifts by -width/2 along x so that the fixed jaw touches
        the object's side while the moving jaw closes on the other.
        """
        from .robosuite_kinematics import check_pose

        T = check_pose(T_world_grasp, "T_world_grasp")
        w = float(width)
        if not math.isfinite(w) or w < 0:
            raise ValueError(f"width: expected a finite opening >= 0 metres, got {width!r}")
        if self.fixed_jaw and w > 0:
            T = T.copy()
            T[:3, 3] -= 0.5 * w * T[:3, 0]
        return T @ self._T_grasp_ee

    def ee_to_grasp(self, T_world_ee: np.ndarray) -> np.ndarray:
        """The grasp frame's world pose (closed tips) for an end-effector pose: ``T_world_ee @ T_ee_grasp``."""
        from .robosuite_kinematics import check_pose

        return check_pose(T_world_ee) @ self.T_ee_grasp
