"""Embodiments ``franka``, ``spot`` and ``gr1``: one arm of a robosuite robot (MuJoCo).

=========  ==========================================  ===========================  ====
plugin     robosuite robot (``robot``)                 arm used / end-effector      dof
=========  ==========================================  ===========================  ====
franka     ``Panda``                                   right / PandaGripper         7
spot       ``SpotWithArmFloating`` (option            right / BDGripper            6
           ``variant``: ``SpotWithArm``)
gr1        ``GR1ArmsOnly`` (option ``variant``:        ``arm`` right (default) or   7
           ``GR1FixedLowerBody``, ``GR1FloatingBody``)  left / Fourier hand
=========  ==========================================  ===========================  ====

**End-effector frame**: the gripper's grip site (robosuite ``gripper.important_sites
["grip_site"]``, e.g. ``gripper0_right_grip_site``): its origin and axes.

**Frames**: standalone (not bound, as ``d2f check`` builds it) the robot's root body
(``robot0_base``) is the world origin. After ``bind(world)`` everything is in the world's frame:
kinematics runs on a *private* ``mujoco.MjData`` of the world's model (never the live data), with
every non-arm joint (base, torso, objects) frozen at its value at bind time (``sync()`` re-reads
it).

**Kinematics**: ``fk(q)`` 4x4 ``T_world_ee``; ``jacobian(q)`` 6 x dof, rows (v; omega), world frame, at
the end-effector origin, analytic (``mujoco.mj_jacSite``); ``fk_jacobian(q)`` both at once, also
batched over N x dof; ``ik(T, q_init, position_only)`` damped least squares (Levenberg-Marquardt)
within the joint limits, restarted from seeded random starts (deterministic).

**Control** (needs a bound world made with ``controller_configs=embodiment.controller_config()``):
robosuite's BASIC composite controller with every arm (and GR1's torso/head) a JOINT_POSITION
controller taking *absolute* joint targets (radians), whose action bounds are the joint limits.
``joint_action(q_target, gripper)`` is the full action vector of the world: the used arm's
targets, the other arm/torso/head held at their positions at bind time, mobile bases and legs
commanded still (zero), the used gripper at ``gripper``, any other hand open.

**Gripper convention** (robosuite's): ``gripper`` in [-1, 1], -1 = open, +1 = closed.
Panda and Spot grippers integrate the sign: each step moves the fingers 0.2 of the range towards
open (-) or closed (+) and 0 keeps them where they are (so "close" takes ~10 steps). The GR1 hands
map the value linearly onto every finger actuator's range (-1 open, +1 closed, 0 half closed).

``backend`` (``franka``): "sim" (robosuite, this module) or "deoxys": the real Franka through UT
Austin's Deoxys (:class:`~.deoxys_backend.DeoxysFranka`), reusing this Panda's kinematics; every
command passes :mod:`.safety` checks first, and ``dry_run`` (the default) only logs the commands.
The ``deoxys_*``/``dry_run*``/safety options of :class:`FrankaOptions` apply to that backend only.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from d2f_core import IKResult, Manifest, hookimpl

from d2f_core.gl import configure_headless_gl

__all__ = ["RobosuiteArmOptions", "FrankaOptions", "SpotOptions", "GR1Options", "RobosuiteArm",
           "DEFAULT_VELOCITY_LIMITS"]

DEFAULT_VELOCITY_LIMITS: dict[str, tuple[float, ...]] = {
    # Franka Emika Panda datasheet (rad/s), joints 1-7.
    "Panda": (2.175, 2.175, 2.175, 2.175, 2.61, 2.61, 2.61),
    # The robosuite MJCFs of Spot's arm and of GR1 carry no velocity limits and we have no vendor
    # figures here: conservative assumed limits (rad/s); override with the `velocity_limits` option.
    "SpotArm": (2.0,) * 6,
    "GR1Arm": (2.0,) * 7,
}
"""Per-joint speed limits used when the option ``velocity_limits`` is not given (see docs)."""


class RobosuiteArmOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    velocity_limits: list[float] | None = Field(
        default=None, description="per-joint speed limits of the arm, rad/s, > 0 (default: "
                                  "DEFAULT_VELOCITY_LIMITS; the robosuite models carry none)")
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
    controller_kp: float = Field(default=1000.0, gt=0.0, le=5000.0,
                                 description="stiffness of the JOINT_POSITION controllers, 1/s^2 (torque = "
                                             "M(q) (kp e - kd qdot) + gravity; kd = 2 sqrt(kp) damping_ratio)")
    controller_damping_ratio: float = Field(default=1.0, gt=0.0, le=10.0,
                                            description="damping ratio of the JOINT_POSITION controllers")

    @field_validator("velocity_limits")
    @classmethod
    def _vel(cls, v: list[float] | None) -> list[float] | None:
        if v is not None and (not all(math.isfinite(x) and x > 0 for x in v)):
            raise ValueError("expected finite speeds > 0 (rad/s), one per arm joint")
        return v


class FrankaOptions(RobosuiteArmOptions):
    backend: Literal["sim", "deoxys"] = Field(
        default="sim", description="'sim': robosuite/MuJoCo. 'deoxys': the real Franka through UT Austin's Deoxys "
                                   "(deoxys_control; the options below apply to it only)")
    deoxys_config: str | None = Field(
        default=None, description="backend deoxys: Deoxys interface YAML (PC/NUC addresses and ports, e.g. "
                                  "deoxys_control/deoxys/config/charmander.yml); a bare file name is looked up in "
                                  "deoxys.config_root. Needed unless dry_run")
    controller_config: str | None = Field(
        default=None, description="backend deoxys: JOINT_IMPEDANCE controller YAML (is_delta must be false); "
                                  "default: Deoxys' default JOINT_IMPEDANCE config (joint-impedance-controller.yml)")
    control_hz: float = Field(default=20.0, gt=0.0, le=100.0,
                              description="backend deoxys: command rate, Hz; must equal CONTROL.POLICY_RATE of the "
                                          "NUC's config (Deoxys' default 20)")
    dry_run: bool = Field(default=True, description="backend deoxys: check and log every command (dry_run_log) "
                                                    "but never import Deoxys nor move the robot")
    dry_run_log: str | None = Field(default=None,
                                    description="backend deoxys, dry_run: JSONL file the would-be commands are "
                                                "appended to (default: kept in memory only, `command_log`)")
    dry_run_start_q: list[float] | None = Field(
        default=None, description="backend deoxys, dry_run: the simulated starting joint positions, 7 radians "
                                  "(default: home_q)")
    T_world_base: list[list[float]] | None = Field(
        default=None, description="backend deoxys: 4x4 pose of the robot base (Franka link0) in the world frame, "
                                  "metres; fk/ik/workspace are in the world frame through it (default: identity, "
                                  "the base frame is the world frame)")
    workspace_min: list[float] = Field(default=[0.2, -0.5, 0.02],
                                       description="backend deoxys: lower corner (x, y, z) of the box the end-effector "
                                                   "must stay in, world frame, metres")
    workspace_max: list[float] = Field(default=[0.8, 0.5, 0.8],
                                       description="backend deoxys: upper corner (x, y, z) of the end-effector box, "
                                                   "world frame, metres")
    max_joint_step: float = Field(default=0.05, gt=0.0, le=0.5,
                                  description="backend deoxys: largest change of any joint between two commands, rad")
    velocity_scale: float = Field(default=0.25, gt=0.0, le=1.0,
                                  description="backend deoxys: fraction of velocity_limits a command may ask for "
                                              "(step x control_hz); at most the controller's time_fraction (0.3 by "
                                              "default): Deoxys reaches each target in time_fraction of a period")
    joint_margin: float = Field(default=0.05, ge=0.0, le=0.3,
                                description="backend deoxys: rad kept clear of each Panda joint limit")
    state_timeout: float = Field(default=5.0, gt=0.0,
                                 description="backend deoxys: seconds to wait for the first robot state")

    @field_validator("dry_run_start_q")
    @classmethod
    def _start_q(cls, v: list[float] | None) -> list[float] | None:
        if v is not None and (len(v) != 7 or not all(math.isfinite(x) for x in v)):
            raise ValueError("expected 7 finite joint positions, radians")
        return v

    @field_validator("T_world_base")
    @classmethod
    def _T(cls, v: list[list[float]] | None) -> list[list[float]] | None:
        if v is not None:
            from .robosuite_kinematics import check_pose

            check_pose(v, "T_world_base")
        return v

    @field_validator("workspace_min", "workspace_max")
    @classmethod
    def _xyz(cls, v: list[float]) -> list[float]:
        if len(v) != 3 or not all(math.isfinite(x) for x in v):
            raise ValueError("expected [x, y, z], metres")
        return v

    @model_validator(mode="after")
    def _box(self) -> "FrankaOptions":
        if any(a >= b for a, b in zip(self.workspace_min, self.workspace_max)):
            raise ValueError(f"workspace_min {self.workspace_min} must be below workspace_max {self.workspace_max} "
                             "on x, y and z")
        return self


class SpotOptions(RobosuiteArmOptions):
    variant: Literal["SpotWithArmFloating", "SpotWithArm"] = Field(
        default="SpotWithArmFloating", description="robosuite robot: Spot with arm on a floating (planar "
                                                   "velocity-controlled) base, or on its legs")


class GR1Options(RobosuiteArmOptions):
    variant: Literal["GR1ArmsOnly", "GR1FixedLowerBody", "GR1FloatingBody"] = Field(
        default="GR1ArmsOnly", description="robosuite GR1 variant: arms only (fixed torso), fixed legs with "
                                           "torso and head, or a floating planar base")
    arm: Literal["right", "left"] = Field(default="right", description="which arm is the embodiment's arm")
    wrist_limits: list[float] | None = Field(
        default=[0.45, 0.55],
        description="[roll, pitch] half-ranges (radians) replacing the MJCF's +-1.5 of the wrist roll and "
                    "pitch joints: inside them the hand never touches its own wrist link (measured on "
                    "robosuite's GR1 model, hand open or closed, both arms); null keeps the MJCF ranges")

    @field_validator("wrist_limits")
    @classmethod
    def _wrist(cls, v: list[float] | None) -> list[float] | None:
        if v is not None and (len(v) != 2 or not all(math.isfinite(x) and 0 < x <= 1.5 for x in v)):
            raise ValueError("expected [roll, pitch] half-ranges in (0, 1.5] radians, or null")
        return v


def _not_bound(name: str, what: str) -> RuntimeError:
    return RuntimeError(f"{name}: {what} needs a bound world: build the world with robots="
                        f"embodiment.robosuite_robot and controller_configs=embodiment.controller_config(), "
                        f"then call embodiment.bind(world)")


class RobosuiteArm:
    """One arm of a robosuite robot as a d2f Embodiment (see the module docstring).

    Public attributes beyond the protocol:
        robosuite_robot: name for ``robosuite.make(robots=...)`` (== ``robot``).
        arm: "right" or "left".
        ee_site: the end-effector site name (e.g. "gripper0_right_grip_site").
        gripper_open, gripper_closed: -1.0, 1.0 (robosuite's convention).
        gripper_dof: gripper action entries of the used arm (1 Panda/Spot, 6 GR1 hand).
        home_q: (dof,) robosuite's initial arm joint positions.
        T_ee_grasp: 4x4 pose of the gripper's grasp frame (d2f_core.Grasp convention: origin between
            the fingertips, z approach, x closing) in the end-effector frame; see grasp_to_ee().
        fixed_jaw: True when one jaw does not move (Spot's BD gripper); see grasp_to_ee(width=).
        info: :class:`~.robosuite_kinematics.RobotModelInfo` of the robot.
        kinematics: the active :class:`~.robosuite_kinematics.ArmKinematics` (standalone or bound).
        T_world_base: 4x4 pose of the robot's root body (identity until bound).
        world: the bound world or None.
        last_ik: the IKResult of the last ``ee_action``.
    """

    capabilities = frozenset({"ik", "deterministic"})
    gripper_open = -1.0
    gripper_closed = 1.0

    def __init__(self, name: str, robot: str, arm: str, options: RobosuiteArmOptions,
                 velocity_key: str, limit_overrides: dict[int, tuple[float, float]] | None = None) -> None:
        from .robosuite_kinematics import ArmKinematics, IKSettings, build_robot_model

        self.name = name
        self.robot = robot
        self.robosuite_robot = robot
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
        for i, (lo, hi) in (limit_overrides or {}).items():
            lim[i] = (max(lim[i, 0], lo), min(lim[i, 1], hi))
        lim.flags.writeable = False
        self.joint_limits = lim
        vel = options.velocity_limits
        vel = np.array(DEFAULT_VELOCITY_LIMITS[velocity_key] if vel is None else vel, dtype=np.float64)
        if vel.shape != (self.dof,):
            raise ValueError(f"velocity_limits: expected {self.dof} speeds (rad/s) for {self.joint_names}, "
                             f"got {vel.size}")
        vel.flags.writeable = False
        self.velocity_limits = vel
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
        self.world: Any = None
        self.last_ik: IKResult | None = None
        self._live_model: Any = None
        self._live_qadr: np.ndarray | None = None
        self._template: np.ndarray | None = None
        self._arm_slice: slice | None = None
        self._grip_slice: slice | None = None
        self._action_low: np.ndarray | None = None
        self._action_high: np.ndarray | None = None

    # ------------------------------------------------------------------ kinematics (protocol)
    def _q(self, q: Any, name: str = "q") -> np.ndarray:
        from .robosuite_kinematics import check_q

        return check_q(q, self.dof, name)

    def fk(self, q: np.ndarray) -> np.ndarray:
        """4x4 T_world_ee (grip site pose) for arm joint positions ``q`` (dof,), radians."""
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
        """Joint positions (within joint_limits) putting the grip site at ``T_world_ee``.

        Starts from ``q_init`` (default: the bound world's current joints, else ``home_q``), then
        from ``ik_restarts`` seeded random joint vectors; returns the first solution within
        ``ik_position_tolerance`` / ``ik_rotation_tolerance`` (rotation ignored when
        ``position_only``), else the best found with ``success=False``. Errors are measured
        (metres, radians).
        """
        if q_init is None:
            q_init = self.current_q() if self.world is not None else self.home_q
        return self.kinematics.ik(T_world_ee, q_init, position_only=position_only, settings=self.ik_settings)

    def grasp_to_ee(self, T_world_grasp: np.ndarray, width: float = 0.0) -> np.ndarray:
        """End-effector (grip site) pose that puts the gripper's grasp frame at ``T_world_grasp``
        (:class:`d2f_core.Grasp` convention: z approach, x closing, origin between the fingertips).

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

    # ------------------------------------------------------------------ controller
    def _joint_position_part(self, joints: tuple[str, ...], gripper: bool) -> dict[str, Any]:
        lim = np.array([self.info.joint_ranges[j] for j in joints], dtype=np.float64)
        part: dict[str, Any] = {
            "type": "JOINT_POSITION", "input_type": "absolute",
            "input_min": lim[:, 0].tolist(), "input_max": lim[:, 1].tolist(),
            "output_min": -0.5, "output_max": 0.5,
            "kp": float(self.options.controller_kp), "damping_ratio": float(self.options.controller_damping_ratio),
            "impedance_mode": "fixed", "kp_limits": [0, 5000], "damping_ratio_limits": [0, 10],
            "qpos_limits": None, "interpolation": None, "ramp_ratio": 0.2,
        }
        if gripper:
            part["gripper"] = {"type": "GRIP"}
        return part

    def controller_config(self) -> dict[str, Any]:
        """Composite controller config for ``robosuite.make(controller_configs=...)``.

        robosuite's BASIC composite controller for this robot with every arm (and GR1's torso and
        head) an absolute JOINT_POSITION controller (action = joint targets in radians, bounds =
        joint limits), so that :meth:`joint_action` vectors mean absolute joint targets. A fresh
        dict each call.
        """
        import robosuite

        from .robosuite_kinematics import quiet_robosuite

        with quiet_robosuite():
            cfg = robosuite.load_composite_controller_config(controller="BASIC", robot=self.robot)
        parts = cfg.setdefault("body_parts", {})
        info = self.info
        # drop the parts this robot lacks (robosuite would drop them too, logging a warning each)
        present = {"torso": bool(info.torso_joints) and all(j in info.joint_ranges for j in info.torso_joints),
                   "head": bool(info.head_joints) and all(j in info.joint_ranges for j in info.head_joints),
                   "legs": bool(info.legs_joints), "base": bool(info.base_joints)}
        for part in list(parts):
            if part in ("right", "left") and part not in info.arms:
                del parts[part]
            elif part in present and not present[part]:
                del parts[part]
        for arm in info.arms:
            parts[arm] = self._joint_position_part(info.arm_joints[arm], gripper=True)
        # torso/head: absolute targets, held still by joint_action. (robosuite bounds every non-arm
        # part's action to [-1, 1], which holds GR1's torso/head poses near 0; Spot's legs stand at
        # knee angles beyond -1, so they keep robosuite's delta controller: zero = stay.)
        for part, joints in (("torso", info.torso_joints), ("head", info.head_joints)):
            if present[part]:
                parts[part] = self._joint_position_part(tuple(joints), gripper=False)
        return cfg

    # ------------------------------------------------------------------ binding
    def bind(self, world: Any) -> None:
        """Attach to a robosuite world (``world.env``, reset): joint indices, base pose, action layout.

        Kinematics then run on a private ``MjData`` of the world's model in the world frame. Call
        again after the world rebuilds its env (``current_q``/``joint_action`` also re-bind by
        themselves when they see a new model).
        """
        env = getattr(world, "env", None)
        if env is None or not hasattr(env, "robots") or not hasattr(env, "sim"):
            raise ValueError(f"world: {type(world).__name__} has no robosuite env (world.env); the {self.name} "
                             "embodiment binds to robosuite worlds")
        if len(env.robots) != 1:
            raise ValueError(f"world: its env has {len(env.robots)} robots; the {self.name} embodiment drives "
                             "an env with exactly one robot")
        robot = env.robots[0]
        if getattr(robot, "name", None) != self.robot:
            raise ValueError(f"world: its robot is {getattr(robot, 'name', None)!r} but the {self.name} embodiment "
                             f"is {self.robot!r}; build the env with robots=embodiment.robosuite_robot")
        cc = robot.composite_controller
        ctrl = cc.part_controllers.get(self.arm)
        if ctrl is None or ctrl.name != "JOINT_POSITION" or getattr(ctrl, "input_type", None) != "absolute":
            raise ValueError(f"world: the {self.arm} arm's controller is "
                             f"{getattr(ctrl, 'name', None)}/{getattr(ctrl, 'input_type', None)}, not an absolute "
                             "JOINT_POSITION controller; build the env with "
                             "controller_configs=embodiment.controller_config()")
        self.world = world
        self._bind_env(env)

    def _bind_env(self, env: Any) -> None:
        import mujoco

        from .robosuite_kinematics import ArmKinematics

        robot = env.robots[0]
        model, data = env.sim.model._model, env.sim.data._data
        kin = ArmKinematics(model, self.joint_names, self.ee_site, qpos=np.array(data.qpos),
                            mocap=(np.array(data.mocap_pos), np.array(data.mocap_quat)),
                            joint_limits=np.array(self.joint_limits))
        ctrl = robot.composite_controller.part_controllers[self.arm]
        if list(np.asarray(ctrl.qpos_index).ravel()) != list(kin.qpos_adr):
            raise ValueError(f"world: the {self.arm} arm controller drives qpos {list(ctrl.qpos_index)} but joints "
                             f"{self.joint_names} are at {list(kin.qpos_adr)}; is the env built for {self.robot}?")
        self.kinematics = kin
        self._live_model = model
        self._live_qadr = kin.qpos_adr.copy()
        bid = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, robot.robot_model.root_body)
        T = np.eye(4)
        if bid >= 0:
            T[:3, :3] = np.array(data.xmat[bid]).reshape(3, 3)
            T[:3, 3] = data.xpos[bid]
        self.T_world_base = T
        # action layout of the robot's composite controller
        cc = robot.composite_controller
        dim = int(max(e for _, e in cc._action_split_indexes.values())) if cc._action_split_indexes else 0
        template = np.zeros(dim)
        self._arm_slice = self._grip_slice = None
        for part, (s, e) in cc._action_split_indexes.items():
            if e <= s:
                continue
            if part == self.arm:
                self._arm_slice = slice(s, e)
            elif part == f"{self.arm}_gripper":
                self._grip_slice = slice(s, e)
            elif part.endswith("_gripper"):
                template[s:e] = self.gripper_open
            else:
                c = cc.part_controllers[part]
                if c.name == "JOINT_POSITION" and getattr(c, "input_type", None) == "absolute":
                    template[s:e] = np.asarray(data.qpos)[np.asarray(c.qpos_index)]
                # delta joint position / joint velocity parts (legs, mobile base): zero = stay
        if self._arm_slice is None or self._arm_slice.stop - self._arm_slice.start != self.dof:
            raise ValueError(f"world: no {self.dof}-entry '{self.arm}' arm part in the action layout "
                             f"{dict(cc._action_split_indexes)}; build the env with "
                             "controller_configs=embodiment.controller_config()")
        self._template = template
        self._action_low, self._action_high = (np.asarray(a, dtype=np.float64) for a in env.action_spec)

    def _live(self) -> tuple[Any, Any]:
        """(env, data) of the bound world; re-binds when the world rebuilt its env."""
        if self.world is None:
            raise _not_bound(self.name, "this call")
        env = self.world.env
        model = env.sim.model._model
        if model is not self._live_model:
            self._bind_env(env)
        return env, env.sim.data._data

    def sync(self) -> None:
        """Re-read the bound world's state: the private kinematics' non-arm joints and base pose,
        and the hold targets of the other parts in ``joint_action``."""
        if self.world is None:
            raise _not_bound(self.name, "sync()")
        self._bind_env(self.world.env)

    # ------------------------------------------------------------------ control (protocol + extras)
    def current_q(self) -> np.ndarray:
        """(dof,) arm joint positions of the bound world (radians), read from the live sim."""
        _, data = self._live()
        return np.array(data.qpos[self._live_qadr], dtype=np.float64)

    def joint_action(self, q_target: np.ndarray, gripper: float = 0.0) -> np.ndarray:
        """The bound world's full action vector driving the arm to ``q_target`` (radians, clipped to
        joint_limits); ``gripper`` in [-1 open, 1 closed] (see the module docstring)."""
        q = np.clip(self._q(q_target, "q_target"), self.joint_limits[:, 0], self.joint_limits[:, 1])
        from .robosuite_kinematics import check_gripper

        g = check_gripper(gripper)
        self._live()
        assert self._template is not None and self._arm_slice is not None
        a = self._template.copy()
        a[self._arm_slice] = q
        if self._grip_slice is not None:
            a[self._grip_slice] = g
        low, high = self._bounds()
        return np.clip(a, low, high)

    def ee_action(self, T_world_ee: np.ndarray, gripper: float = 0.0, q_init: np.ndarray | None = None, *,
                  position_only: bool = False, strict: bool = False) -> np.ndarray:
        """Action driving the end-effector to ``T_world_ee``: ik (from ``q_init``, default the current
        joints) then :meth:`joint_action`. The IKResult is kept in ``last_ik``; ``strict`` raises
        ValueError when IK fails (otherwise the best solution found is used)."""
        res = self.ik(T_world_ee, q_init, position_only=position_only)
        self.last_ik = res
        if strict and not res.success:
            raise ValueError(f"T_world_ee: unreachable for {self.name} (IK error {1000 * res.position_error:.1f} mm, "
                             f"{res.rotation_error:.3f} rad)")
        return self.joint_action(res.q, gripper)

    def _bounds(self) -> tuple[np.ndarray, np.ndarray]:
        assert self._action_low is not None and self._action_high is not None
        wl, wh = getattr(self.world, "action_low", None), getattr(self.world, "action_high", None)
        if wl is not None and wh is not None and np.shape(wl) == self._action_low.shape \
                and np.shape(wh) == self._action_high.shape:
            return np.asarray(wl, dtype=np.float64), np.asarray(wh, dtype=np.float64)
        return self._action_low, self._action_high

    def action_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """(low, high) of the bound world's action vector (the world's action_low/high when it has
        them with the right shape, else the env's action_spec)."""
        self._live()
        low, high = self._bounds()
        return low.copy(), high.copy()


# --------------------------------------------------------------------------- factories

def _franka(options: FrankaOptions, ctx: Any = None) -> Any:
    configure_headless_gl()
    if options.backend == "deoxys":
        from .deoxys_backend import DeoxysFranka

        return DeoxysFranka(options)
    return RobosuiteArm("franka", "Panda", "right", options, "Panda")


def _spot(options: SpotOptions, ctx: Any = None) -> RobosuiteArm:
    configure_headless_gl()
    return RobosuiteArm("spot", options.variant, "right", options, "SpotArm")


def _gr1(options: GR1Options, ctx: Any = None) -> RobosuiteArm:
    configure_headless_gl()
    over = None
    if options.wrist_limits is not None:  # joints 5, 6: wrist roll, wrist pitch
        roll, pitch = options.wrist_limits
        over = {5: (-roll, roll), 6: (-pitch, pitch)}
    return RobosuiteArm("gr1", options.variant, options.arm, options, "GR1Arm", over)


_COMMON = dict(kind="embodiment", capabilities=RobosuiteArm.capabilities, extra="sim",
               requires=("mujoco", "robosuite"),
               install="pip install 'dream2flow[sim]' (robosuite==1.5.2 with mujoco==3.9.0)",
               verified="FK vs live robosuite grip-site poses, Jacobian vs finite differences, IK round trip, "
                        "joint-position tracking in robosuite Door (tests/test_robosuite_robots.py)")


@hookimpl
def d2f_register(register):
    register(Manifest(name="franka", factory=_franka, options_model=FrankaOptions,
                      description="Franka Panda arm (robosuite Panda, 7 DoF): MuJoCo FK/Jacobian/IK, absolute "
                                  "joint-position control", **_COMMON))
    register(Manifest(name="spot", factory=_spot, options_model=SpotOptions,
                      description="Spot arm (robosuite SpotWithArmFloating, 6 DoF): MuJoCo FK/Jacobian/IK, "
                                  "absolute joint-position control", **_COMMON))
    register(Manifest(name="gr1", factory=_gr1, options_model=GR1Options,
                      description="GR1 humanoid arm (robosuite GR1ArmsOnly, right arm, 7 DoF): MuJoCo "
                                  "FK/Jacobian/IK, absolute joint-position control", **_COMMON))
