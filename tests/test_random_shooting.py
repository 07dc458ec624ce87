"""``random-shooting`` (MPC along the flow) and the ``heuristic`` model's ``sample_actions``, against ground
truth: the tabletop-2d world's physics, hand-computed scores, a recording dynamics double, a third-party
dynamics plugin installed as a distribution and selected by config, and the pipeline's refusal of a model
the solver cannot use."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from d2f_core import ObjectFlow
from d2f_core.protocols import Problem
from d2f_plugins.dynamics.heuristic import HeuristicOptions, HeuristicPushDynamics
from d2f_plugins.solver.random_shooting import (RandomShootingOptions, RandomShootingSolver, nearest_flow_step,
                                                push_waypoints, score_candidates)
from d2f_plugins.world.tabletop_2d import Tabletop2DOptions, Tabletop2DWorld

BLOCK = (0.10, 0.06, 0.04)  # tabletop-2d's default block, metres


# --------------------------------------------------------------------------- helpers


def top_grid(nx: int = 10, ny: int = 6, inset: float = 0.0025) -> np.ndarray:
    """Particles on the block's top face in the block frame (N x 3, metres)."""
    a, b, h = BLOCK
    xs, ys = np.meshgrid(np.linspace(-a / 2 + inset, a / 2 - inset, nx), np.linspace(-b / 2 + inset, b / 2 - inset, ny))
    return np.stack([xs.ravel(), ys.ravel(), np.full(xs.size, h)], -1)


def placed(local: np.ndarray, x: float, y: float, yaw: float) -> np.ndarray:
    c, s = math.cos(yaw), math.sin(yaw)
    return local @ np.array([[c, s, 0.0], [-s, c, 0.0], [0.0, 0.0, 1.0]]) + [x, y, 0.0]


def linear_flow(pose, shift, dyaw: float = 0.0, T: int = 30) -> ObjectFlow:
    """The block's top-face particles moving from ``pose`` by ``shift`` (m) and ``dyaw`` (rad), T steps."""
    x, y, yaw = pose
    pts = np.stack([placed(top_grid(), x + a * shift[0], y + a * shift[1], yaw + a * dyaw)
                    for a in np.linspace(0.0, 1.0, T)]).astype(np.float32)
    return ObjectFlow(points=pts, visible=np.ones(pts.shape[:2], bool))


class PoseEstimator:
    """Estimator double: the flow's first-frame particles moved by the block's true pose (x, y, yaw)."""

    name = "test-pose-particles"
    capabilities = frozenset({"privileged", "stand_in", "deterministic"})

    def __init__(self, hide: np.ndarray | None = None) -> None:
        self.hide = hide
        self.calls = 0

    def reset(self, obs, flow):
        x, y, yaw = obs.privileged["block_pose"]
        c, s = math.cos(yaw), math.sin(yaw)
        R = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
        self.local = (np.asarray(flow.points[0], np.float64) - [x, y, 0.0]) @ R
        self.visible = np.ones(flow.num_points, bool) if self.hide is None else ~self.hide

    def estimate(self, obs):
        self.calls += 1
        return placed(self.local, *obs.privileged["block_pose"]).astype(np.float32), self.visible.copy()


class FixedEstimator:
    """Estimator double that always returns the given particles."""

    name = "test-fixed"
    capabilities = frozenset({"stand_in"})

    def __init__(self, particles, visible=None):
        self.p = np.asarray(particles, np.float32)
        self.v = np.ones(len(self.p), bool) if visible is None else np.asarray(visible, bool)

    def reset(self, obs, flow):
        pass

    def estimate(self, obs):
        return self.p.copy(), self.v.copy()


class RecordingDynamics:
    """Dynamics double: random candidate pushes; predict = translation by the push plus a fixed per-candidate
    wobble (so the scores are not ordered by anything simple); records every call."""

    name = "test-recording"
    capabilities = frozenset({"particles", "sample_actions", "stand_in"})
    action_dim = 4
    action_names = ("contact_x m", "contact_y m", "push_dx m", "push_dy m")

    def __init__(self):
        self.sampled: list[np.ndarray] = []
        self.predicted: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []

    def sample_actions(self, points, n, rng):
        c = points[:, :2].mean(axis=0)
        theta = rng.uniform(-np.pi, np.pi, n)
        d = np.stack([np.cos(theta), np.sin(theta)], -1)
        length = rng.uniform(0.01, 0.04, n)
        a = np.concatenate([c - 0.07 * d, length[:, None] * d], axis=1)
        self.sampled.append(a.copy())
        return a

    def predict(self, points, actions):
        wobble = 0.01 * np.sin(np.arange(len(actions)) * 1.7)[:, None, None]
        out = points[None].astype(np.float64) + np.pad(actions[:, None, 2:4], ((0, 0), (0, 0), (0, 1))) + wobble
        out = out.astype(np.float32)
        self.predicted.append((np.array(points), np.array(actions), out.copy()))
        return out


