"""MuJoCo kinematics of one arm of a robosuite robot: FK, analytic Jacobian, batched calls, IK.

Used through :class:`~.arm_model.ArmModel` by the robosuite embodiments (:mod:`.robosuite_robots`:
``franka``, ``spot``, ``gr1``, ``robosuite-arm``) and by the real Franka (:mod:`.deoxys_backend`:
``franka-deoxys``), which needs FK for its safety checks. Everything here runs on a *private* ``mujoco.MjData``: it never touches a live
simulation.

Conventions (world frame = the frame of the MjModel given; metres, radians):

* ``fk(q)`` is the 4x4 pose of a MuJoCo *site* (the gripper's grip site) for the arm joint
  positions ``q`` (dof,), all other joints of the model held at the values of the private data's
  ``qpos`` (set once at construction, see ``qpos``).
* ``jacobian(q)`` is the 6 x dof geometric Jacobian of that site, rows ``(v; omega)`` in the world
  frame, at the site origin (``mujoco.mj_jacSite``, analytic).
* ``ik`` is damped least squares with Levenberg-Marquardt damping adaptation and projection onto
  the joint limits, restarted from ``q_init`` and then from seeded random joint vectors.

Speed (this machine, measured in ``docs/embodiments.md``): one fk+jacobian call is a few
microseconds of MuJoCo plus ~10 us of Python; the batched ``fk_jacobian`` on N x dof inputs
amortises the Python part.

Heavy imports (mujoco, robosuite) happen inside functions only.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from d2f_core import IKResult
from d2f_core.gl import configure_headless_gl
from d2f_core.geometry import rotation_angle, so3_log  # noqa: F401 (re-exported)

__all__ = ["ArmKinematics", "IKSettings", "RobotModelInfo", "build_robot_model", "so3_log", "rotation_angle",
           "check_q", "check_pose", "check_gripper", "quiet_robosuite", "import_robosuite"]


# --------------------------------------------------------------------------- small helpers

def check_q(q: Any, dof: int, name: str = "q") -> np.ndarray:
    """A float64 copy of ``q`` with shape (dof,) and finite values, or ValueError naming ``name``."""
    try:
        a = np.array(q, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected {dof} joint positions (radians), got {q!r}") from None
    if a.shape != (dof,):
        raise ValueError(f"{name}: expected shape ({dof},) (one position per arm joint, radians), "
                         f"got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name}: contains NaN or inf; joint positions must be finite radians")
    return a


def check_gripper(gripper: Any) -> float:
    """A gripper command in [-1 open, 1 closed] as a float, or ValueError naming ``gripper``."""
    try:
        g = float(gripper)
    except (TypeError, ValueError):
        raise ValueError(f"gripper: expected a number in [-1, 1] (-1 open, 1 closed), got {gripper!r}") from None
    if not math.isfinite(g) or g < -1.0 or g > 1.0:
        raise ValueError(f"gripper: expected a number in [-1, 1] (-1 open, 1 closed), got {gripper!r}")
    return g


def check_pose(T: Any, name: str = "T_world_ee") -> np.ndarray:
    """A float64 copy of a 4x4 rigid transform, or ValueError naming ``name``."""
    try:
        a = np.array(T, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected a 4x4 homogeneous transform, got {T!r}") from None
    if a.shape != (4, 4):
        raise ValueError(f"{name}: expected a 4x4 homogeneous transform, got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name}: contains NaN or inf")
    R = a[:3, :3]
    if not np.allclose(R @ R.T, np.eye(3), atol=1e-4) or np.linalg.det(R) <= 0:
        raise ValueError(f"{name}: rotation part is not a proper rotation (R R^T != I or det <= 0); pass a "
                         "rigid world-from-end-effector transform")
    return a


# --------------------------------------------------------------------------- standalone robot model

@dataclass(frozen=True)
class RobotModelInfo:
    """Facts about a robosuite robot read from its model (no simulation needed).

    Fields:
        robot: robosuite robot class name (e.g. "Panda").
        arms: arm names in robosuite order (("right",) or ("right", "left")).
        arm_joints: arm name -> joint names (prefixed, e.g. "robot0_joint1").
        torso_joints, head_joints, legs_joints, base_joints: joint names of the other parts.
        grip_sites: arm name -> grip site name (e.g. "gripper0_right_grip_site").
        gripper_dof: arm name -> number of gripper action entries.
        root_body: the robot's root body ("robot0_base"), the standalone model's world origin.
        joint_ranges: joint name -> (low, high) for every robot joint listed above.
        home_qpos: joint name -> robosuite's initial position (``robot_model.init_qpos``, and the
            grippers' ``init_qpos``), radians or metres.
        T_ee_grasp: arm name -> 4x4 pose of the grasp frame in the end-effector (grip site) frame, in
            :class:`d2f_core.Grasp`'s convention: origin between the fingertips (closed), z =
            approach (palm towards fingertips), x = closing axis (the moving jaw's side is +x).
            Measured on the model (see :func:`_grasp_frame`).
        fixed_jaw: arm name -> True when one side of the gripper does not move (Spot's BD gripper:
            the lower jaw is fixed), so an object of width w sits w/2 along +x from the closed tips.
    """

    robot: str
    arms: tuple[str, ...]
    arm_joints: dict[str, tuple[str, ...]]
    torso_joints: tuple[str, ...]
    head_joints: tuple[str, ...]
    legs_joints: tuple[str, ...]
    base_joints: tuple[str, ...]
    grip_sites: dict[str, str]
    gripper_dof: dict[str, int]
    root_body: str
    joint_ranges: dict[str, tuple[float, float]]
    home_qpos: dict[str, float]
    T_ee_grasp: dict[str, np.ndarray]
    fixed_jaw: dict[str, bool]

    def home_q(self, arm: str) -> np.ndarray:
        """(dof,) robosuite's initial joint positions of ``arm``."""
        return np.array([self.home_qpos.get(j, 0.0) for j in self.arm_joints[arm]])

    def standalone_qpos(self, model: Any) -> np.ndarray:
        """Full qpos of the standalone model with every robot joint at its home position."""
        import mujoco

        qpos = np.array(model.qpos0, dtype=np.float64)
        for name, v in self.home_qpos.items():
            jid = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, name)
            if jid >= 0 and model.jnt_type[jid] in (mujoco.mjtJoint.mjJNT_HINGE, mujoco.mjtJoint.mjJNT_SLIDE):
                qpos[model.jnt_qposadr[jid]] = v
        return qpos


