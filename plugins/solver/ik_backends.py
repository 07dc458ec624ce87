"""Inverse-kinematics backends for the trajectory solver: ``mujoco`` and ``pybullet`` (Franka Panda).

``make_ik(name, embodiment, **options)`` returns an object with ``name`` and
``ik(T_world_ee, q_init, *, position_only=False) -> d2f_core.IKResult``:

* ``mujoco``: the embodiment's own IK (``embodiment.ik``: damped least squares on its MuJoCo
  model, with seeded random restarts), judged against overridable tolerances. Needs a
  :class:`d2f_core.protocols.Embodiment` with capability ``ik``.
* ``pybullet``: PyBullet's ``calculateInverseKinematics`` on pybullet_data's
  ``franka_panda/panda.urdf`` (what the Dream2Flow paper uses), for the ``franka`` embodiment.

**Frames** (metres, radians): ``T_world_ee`` is the embodiment's end-effector pose (for ``franka``
robosuite's grip site between the fingertips) in the embodiment's world frame (the bound world's,
or the robot root's when standalone), i.e. what ``embodiment.fk(q)`` returns. The PyBullet robot
sits at the origin of its own private physics world (``pb`` frame = URDF base frame). Two fixed
transforms relate the two models::

    embodiment.fk(q) == T_world_pbbase @ F_pb(q) @ T_pblink_ee

where ``F_pb(q)`` is the URDF link's pose (``link``, default ``panda_grasptarget``: hand + 10.5 cm)
in the pb frame. Both are *calibrated* at construction: least squares over ``calibration_samples``
seeded random joint vectors (starting from ``embodiment.T_world_base``, exact when the URDF base is
the robot root), and the construction fails when the residual exceeds ``max_calibration_error_m``
/ ``max_calibration_error_rad`` (a different robot or different joint conventions). On robosuite's
Panda the joint conventions are identical (same 7 joints, same zero, same signs) and
``T_pblink_ee`` is a rotation of -90 deg (+ 0.5 mrad) about z and 8.5 mm back along z from
``panda_grasptarget``; the residual is ~1e-7 m.

**pybullet IK** per call: the target is converted into the pb frame
(``inv(T_world_pbbase) @ T @ inv(T_pblink_ee)``); the first call is PyBullet's *null-space* IK
(lower/upper limits = the embodiment's joint limits, joint ranges, rest poses = ``q_init``), which
keeps the solution near ``q_init`` and inside the limits; PyBullet's null-space IK leaves mm-level
errors, so further calls (up to ``refinements``) are plain damped least squares (``joint_damping``)
started from the previous solution (joint states reset to it), each with ``max_iterations`` and
``residual_threshold``. With ``position_only`` only the end-effector's origin is aimed at: the
link's target is re-derived before each call from the previous solution's link orientation (the
end-effector is not at the link's origin). Every solution is clipped to the embodiment's joint
limits and its errors are MEASURED with ``embodiment.fk`` (never PyBullet's); the best is returned. ``success`` means
position error <= ``position_tolerance`` and rotation error <= ``rotation_tolerance`` (default: the
embodiment's ``ik_settings``). Each backend object owns one private ``pybullet.DIRECT`` client,
disconnected by ``close()`` (also on garbage collection and ``with``).

Speed (this machine, 2 CPU cores; seeds 0.2 rad from the answer): ``mujoco`` median 0.3 ms per
call, ``pybullet`` median 0.85 ms (p95 ~5-9 ms when all refinements run); building a pybullet
backend (URDF load + calibration) 0.4-0.6 s. An unreachable pose costs ``mujoco`` ~150 ms (its 20
restarts) and ``pybullet`` ~4 ms (``restarts`` 0).

(PyBullet's ``solver=IK_SDLS`` crashed the interpreter (segfault) on this model with pybullet
3.2.x, so only its default DLS solver is used.)

Heavy libraries (pybullet, scipy) are imported when a backend is built, never at module import.
"""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from d2f_core import IKResult
from d2f_core.protocols import Embodiment

__all__ = ["BACKENDS", "MujocoIKOptions", "PybulletIKOptions", "MujocoIK", "PybulletIK", "make_ik"]

BACKENDS: tuple[str, ...] = ("mujoco", "pybullet")
"""Backend names accepted by :func:`make_ik`."""


# --------------------------------------------------------------------------- options

class MujocoIKOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    position_tolerance: float | None = Field(
        default=None, gt=0.0, description="success threshold on the measured position error, metres "
                                          "(default: embodiment.ik_settings.position_tolerance, else 1e-3)")
    rotation_tolerance: float | None = Field(
        default=None, gt=0.0, description="success threshold on the measured rotation error, radians "
                                          "(default: embodiment.ik_settings.rotation_tolerance, else 1e-2)")


class PybulletIKOptions(MujocoIKOptions):
    link: str = Field(default="panda_grasptarget",
                      description="URDF link whose pose PyBullet solves for (e.g. panda_grasptarget, panda_hand); "
                                  "its fixed offset to the embodiment's end-effector is calibrated")
    urdf: str | None = Field(default=None, description="URDF path (default: pybullet_data's franka_panda/panda.urdf)")
    max_iterations: int = Field(default=100, ge=1, le=10000,
                                description="PyBullet maxNumIterations of each calculateInverseKinematics call")
    residual_threshold: float = Field(default=1e-7, gt=0.0,
                                      description="PyBullet residualThreshold of each call (position, metres)")
    refinements: int = Field(default=10, ge=1, le=1000,
                             description="calculateInverseKinematics calls per start (the first null-space, "
                                         "then plain DLS from the previous solution)")
    joint_damping: float = Field(default=1e-3, gt=0.0, le=10.0,
                                 description="PyBullet jointDamping of the refinement calls (DLS damping, "
                                             "dimensionless; its default 0.1 stalls at ~1 mm)")
    null_space: bool = Field(default=True, description="first call: null-space IK with joint limits and rest "
                                                       "poses = q_init (False: plain DLS only, limits by clipping)")
    restarts: int = Field(default=0, ge=0, le=1000,
                          description="extra starts from seeded random joint vectors (rest poses still q_init) "
                                      "when q_init's start fails")
    seed: int = Field(default=0, description="seed of the restarts (same call, same answer)")
    calibration_samples: int = Field(default=12, ge=3, le=1000,
                                     description="random joint vectors fitting T_world_pbbase and T_pblink_ee")
    calibration_seed: int = Field(default=0, description="seed of the calibration joint vectors")
    max_calibration_error_m: float = Field(default=1e-3, gt=0.0,
                                           description="largest accepted calibration residual, metres")
    max_calibration_error_rad: float = Field(default=1e-2, gt=0.0,
                                             description="largest accepted calibration residual, radians")


# --------------------------------------------------------------------------- helpers

def _name(embodiment: Any) -> str:
    return str(getattr(embodiment, "name", type(embodiment).__name__))


def _check_embodiment(embodiment: Any, backend: str) -> tuple[int, np.ndarray]:
    """(dof, joint_limits dof x 2) of an embodiment the backend can drive, else ValueError naming the fix.

    ``mujoco`` runs the embodiment's own IK: it needs a :class:`d2f_core.protocols.Embodiment` with
    capability ``ik``. ``pybullet`` solves on its own model and only measures with the embodiment: it
    needs ``fk(q)`` and ``joint_limits`` (the Embodiment members it reads)."""
    if backend == "mujoco":
        if not isinstance(embodiment, Embodiment) or "ik" not in getattr(embodiment, "capabilities", ()):
            raise ValueError(f"embodiment: {_name(embodiment)!r} is not an Embodiment with capability 'ik' "
                             "(d2f_core.protocols.Embodiment: fk, jacobian, ik, joint_limits, ...); the 'mujoco' IK "
                             "backend runs the embodiment's own ik: use an arm such as franka or robosuite-arm")
    elif not callable(getattr(embodiment, "fk", None)) or getattr(embodiment, "joint_limits", None) is None:
        raise ValueError(f"embodiment: {_name(embodiment)!r} lacks fk(q) or joint_limits; the {backend!r} IK backend "
                         "measures its solutions with the embodiment's fk and keeps them in its joint_limits "
                         "(dof x 2, radians): use an arm embodiment such as franka")
    lim = np.array(embodiment.joint_limits, dtype=np.float64)
    if lim.ndim != 2 or lim.shape[1] != 2 or not np.all(lim[:, 0] < lim[:, 1]):
        raise ValueError(f"embodiment: joint_limits must be dof x 2 (low < high, radians), got shape {lim.shape}")
    return lim.shape[0], lim


def _pose_errors(T: np.ndarray, target: np.ndarray) -> tuple[float, float]:
    """(position error m, rotation error rad) of pose T against target."""
    from d2f_core.geometry import rotation_angle

    return (float(np.linalg.norm(T[:3, 3] - target[:3, 3])),
            rotation_angle(target[:3, :3] @ T[:3, :3].T))