def world(**kw) -> Tabletop2DWorld:
    return Tabletop2DWorld(Tabletop2DOptions(render_observations=False, **kw))


def episode(agent, w, seed, horizon=250):
    obs = w.reset(seed)
    agent.reset(obs)
    steps = 0
    for _ in range(horizon):
        a = agent.act(obs)
        if a is None:
            break
        obs = w.step(a)
        steps += 1
    return steps


def start_pose(w, seed=0):
    """The block's pose (x, y, yaw) after ``reset(seed)``."""
    w.reset(seed)
    return w.privileged_state()["block_pose"]


def problem(w, flow, dynamics, estimator, seed=0) -> Problem:
    obs = w.reset(seed)
    return Problem(flow=flow, observation=obs, embodiment=w.embodiment, task=w.task, dynamics=dynamics,
                   estimator=estimator, world=w, seed=seed)


# --------------------------------------------------------------------------- heuristic.sample_actions


def test_sampled_pushes_start_outside_and_cross_the_object():
    pts = placed(top_grid(), 0.02, -0.01, 0.4)
    dyn = HeuristicPushDynamics()
    o = dyn.options
    a = dyn.sample_actions(pts.astype(np.float32), 400, np.random.default_rng(3))
    assert a.shape == (400, 4) and np.all(np.isfinite(a))
    length = np.hypot(a[:, 2], a[:, 3])
    assert np.all((length >= o.push_length[0] - 1e-12) & (length <= o.push_length[1] + 1e-12))
    d = a[:, 2:4] / length[:, None]
    perp = np.stack([-d[:, 1], d[:, 0]], -1)
    rel = pts[None, :, :2] - a[:, None, :2]                       # particles from the contact point
    along = (rel * d[:, None]).sum(-1)
    across = np.abs((rel * perp[:, None]).sum(-1))
    on_line = across <= o.sample_band
    assert on_line.any(axis=1).all()                              # every push line crosses the object
    ahead = np.where(on_line, along, np.inf).min(axis=1)
    np.testing.assert_allclose(ahead, o.sample_margin, rtol=0, atol=1e-6)  # just behind the rearmost one
    # different directions and contact points: every quadrant of direction, contacts all around the block
    ang = np.arctan2(d[:, 1], d[:, 0])
    assert np.histogram(ang, bins=8, range=(-np.pi, np.pi))[0].min() > 20
    side = np.arctan2(a[:, 1] + 0.01, a[:, 0] - 0.02)
    assert np.histogram(side, bins=8, range=(-np.pi, np.pi))[0].min() > 10
    # seeded: same rng state, same pushes; another seed, other pushes
    np.testing.assert_array_equal(a, dyn.sample_actions(pts.astype(np.float32), 400, np.random.default_rng(3)))
    assert not np.allclose(a, dyn.sample_actions(pts.astype(np.float32), 400, np.random.default_rng(4)))


def test_sample_actions_validates():
    dyn = HeuristicPushDynamics()
    pts = top_grid().astype(np.float32)
    with pytest.raises(ValueError, match="^n: "):
        dyn.sample_actions(pts, 0, np.random.default_rng(0))
    with pytest.raises(ValueError, match="^rng: "):
        dyn.sample_actions(pts, 5, 0)
    with pytest.raises(ValueError, match="^points"):
        dyn.sample_actions(pts[:, :2], 5, np.random.default_rng(0))
    with pytest.raises(ValueError, match="push_length"):
        from d2f_core import get_registry
        get_registry().create("dynamics", "heuristic", {"push_length": [0.05, 0.01]})


@pytest.mark.parametrize("push", [(0.0, -0.045, 0.0, 0.03), (0.03, -0.045, 0.0, 0.03), (-0.065, 0.01, 0.04, 0.0),
                                  (0.035, -0.045, 0.01, 0.03)])