def import_robosuite() -> Any:
    """``import robosuite`` without its import-time notices (optional robot packages, mink IK): they
    are logged at WARNING while the package loads and say nothing about d2f's use. Its later
    warnings and errors still show."""
    import logging

    log = logging.getLogger("robosuite_logs")

    def drop(record: logging.LogRecord) -> bool:
        return record.levelno >= logging.ERROR

    log.addFilter(drop)
    try:
        import robosuite
    finally:
        log.removeFilter(drop)
    return robosuite


@contextlib.contextmanager
def quiet_robosuite():
    """Raise robosuite's logger to ERROR for the duration (its model building logs INFO/WARNING
    lines about every part a robot lacks); the previous level is restored afterwards."""
    logger = logging.getLogger("robosuite_logs")
    old = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(old)


@functools.lru_cache(maxsize=16)
def build_robot_model(robot: str) -> tuple[Any, RobotModelInfo]:
    """Compile robosuite robot ``robot`` with its default base and grippers to a ``mujoco.MjModel``.

    The robot's root body is at the world origin (identity pose). Built the way robosuite's
    ``Robot.load_model`` builds it (robot, default base, ``update_joints``, default grippers with
    idn "0_<arm>"), so joint, body and site names equal those of robot 0 in a robosuite env.
    Cached per process (about 0.6-1 s the first time, meshes included). Treat the model as
    read-only.
    """
    configure_headless_gl()
    import mujoco

    import_robosuite()  # registers the robots
    import robosuite.models.robots.compositional  # noqa: F401 - SpotWithArm*, PandaDex*

    with quiet_robosuite():
        return _build_robot_model(mujoco, robot)


