"""Checks of embodiments (d2f_core.protocols.Embodiment): description, kinematics, IK."""

from __future__ import annotations

from typing import Any

import numpy as np

from d2f_core.geometry import so3_log

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


def _bound_world(component: Any) -> Any:
    """The world the embodiment is bound to, when it exposes one with action bounds (else None)."""
    world = getattr(component, "world", None)
    if world is None or getattr(world, "action_low", None) is None or getattr(world, "action_high", None) is None:
        return None
    return world


def check_embodiment_joint_action_bounds(component: Any, env: CheckEnv) -> None:
    world = _bound_world(component)
    if world is None:
        raise CheckSkipped("not bound to a world with action_low/action_high (bind(world) first to check "
                           "joint_action)")
    dof, lim = _description(component)
    low = np.asarray(world.action_low, dtype=np.float64)
    high = np.asarray(world.action_high, dtype=np.float64)
    if low.shape != high.shape or low.ndim != 1 or not (np.all(np.isfinite(low)) and np.all(np.isfinite(high))):
        raise CheckSkipped("the bound world's action bounds are not finite 1-D arrays; the world checks report it")
    for q in _samples(lim, 3, seed=4):
        # the default gripper and 1.0 ("closed" in both the [0, 1] and robosuite's [-1, 1] conventions)
        for g in (None, 1.0) if "gripper" in _params(component.joint_action) else (None,):
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
]