def test_quasi_static_rotation_matches_the_tabletop_physics(push):
    """rotation="quasi-static" against tabletop-2d's own contact model: the pusher's tip (radius 1 cm) driven
    from the contact point along the push; centred pushes translate, off-centre ones turn."""
    cx, cy, dx, dy = push
    w = world()
    w.reset(0)
    w.set_state(block_pose=(0.0, 0.0, 0.0), pusher=(cx, cy, 0.06))
    for k in range(2):
        w.step(np.array([cx, cy, 0.02]))
    for k in range(1, 11):
        w.step(np.array([cx + dx * k / 10, cy + dy * k / 10, 0.02]))
    true = placed(top_grid(20, 12), *w.privileged_state()["block_pose"])
    p0 = top_grid(20, 12).astype(np.float32)
    model = HeuristicPushDynamics(HeuristicOptions(rotation="quasi-static", pusher_radius=0.01))
    pred = model.predict(p0, np.array([push]))[0]
    moved = np.linalg.norm(true - p0, axis=1).mean()
    err = np.linalg.norm(pred - true, axis=1).mean()
    assert moved > 0.012 and err < 0.003, (moved, err)         # within 3 mm of the physics
    paper = HeuristicPushDynamics().predict(p0, np.array([push]))[0]  # the default is still the paper's
    np.testing.assert_allclose(paper, p0 + [dx, dy, 0.0], atol=1e-7)


def test_quasi_static_push_that_misses_moves_nothing():
    p0 = top_grid().astype(np.float32)
    model = HeuristicPushDynamics(HeuristicOptions(rotation="quasi-static"))
    out = model.predict(p0, np.array([[0.0, -0.1, 0.05, 0.0], [0.2, 0.0, 0.0, 0.0]]))
    np.testing.assert_array_equal(out[0], p0)  # the line y = -0.1 passes beside the block
    np.testing.assert_array_equal(out[1], p0)  # zero length


# --------------------------------------------------------------------------- the solver's parts


def test_nearest_flow_step_and_scores_by_hand():
    flow = linear_flow((0.0, 0.0, 0.0), (0.1, 0.0), T=11)
    pts = np.asarray(flow.points, np.float64)
    cur = pts[4] + [0.002, 0.0, 0.0]
    t, dist = nearest_flow_step(pts, flow.visible, cur, np.ones(len(cur), bool))
    assert t == 4 and dist[4] == pytest.approx(0.002) and dist[5] == pytest.approx(0.008)
    vis = np.zeros(len(cur), bool)
    vis[:3] = True
    fv = np.array(flow.visible)
    fv[4, :3] = False  # step 4 shares no visible point with the estimate: never chosen
    t, dist = nearest_flow_step(pts, fv, cur, vis)
    assert t == 5 and math.isinf(dist[4])
    # a flow resting for its first 5 steps (the hand approaching): t* moves on to the last resting step
    rest = np.concatenate([pts[:1] + np.array([0.0, 0.0003, 0.0]) * np.arange(4)[:, None, None], pts])
    t, _ = nearest_flow_step(rest, np.ones(rest.shape[:2], bool), pts[0], np.ones(len(cur), bool))
    assert t == 0  # steps 1-3 are 0.3-0.9 mm off: without tolerance, t* is the nearest
    t, _ = nearest_flow_step(rest, np.ones(rest.shape[:2], bool), pts[0], np.ones(len(cur), bool), tolerance=0.001)
    assert t == 4  # not 5: the next step is 1 cm on
    pred = np.stack([pts[2], pts[3] + [0.0, 0.003, 0.0]])
    mask = np.ones(pts.shape[1], bool)
    np.testing.assert_allclose(score_candidates(pred, pts[3], mask), [0.01, 0.003], atol=1e-6)


def test_push_waypoints_table():
    wp = push_waypoints(np.array([0.1, 0.0, 0.0, 0.03]), np.array([0.0, 0.0, 0.01]), z_travel=0.07, z_push=0.02,
                        backoff=0.01)
    np.testing.assert_allclose(np.stack(wp), [[0.0, 0.0, 0.07],    # lift: the tip was below travel height
                                              [0.1, -0.01, 0.07],  # above the start, 1 cm behind the contact
                                              [0.1, -0.01, 0.02],  # descend
                                              [0.1, 0.03, 0.02],   # push by (0, 0.03)
                                              [0.1, 0.03, 0.07]])  # lift
    assert len(push_waypoints(np.array([0.1, 0.0, 0.0, 0.03]), np.array([0.0, 0.0, 0.1]), 0.07, 0.02, 0.01)) == 4


def test_subgoal_is_t_star_plus_lookahead_clipped():
    w = world()
    flow = linear_flow(start_pose(w), (0.1, 0.0), T=50)
    for at, want_t, want_sub in ((7, 7, 27), (40, 40, 49)):
        est = FixedEstimator(flow.points[at])
        agent = RandomShootingSolver(RandomShootingOptions(num_samples=8)).solve(
            problem(w, flow, HeuristicPushDynamics(), est))
        agent.reset(w.reset(0))
        assert agent.act(w.reset(0)) is not None
        h = agent.info["history"][0]
        assert (h["t_star"], h["subgoal_t"]) == (want_t, want_sub)
    agent = RandomShootingSolver(RandomShootingOptions(lookahead=3, num_samples=8)).solve(
        problem(w, flow, HeuristicPushDynamics(), FixedEstimator(flow.points[7])))
    agent.reset(w.reset(0))
    agent.act(w.reset(0))
    assert agent.info["history"][0]["subgoal_t"] == 10