def _build_robot_model(mujoco: Any, robot: str) -> tuple[Any, RobotModelInfo]:
    from robosuite.models.bases import robot_base_factory
    from robosuite.models.grippers import gripper_factory
    from robosuite.models.robots import create_robot

    rm = create_robot(robot, idn=0)
    rm.add_base(base=robot_base_factory(rm.default_base, idn=0))
    rm.update_joints()
    rm.update_actuators()
    arms = tuple(rm.arms)
    all_arm = list(rm.arm_joints)
    split = len(all_arm) // len(arms)
    arm_joints = {arm: tuple(all_arm[:split] if arm == "right" else all_arm[split:]) for arm in arms}
    init = np.asarray(rm.init_qpos, dtype=np.float64).ravel()
    joints = list(rm.joints)
    home = {j: float(v) for j, v in zip(joints, init)} if len(init) == len(joints) else {}
    grippers = {}
    for arm in arms:
        g = gripper_factory(rm.default_gripper[arm], idn=f"0_{arm}")
        rm.add_gripper(g, rm.eef_name[arm])
        grippers[arm] = g
        home.update({j: float(v) for j, v in zip(g.joints, np.asarray(g.init_qpos, dtype=np.float64).ravel())})
    model = mujoco.MjModel.from_xml_string(rm.get_xml())
    names = [*all_arm, *rm.torso_joints, *rm.head_joints, *rm.legs_joints, *rm.base_joints]
    ranges = {}
    for n in names:
        jid = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, n)
        if jid < 0:
            continue
        lo, hi = (float(x) for x in model.jnt_range[jid])
        if not model.jnt_limited[jid] or lo >= hi:
            lo, hi = -2 * math.pi, 2 * math.pi
        ranges[n] = (lo, hi)
    info = RobotModelInfo(
        robot=robot, arms=arms, arm_joints=arm_joints,
        torso_joints=tuple(rm.torso_joints), head_joints=tuple(rm.head_joints),
        legs_joints=tuple(rm.legs_joints), base_joints=tuple(rm.base_joints),
        grip_sites={arm: grippers[arm].important_sites["grip_site"] for arm in arms},
        gripper_dof={arm: int(grippers[arm].dof) for arm in arms},
        root_body=rm.root_body, joint_ranges=ranges, home_qpos=home, T_ee_grasp={},
        fixed_jaw={})
    for arm in arms:
        info.T_ee_grasp[arm], info.fixed_jaw[arm] = _grasp_frame(mujoco, model, info, arm, grippers[arm],
                                                                 rm.eef_name[arm])
    return model, info


def _gripper_qpos(mujoco: Any, model: Any, qpos: np.ndarray, gripper: Any, sign: float) -> np.ndarray:
    """qpos with the gripper's position actuators at the targets of action ``sign`` (-1 open, +1 closed),
    mapped as robosuite's GRIP controller does (ctrl = mid + half-range * format_action(sign))."""
    import copy

    g = copy.deepcopy(gripper)
    act = np.zeros(g.dof)
    for _ in range(16):  # Panda/BD integrate the action: saturate
        act = np.asarray(g.format_action(np.full(g.dof, sign)), dtype=np.float64)
    q = np.array(qpos, dtype=np.float64)
    for name, a in zip(g.actuators, act):
        aid = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_ACTUATOR, name)
        if aid < 0 or model.actuator_trntype[aid] != mujoco.mjtTrn.mjTRN_JOINT:
            continue
        lo, hi = model.actuator_ctrlrange[aid]
        jid = model.actuator_trnid[aid, 0]
        q[model.jnt_qposadr[jid]] = (lo + hi) / 2 + (hi - lo) / 2 * float(np.clip(a, -1, 1))
    return q


