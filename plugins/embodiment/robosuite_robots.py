"""Embodiments over robosuite robots (MuJoCo): ``franka``, ``spot``, ``gr1`` and ``robosuite-arm``.

==============  ============================================  ===========================  ====
plugin          robosuite robot                               arm used / end-effector      dof
==============  ============================================  ===========================  ====
franka          ``Panda``                                     right / PandaGripper         7
spot            ``SpotWithArmFloating`` (option ``variant``:  right / BDGripper            6
                ``SpotWithArm``)
gr1             ``GR1ArmsOnly`` (option ``variant``:          ``arm`` right (default) or   7
                ``GR1FixedLowerBody``, ``GR1FloatingBody``)   left / Fourier hand
robosuite-arm   option ``robot``: any robosuite single-arm    right / the robot's default  robot's
                robot (Panda, UR5e, Kinova3, IIWA, Jaco,      gripper (UR5e: Robotiq 85)
                Sawyer, XArm7, ...)
==============  ============================================  ===========================  ====

:class:`RobosuiteArm` is the public base class of all four (documented in docs/embodiments.md,
"Add a robot"; one small subclass per plugin: :class:`Franka`, :class:`Spot`, :class:`GR1`,
:class:`RobosuiteArmByName`, each declaring its plugin name, options and description); its kinematics come from :class:`~.arm_model.ArmModel`, which the real-Franka
backend (:mod:`.deoxys_backend`, plugin ``franka-deoxys``) shares: neither module imports the other.

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

**Gripper** (d2f's one convention, :data:`d2f_core.protocols.GRIPPER_OPEN` = -1 open,
:data:`~d2f_core.protocols.GRIPPER_CLOSED` = +1 closed, which is robosuite's): parallel grippers
(Panda, Spot, Robotiq, Kinova, ...) integrate the sign: each step moves the fingers a fraction of the
range towards open (-) or closed (+) and 0 keeps them where they are (so "close" takes ~10 steps).
The GR1 hands map the value linearly onto every finger actuator's range (-1 open, +1 closed, 0 half
closed).

Every robosuite arm is a :class:`d2f_core.protocols.GraspingArm` (capability ``grasping``).
"""

from __future__ import annotations

import difflib
import math
from typing import Any, Literal, Mapping, Sequence

import numpy as np
from pydantic import Field, field_validator

from d2f_core import Manifest, hookimpl
from d2f_core.gl import configure_headless_gl

from .arm_model import (CONSERVATIVE_VELOCITY_LIMIT, DEFAULT_VELOCITY_LIMITS, ArmKinematicsOptions, ArmModel,
                        single_arm_robots)

__all__ = ["RobosuiteArmOptions", "FrankaOptions", "SpotOptions", "GR1Options", "RobosuiteArmPluginOptions",
           "RobosuiteArm", "Franka", "Spot", "GR1", "RobosuiteArmByName", "DEFAULT_VELOCITY_LIMITS",
           "CONSERVATIVE_VELOCITY_LIMIT"]


class RobosuiteArmOptions(ArmKinematicsOptions):
    """Options of every :class:`RobosuiteArm`: kinematics (:class:`~.arm_model.ArmKinematicsOptions`)
    plus the gains of the JOINT_POSITION controllers."""

    controller_kp: float = Field(default=1000.0, gt=0.0, le=5000.0,
                                 description="stiffness of the JOINT_POSITION controllers, 1/s^2 (torque = "
                                             "M(q) (kp e - kd qdot) + gravity; kd = 2 sqrt(kp) damping_ratio)")
    controller_damping_ratio: float = Field(default=1.0, gt=0.0, le=10.0,
                                            description="damping ratio of the JOINT_POSITION controllers")


class FrankaOptions(RobosuiteArmOptions):
    """Options of ``franka`` (simulated). The real Franka is its own plugin, ``franka-deoxys``."""

    backend: None = Field(default=None, description="removed: the real Franka is the embodiment plugin "
                                                    "franka-deoxys (set embodiment.plugin=franka-deoxys)")

    @field_validator("backend", mode="before")
    @classmethod
    def _backend(cls, v: Any) -> None:
        if v is None:
            return None
        if v == "deoxys":
            raise ValueError("the real Franka through Deoxys is its own embodiment plugin now: set "
                             "embodiment.plugin=franka-deoxys (its options: dry_run, deoxys_config, ...) and "
                             "remove backend")
        raise ValueError(f"franka is the simulated Panda and has no backend option any more (got {v!r}): remove "
                         "it (backend: sim is what franka is; the real robot is embodiment.plugin=franka-deoxys)")


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