# --------------------------------------------------------------------------- the agent


def test_best_push_is_the_argmin_of_one_batched_prediction_per_replan():
    w = world()
    w.reset(2)
    pose = w.privileged_state()["block_pose"]
    flow = linear_flow(pose, (0.08, -0.03), T=40)
    dyn = RecordingDynamics()
    opts = RandomShootingOptions(num_samples=200, max_pushes=4)
    agent = RandomShootingSolver(opts).solve(problem(w, flow, dyn, PoseEstimator(), seed=2))
    obs = w.reset(2)
    agent.reset(obs)
    first_actions = []
    for _ in range(120):
        a = agent.act(obs)
        if a is None:
            break
        if len(first_actions) < len(dyn.predicted):
            first_actions.append(a)
        obs = w.step(a)
    replans = agent.info["replans"]
    assert replans == 4 == len(dyn.predicted) == len(dyn.sampled)  # exactly one batched predict per replan
    fp = np.asarray(flow.points, np.float64)
    for k, (pts, actions, out) in enumerate(dyn.predicted):
        assert actions.shape == (200, 4) and out.shape == (200, pts.shape[0], 3)
        np.testing.assert_array_equal(actions, dyn.sampled[k])      # the sampled candidates, all of them
        # recompute t*, the subgoal and every score by hand from what the model was given
        d = np.linalg.norm(fp - pts[None].astype(np.float64), axis=-1).mean(axis=1)
        t_star = int(np.argmin(d))
        while t_star + 1 < len(d) and d[t_star + 1] <= d.min() + opts.t_star_tolerance:
            t_star += 1  # steps as near within 1 mm, right after the nearest: reached too
        sub = fp[min(t_star + opts.lookahead, len(fp) - 1)]
        scores = np.linalg.norm(out.astype(np.float64) - sub[None], axis=-1).mean(axis=1)
        best = int(np.argmin(scores))
        h = agent.info["history"][k]
        assert h["t_star"] == t_star and h["rank"] == 0
        np.testing.assert_allclose(h["action"], actions[best], atol=1e-5)
        assert h["best_score_m"] == pytest.approx(scores[best], abs=1e-5)
        # the first world action heads for the travel height above the start, 1 cm behind the contact
        c, push = actions[best, :2], actions[best, 2:]
        start = c - opts.backoff * push / np.linalg.norm(push)
        z_travel = np.percentile(pts[:, 2], 95) + opts.travel_height
        np.testing.assert_allclose(first_actions[k], [*start, z_travel], atol=1e-6)
    assert agent.info["stopped"].startswith("max_pushes (4)")
    assert agent.act(obs) is None  # done stays done


def test_reaches_a_reachable_subgoal_when_the_model_is_the_world():
    """Planning alone: the particles move exactly as the heuristic model says (the chosen push applied to
    them) and the pusher reaches every waypoint: the agent drives them onto the flow's final step and stops."""
    from d2f_core import Observation
    from d2f_plugins.embodiment.point_mass import PointMass

    emb = PointMass()
    model = HeuristicPushDynamics()
    for seed in (0, 1, 2):
        flow = linear_flow((0.01, -0.02, 0.3), (0.07, -0.04), T=40)
        est = FixedEstimator(flow.points[0])
        prob = Problem(flow=flow, observation=Observation(rgbd=None, joints=[0.0, -0.2, 0.1]), embodiment=emb,
                       task=None, dynamics=model, estimator=est, seed=seed)
        agent = RandomShootingSolver(RandomShootingOptions(num_samples=256)).solve(prob)
        tip = np.array([0.0, -0.2, 0.1])
        agent.reset(Observation(rgbd=None, joints=tip))
        for _ in range(300):
            before = len(agent.info["history"])
            a = agent.act(Observation(rgbd=None, joints=tip))
            if a is None:
                break
            if len(agent.info["history"]) > before:  # a replan chose a push: the "world" applies it exactly
                est.p = model.predict(est.p, np.array([agent.info["history"][-1]["action"]]))[0]
            tip = a  # the point-mass tip reaches its target
        final = np.linalg.norm(est.p - flow.points[-1], axis=1).mean()
        assert agent.info["stopped"].startswith("particles within 0.005 m"), agent.info["stopped"]
        assert final <= 0.005
        ts = agent.info["t_star"]
        assert ts[0] == 0 and ts[-1] >= flow.num_frames - 4 and ts == sorted(ts), ts  # it moved along the flow