def _tolerances(embodiment: Any, opts: MujocoIKOptions) -> tuple[float, float]:
    """Success thresholds (metres, radians): the options, else the embodiment's optional ``ik_settings``
    extra (documented on d2f_core.protocols.GraspingArm), else 1e-3 m / 1e-2 rad."""
    s = getattr(embodiment, "ik_settings", None)
    p = opts.position_tolerance or float(getattr(s, "position_tolerance", 1e-3))
    r = opts.rotation_tolerance or float(getattr(s, "rotation_tolerance", 1e-2))
    return p, r


def _inputs(T_world_ee: Any, q_init: Any, dof: int) -> tuple[np.ndarray, np.ndarray]:
    from d2f_plugins.embodiment.robosuite_kinematics import check_pose, check_q

    return check_pose(T_world_ee, "T_world_ee"), check_q(q_init, dof, "q_init")


# --------------------------------------------------------------------------- mujoco

class MujocoIK:
    """The embodiment's own IK (``embodiment.ik``), errors re-measured with ``embodiment.fk`` and judged
    against this backend's tolerances (options, else the embodiment's ``ik_settings``). Tolerances given
    here re-judge the embodiment's answer; they do not make its solver iterate longer (robosuite arms
    iterate to 1/100 of their own ``ik_position_tolerance``)."""

    name = "mujoco"

    def __init__(self, embodiment: Any, options: MujocoIKOptions | None = None) -> None:
        self.options = options or MujocoIKOptions()
        self.dof, self.joint_limits = _check_embodiment(embodiment, "mujoco")
        self.embodiment = embodiment
        self.position_tolerance, self.rotation_tolerance = _tolerances(embodiment, self.options)

    def ik(self, T_world_ee: Any, q_init: Any, *, position_only: bool = False) -> IKResult:
        """Joint positions (within joint_limits) putting the end-effector at ``T_world_ee`` (4x4,
        world frame), started from ``q_init`` (dof,); errors measured with ``embodiment.fk``."""
        T, q0 = _inputs(T_world_ee, q_init, self.dof)
        res = self.embodiment.ik(T, q0, position_only=position_only)
        q = np.clip(np.asarray(res.q, dtype=np.float64), self.joint_limits[:, 0], self.joint_limits[:, 1])
        pe, re = _pose_errors(self.embodiment.fk(q), T)
        ok = pe <= self.position_tolerance and (position_only or re <= self.rotation_tolerance)
        return IKResult(q=q, success=bool(ok), position_error=pe, rotation_error=re)

    def close(self) -> None:
        """Nothing to release (for symmetry with the pybullet backend)."""

    def __enter__(self) -> "MujocoIK":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


# --------------------------------------------------------------------------- pybullet

def _import_pybullet() -> Any:
    try:
        import pybullet
    except ImportError as e:
        from d2f_core.registry import PluginUnavailableError

        raise PluginUnavailableError(
            f"IK backend 'pybullet' needs pybullet (not installed: {e}): pip install pybullet "
            "(or pip install 'dream2flow[sim]'), or use the 'mujoco' IK backend") from None
    return pybullet


def _se3(rotvec: np.ndarray, t: np.ndarray) -> np.ndarray:
    from scipy.spatial.transform import Rotation

    T = np.eye(4)
    T[:3, :3] = Rotation.from_rotvec(rotvec).as_matrix()
    T[:3, 3] = t
    return T


