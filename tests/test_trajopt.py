"""Rigid-grasp dynamics, the flow-tracking optimiser, B-spline resampling and the trajopt solver.

Ground truth: flows made by moving points rigidly with the Franka's end-effector along a known,
reachable joint trajectory (MuJoCo forward kinematics), so the optimum is known to be exact.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from d2f_core import Grasp, ObjectFlow, Observation, Task
from d2f_core.protocols import Problem

pytest.importorskip("mujoco")
pytest.importorskip("robosuite")

from d2f_core.geometry import so3_exp, so3_log, to_frame  # noqa: E402
from d2f_plugins.dynamics.rigid_grasp import RigidGraspDynamics  # noqa: E402
from d2f_plugins.solver.execution import PhasePolicy, Segment, fit_pose_spline, resample_poses  # noqa: E402
from d2f_plugins.solver.flow_trajopt import optimise_tracking  # noqa: E402
from d2f_plugins.solver.trajopt import TrajoptOptions, TrajoptSolver  # noqa: E402


@pytest.fixture(scope="module")
def franka():
    from d2f_plugins.embodiment.robosuite_robots import FrankaOptions, _franka

    return _franka(FrankaOptions())


def _joint_path(q0: np.ndarray, dq: np.ndarray, K: int) -> np.ndarray:
    s = np.linspace(0.0, 1.0, K)[:, None]
    return q0 + (3 * s ** 2 - 2 * s ** 3) * dq  # smooth start and stop


def _rigid_flow(franka, q_path: np.ndarray, n: int = 80, seed: int = 0, spread: float = 0.04):
    rng = np.random.default_rng(seed)
    T0 = franka.fk(q_path[0])
    pts0 = T0[:3, 3] + rng.normal(0.0, spread, (n, 3))
    local = to_frame(T0, pts0)
    Ts, _ = franka.fk_jacobian(q_path)
    P = np.einsum("kab,nb->kna", Ts[:, :3, :3], local) + Ts[:, None, :3, 3]
    return P, local, Ts


# ---------------------------------------------------------------- rigid-grasp dynamics

def test_rigid_grasp_predicts_known_rigid_motions():
    dyn = RigidGraspDynamics()
    T = np.eye(4)
    T[:3, :3] = so3_exp(np.array([0.1, -0.2, 0.3]))
    T[:3, 3] = [0.4, -0.1, 0.9]
    dyn.attach(T)
    pts = np.random.default_rng(1).normal(0, 0.05, (30, 3)) + T[:3, 3]
    a = np.array([[0.0, 0.0, 0.1, 0.0, 0.0, 0.0], [0.02, -0.01, 0.0, 0.0, 0.0, math.pi / 2]])
    out = dyn.predict(pts, a)
    assert out.shape == (2, 30, 3)
    np.testing.assert_allclose(out[0], pts + [0, 0, 0.1], atol=1e-6)
    # a quarter turn about world z through the end-effector origin, then the translation
    rel = pts - T[:3, 3]
    exp = np.stack([-rel[:, 1], rel[:, 0], rel[:, 2]], 1) + T[:3, 3] + [0.02, -0.01, 0.0]
    np.testing.assert_allclose(out[1], exp, atol=1e-6)
    # moved(local(p), T) is p; moved with another pose is that pose's rigid transform
    np.testing.assert_allclose(dyn.moved(dyn.local(pts), T)[0], pts, atol=1e-12)
    T2 = T.copy()
    T2[:3, 3] += [0.1, 0.0, 0.0]
    np.testing.assert_allclose(dyn.moved(dyn.local(pts), T2)[0], pts + [0.1, 0, 0], atol=1e-12)
    near = dyn.grasped(np.array([[0, 0, 0], [1.0, 0, 0]]), np.zeros(3))
    assert near.tolist() == [True, False]
    with pytest.raises(ValueError, match="actions"):
        dyn.predict(pts, np.zeros((2, 5)))


# ---------------------------------------------------------------- optimiser

def test_optimiser_tracks_a_reachable_flow_within_5mm(franka):
    K = 50
    q_true = _joint_path(np.array(franka.home_q), np.array([0.4, -0.3, 0.2, 0.5, -0.3, 0.4, 0.6]), K)
    P, local, _ = _rigid_flow(franka, q_true)
    vis = np.random.default_rng(2).random(P.shape[:2]) > 0.4  # 40 % of the points hidden per frame
    vis[0] = True
    res = optimise_tracking(franka.fk_jacobian, q_true[0], local, P, vis, franka.joint_limits)
    assert res.converged
    assert res.max_error < 0.005, res.errors
    # every point, visible or not, lands where the true motion put it
    Ts, _ = franka.fk_jacobian(res.q)
    moved = np.einsum("kab,nb->kna", Ts[:, :3, :3], local) + Ts[:, None, :3, 3]
    assert np.max(np.linalg.norm(moved - P, axis=2).mean(1)) < 0.005
    assert np.all(res.q >= franka.joint_limits[:, 0] - 1e-9) and np.all(res.q <= franka.joint_limits[:, 1] + 1e-9)


def test_optimiser_weights_trade_tracking_for_smoothness(franka):
    K = 30
    q_true = _joint_path(np.array(franka.home_q), np.array([0.3, 0.2, -0.2, 0.3, 0.2, -0.3, 0.4]), K)
    P, local, _ = _rigid_flow(franka, q_true, seed=3)
    vis = np.ones(P.shape[:2], bool)
    from d2f_plugins.solver.flow_trajopt import TrajoptWeights

    stiff = optimise_tracking(franka.fk_jacobian, q_true[0], local, P, vis, franka.joint_limits,
                              weights=TrajoptWeights(flow=0.1, smooth=10.0))
    paper = optimise_tracking(franka.fk_jacobian, q_true[0], local, P, vis, franka.joint_limits)
    assert paper.max_error < 0.005 < stiff.max_error  # smoothness dominating lags behind the motion


# ---------------------------------------------------------------- B-spline and resampling

def test_spline_interpolates_and_resampling_keeps_1cm_or_20deg(franka):
    q_path = _joint_path(np.array(franka.home_q), np.array([0.5, -0.2, 0.3, 0.4, 0.8, 0.6, 1.2]), 25)
    Ts, _ = franka.fk_jacobian(q_path)
    path = fit_pose_spline(Ts)
    ends = path(np.array([0.0, 1.0]))
    np.testing.assert_allclose(ends[0], Ts[0], atol=1e-9)
    np.testing.assert_allclose(ends[1][:3, 3], Ts[-1][:3, 3], atol=1e-6)
    assert np.linalg.norm(so3_log(ends[1][:3, :3].T @ Ts[-1][:3, :3])) < 1e-6
    wp = resample_poses(path, 0.01, math.radians(20))
    for a, b in zip(wp[:-2], wp[1:-1]):  # the last step may be shorter (the end is always kept)
        d = np.linalg.norm(b[:3, 3] - a[:3, 3])
        ang = np.linalg.norm(so3_log(a[:3, :3].T @ b[:3, :3]))
        assert d >= 0.01 - 1e-9 or ang >= math.radians(20) - 1e-9
        assert d < 0.02 and ang < math.radians(25)  # and never much more than one step
    fine = path(np.linspace(0, 1, 200))
    # the spline passes near every original pose (it interpolates them)
    for T in Ts:
        assert np.min(np.linalg.norm(fine[:, :3, 3] - T[:3, 3], axis=1)) < 0.003


# ---------------------------------------------------------------- execution policy

class _Obs:
    def __init__(self, q):
        self.joints = np.asarray(q, float)


def test_phase_policy_respects_the_joint_step_and_waits_to_settle():
    sent = []
    pol = PhasePolicy([Segment("move", np.array([[1.0, -0.5]]), 1.0), Segment("grip", np.array([[1.0, -0.5]]), -1.0,
                                                                              hold=3, settle=False)],
                      lambda q, g: np.r_[q, g], max_step=np.array([0.1, 0.1]), tolerance=0.01, max_wait=5)
    q = np.zeros(2)
    while True:
        a = pol.act(_Obs(q))
        if a is None:
            break
        sent.append(a)
        q = q + 0.9 * (a[:2] - q)  # a lagging robot
    qs = np.array([s[:2] for s in sent])
    assert np.max(np.abs(np.diff(np.vstack([np.zeros(2), qs[:10]]), axis=0))) <= 0.1 + 1e-12
    np.testing.assert_allclose(qs[9], [1.0, -0.5])
    assert [s[2] for s in sent][-3:] == [-1.0, -1.0, -1.0]
    assert pol.log[0]["segment"] == "move" and pol.log[0]["settle_error_rad"] <= 0.01


# ---------------------------------------------------------------- the solver

def _problem(franka, P, q_at_grasp, vis=None):
    T_ee = franka.fk(q_at_grasp)
    g = Grasp(T_world_grasp=franka.ee_to_grasp(T_ee), width=0.0, score=1.0)
    flow = ObjectFlow(points=P.astype(np.float32), visible=np.ones(P.shape[:2], bool) if vis is None else vis)
    obs = Observation(rgbd=None, joints=np.array(franka.home_q))
    return Problem(flow=flow, observation=obs, embodiment=franka, task=Task("move it", "thing"), grasp=g,
                   dynamics=RigidGraspDynamics())


def test_solver_plans_a_reachable_flow_and_its_path_reaches_the_end(franka):
    K = 40
    q_true = _joint_path(np.array(franka.home_q) + [0, 0.2, 0, -0.2, 0, 0.2, 0],
                         np.array([0.3, 0.1, -0.2, 0.3, 0.1, -0.2, 0.5]), K)
    P, local, Ts = _rigid_flow(franka, q_true, seed=4, spread=0.03)
    solver = TrajoptSolver(TrajoptOptions())
    pol = solver.solve(_problem(franka, P, q_true[0]))
    info = pol.info
    assert info["executable"], info.get("reason")
    assert info["optimiser"]["max_error_mm"] < 5.0
    follow = next(s for s in pol.segments if s.name == "follow")
    end = franka.fk(follow.q[-1])
    assert np.linalg.norm(end[:3, 3] - Ts[-1][:3, 3]) < 0.005
    assert [s.name for s in pol.segments] == ["pregrasp", "approach", "close", "follow", "release", "retreat"]
    assert info["path"]["waypoints"] >= 3


def test_solver_reports_an_unreachable_flow_and_does_not_execute_it(franka):
    K = 20
    q_true = _joint_path(np.array(franka.home_q), np.zeros(7), K)
    P, _, _ = _rigid_flow(franka, q_true, seed=5, spread=0.03)
    far = P.copy()
    far[K // 2:] += np.array([1.5, 0.0, 0.0])  # the object jumps 1.5 m away: no arm pose follows it
    pol = TrajoptSolver().solve(_problem(franka, far, q_true[0]))
    assert pol.info["executable"] is False and "unreachable" in pol.info["reason"]
    assert pol.act(_Obs(franka.home_q)) is None  # nothing is sent
    assert pol.info["optimiser"]["max_error_mm"] > 30


def test_solver_needs_a_grasp_and_an_object_flow(franka):
    q = np.array(franka.home_q)
    P, _, _ = _rigid_flow(franka, np.repeat(q[None], 3, 0))
    prob = _problem(franka, P, q)
    prob.grasp = None
    with pytest.raises(ValueError, match="grasper"):
        TrajoptSolver().solve(prob)
    prob = _problem(franka, P, q)
    prob.flow = P
    with pytest.raises(ValueError, match="^flow"):
        TrajoptSolver().solve(prob)
    from d2f_plugins.dynamics.heuristic import HeuristicPushDynamics

    prob = _problem(franka, P, q)
    prob.dynamics = HeuristicPushDynamics()  # not a rigid-grasp model: refused, never silently replaced
    with pytest.raises(ValueError, match="^dynamics: solver trajopt .* cannot use 'heuristic'"):
        TrajoptSolver().solve(prob)
    prob.dynamics = None  # none configured: the built-in model, named in the plan
    pol = TrajoptSolver().solve(prob)
    assert pol.info["dynamics"].startswith("rigid-grasp (built-in default")


def test_rigvid_follows_a_rigid_flow_like_trajopt_and_ignores_outlier_tracks(franka):
    from d2f_plugins.solver.trajopt import AvdcSolver, RigvidSolver

    K = 30
    q_true = _joint_path(np.array(franka.home_q) + [0, 0.2, 0, -0.2, 0, 0.2, 0],
                         np.array([0.2, 0.1, -0.2, 0.3, 0.1, -0.2, 0.4]), K)
    P, _, Ts = _rigid_flow(franka, q_true, seed=6, spread=0.03)
    noisy = P.copy()
    noisy[K // 2:, :8] += 0.08  # 10 % of the tracks jump 8 cm: a pose fit (RANSAC) ignores them
    pol = RigvidSolver().solve(_problem(franka, noisy, q_true[0]))
    assert pol.info["executable"], pol.info.get("reason")
    follow = next(s for s in pol.segments if s.name == "follow")
    assert np.linalg.norm(franka.fk(follow.q[-1])[:3, 3] - Ts[-1][:3, 3]) < 0.005
    assert pol.info["rigid_track"]["valid_frames"] == K
    with pytest.raises(ValueError, match="extras"):  # AVDC reads pixels: without the video it says so
        AvdcSolver().solve(_problem(franka, P, q_true[0]))
