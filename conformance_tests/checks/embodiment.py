"""Checks of embodiments (d2f_core.protocols.Embodiment): description, kinematics, IK, the gripper
convention, the GraspingArm protocol, and -- bound to a world (``d2f check NAME --world W``: the
world is built with this embodiment and kept in ``CheckEnv.world``) -- fk/ik/joint_action against
the world's action vector and joint readings."""

from __future__ import annotations

from typing import Any

import numpy as np

from d2f_core.geometry import rotation_angle, so3_log
from d2f_core.protocols import GRIPPER_CLOSED, GRIPPER_OPEN, GraspingArm

from ..results import CheckFailed, CheckSkipped
from ..scenes import CheckEnv
from .common import Check, blocked_by, Snapshot, call, common_checks, expect_value_error, require_cap

N_SAMPLES = 4
FD_STEP = 1e-6
JAC_RTOL = 1e-3
IK_POS_TOL = 1e-3  # metres
IK_ROT_TOL = 0.01  # radians


def _description(component: Any) -> tuple[int, np.ndarray]:
    dof = getattr(component, "dof", None)
    if isinstance(dof, bool) or not isinstance(dof, (int, np.integer)) or dof <= 0:
        blocked_by("embodiment_description", f"dof is {dof!r}")
    try:
        lim = np.asarray(getattr(component, "joint_limits", None), dtype=np.float64)
    except (TypeError, ValueError):
        lim = np.zeros(0)
    if lim.shape != (dof, 2) or not np.all(np.isfinite(lim)) or np.any(lim[:, 0] >= lim[:, 1]):
        blocked_by("embodiment_description", "joint_limits is not a finite dof x 2 array with low < high")
    return int(dof), lim