def test_reaches_a_reachable_subgoal_with_the_heuristic_model_on_the_physics():
    """The paper's heuristic model (translation only) pushes the real block (tabletop-2d physics) onto a
    translated copy of itself: the block's centre ends within 1 cm of the target. (Off-centre pushes also
    turn the block, which that model cannot see or undo: the yaw is not asserted.)"""
    for seed in (0, 1, 2):
        w = world()
        pose = start_pose(w, seed)
        shift = (0.06, 0.02)
        flow = linear_flow(pose, shift, T=30)
        agent = RandomShootingSolver(RandomShootingOptions(num_samples=256)).solve(
            problem(w, flow, HeuristicPushDynamics(), PoseEstimator(), seed=seed))
        episode(agent, w, seed)
        x, y, _ = w.privileged_state()["block_pose"]
        err = math.hypot(x - pose[0] - shift[0], y - pose[1] - shift[1])
        assert err < 0.01, (seed, err, agent.info["stopped"])
        assert 1 <= agent.info["pushes"] == agent.info["replans"] == len(agent.info["best_scores_m"])
        assert agent.info["history"][0]["to_final_m"] > 0.06


def test_turns_the_block_with_the_quasi_static_model():
    """A subgoal that needs a 30 degree turn: reached (position and yaw) with rotation="quasi-static"."""
    w = world()
    w.reset(3)
    pose = w.privileged_state()["block_pose"]
    flow = linear_flow(pose, (0.05, 0.03), dyaw=math.radians(30), T=30)
    dyn = HeuristicPushDynamics(HeuristicOptions(rotation="quasi-static", pusher_radius=0.01))
    agent = RandomShootingSolver(RandomShootingOptions(num_samples=256)).solve(problem(w, flow, dyn, PoseEstimator(),
                                                                                        seed=3))
    episode(agent, w, 3)
    x, y, yaw = w.privileged_state()["block_pose"]
    assert math.hypot(x - pose[0] - 0.05, y - pose[1] - 0.03) < 0.01
    assert abs(math.degrees(yaw - pose[2]) - 30) < 6
    assert agent.info["stopped"].startswith("particles within")


def test_invisible_particles_are_not_used():
    w = world()
    w.reset(1)
    flow = linear_flow(w.privileged_state()["block_pose"], (0.05, 0.0), T=20)
    hide = np.zeros(flow.num_points, bool)
    hide[::2] = True
    dyn = RecordingDynamics()
    agent = RandomShootingSolver(RandomShootingOptions(num_samples=16)).solve(
        problem(w, flow, dyn, PoseEstimator(hide=hide), seed=1))
    obs = w.reset(1)
    agent.reset(obs)
    agent.act(obs)
    assert dyn.predicted[0][0].shape == (int((~hide).sum()), 3)


def test_deterministic_and_reset_reseeds():
    w = world()
    w.reset(4)
    flow = linear_flow(w.privileged_state()["block_pose"], (0.06, 0.0), T=20)
    agent = RandomShootingSolver(RandomShootingOptions(num_samples=64, max_pushes=3)).solve(
        problem(w, flow, HeuristicPushDynamics(), PoseEstimator(), seed=4))

    def actions():
        obs = w.reset(4)
        agent.reset(obs)
        out = []
        while (a := agent.act(obs)) is not None and len(out) < 100:
            out.append(a)
            obs = w.step(a)
        return np.stack(out)

    np.testing.assert_array_equal(actions(), actions())


def test_solve_refuses_what_it_cannot_use():
    w = world()
    flow = linear_flow(start_pose(w), (0.05, 0.0), T=5)
    solver = RandomShootingSolver()

    class NoSampling:
        name = "no-sampling"
        action_dim = 4

        def predict(self, points, actions):
            return np.repeat(points[None], len(actions), 0)

    class WrongDim(RecordingDynamics):
        name = "wrong-dim"
        action_dim = 3

    cases = [
        (problem(w, np.asarray(flow.points), HeuristicPushDynamics(), PoseEstimator()), "^flow: expected"),
        (problem(w, flow, None, PoseEstimator()), "^dynamics: solver random-shooting predicts"),
        (problem(w, flow, NoSampling(), PoseEstimator()), "^dynamics: .*'no-sampling' lacks sample_actions"),
        (problem(w, flow, WrongDim(), PoseEstimator()), "^dynamics: .*planar pushes.*'wrong-dim' has action_dim 3"),
        (problem(w, flow, HeuristicPushDynamics(), None), "^estimator: solver random-shooting"),
    ]
    for prob, match in cases:
        with pytest.raises(ValueError, match=match):
            solver.solve(prob)