def check_robot_name(robot: str) -> str:
    """``robot`` when it is a robosuite single-arm robot, else ValueError with the closest names.

    Without robosuite installed nothing can be checked and ``robot`` is returned as is (the
    plugin is unavailable then anyway)."""
    try:
        known = single_arm_robots()
    except ImportError:
        return robot
    if robot in known:
        return robot
    close = difflib.get_close_matches(robot, known, n=2, cutoff=0.5) or \
        [k for k in known if k.lower() == robot.lower()]
    hint = f"did you mean {' or '.join(map(repr, close))}? " if close else ""
    raise ValueError(f"{robot!r} is not a robosuite single-arm robot; {hint}choose one of {', '.join(known)} "
                     "(two-armed GR1: embodiment.plugin=gr1)")


class RobosuiteArmPluginOptions(RobosuiteArmOptions):
    """Options of ``robosuite-arm``: any robosuite single-arm robot by name."""

    robot: str = Field(default="Panda", description="robosuite robot name (robosuite.make(robots=...)): Panda, "
                                                    "UR5e, Kinova3, IIWA, Jaco, Sawyer, XArm7, ... (any robosuite "
                                                    "robot with one arm); its default gripper is used")

    @field_validator("robot")
    @classmethod
    def _robot(cls, v: str) -> str:
        return check_robot_name(v)


def _not_bound(name: str, what: str) -> RuntimeError:
    return RuntimeError(f"{name}: {what} needs a bound world: build the world with robots="
                        f"embodiment.robosuite_robot and controller_configs=embodiment.controller_config(), "
                        f"then call embodiment.bind(world)")


class RobosuiteArm(ArmModel):
    """One arm of a robosuite robot as a d2f :class:`~d2f_core.protocols.GraspingArm` (see the module
    docstring and docs/embodiments.md, "Add a robot").

    Args:
        name: the plugin name (``Embodiment.name``), e.g. "franka".
        robot: robosuite robot name (``robosuite.make(robots=robot)``), e.g. "Panda", "UR5e".
        options: :class:`RobosuiteArmOptions` (or a subclass; default: all defaults).
        arm: the arm used ("right"; "left" on two-armed robots).
        velocity_limits: (dof,) rad/s when ``options.velocity_limits`` is None (default: the vendor
            figures of :data:`DEFAULT_VELOCITY_LIMITS`, else 1.0 rad/s per joint).
        joint_limit_overrides: joint index -> (low, high) radians, intersected with the MJCF range (e.g.
            to keep a hand off its own wrist).

    Class attributes read by ``Manifest.of`` (``kind``, ``capabilities``, ``extra``, ``requires``,
    ``install``) are inherited; a subclass adds ``name``, ``Options`` and ``description``.

    What to override in a subclass: usually nothing (pass the arguments above). ``controller_config()``
    to change the controller (keep an absolute JOINT_POSITION controller on the used arm: ``bind``
    checks it); ``bind(world)`` to accept another kind of world. The kinematics (``fk``, ``jacobian``,
    ``ik``, ``grasp_to_ee``) come from :class:`~.arm_model.ArmModel`.

    Public attributes beyond :class:`~.arm_model.ArmModel`'s:
        robosuite_robot: name for ``robosuite.make(robots=...)`` (== ``robot``).
        world: the bound world or None.
        last_ik: the IKResult of the last ``ee_action``.
    """

    kind = "embodiment"
    capabilities = frozenset({"ik", "deterministic", "grasping"})
    extra, requires = "sim", ("mujoco", "robosuite")
    install = "pip install 'dream2flow[sim]' (robosuite==1.5.2 with mujoco==3.9.0)"

    def __init__(self, name: str, robot: str, options: RobosuiteArmOptions | None = None, *, arm: str = "right",
                 velocity_limits: Sequence[float] | None = None,
                 joint_limit_overrides: Mapping[int, tuple[float, float]] | None = None) -> None:
        options = options if options is not None else RobosuiteArmOptions()
        super().__init__(name, robot, options, arm=arm, velocity_limits=velocity_limits,
                         joint_limit_overrides=joint_limit_overrides)
        self.robosuite_robot = robot
        self.world: Any = None
        self.last_ik = None
        self._live_model: Any = None
        self._live_qadr: np.ndarray | None = None
        self._template: np.ndarray | None = None
        self._arm_slice: slice | None = None
        self._grip_slice: slice | None = None
        self._action_low: np.ndarray | None = None
        self._action_high: np.ndarray | None = None

    def _default_q_init(self) -> np.ndarray:
        return self.current_q() if self.world is not None else np.array(self.home_q)

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