def _samples(lim: np.ndarray, n: int = N_SAMPLES, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [lim[:, 0] + (lim[:, 1] - lim[:, 0]) * rng.uniform(0.1, 0.9, size=len(lim)) for _ in range(n)]


def _fk(component: Any, q: np.ndarray) -> np.ndarray:
    T = call(f"fk(q={np.round(q, 4).tolist()})", component.fk, np.array(q, copy=True))
    T = np.asarray(T, dtype=np.float64)
    if T.shape != (4, 4):
        raise CheckFailed(f"fk() returned shape {T.shape}, expected a 4x4 homogeneous transform T_world_ee")
    return T


def _rigid_problem(T: np.ndarray) -> str | None:
    if not np.all(np.isfinite(T)):
        return "contains NaN or inf"
    if not np.allclose(T[3], [0, 0, 0, 1], atol=1e-9):
        return f"last row is {T[3].tolist()}, expected [0, 0, 0, 1]"
    R = T[:3, :3]
    if not np.allclose(R @ R.T, np.eye(3), atol=1e-6):
        return "rotation part is not orthonormal (R R^T != I); re-orthonormalise or fix the chain"
    if np.linalg.det(R) < 0:
        return "rotation part has det -1 (a reflection); a frame axis is flipped"
    return None


def check_embodiment_description(component: Any, env: CheckEnv) -> None:
    robot = getattr(component, "robot", None)
    if not isinstance(robot, str) or not robot.strip():
        raise CheckFailed(f"robot is {robot!r}; declare the robot model's identifier (e.g. 'Panda')")
    dof = getattr(component, "dof", None)
    if isinstance(dof, bool) or not isinstance(dof, (int, np.integer)) or dof <= 0:
        raise CheckFailed(f"dof is {dof!r}; declare a positive int (number of joints)")
    names = getattr(component, "joint_names", None)
    if (not isinstance(names, (tuple, list)) or len(names) != dof
            or not all(isinstance(n, str) and n for n in names) or len(set(names)) != len(names)):
        raise CheckFailed(f"joint_names is {names!r}; declare a tuple of {dof} distinct non-empty names")
    lim = np.asarray(getattr(component, "joint_limits", None), dtype=np.float64)
    if lim.shape != (dof, 2):
        raise CheckFailed(f"joint_limits has shape {lim.shape}, expected dof x 2 = ({dof}, 2) rows of (low, high)")
    if not np.all(np.isfinite(lim)):
        raise CheckFailed("joint_limits holds NaN or inf; give finite limits (radians or metres) for every joint, "
                          "e.g. +-2*pi for a continuous joint")
    bad = np.nonzero(lim[:, 0] >= lim[:, 1])[0]
    if bad.size:
        raise CheckFailed(f"joint_limits rows {bad.tolist()} have low >= high; each row is (low, high)")
    vel = np.asarray(getattr(component, "velocity_limits", None), dtype=np.float64)
    if vel.shape != (dof,) or not np.all(np.isfinite(vel)) or np.any(vel <= 0):
        raise CheckFailed(f"velocity_limits is {vel.tolist() if vel.ndim else vel!r}; declare (dof,) finite "
                          "per-joint speed limits > 0 (rad/s or m/s)")


def check_embodiment_fk_rigid(component: Any, env: CheckEnv) -> None:
    _, lim = _description(component)
    for q in _samples(lim):
        problem = _rigid_problem(_fk(component, q))
        if problem:
            raise CheckFailed(f"fk(q={np.round(q, 4).tolist()}) is not a proper rigid transform: {problem}")


def check_embodiment_jacobian_finite_difference(component: Any, env: CheckEnv) -> None:
    dof, lim = _description(component)
    for q in _samples(lim, 3, seed=1):
        J = np.asarray(call("jacobian(q)", component.jacobian, np.array(q, copy=True)), dtype=np.float64)
        if J.shape != (6, dof):
            raise CheckFailed(f"jacobian() returned shape {J.shape}, expected 6 x dof = (6, {dof}), rows (v; omega)")
        Jfd = np.zeros((6, dof))
        for i in range(dof):
            dq = np.zeros(dof)
            dq[i] = FD_STEP
            Tp, Tm = _fk(component, q + dq), _fk(component, q - dq)
            Jfd[:3, i] = (Tp[:3, 3] - Tm[:3, 3]) / (2 * FD_STEP)
            Jfd[3:, i] = so3_log(Tp[:3, :3] @ Tm[:3, :3].T) / (2 * FD_STEP)
        tol = JAC_RTOL * max(1.0, float(np.abs(Jfd).max()))
        lin_ok = np.abs(J[:3] - Jfd[:3]).max() <= tol
        ang_ok = np.abs(J[3:] - Jfd[3:]).max() <= tol
        if lin_ok and ang_ok:
            continue
        where = f"at q={np.round(q, 4).tolist()}"
        if np.abs(J[:3] - Jfd[3:]).max() <= tol and np.abs(J[3:] - Jfd[:3]).max() <= tol:
            raise CheckFailed(f"jacobian rows are ordered (omega; v) {where}; put the linear velocity rows first "
                              "(rows 0-2 = v, rows 3-5 = omega)")
        if not lin_ok:
            col = int(np.argmax(np.abs(J[:3] - Jfd[:3]).max(axis=0)))
            raise CheckFailed(f"linear rows (0-2) of column {col} are {np.round(J[:3, col], 5).tolist()} but finite "
                              f"differences of fk's translation give {np.round(Jfd[:3, col], 5).tolist()} {where}; "
                              "the linear part is d p_ee / d q in the world frame, at the end-effector origin")
        R = _fk(component, q)[:3, :3]
        col = int(np.argmax(np.abs(J[3:] - Jfd[3:]).max(axis=0)))
        hint = ""
        if np.abs(J[3:] - R.T @ Jfd[3:]).max() <= tol:
            hint = ("; they are in the end-effector frame: express them in the world frame "
                    "(omega_world = R_world_ee @ omega_ee)")
        elif np.abs(J[3:] + Jfd[3:]).max() <= tol:
            hint = "; they have the wrong sign"
        raise CheckFailed(f"angular rows (3-5) of column {col} are {np.round(J[3:, col], 5).tolist()} but finite "
                          f"differences of fk's rotation (log(R(q+dq) R(q-dq)^T) / 2dq) give "
                          f"{np.round(Jfd[3:, col], 5).tolist()} {where}{hint}; the angular part is the world-frame "
                          "angular velocity per unit joint speed (the joint axis in world frame for a revolute "
                          "joint, zero for a prismatic one)")


def check_embodiment_ik_round_trip(component: Any, env: CheckEnv) -> None:
    require_cap(component, "ik", "inverse kinematics is not offered")
    dof, lim = _description(component)
    q_init = lim.mean(axis=1)
    for q in _samples(lim, 3, seed=2):
        target = _fk(component, q)
        res = call("ik(T_world_ee, q_init=midpoint)", component.ik, np.array(target, copy=True),
                   q_init=np.array(q_init, copy=True))
        q_sol = getattr(res, "q", None)
        if q_sol is None or not hasattr(res, "success"):
            raise CheckFailed(f"ik() returned {type(res).__name__}, expected d2f_core.IKResult(q, success, "
                              "position_error, rotation_error)")
        q_sol = np.asarray(q_sol, dtype=np.float64)
        if q_sol.shape != (dof,) or not np.all(np.isfinite(q_sol)):
            raise CheckFailed(f"IKResult.q has shape {q_sol.shape} or non-finite values, expected finite ({dof},)")
        if np.any(q_sol < lim[:, 0] - 1e-9) or np.any(q_sol > lim[:, 1] + 1e-9):
            raise CheckFailed(f"IKResult.q {np.round(q_sol, 4).tolist()} leaves the joint limits; clip or constrain "
                              "the solution to joint_limits")
        reached = _fk(component, q_sol)
        pos_err = float(np.linalg.norm(reached[:3, 3] - target[:3, 3]))
        rot_err = float(np.linalg.norm(so3_log(reached[:3, :3] @ target[:3, :3].T)))
        if pos_err > IK_POS_TOL or rot_err > IK_ROT_TOL:
            raise CheckFailed(f"ik(fk(q)) from the limits' midpoint does not reach the pose of q="
                              f"{np.round(q, 4).tolist()}: fk of the solution is {1000 * pos_err:.2f} mm and "
                              f"{rot_err:.4f} rad away (limits {1000 * IK_POS_TOL:g} mm, {IK_ROT_TOL} rad); "
                              "iterate longer, use damped least squares, or restart from several seeds")
        if not bool(res.success):
            raise CheckFailed("ik() reached the target pose but reports success=False; set success when within "
                              "tolerance")


def check_embodiment_rejects_malformed_input(component: Any, env: CheckEnv) -> None:
    dof, lim = _description(component)
    q = lim.mean(axis=1)
    fix = f"check q has shape ({dof},) and is finite, raising ValueError('q: ...')"
    expect_value_error("fk(q)", component.fk, np.zeros(dof + 1), arg="q", given=f"q of length {dof + 1}", fix=fix)
    nan_q = np.array(q, copy=True)
    nan_q[0] = np.nan
    expect_value_error("fk(q)", component.fk, nan_q, arg="q", given="q containing NaN", fix=fix)
    expect_value_error("jacobian(q)", component.jacobian, np.zeros(dof + 1), arg="q",
                       given=f"q of length {dof + 1}", fix=fix)


def check_embodiment_no_input_mutation(component: Any, env: CheckEnv) -> None:
    _, lim = _description(component)
    q = _samples(lim, 1, seed=3)[0]
    snap = Snapshot(q=q)
    call("fk(q)", component.fk, q)
    call("jacobian(q)", component.jacobian, q)
    snap.assert_unchanged("fk()/jacobian()")
    if "ik" in getattr(component, "capabilities", ()):
        T = np.array(_fk(component, q), copy=True)
        q_init = lim.mean(axis=1)
        snap = Snapshot(T_world_ee=T, q_init=q_init)
        call("ik(T_world_ee, q_init)", component.ik, T, q_init=q_init)
        snap.assert_unchanged("ik()")


def _bound_world(component: Any, env: CheckEnv | None = None) -> Any:
    """The world the embodiment is bound to: ``env.world`` (``check_plugin(..., world=...)``), else the
    component's ``world`` attribute, when it has action bounds (else None)."""
    world = getattr(env, "world", None) if env is not None else None
    if world is None:
        world = getattr(component, "world", None)
    if world is None or getattr(world, "action_low", None) is None or getattr(world, "action_high", None) is None:
        return None
    return world


def check_embodiment_joint_action_bounds(component: Any, env: CheckEnv) -> None:
    world = _bound_world(component, env)
    if world is None:
        raise CheckSkipped("not bound to a world with action_low/action_high (d2f check NAME --world WORLD, or "
                           "bind(world) first, to check joint_action)")
    dof, lim = _description(component)
    low = np.asarray(world.action_low, dtype=np.float64)
    high = np.asarray(world.action_high, dtype=np.float64)
    if low.shape != high.shape or low.ndim != 1 or not (np.all(np.isfinite(low)) and np.all(np.isfinite(high))):
        raise CheckSkipped("the bound world's action bounds are not finite 1-D arrays; the world checks report it")
    for q in _samples(lim, 3, seed=4):
        # the default gripper, open and closed (d2f_core.protocols.GRIPPER_OPEN / GRIPPER_CLOSED)
        for g in (None, GRIPPER_OPEN, GRIPPER_CLOSED) if "gripper" in _params(component.joint_action) else (None,):
            args = (np.array(q, copy=True),) if g is None else (np.array(q, copy=True), g)
            a = np.asarray(call(f"joint_action(q={np.round(q, 4).tolist()}" + ("" if g is None else f", {g}") + ")",
                                component.joint_action, *args), dtype=np.float64)
            if a.shape != low.shape:
                raise CheckFailed(f"joint_action() returned shape {a.shape} but the bound world's actions have shape "
                                  f"{low.shape}; return the world's full action vector (every part it controls)")
            if not np.all(np.isfinite(a)):
                raise CheckFailed("joint_action() returned NaN or inf for an in-limit q")
            tol = 1e-9 * np.maximum(1.0, np.maximum(np.abs(low), np.abs(high)))
            bad = np.nonzero((a < low - tol) | (a > high + tol))[0]
            if bad.size:
                i = int(bad[0])
                raise CheckFailed(f"joint_action(q={np.round(q, 4).tolist()}) entry {i} is {a[i]:.6g}, outside the "
                                  f"bound world's action bounds [{low[i]:.6g}, {high[i]:.6g}] ({bad.size} entries "
                                  "out); an in-limit joint target must map to an action the world accepts "
                                  "unclipped (check the controller config and the action layout)")


def check_embodiment_gripper_convention(component: Any, env: CheckEnv) -> None:
    """joint_action takes gripper GRIPPER_OPEN (-1) and GRIPPER_CLOSED (+1); a grasping arm rejects values
    outside [-1, 1] with a ValueError naming 'gripper'."""
    if "gripper" not in _params(component.joint_action):
        raise CheckFailed("joint_action(q_target, gripper=0.0) has no gripper parameter; every embodiment takes one "
                          "(d2f's one convention: -1 open .. +1 closed, d2f_core.protocols.GRIPPER_OPEN/CLOSED), "
                          "even one without a gripper (ignore the value, but validate it)")
    _, lim = _description(component)
    q = lim.mean(axis=1)
    try:
        a_open = component.joint_action(np.array(q, copy=True), GRIPPER_OPEN)
    except RuntimeError as e:
        raise CheckSkipped(f"joint_action needs a bound world ({e}); run d2f check NAME --world WORLD") from None
    except Exception as e:  # noqa: BLE001
        raise CheckFailed(f"joint_action(q, gripper={GRIPPER_OPEN}) raised {type(e).__name__}: {e}; -1 is "
                          "GRIPPER_OPEN (fully open) in d2f's one gripper convention [-1, 1]") from None
    a_closed = call(f"joint_action(q, gripper={GRIPPER_CLOSED})", component.joint_action, np.array(q, copy=True),
                    GRIPPER_CLOSED)
    for label, a in (("open", a_open), ("closed", a_closed)):
        a = np.asarray(a, dtype=np.float64)
        if a.ndim != 1 or not np.all(np.isfinite(a)):
            raise CheckFailed(f"joint_action(q, gripper={label}) returned {a.shape} / non-finite values; return the "
                              "world's 1-D action vector")
    if "grasping" not in getattr(component, "capabilities", ()):
        return  # no gripper: the value may be ignored (it must still be accepted)
    fix = ("validate gripper: raise ValueError('gripper: expected a number in [-1, 1] (-1 open, +1 closed), got ...') "
           "(d2f_core.protocols.GRIPPER_OPEN/GRIPPER_CLOSED)")
    for bad in (GRIPPER_CLOSED + 0.5, GRIPPER_OPEN - 0.5):
        expect_value_error(f"joint_action(q, gripper={bad})", component.joint_action, np.array(q, copy=True), bad,
                           arg="gripper", given=f"gripper={bad}, outside [-1, 1]", fix=fix)


def check_embodiment_grasping_arm(component: Any, env: CheckEnv) -> None:
    """Capability 'grasping' <=> the GraspingArm protocol, with the convention's constants and a consistent grasp frame."""
    declared = "grasping" in getattr(component, "capabilities", ())
    if not declared:
        if isinstance(component, GraspingArm):
            raise CheckFailed("has T_ee_grasp, gripper_open/closed and grasp_to_ee but does not declare capability "
                              "'grasping'; add it so that grasping solvers accept this embodiment")
        raise CheckSkipped("no capability 'grasping' (not a GraspingArm)")
    if not isinstance(component, GraspingArm):
        missing = [m for m in ("T_ee_grasp", "gripper_open", "gripper_closed", "grasp_to_ee")
                   if not hasattr(component, m)]
        raise CheckFailed(f"declares 'grasping' but lacks {', '.join(missing) or 'GraspingArm members'}; a GraspingArm "
                          "(d2f_core.protocols) has T_ee_grasp (4x4), gripper_open, gripper_closed and "
                          "grasp_to_ee(T_world_grasp, width)")
    if (component.gripper_open, component.gripper_closed) != (GRIPPER_OPEN, GRIPPER_CLOSED):
        raise CheckFailed(f"gripper_open/gripper_closed are {component.gripper_open!r}/{component.gripper_closed!r}; "
                          f"d2f's one convention is {GRIPPER_OPEN}/{GRIPPER_CLOSED} (use d2f_core.protocols."
                          "GRIPPER_OPEN/GRIPPER_CLOSED and map to the hardware inside joint_action)")
    T_eg = np.asarray(component.T_ee_grasp, dtype=np.float64)
    problem = _rigid_problem(T_eg) if T_eg.shape == (4, 4) else f"shape {T_eg.shape}, expected 4x4"
    if problem:
        raise CheckFailed(f"T_ee_grasp is not a proper rigid transform: {problem}")
    _, lim = _description(component)
    for q in _samples(lim, 2, seed=5):
        T_ee = _fk(component, q)
        T_grasp = T_ee @ T_eg
        back = np.asarray(call("grasp_to_ee(fk(q) @ T_ee_grasp, width=0)", component.grasp_to_ee, T_grasp, 0.0),
                          dtype=np.float64)
        if back.shape != (4, 4):
            raise CheckFailed(f"grasp_to_ee() returned shape {back.shape}, expected the 4x4 end-effector pose")
        dp = float(np.linalg.norm(back[:3, 3] - T_ee[:3, 3]))
        dr = rotation_angle(back[:3, :3].T @ T_ee[:3, :3])
        if dp > 1e-6 or dr > 1e-6:
            raise CheckFailed(f"grasp_to_ee(fk(q) @ T_ee_grasp, 0) is {1000 * dp:.3f} mm / {dr:.2e} rad from fk(q); "
                              "grasp_to_ee must invert T_ee_grasp: T_world_ee = T_world_grasp @ inv(T_ee_grasp)")


# --------------------------------------------------------------------------- bound to a world

BOUND_STEP_RAD = 0.1
"""Joint offset (radians, or metres for prismatic joints) of the targets the bound checks command."""
BOUND_STEPS = 30
"""World steps the bound checks allow the embodiment to reach a target."""
BOUND_JOINT_TOL = 0.02
"""Largest joint error after BOUND_STEPS steps, radians (metres)."""
BOUND_EE_TOL = 0.01
"""Largest end-effector position error after BOUND_STEPS steps, metres."""
EE_READING_TOL = (0.002, 0.02)
"""fk(joints) vs the world's own end-effector reading (Observation.state ee_pos / ee_xmat): metres, radians."""
NEEDS_WORLD = frozenset({"embodiment_bound_joint_readings", "embodiment_bound_joint_action_tracks",
                         "embodiment_bound_ik_reaches"})
"""Checks that run only with a world (``CheckEnv.world``); without one they are left out, not skipped."""


def _world_or_skip(component: Any, env: CheckEnv) -> Any:
    world = getattr(env, "world", None)
    if world is None:
        raise CheckSkipped("no world: run d2f check NAME --world WORLD (check_plugin(..., world=...)) to check the "
                           "embodiment bound to a world")
    return world


def _joints(obs: Any, dof: int, what: str) -> np.ndarray:
    q = np.asarray(getattr(obs, "joints", None), dtype=np.float64)
    if q.shape != (dof,) or not np.all(np.isfinite(q)):
        raise CheckFailed(f"the world's {what} observation has joints of shape {q.shape} (or non-finite); the "
                          f"embodiment has dof {dof}: Observation.joints must be its (dof,) joint readings")
    return q


def _nearby_target(q0: np.ndarray, lim: np.ndarray, seed: int, sign: float = 1.0) -> np.ndarray:
    """q0 + 0.1 per joint in seeded directions (``sign`` -1: the opposite ones), kept 5 % inside the limits."""
    rng = np.random.default_rng(seed)
    step = sign * BOUND_STEP_RAD * rng.choice([-1.0, 1.0], size=len(q0))
    inner = lim[:, 0] + 0.05 * (lim[:, 1] - lim[:, 0]), lim[:, 1] - 0.05 * (lim[:, 1] - lim[:, 0])
    q_t = q0 + step
    flip = (q_t < inner[0]) | (q_t > inner[1])
    q_t[flip] = q0[flip] - step[flip]
    return np.clip(q_t, inner[0], inner[1])


def _drive(component: Any, world: Any, q_t: np.ndarray, label: str) -> np.ndarray:
    """Step the world BOUND_STEPS times with joint_action(q_t, GRIPPER_OPEN); the final joint readings."""
    low = np.asarray(world.action_low, dtype=np.float64)
    a = np.asarray(call(f"joint_action({label}, gripper=GRIPPER_OPEN)", component.joint_action,
                        np.array(q_t, copy=True), GRIPPER_OPEN), dtype=np.float64)
    if a.shape != low.shape:
        raise CheckFailed(f"joint_action() returned shape {a.shape} but the world's action vector has shape "
                          f"{low.shape}; return the world's full action vector")
    obs = None
    for i in range(BOUND_STEPS):
        obs = call(f"world.step(joint_action({label})) at step {i}", world.step, a)
    return _joints(obs, len(q_t), "step()")


def check_embodiment_bound_joint_readings(component: Any, env: CheckEnv) -> None:
    """After world.reset: the world's joint readings are the embodiment's dof, inside its limits, and fk of
    them is where the world says the end-effector is (when its observation reports it)."""
    world = _world_or_skip(component, env)
    dof, lim = _description(component)
    obs = call("world.reset(0)", world.reset, 0)
    q = _joints(obs, dof, "reset(0)")
    out = np.nonzero((q < lim[:, 0] - 1e-3) | (q > lim[:, 1] + 1e-3))[0]
    if out.size:
        i = int(out[0])
        raise CheckFailed(f"after reset the world reads joint {i} ({component.joint_names[i]}) at {q[i]:.4f}, outside "
                          f"the embodiment's joint_limits [{lim[i, 0]:.4f}, {lim[i, 1]:.4f}]; the limits or the joint "
                          "order do not match the world's robot")
    state = getattr(obs, "state", None) or {}
    if "ee_pos" not in state:
        return
    T = _fk(component, q)
    dp = float(np.linalg.norm(T[:3, 3] - np.asarray(state["ee_pos"], dtype=np.float64)))
    if dp > EE_READING_TOL[0]:
        raise CheckFailed(f"fk(joints) after reset is {1000 * dp:.1f} mm from the world's end-effector reading "
                          f"(Observation.state['ee_pos'], limit {1000 * EE_READING_TOL[0]:g} mm); fk must be in the "
                          "world frame of the bound world (use the robot base pose it is placed at) and end at the "
                          "site the world reports")
    if "ee_xmat" in state:
        R = np.asarray(state["ee_xmat"], dtype=np.float64).reshape(3, 3)
        dr = rotation_angle(T[:3, :3].T @ R)
        if dr > EE_READING_TOL[1]:
            raise CheckFailed(f"fk(joints) after reset is turned {dr:.3f} rad from the world's end-effector "
                              f"orientation (Observation.state['ee_xmat'], limit {EE_READING_TOL[1]} rad); the "
                              "end-effector frame differs from the world's")


def check_embodiment_bound_joint_action_tracks(component: Any, env: CheckEnv) -> None:
    """joint_action(q_target) stepped in the world brings the world's joint readings to q_target (a target
    0.1 away from the reset joints; the opposite one when contact with the scene stops the first)."""
    world = _world_or_skip(component, env)
    dof, lim = _description(component)
    misses = []
    for sign in (1.0, -1.0):
        q0 = _joints(call("world.reset(0)", world.reset, 0), dof, "reset(0)")
        q_t = _nearby_target(q0, lim, seed=6, sign=sign)
        q = _drive(component, world, q_t, "q0 +- 0.1")
        err = np.abs(q - q_t)
        if err.max() <= BOUND_JOINT_TOL:
            return
        i = int(np.argmax(err))
        moved = float(np.abs(q - q0)[i])
        misses.append((i, q[i], q_t[i], err[i], moved))
    i, qi, ti, ei, moved = misses[0]
    hint = ("it did not move: check the action layout (which entries are this arm's) and the controller"
            if all(m[4] < 0.2 * BOUND_STEP_RAD for m in misses) else
            "check the controller gains / action scale, or whether the scene at reset(0) blocks the arm")
    raise CheckFailed(f"after {BOUND_STEPS} steps of joint_action(q_target) joint {i} ({component.joint_names[i]}) "
                      f"reads {qi:.4f}, target {ti:.4f} (error {ei:.4f}, limit {BOUND_JOINT_TOL}; the opposite target "
                      f"missed by {misses[1][3]:.4f} on joint {misses[1][0]}); {hint}")


def check_embodiment_bound_ik_reaches(component: Any, env: CheckEnv) -> None:
    """ik of a nearby reachable pose, commanded through joint_action, puts the world's end-effector (fk of its
    joint readings) at that pose (the opposite nearby pose when contact stops the first)."""
    require_cap(component, "ik", "inverse kinematics is not offered")
    world = _world_or_skip(component, env)
    dof, lim = _description(component)
    misses = []
    for sign in (1.0, -1.0):
        q0 = _joints(call("world.reset(0)", world.reset, 0), dof, "reset(0)")
        target = _fk(component, _nearby_target(q0, lim, seed=7, sign=sign))
        res = call("ik(fk(nearby q), q_init=joints)", component.ik, np.array(target, copy=True), q_init=q0)
        if not bool(getattr(res, "success", False)):
            raise CheckFailed(f"ik() from the world's joints fails on the pose of a joint vector 0.1 rad away "
                              f"({1000 * float(res.position_error):.1f} mm, {float(res.rotation_error):.3f} rad off)")
        q = _drive(component, world, np.asarray(res.q, dtype=np.float64), "ik solution")
        reached = _fk(component, q)
        dp = float(np.linalg.norm(reached[:3, 3] - target[:3, 3]))
        if dp <= BOUND_EE_TOL:
            return
        misses.append(dp)
    raise CheckFailed(f"after {BOUND_STEPS} steps towards ik's solution fk(joint readings) is {1000 * misses[0]:.1f} mm "
                      f"from the target pose ({1000 * misses[1]:.1f} mm for the opposite target; limit "
                      f"{1000 * BOUND_EE_TOL:g} mm); fk/ik and the world's joints disagree, joint_action does not "
                      "drive the joints ik returned, or the scene at reset(0) blocks the arm")

def _params(fn: Any) -> tuple[str, ...]:
    import inspect

    try:
        return tuple(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        return ()


CHECKS: list[Check] = [
    *common_checks("embodiment"),
    Check("embodiment_description", "embodiment", check_embodiment_description,
          "robot, dof > 0, dof joint names, finite dof x 2 limits with low < high, velocity limits > 0"),
    Check("embodiment_fk_rigid", "embodiment", check_embodiment_fk_rigid,
          "fk(q) is a proper 4x4 rigid transform at random in-limit q"),
    Check("embodiment_jacobian_finite_difference", "embodiment", check_embodiment_jacobian_finite_difference,
          "jacobian rows (v; omega) match finite differences of fk (1e-3 relative)"),
    Check("embodiment_ik_round_trip", "embodiment", check_embodiment_ik_round_trip,
          "'ik': fk(q) -> ik from the limits' midpoint -> fk within 1 mm and 0.01 rad"),
    Check("embodiment_rejects_malformed_input", "embodiment", check_embodiment_rejects_malformed_input,
          "q of the wrong length or with NaN raises ValueError naming 'q'"),
    Check("embodiment_no_input_mutation", "embodiment", check_embodiment_no_input_mutation,
          "q, T_world_ee and q_init are unchanged after fk/jacobian/ik"),
    Check("embodiment_joint_action_bounds", "embodiment", check_embodiment_joint_action_bounds,
          "when bound: joint_action of an in-limit q is a finite vector of the world's action shape, within "
          "its action bounds"),
    Check("embodiment_gripper_convention", "embodiment", check_embodiment_gripper_convention,
          "joint_action takes gripper -1 (open) and +1 (closed); a grasping arm rejects values outside [-1, 1] "
          "with a ValueError naming 'gripper'"),
    Check("embodiment_grasping_arm", "embodiment", check_embodiment_grasping_arm,
          "capability 'grasping' <=> the GraspingArm protocol; gripper_open/closed = -1/+1; grasp_to_ee inverts "
          "T_ee_grasp"),
    Check("embodiment_bound_joint_readings", "embodiment", check_embodiment_bound_joint_readings,
          "with --world: after reset the world's joints are (dof,) inside the limits and fk of them matches the "
          "world's end-effector reading (2 mm)"),
    Check("embodiment_bound_joint_action_tracks", "embodiment", check_embodiment_bound_joint_action_tracks,
          "with --world: joint_action(q0 +- 0.1) stepped 30 times brings the joint readings within 0.02 of it"),
    Check("embodiment_bound_ik_reaches", "embodiment", check_embodiment_bound_ik_reaches,
          "with --world: ik of a nearby pose, driven by joint_action, puts fk(joint readings) within 1 cm of it"),
]