def _grasp_frame(mujoco: Any, model: Any, info: RobotModelInfo, arm: str, gripper: Any, mount_body: str
                 ) -> tuple[np.ndarray, bool]:
    """T_site_grasp in :class:`d2f_core.Grasp`'s convention, measured on the model.

    Each side of the gripper (robosuite's ``left_fingerpad``/``right_fingerpad`` geoms; when the
    model lost those names, the geoms fixed to the hand vs the geoms moved by a gripper joint) is
    represented by its geoms farthest from the mount (the fingertip). Origin: midpoint of the two
    fingertips with the gripper closed, moved along x to midway between the jaws' contact faces
    (bounding boxes), or onto the fixed jaw's face when one jaw does not move. x (closing axis): the direction in which the right tip
    moves away from the left one as the gripper starts to open, made orthogonal to z. z (approach):
    mount body origin -> origin, snapped to the nearest site axis when within 25 degrees of it.
    Also returns whether the left side stays put while the gripper opens (a fixed jaw).
    """
    site = info.grip_sites[arm]
    sid = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_SITE, site)
    bid_mount = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, mount_body)
    base_q = info.standalone_qpos(model)
    prefix = gripper.naming_prefix
    gids = [g for g in range(model.ngeom) if (mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_GEOM, g) or "")
            .startswith(prefix) and model.geom_contype[g] | model.geom_conaffinity[g]]
    named = gripper.important_geoms

    def ids(names: Sequence[str]) -> list[int]:
        return [i for i in (mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_GEOM, n) for n in names) if i >= 0]

    left, right = ids(named.get("left_fingerpad", [])), ids(named.get("right_fingerpad", []))
    if not left or not right:  # e.g. robosuite's BDGripper: its pad geoms are renamed g0_col...
        moving_bodies = {int(model.jnt_bodyid[mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, j)])
                         for j in gripper.joints}
        def moved(b: int) -> bool:
            while b > 0:
                if b in moving_bodies:
                    return True
                b = int(model.body_parentid[b])
            return False
        left = [g for g in gids if not moved(int(model.geom_bodyid[g]))]
        right = [g for g in gids if moved(int(model.geom_bodyid[g]))]
    if not left or not right or bid_mount < 0:
        return np.eye(4), False
    data = mujoco.MjData(model)

    def tip_geoms(gs: list[int]) -> list[int]:  # the geoms within 1.5 cm of the farthest from the mount
        m = data.xpos[bid_mount]
        dist = np.array([np.linalg.norm(data.geom_xpos[g] - m) for g in gs])
        return [g for g, dd in zip(gs, dist) if dd >= dist.max() - 0.015]

    def tips(q: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        data.qpos[:] = q
        mujoco.mj_kinematics(model, data)
        mean = lambda gs: np.mean([data.geom_xpos[g] for g in tip_geoms(gs)], axis=0)
        return (mean(left), mean(right), data.xpos[bid_mount].copy(), data.site_xmat[sid].reshape(3, 3).copy(),
                data.site_xpos[sid].copy())

    def face(gs: list[int], axis: np.ndarray, side: float) -> float:
        """Extreme coordinate along ``axis`` of the geoms' bounding boxes (side +1: max, -1: min)."""
        vals = []
        for g in tip_geoms(gs):
            R = data.geom_xmat[g].reshape(3, 3)
            c = data.geom_xpos[g] + R @ model.geom_aabb[g, :3]
            half = float(np.abs(R.T @ axis) @ model.geom_aabb[g, 3:])
            vals.append(float(c @ axis) + side * half)
        return max(vals) if side > 0 else min(vals)

    q_closed = _gripper_qpos(mujoco, model, base_q, gripper, 1.0)
    q_open = _gripper_qpos(mujoco, model, base_q, gripper, -1.0)
    lc, rc, mount, R_s, p_s = tips(q_closed)
    ls, rs, _, _, _ = tips(q_closed + 0.2 * (q_open - q_closed))  # slightly open
    origin = (lc + rc) / 2
    x = (rs - ls) - (rc - lc)  # the direction in which the right tip leaves the left one as it opens
    if np.linalg.norm(x) < 1e-6:
        return np.eye(4), False
    lo, _, _, _, _ = tips(q_open)
    fixed = bool(np.linalg.norm(lo - lc) < 1e-4)
    z = origin - mount
    z /= np.linalg.norm(z)
    cos = R_s.T @ z  # snap the approach to a site axis when within 25 degrees of one
    k = int(np.argmax(np.abs(cos)))
    if abs(cos[k]) >= math.cos(math.radians(25.0)):
        z = R_s[:, k] * np.sign(cos[k])
    x = x - (x @ z) * z
    x /= np.linalg.norm(x)
    R_wg = np.stack([x, np.cross(z, x), z], axis=1)
    # the origin along x: midway between the jaws' contact faces (closed), not their centres; with a
    # fixed jaw, on that jaw's face (the object rests against it)
    tips(q_closed)
    mid = face(left, x, +1.0) if fixed else 0.5 * (face(left, x, +1.0) + face(right, x, -1.0))
    origin = origin + (mid - float(origin @ x)) * x
    T = np.eye(4)
    T[:3, :3] = R_s.T @ R_wg
    T[:3, 3] = R_s.T @ (origin - p_s)
    return T, fixed


# --------------------------------------------------------------------------- kinematics

@dataclass(frozen=True)
class IKSettings:
    """Inverse kinematics settings.

    Fields:
        position_tolerance: success threshold on the position error, metres.
        rotation_tolerance: success threshold on the rotation error, radians.
        max_iterations: Levenberg-Marquardt iterations per start.
        restarts: extra starts from seeded random joint vectors after ``q_init`` fails.
        rotation_weight: metres per radian weighing the rotation error against the position error.
        seed: seed of the random restarts (the same call gives the same answer).
        max_step: largest joint step per iteration (norm), radians.
    """

    position_tolerance: float = 1e-3
    rotation_tolerance: float = 1e-2
    max_iterations: int = 150
    restarts: int = 20
    rotation_weight: float = 0.2
    seed: int = 0
    max_step: float = 0.5


class ArmKinematics:
    """FK / Jacobian / IK of one arm on a private ``MjData`` of ``model``.

    Args:
        model: a ``mujoco.MjModel`` holding the robot (standalone robot model or a whole world).
        joint_names: the arm's hinge/slide joints, in order (dof = len).
        site_name: the end-effector site (its origin and frame are the end-effector's).
        qpos: full ``qpos`` to hold the other joints at (default: the model's ``qpos0``).
        mocap: optional (mocap_pos, mocap_quat) to copy into the private data.
        joint_limits: optional dof x 2 limits overriding the model's ranges.
    """

    def __init__(self, model: Any, joint_names: Sequence[str], site_name: str, *, qpos: np.ndarray | None = None,
                 mocap: tuple[np.ndarray, np.ndarray] | None = None,
                 joint_limits: np.ndarray | None = None) -> None:
        import mujoco

        self._mj = mujoco
        self.model = model
        self.data = mujoco.MjData(model)
        if qpos is not None:
            self.data.qpos[:] = np.asarray(qpos, dtype=np.float64)
        if mocap is not None and model.nmocap:
            self.data.mocap_pos[:] = mocap[0]
            self.data.mocap_quat[:] = mocap[1]
        self.joint_names = tuple(joint_names)
        self.dof = len(self.joint_names)
        jids = []
        for n in self.joint_names:
            jid = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, n)
            if jid < 0:
                raise ValueError(f"joint_names: joint {n!r} is not in the model")
            if model.jnt_type[jid] not in (mujoco.mjtJoint.mjJNT_HINGE, mujoco.mjtJoint.mjJNT_SLIDE):
                raise ValueError(f"joint_names: joint {n!r} is not a hinge or slide joint")
            jids.append(jid)
        self.joint_ids = np.array(jids, dtype=np.int64)
        self.qpos_adr = model.jnt_qposadr[self.joint_ids].astype(np.int64)
        self.dof_adr = model.jnt_dofadr[self.joint_ids].astype(np.int64)
        self.site_name = site_name
        self.site_id = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_SITE, site_name)
        if self.site_id < 0:
            raise ValueError(f"site_name: site {site_name!r} is not in the model")
        if joint_limits is None:
            lim = model.jnt_range[self.joint_ids].astype(np.float64).copy()
            unlimited = (~model.jnt_limited[self.joint_ids].astype(bool)) | (lim[:, 0] >= lim[:, 1])
            lim[unlimited] = (-2 * math.pi, 2 * math.pi)
        else:
            lim = np.array(joint_limits, dtype=np.float64)
        self.joint_limits = lim
        self._lo = lim[:, 0].copy()
        self._hi = lim[:, 1].copy()
        self._hinge = model.jnt_type[self.joint_ids] == mujoco.mjtJoint.mjJNT_HINGE
        self._jacp = np.zeros((3, model.nv))
        self._jacr = np.zeros((3, model.nv))
        # contiguous index arrays for cheap column selection
        self._cols = self.dof_adr.copy()

    # ------------------------------------------------------------------ raw (unchecked) calls
    def _forward(self, q: np.ndarray) -> None:
        self.data.qpos[self.qpos_adr] = q
        self._mj.mj_kinematics(self.model, self.data)

    def _pose(self) -> np.ndarray:
        T = np.empty((4, 4))
        T[:3, :3] = self.data.site_xmat[self.site_id].reshape(3, 3)
        T[:3, 3] = self.data.site_xpos[self.site_id]
        T[3] = (0.0, 0.0, 0.0, 1.0)
        return T

    def _jac(self) -> np.ndarray:
        mj = self._mj
        mj.mj_comPos(self.model, self.data)
        mj.mj_jacSite(self.model, self.data, self._jacp, self._jacr, self.site_id)
        J = np.empty((6, self.dof))
        J[:3] = self._jacp[:, self._cols]
        J[3:] = self._jacr[:, self._cols]
        return J

    def fk_raw(self, q: np.ndarray) -> np.ndarray:
        """fk without input validation (q: float64 (dof,)). For inner loops."""
        self._forward(q)
        return self._pose()

    def fk_jacobian_raw(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(T 4x4, J 6 x dof) without input validation. For inner loops."""
        self._forward(q)
        return self._pose(), self._jac()

    # ------------------------------------------------------------------ checked calls
    def fk(self, q: Any) -> np.ndarray:
        return self.fk_raw(check_q(q, self.dof))

    def jacobian(self, q: Any) -> np.ndarray:
        self._forward(check_q(q, self.dof))
        return self._jac()

    def fk_jacobian(self, q: Any) -> tuple[np.ndarray, np.ndarray]:
        """(T, J) for q (dof,), or (N x 4 x 4, N x 6 x dof) for q (N, dof)."""
        try:
            a = np.array(q, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"q: expected (dof,) or (N, dof) joint positions, got {q!r}") from None
        if a.ndim == 1:
            return self.fk_jacobian_raw(check_q(a, self.dof))
        if a.ndim != 2 or a.shape[1] != self.dof:
            raise ValueError(f"q: expected shape ({self.dof},) or (N, {self.dof}) (radians), got {a.shape}")
        if not np.all(np.isfinite(a)):
            raise ValueError("q: contains NaN or inf; joint positions must be finite radians")
        n = a.shape[0]
        Ts = np.empty((n, 4, 4))
        Js = np.empty((n, 6, self.dof))
        for i in range(n):
            Ts[i], Js[i] = self.fk_jacobian_raw(a[i])
        return Ts, Js

    def fk_batch(self, q: Any) -> np.ndarray:
        """N x 4 x 4 poses for q (N, dof)."""
        a = np.array(q, dtype=np.float64)
        if a.ndim != 2 or a.shape[1] != self.dof or not np.all(np.isfinite(a)):
            raise ValueError(f"q: expected finite (N, {self.dof}) joint positions (radians), got shape {a.shape}")
        out = np.empty((a.shape[0], 4, 4))
        for i in range(a.shape[0]):
            out[i] = self.fk_raw(a[i])
        return out

    # ------------------------------------------------------------------ IK
    def _errors(self, T: np.ndarray, target: np.ndarray, position_only: bool, w: float
                ) -> tuple[np.ndarray, float, float]:
        dp = target[:3, 3] - T[:3, 3]
        pe = float(math.sqrt(dp @ dp))
        dr = so3_log(target[:3, :3] @ T[:3, :3].T)
        re = float(math.sqrt(dr @ dr))
        if position_only:
            return dp, pe, re
        return np.concatenate([dp, w * dr]), pe, re

    def _solve_from(self, q0: np.ndarray, target: np.ndarray, position_only: bool, s: IKSettings
                    ) -> tuple[np.ndarray, float, float]:
        w = s.rotation_weight
        conv_p = s.position_tolerance * 1e-2
        conv_r = s.rotation_tolerance * 1e-2
        q = np.clip(q0, self._lo, self._hi)
        T, J = self.fk_jacobian_raw(q)
        e, pe, re = self._errors(T, target, position_only, w)
        cost = float(e @ e)
        lam = 1e-4
        eye = np.eye(self.dof)
        for _ in range(s.max_iterations):
            if pe <= conv_p and (position_only or re <= conv_r):
                break
            A = J[:3] if position_only else np.vstack([J[:3], w * J[3:]])
            H = A.T @ A
            g = A.T @ e
            try:
                dq = np.linalg.solve(H + lam * (eye + np.diag(np.diag(H))), g)
            except np.linalg.LinAlgError:
                lam *= 10.0
                continue
            n = float(np.linalg.norm(dq))
            if n > s.max_step:
                dq *= s.max_step / n
            q_new = np.clip(q + dq, self._lo, self._hi)
            T_new, J_new = self.fk_jacobian_raw(q_new)
            e_new, pe_new, re_new = self._errors(T_new, target, position_only, w)
            cost_new = float(e_new @ e_new)
            if cost_new < cost:
                q, J, e, pe, re, cost = q_new, J_new, e_new, pe_new, re_new, cost_new
                lam = max(lam * 0.3, 1e-9)
            else:
                lam *= 5.0
                if lam > 1e8:
                    break
        return q, pe, re

    def nearest_turn(self, q: np.ndarray, q_ref: np.ndarray) -> np.ndarray:
        """``q`` with every hinge joint moved by whole turns (2 pi k) as close to ``q_ref`` as its limits
        allow: the same pose (fk is unchanged), reached with the least rotation from ``q_ref``. Matters
        for joints with ranges of a turn or more (UR5e +-2 pi, Kinova3's continuous joints), where an IK
        restart may land a full turn away and the arm would swing round to get there."""
        out = np.array(q, dtype=np.float64)
        two_pi = 2.0 * math.pi
        for i in np.nonzero(self._hinge)[0]:
            k = np.round((q_ref[i] - out[i]) / two_pi)
            for kk in (k, k - np.sign(k)) if k != 0 else ():
                v = out[i] + two_pi * kk
                if self._lo[i] <= v <= self._hi[i]:
                    out[i] = v
                    break
        return out

    def ik(self, T_world_ee: Any, q_init: Any = None, *, position_only: bool = False,
           settings: IKSettings | None = None) -> IKResult:
        """Joint positions within limits putting the site at ``T_world_ee`` (see module docstring).

        Starts from ``q_init`` (default: the joint limits' midpoint), then from ``settings.restarts``
        seeded random joint vectors, and returns the first start that meets the tolerances, else
        the best one found (``success=False``). Hinge joints are moved by whole turns towards
        ``q_init`` where their limits allow (:meth:`nearest_turn`). Errors are measured:
        ``position_error`` metres, ``rotation_error`` radians (reported even when ``position_only``).
        """
        s = settings or IKSettings()
        target = check_pose(T_world_ee)
        q0 = (self._lo + self._hi) / 2 if q_init is None else check_q(q_init, self.dof, "q_init")
        rng = np.random.default_rng(s.seed)
        best: tuple[float, np.ndarray, float, float] | None = None
        for k in range(1 + max(0, int(s.restarts))):
            start = q0 if k == 0 else rng.uniform(self._lo, self._hi)
            q, pe, re = self._solve_from(start, target, position_only, s)
            q = self.nearest_turn(q, q0)
            ok = pe <= s.position_tolerance and (position_only or re <= s.rotation_tolerance)
            if ok:
                return IKResult(q=q, success=True, position_error=pe, rotation_error=re)
            score = pe / s.position_tolerance + (0.0 if position_only else re / s.rotation_tolerance)
            if best is None or score < best[0]:
                best = (score, q, pe, re)
        assert best is not None
        return IKResult(q=best[1], success=False, position_error=best[2], rotation_error=best[3])