def test_an_estimate_of_the_wrong_shape_is_named():
    w = world()
    flow = linear_flow(start_pose(w), (0.05, 0.0), T=5)
    agent = RandomShootingSolver().solve(problem(w, flow, HeuristicPushDynamics(), FixedEstimator(np.zeros((3, 3)))))
    obs = w.reset(0)
    agent.reset(obs)
    with pytest.raises(ValueError, match=r"^estimator: 'test-fixed' returned particles \(3, 3\)"):
        agent.act(obs)


# --------------------------------------------------------------------------- registry, pipeline, conformance


def test_manifest_declares_what_it_uses():
    from d2f_core import get_registry
    m = get_registry().get("solver", "random-shooting").manifest
    assert m.uses == {"dynamics": "sample_actions", "estimator": None}
    assert {"replans", "needs_dynamics", "needs_estimator"} <= m.capabilities
    assert "sample_actions" in get_registry().get("dynamics", "heuristic").manifest.capabilities


TABLETOP = {"name": "rs", "world": {"plugin": "tabletop-2d", "options": {"width": 64, "height": 48}},
            "embodiment": {"plugin": "point-mass"}, "solver": {"plugin": "random-shooting"}}


@pytest.mark.parametrize("extra,match", [
    ({"dynamics": {"plugin": "rigid-grasp"}, "estimator": {"plugin": "sim-particles"}},
     r"^dynamics.plugin: solver 'random-shooting' needs a dynamics with capability 'sample_actions'; "
     r"'rigid-grasp' lacks it .*use one that has it: .*heuristic"),
    ({"estimator": {"plugin": "sim-particles"}}, r"^dynamics: solver 'random-shooting' needs a dynamics"),
    ({"dynamics": {"plugin": "heuristic"}}, r"^estimator: solver 'random-shooting' needs a estimator"),
])
def test_pipeline_refuses_before_any_stage(tmp_path, extra, match):
    from d2f_core import get_registry
    from d2f_core.config import config_from_dict
    from d2f_core.pipeline import Run
    from d2f_core.registry import PluginError

    run = Run(config=config_from_dict({**TABLETOP, **extra}), out_dir=tmp_path / "r", registry=get_registry())
    with pytest.raises(PluginError, match=match):
        run.execute()
    assert not (tmp_path / "r" / "stages").exists()


def test_trajopt_refuses_a_model_it_cannot_use_before_any_stage(tmp_path):
    """`d2f run demo --set dynamics.plugin=heuristic`: exit 2, one line, no stage folder."""
    from d2f_core import get_registry
    reg = get_registry()
    for kind, name in (("solver", "trajopt"), ("world", "robosuite")):
        why = reg.unavailable_reason(reg.get(kind, name).manifest)
        if why:
            pytest.skip(f"{name} unavailable here: {why}")
    out = tmp_path / "run"
    p = subprocess.run([sys.executable, "-m", "d2f_core.cli", "run", "demo", "--set", "dynamics.plugin=heuristic",
                        "--out", str(out)], capture_output=True, text=True, timeout=120)
    assert p.returncode == 2, p.stderr
    lines = [ln for ln in p.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: dynamics.plugin: solver 'trajopt' needs a dynamics with "
                                                   "capability 'rigid_grasp'; 'heuristic' lacks it"), p.stderr
    assert "Traceback" not in p.stderr
    assert not (out / "stages").exists() and not (out / "result.json").exists()


def tabletop_problem(env=None, seed: int = 3) -> Problem:
    """A random-shooting Problem on tabletop-2d for the solver conformance checks."""
    w = world(horizon=60)
    w.reset(seed)
    flow = linear_flow(w.privileged_state()["block_pose"], (0.05, 0.02), T=20)
    return problem(w, flow, HeuristicPushDynamics(), PoseEstimator(), seed=seed)


def test_solver_conformance_on_a_push_problem():
    from d2f_conformance import all_passed, check_component, format_results
    results = check_component(RandomShootingSolver(RandomShootingOptions(num_samples=64)), "solver",
                              problem_factory=tabletop_problem)
    assert all_passed(results), format_results(results)
    assert {r.check for r in results if r.status == "passed"} >= {
        "solver_returns_policy", "solver_actions_within_bounds", "solver_determinism", "solver_no_input_mutation",
        "solver_rejects_malformed_input"}