class PybulletIK:
    """PyBullet IK on pybullet_data's Franka Panda URDF (see the module docstring).

    Attributes beyond ``name``/``ik``: ``T_world_pbbase`` and ``T_pblink_ee`` (4x4, the calibrated
    fixed transforms), ``calibration_error`` ((metres, radians) largest residual over the
    calibration samples), ``link`` / ``link_index``, ``urdf``, ``position_tolerance``,
    ``rotation_tolerance``, ``joint_limits`` (the embodiment's).
    """

    name = "pybullet"

    def __init__(self, embodiment: Any, options: PybulletIKOptions | None = None) -> None:
        self.options = o = options or PybulletIKOptions()
        self._client: int | None = None
        self.dof, self.joint_limits = _check_embodiment(embodiment, "pybullet")
        if self.dof != 7:
            raise ValueError(f"embodiment: the pybullet IK backend drives the 7-joint Franka Panda URDF; "
                             f"{getattr(embodiment, 'name', '?')!r} has {self.dof} joints (use the 'mujoco' backend)")
        self.embodiment = embodiment
        self.position_tolerance, self.rotation_tolerance = _tolerances(embodiment, o)
        self._p = p = _import_pybullet()
        if o.urdf is None:
            import pybullet_data

            urdf = os.path.join(pybullet_data.getDataPath(), "franka_panda", "panda.urdf")
        else:
            urdf = o.urdf
        if not os.path.isfile(urdf):
            raise ValueError(f"urdf: {urdf} does not exist; give the path of the Franka Panda URDF or leave it "
                             "unset for pybullet_data's franka_panda/panda.urdf")
        self.urdf = urdf
        self._client = p.connect(p.DIRECT)
        try:
            self._robot = p.loadURDF(urdf, useFixedBase=True, physicsClientId=self._client)
            self._find_joints()
            self._calibrate()
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------------ model
    def _find_joints(self) -> None:
        p, c, o = self._p, self._client, self.options
        arm_names = [f"panda_joint{i}" for i in range(1, 8)]
        self._joint_index: list[int] = []   # pybullet joint index of arm joint k
        movable: list[int] = []             # pybullet joint indices of the IK's DoFs, in order
        links: dict[str, int] = {}
        info = [p.getJointInfo(self._robot, j, physicsClientId=c)
                for j in range(p.getNumJoints(self._robot, physicsClientId=c))]
        for j, inf in enumerate(info):
            links[inf[12].decode()] = j
            if inf[2] != p.JOINT_FIXED:
                movable.append(j)
        by_name = {inf[1].decode(): j for j, inf in enumerate(info)}
        missing = [n for n in arm_names if n not in by_name]
        if missing:
            raise ValueError(f"urdf: {self.urdf} has no joints {missing}; the pybullet backend expects the "
                             "Franka Panda URDF (panda_joint1..7)")
        self._joint_index = [by_name[n] for n in arm_names]
        if o.link not in links:
            raise ValueError(f"link: {o.link!r} is not a link of {self.urdf}; choose one of {sorted(links)}")
        self.link = o.link
        self.link_index = links[o.link]
        # IK arrays cover every movable joint: the arm joints get the embodiment's limits, the fingers
        # their URDF ranges (they do not move the link)
        lo, hi = [], []
        for j in movable:
            inf = info[j]
            if j in self._joint_index:
                k = self._joint_index.index(j)
                lo.append(float(self.joint_limits[k, 0]))
                hi.append(float(self.joint_limits[k, 1]))
            else:
                a, b = float(inf[8]), float(inf[9])
                if not a < b:
                    a, b = -math.pi, math.pi
                lo.append(a)
                hi.append(b)
        self._movable = movable
        self._lo = lo
        self._hi = hi
        self._ranges = [b - a for a, b in zip(lo, hi)]
        self._rest_template = [0.5 * (a + b) for a, b in zip(lo, hi)]
        self._damping = [float(self.options.joint_damping)] * len(movable)
        self._arm_slots = [movable.index(j) for j in self._joint_index]  # IK output entry of arm joint k

    def _set(self, q: np.ndarray) -> None:
        p, c = self._p, self._client
        for j, v in zip(self._joint_index, q):
            p.resetJointState(self._robot, j, float(v), physicsClientId=c)

    def _link_pose(self, q: np.ndarray) -> np.ndarray:
        """F_pb(q): the URDF link frame's pose in the pb frame (4x4)."""
        p, c = self._p, self._client
        self._set(q)
        s = p.getLinkState(self._robot, self.link_index, computeForwardKinematics=True, physicsClientId=c)
        T = np.eye(4)
        T[:3, :3] = np.array(p.getMatrixFromQuaternion(s[5]), dtype=np.float64).reshape(3, 3)
        T[:3, 3] = s[4]
        return T

    def fk(self, q: Any) -> np.ndarray:
        """4x4 T_world_ee of PyBullet's model for joints ``q`` (7,), in the embodiment's world frame."""
        from d2f_plugins.embodiment.robosuite_kinematics import check_q

        self._alive()
        return self.T_world_pbbase @ self._link_pose(check_q(q, self.dof, "q")) @ self.T_pblink_ee

    # ------------------------------------------------------------------ calibration
    def _calibrate(self) -> None:
        from scipy.optimize import least_squares
        from scipy.spatial.transform import Rotation

        o = self.options
        lim = self.joint_limits
        rng = np.random.default_rng(o.calibration_seed)
        qs = [lim[:, 0] + (lim[:, 1] - lim[:, 0]) * rng.uniform(0.1, 0.9, self.dof)
              for _ in range(o.calibration_samples)]
        F = np.stack([self._link_pose(q) for q in qs])
        M = np.stack([np.asarray(self.embodiment.fk(q), dtype=np.float64) for q in qs])
        # the optional T_world_base extra (d2f_core.protocols.GraspingArm): a starting guess only
        A0 = np.array(getattr(self.embodiment, "T_world_base", np.eye(4)), dtype=np.float64)
        if A0.shape != (4, 4) or not np.all(np.isfinite(A0)):
            A0 = np.eye(4)
        B0 = np.linalg.inv(A0 @ F[0]) @ M[0]  # exact on sample 0

        def compose(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            return A0 @ _se3(x[0:3], x[3:6]), B0 @ _se3(x[6:9], x[9:12])

        def residual(x: np.ndarray) -> np.ndarray:
            A, B = compose(x)
            P = A @ F @ B
            dp = (P[:, :3, 3] - M[:, :3, 3]).ravel()
            dr = Rotation.from_matrix(np.einsum("nji,njk->nik", P[:, :3, :3], M[:, :3, :3])).as_rotvec().ravel()
            return np.concatenate([dp, 0.1 * dr])  # 0.1 m per radian

        sol = least_squares(residual, np.zeros(12), method="lm", xtol=1e-14, ftol=1e-14, gtol=1e-14)
        A, B = compose(sol.x)
        A[3] = B[3] = (0.0, 0.0, 0.0, 1.0)
        errs = [_pose_errors(A @ f @ B, m) for f, m in zip(F, M)]
        pe, re = max(e[0] for e in errs), max(e[1] for e in errs)
        self.T_world_pbbase = A
        self.T_pblink_ee = B
        self._T_pbbase_world = np.linalg.inv(A)
        self._T_ee_pblink = np.linalg.inv(B)
        self.calibration_error = (pe, re)
        if pe > o.max_calibration_error_m or re > o.max_calibration_error_rad:
            raise ValueError(
                f"embodiment: {getattr(self.embodiment, 'name', '?')!r} does not match {self.urdf} (link "
                f"{self.link}): after calibrating the base and end-effector offsets its fk still differs by "
                f"{pe * 1000:.2f} mm / {re:.4f} rad (limits max_calibration_error_m/_rad); the pybullet backend is "
                "for the franka embodiment (robosuite Panda); use the 'mujoco' backend")

    # ------------------------------------------------------------------ IK
    def _call(self, pos: np.ndarray, quat: np.ndarray | None, q: np.ndarray, rest: np.ndarray,
              null_space: bool) -> np.ndarray:
        p, o = self._p, self.options
        self._set(q)
        kw: dict[str, Any] = dict(maxNumIterations=int(o.max_iterations), residualThreshold=float(o.residual_threshold),
                                  physicsClientId=self._client)
        if quat is not None:
            kw["targetOrientation"] = quat
        if null_space:
            r = list(self._rest_template)
            for k, slot in enumerate(self._arm_slots):
                r[slot] = float(rest[k])
            kw.update(lowerLimits=self._lo, upperLimits=self._hi, jointRanges=self._ranges, restPoses=r)
        else:
            kw["jointDamping"] = self._damping
        sol = np.asarray(p.calculateInverseKinematics(self._robot, self.link_index, pos.tolist(), **kw),
                         dtype=np.float64)
        return sol[self._arm_slots]

    def _solve_from(self, start: np.ndarray, q_init: np.ndarray, T: np.ndarray, pos: np.ndarray,
                    quat: np.ndarray | None, position_only: bool) -> tuple[float, np.ndarray, float, float]:
        """Best (score, q, position error, rotation error) of up to ``refinements`` calls from ``start``.

        ``pos``/``quat``: the URDF link's target in the pb frame. When ``position_only``, ``pos`` is the
        end-effector's target point in the pb frame instead, and each call aims the link's origin at
        it minus the link-to-end-effector offset rotated by the previous solution's link orientation
        (the end-effector is not at the link's origin: 8.5 mm along its z for panda_grasptarget).
        """
        o = self.options
        lo, hi = self.joint_limits[:, 0], self.joint_limits[:, 1]
        tp, tr = self.position_tolerance, self.rotation_tolerance
        offset = self.T_pblink_ee[:3, 3]
        q = np.clip(start, lo, hi)
        best: tuple[float, np.ndarray, float, float] | None = None
        for k in range(o.refinements):
            target = pos - self._link_pose(q)[:3, :3] @ offset if position_only else pos
            sol = self._call(target, quat, q, q_init, null_space=o.null_space and k == 0)
            if not np.all(np.isfinite(sol)):
                break
            q = np.clip(sol, lo, hi)
            pe, re = _pose_errors(self.embodiment.fk(q), T)
            score = pe / tp + (0.0 if position_only else re / tr)
            if best is None or score < best[0]:
                best = (score, q, pe, re)
            if pe <= 0.01 * tp and (position_only or re <= 0.01 * tr):
                break
        if best is None:  # PyBullet returned NaN at once: report the start
            q = np.clip(start, lo, hi)
            pe, re = _pose_errors(self.embodiment.fk(q), T)
            best = (pe / tp + (0.0 if position_only else re / tr), q, pe, re)
        return best

    def ik(self, T_world_ee: Any, q_init: Any, *, position_only: bool = False) -> IKResult:
        """Joint positions (within the embodiment's joint_limits) putting the end-effector at
        ``T_world_ee`` (4x4, world frame), near ``q_init`` (7,); errors measured with ``embodiment.fk``.
        ``position_only``: only the end-effector's origin is aimed at (success ignores rotation)."""
        from scipy.spatial.transform import Rotation

        self._alive()
        T, q0 = _inputs(T_world_ee, q_init, self.dof)
        if position_only:
            pos, quat = (self._T_pbbase_world @ T)[:3, 3], None
        else:
            T_pb = self._T_pbbase_world @ T @ self._T_ee_pblink
            pos, quat = T_pb[:3, 3], Rotation.from_matrix(T_pb[:3, :3]).as_quat()  # x, y, z, w
        lo, hi = self.joint_limits[:, 0], self.joint_limits[:, 1]
        rng = np.random.default_rng(self.options.seed)
        best = None
        for k in range(1 + self.options.restarts):
            start = q0 if k == 0 else rng.uniform(lo, hi)
            cand = self._solve_from(start, q0, T, pos, quat, position_only)
            if best is None or cand[0] < best[0]:
                best = cand
            if best[2] <= self.position_tolerance and (position_only or best[3] <= self.rotation_tolerance):
                break
        assert best is not None
        _, q, pe, re = best
        ok = pe <= self.position_tolerance and (position_only or re <= self.rotation_tolerance)
        return IKResult(q=q, success=bool(ok), position_error=pe, rotation_error=re)

    # ------------------------------------------------------------------ lifetime
    def _alive(self) -> None:
        if self._client is None:
            raise RuntimeError("pybullet IK backend: closed; build a new one with make_ik('pybullet', embodiment)")

    def close(self) -> None:
        """Disconnect the private PyBullet client (idempotent)."""
        c, self._client = getattr(self, "_client", None), None
        if c is not None:
            try:
                self._p.disconnect(physicsClientId=c)
            except Exception:  # already gone (interpreter shutdown)
                pass

    def __del__(self) -> None:
        self.close()

    def __enter__(self) -> "PybulletIK":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


# --------------------------------------------------------------------------- factory

_MODELS: dict[str, type[BaseModel]] = {"mujoco": MujocoIKOptions, "pybullet": PybulletIKOptions}


def make_ik(name: str, embodiment: Any, **options: Any) -> MujocoIK | PybulletIK:
    """The IK backend ``name`` ("mujoco" or "pybullet") for ``embodiment``.

    ``options`` are the fields of :class:`MujocoIKOptions` / :class:`PybulletIKOptions`; unknown or
    invalid ones raise ValueError naming them.
    """
    if not isinstance(name, str) or name not in BACKENDS:
        raise ValueError(f"name: unknown IK backend {name!r}; choose one of "
                         f"{', '.join(repr(b) for b in BACKENDS)}")
    model = _MODELS[name]
    try:
        opts = model(**options)
    except ValidationError as e:
        problems = "; ".join(f"{'.'.join(str(x) for x in err['loc']) or 'options'}: {err['msg']}"
                             for err in e.errors())
        raise ValueError(f"options of IK backend {name!r}: {problems} (valid options: "
                         f"{', '.join(model.model_fields)})") from None
    if name == "mujoco":
        return MujocoIK(embodiment, opts)  # type: ignore[arg-type]
    return PybulletIK(embodiment, opts)  # type: ignore[arg-type]