# --------------------------------------------------------------------------- the shipped robots

_VERIFIED = ("FK vs live robosuite grip-site poses, Jacobian vs finite differences, IK round trip, "
             "joint-position tracking in robosuite Door (tests/test_robosuite_robots.py)")


class Franka(RobosuiteArm):
    """``franka``: the simulated Franka Panda (robosuite ``Panda``, 7 DoF)."""

    name, Options = "franka", FrankaOptions
    description = ("Franka Panda arm (robosuite Panda, 7 DoF): MuJoCo FK/Jacobian/IK, absolute "
                   "joint-position control (the real robot: franka-deoxys)")
    verified = _VERIFIED

    def __init__(self, options: FrankaOptions | None = None) -> None:
        super().__init__("franka", "Panda", options or FrankaOptions())


class Spot(RobosuiteArm):
    """``spot``: Spot's arm (robosuite ``SpotWithArmFloating`` or ``SpotWithArm``, 6 DoF)."""

    name, Options = "spot", SpotOptions
    description = ("Spot arm (robosuite SpotWithArmFloating, 6 DoF): MuJoCo FK/Jacobian/IK, "
                   "absolute joint-position control")
    verified = _VERIFIED

    def __init__(self, options: SpotOptions | None = None) -> None:
        options = options or SpotOptions()
        super().__init__("spot", options.variant, options, velocity_limits=DEFAULT_VELOCITY_LIMITS["SpotArm"])


class GR1(RobosuiteArm):
    """``gr1``: one arm of the GR1 humanoid (robosuite ``GR1ArmsOnly`` or another variant, 7 DoF)."""

    name, Options = "gr1", GR1Options
    description = ("GR1 humanoid arm (robosuite GR1ArmsOnly, right arm, 7 DoF): MuJoCo "
                   "FK/Jacobian/IK, absolute joint-position control")
    verified = _VERIFIED

    def __init__(self, options: GR1Options | None = None) -> None:
        options = options or GR1Options()
        over = None
        if options.wrist_limits is not None:  # joints 5, 6: wrist roll, wrist pitch
            roll, pitch = options.wrist_limits
            over = {5: (-roll, roll), 6: (-pitch, pitch)}
        super().__init__("gr1", options.variant, options, arm=options.arm,
                         velocity_limits=DEFAULT_VELOCITY_LIMITS["GR1"], joint_limit_overrides=over)


class RobosuiteArmByName(RobosuiteArm):
    """``robosuite-arm``: any robosuite single-arm robot, named by option ``robot``."""

    name, Options = "robosuite-arm", RobosuiteArmPluginOptions
    description = ("any robosuite single-arm robot by name (option robot: Panda, UR5e, Kinova3, "
                   "IIWA, Jaco, Sawyer, ...): MuJoCo FK/Jacobian/IK, absolute joint-position control")
    verified = ("UR5e FK/IK round trip and joint tracking in the bread_in_bowl "
                "world; UR5e bread_in_bowl run (tests/test_embodiments_by_name.py)")

    def __init__(self, options: RobosuiteArmPluginOptions | None = None) -> None:
        options = options or RobosuiteArmPluginOptions()
        super().__init__("robosuite-arm", check_robot_name(options.robot), options)


# --------------------------------------------------------------------------- factories (headless GL first)

def _franka(options: FrankaOptions | None = None, ctx: Any = None) -> Franka:
    configure_headless_gl()
    return Franka(options)


def _spot(options: SpotOptions | None = None, ctx: Any = None) -> Spot:
    configure_headless_gl()
    return Spot(options)


def _gr1(options: GR1Options | None = None, ctx: Any = None) -> GR1:
    configure_headless_gl()
    return GR1(options)


def _robosuite_arm(options: RobosuiteArmPluginOptions | None = None, ctx: Any = None) -> RobosuiteArmByName:
    configure_headless_gl()
    return RobosuiteArmByName(options)


@hookimpl
def d2f_register(register):
    register(Manifest.of(Franka, factory=_franka))
    register(Manifest.of(Spot, factory=_spot))
    register(Manifest.of(GR1, factory=_gr1))
    register(Manifest.of(RobosuiteArmByName, factory=_robosuite_arm))