def test_heuristic_conformance():
    from d2f_conformance import all_passed, check_plugin, format_results
    for opts in (None, {"rotation": "quasi-static", "pusher_radius": 0.01}):
        results = check_plugin("heuristic", "dynamics", options=opts)
        assert all_passed(results), format_results(results)


# --------------------------------------------------------------------------- a third-party dynamics plugin

ACME = '''
import json
import numpy as np
from pydantic import BaseModel, ConfigDict
from d2f_core import Manifest, hookimpl


class Opts(BaseModel):
    model_config = ConfigDict(extra="forbid")
    log: str


class AcmePush:
    """Third-party push model: translate by the push; pushes sampled around the particles; logs its calls."""
    name = "acme-push"
    capabilities = frozenset({"particles", "sample_actions"})
    action_dim = 4
    action_names = ("contact x (m)", "contact y (m)", "dx (m)", "dy (m)")

    def __init__(self, o):
        self.log = o.log

    def _write(self, **row):
        with open(self.log, "a") as f:
            f.write(json.dumps(row) + "\\n")

    def sample_actions(self, points, n, rng):
        self._write(call="sample_actions", n=int(n), points=int(len(points)))
        c = points[:, :2].mean(0)
        th = rng.uniform(-np.pi, np.pi, n)
        d = np.stack([np.cos(th), np.sin(th)], -1)
        return np.concatenate([c - 0.07 * d, rng.uniform(0.01, 0.04, (n, 1)) * d], 1)

    def predict(self, points, actions):
        self._write(call="predict", batch=int(len(actions)), points=int(len(points)))
        shift = np.zeros((len(actions), 1, 3))
        shift[:, 0, :2] = actions[:, 2:4]
        return (points[None] + shift).astype(np.float32)


@hookimpl
def d2f_register(register):
    register(Manifest(name="acme-push", kind="dynamics", factory=lambda o, ctx=None: AcmePush(o),
                      options_model=Opts, capabilities=AcmePush.capabilities, description="acme's push model"))
'''


@pytest.fixture(scope="module")
def acme_run(tmp_path_factory):
    """`d2f run` (a subprocess) with acme-push, a distribution installed on PYTHONPATH, as the dynamics."""
    pytest.importorskip("cv2")
    from d2f_plugins.video.file_video import write_video

    tmp = tmp_path_factory.mktemp("acme")
    site = tmp / "site"
    info = site / "acme_dynamics-0.3.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-dynamics\nVersion: 0.3.0\n")
    (info / "entry_points.txt").write_text("[dream2flow]\nacme-push = acme_push\n")
    (site / "acme_push.py").write_text(textwrap.dedent(ACME))
    # the "generated" video: tabletop-2d's scripted push of the block to its goal (file stand-ins)
    opts = {"width": 160, "height": 120}
    w = Tabletop2DWorld(Tabletop2DOptions(**opts))
    w.reset(5)
    actions = w.scripted_push()
    first = w.render()
    mask = w.object_mask("block")
    frames, depths = [first.rgb], [first.depth]
    for i, a in enumerate(actions):
        w.step(a)
        if i % max(1, len(actions) // 10) == 0 or i == len(actions) - 1:
            r = w.render()
            frames.append(r.rgb)
            depths.append(r.depth)
    write_video(tmp / "video.npz", np.stack(frames), 8.0)
    np.save(tmp / "depth.npy", np.stack(depths))
    np.save(tmp / "mask.npy", mask.astype(np.uint8) * 255)
    log = tmp / "acme_calls.jsonl"
    cfg = {"name": "acme", "seed": 5, "world": {"plugin": "tabletop-2d", "options": opts},
           "embodiment": {"plugin": "point-mass"},
           "video": {"plugin": "file", "options": {"path": str(tmp / "video.npz")}},
           "depth": {"plugin": "file", "options": {"path": str(tmp / "depth.npy"), "metric": True}},
           "segmenter": {"plugin": "file", "options": {"path": str(tmp / "mask.npy")}},
           "tracker": {"plugin": "lucas-kanade"},
           "dynamics": {"plugin": "heuristic"},  # replaced by --set below, as a user would
           "estimator": {"plugin": "sim-particles"},
           "solver": {"plugin": "random-shooting", "options": {"num_samples": 32, "max_pushes": 3}},
           "flow": {"num_points": 64, "num_frames": len(frames)}, "execute": {"record_video": False}}
    (tmp / "run.json").write_text(json.dumps(cfg))
    cfg_yaml = tmp / "run.yaml"
    import yaml
    cfg_yaml.write_text(yaml.safe_dump(cfg))
    out = tmp / "out"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep))
    p = subprocess.run([sys.executable, "-m", "d2f_core.cli", "run", str(cfg_yaml), "--out", str(out),
                        "--set", "dynamics.plugin=acme-push", "--set", f"dynamics.options.log={log}"],
                       capture_output=True, text=True, timeout=180, env=env)
    return p, out, log


def test_third_party_dynamics_selected_by_config_is_called_and_named(acme_run):
    p, out, log = acme_run
    assert p.returncode in (0, 1), p.stderr  # the episode may fail; the run must not
    res = json.loads((out / "result.json").read_text())
    assert res["stages"]["plan"]["status"] == "done" and res["stages"]["execute"]["status"] == "done", res
    assert res["plan"]["solver"] == "random-shooting" and res["plan"]["dynamics"] == "acme-push"
    assert json.loads((out / "plan.json").read_text())["dynamics"] == "acme-push"
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["plugins"]["dynamics"] == {"plugin": "acme-push", "package": "acme-dynamics", "version": "0.3.0"}
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    predicts = [c for c in calls if c["call"] == "predict"]
    samples = [c for c in calls if c["call"] == "sample_actions"]
    assert 1 <= len(predicts) == len(samples) <= 3  # one sample + one batched predict per replan, max_pushes 3
    assert all(c["batch"] == 32 for c in predicts)


# --------------------------------------------------------------------------- the recipe


def test_tabletop_oracle_pushes_the_block_to_the_goal_with_the_pusher_hidden():
    """The oracle video of tabletop-2d: the block moves from its start pose to the goal (the world's own
    check on the last state), the pusher is not drawn, the live state is untouched, and the depth of
    each frame is the depth the world renders with the block at that frame's pose."""
    w = Tabletop2DWorld(Tabletop2DOptions(width=160, height=120))
    w.reset(4)
    before = w.get_state()
    r = w.oracle_rollout(12)
    assert w.get_state() == before and not w.success()
    assert r.frames.shape == (12, 120, 160, 3) and r.depth.shape == (12, 120, 160) and r.robot_hidden
    assert r.success is True
    assert np.allclose(r.block_poses[0], before["block_pose"])
    gx, gy, gyaw = before["goal_pose"]
    bx, by, byaw = r.block_poses[-1]
    assert math.hypot(gx - bx, gy - by) <= 0.02
    assert abs((gyaw - byaw + math.pi / 2) % math.pi - math.pi / 2) <= math.radians(15)
    # frame k is the world rendered at block_poses[k] with the pusher out of view
    k = 7
    w.set_state(block_pose=tuple(r.block_poses[k]), pusher=(0.0, 0.0, 0.5))
    ref = w.render()
    assert np.array_equal(ref.depth, r.depth[k]) and np.array_equal(ref.rgb, r.frames[k])
    w.set_state(**{k2: before[k2] for k2 in ("block_pose", "goal_pose", "pusher")})
    assert w.find_oracle_rollout(r.frames.copy()) is r and w.oracle_rollout(12) is r
    assert w.find_oracle_rollout(r.frames[::-1].copy()) is None
    shown = w.oracle_rollout(12, hide_robot=False)
    assert not np.array_equal(shown.frames, r.frames)  # the pusher is drawn when asked for
    assert w.resolve_name("the block") == "block"
    with pytest.raises(ValueError, match="known objects"):
        w.resolve_name("mug")


def test_d2f_run_tabletop_push(tmp_path):
    """`d2f run tabletop_push --seed 3` end to end (about 8 s): the block reaches the goal; the run names
    the solver, the model and the stand-ins."""
    from d2f_core import get_registry
    reg = get_registry()
    assert "oracle" in reg.get("world", "tabletop-2d").manifest.capabilities
    for kind, name in (("video", "sim-oracle"), ("depth", "sim-depth"), ("segmenter", "sim-mask"),
                       ("tracker", "lucas-kanade")):
        why = reg.unavailable_reason(reg.get(kind, name).manifest)
        if why:
            pytest.skip(f"{name} unavailable here: {why}")
    out = tmp_path / "run"
    p = subprocess.run([sys.executable, "-m", "d2f_core.cli", "run", "tabletop_push", "--seed", "3", "--out", str(out)],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    res = json.loads((out / "result.json").read_text())
    assert res["success"] is True and res["steps"] < 100
    assert res["plan"]["solver"] == "random-shooting" and res["plan"]["dynamics"] == "heuristic"
    assert {s["kind"] for s in res["stand_ins"]} == {"video", "depth", "segmenter", "estimator"}
    final = res["privileged_final"]
    assert math.hypot(final["block_pose"][0] - final["goal_pose"][0],
                      final["block_pose"][1] - final["goal_pose"][1]) <= 0.02
