"""Push-T end to end pieces: the lifted flow on the T, the shipped learned models against the heuristic on
held-out pushes of gym-pusht's physics, and random shooting reaching a reachable subgoal with every model."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("gym_pusht")
pytest.importorskip("torch")

from d2f_core import ObjectFlow, Task  # noqa: E402
from d2f_core.protocols import Problem  # noqa: E402
from d2f_core.registry import BuildContext, get_registry  # noqa: E402
from d2f_plugins.dynamics.heuristic import HeuristicPushDynamics  # noqa: E402
from d2f_plugins.embodiment.point_mass import PointMass, PointMassOptions  # noqa: E402
from d2f_plugins.world import pusht_scene as S  # noqa: E402
from d2f_plugins.world.pusht import PushTOptions, PushTWorld  # noqa: E402

MODELS = ("particle", "pose", "heuristic", "pymunk")


@pytest.fixture(scope="module")
def registry():
    return get_registry().discover()


def _model(reg, name, tmp_path):
    return reg.create("dynamics", name, {}, ctx=BuildContext(seed=0, workdir=tmp_path), where="dynamics")


def _world(state: int) -> PushTWorld:
    emb = PointMass(PointMassOptions(joint_limits=[[-0.25, 0.25], [-0.25, 0.25], [0.0, 0.15]]))
    return PushTWorld(PushTOptions(initial_state=state, render_observations=False), emb)


def test_the_lifted_flow_lies_on_the_t_from_start_to_goal(tmp_path):
    """Perception of the recipe (oracle video, sim depth and mask, Lucas-Kanade, lifting): the flow's visible
    points are on the T's top face at its start pose (first step) and at the goal (last step)."""
    from d2f_core.acting import make_env

    env = make_env("pusht", seed=30, workdir=tmp_path / "perception",
                   overrides=["dynamics.plugin=heuristic"])
    flow = env.flow
    start = tuple(env.observation.privileged["block_pose"])
    for t, pose, tol in ((0, start, 0.003), (flow.num_frames - 1, S.GOAL_POSE, 0.006)):
        vis = flow.visible[t]
        assert vis.mean() > 0.2, f"step {t}: only {vis.mean():.0%} visible"
        local = S.to_local(flow.points[t][vis], pose)
        outside = ~S.inside_t(local[:, :2], pad=tol)
        assert outside.mean() < 0.02, f"step {t}: {outside.mean():.0%} of the points off the T's footprint"
        assert np.median(np.abs(local[:, 2] - S.T_HEIGHT)) < tol, f"step {t}: points not on the top face"
    env.close()


def test_shipped_learned_models_beat_the_heuristic_on_held_out_pushes(registry, tmp_path):
    """Initial states 300-305 (nothing was trained or tuned on them), 4 pushes each of gym-pusht's physics."""
    rng = np.random.default_rng(7)
    local = S.t_surface_points(0.0075, sides=False)[0]
    sampler = HeuristicPushDynamics()
    models = {n: _model(registry, n, tmp_path) for n in MODELS}
    err = {n: [] for n in MODELS}
    motion = []
    for state in range(300, 306):
        world = _world(state)
        obs = world.reset(0)
        for _ in range(4):
            P = S.to_world(local, tuple(obs.privileged["block_pose"])).astype(np.float32)
            a = sampler.sample_actions(P, 1, rng)
            obs = world.push(a[0])
            Q = S.to_world(local, tuple(obs.privileged["block_pose"]))
            motion.append(np.linalg.norm(Q - P, axis=1).mean())
            for n, m in models.items():
                err[n].append(np.linalg.norm(np.asarray(m.predict(P, a))[0] - Q, axis=1).mean())
    mean = {n: float(np.mean(e)) for n, e in err.items()}
    assert np.mean(motion) > 0.01                                   # the pushes moved the T
    assert mean["pymunk"] < 0.003, mean                              # the copy of the physics is near exact
    assert mean["particle"] < 0.8 * mean["heuristic"], mean
    assert mean["pose"] < 0.8 * mean["heuristic"], mean


@pytest.mark.parametrize("model", MODELS)
def test_random_shooting_reaches_a_reachable_subgoal(model, registry, tmp_path):
    """A flow that translates the T 4 cm along its stem (one or two pushes reach it): every model gets the T
    within 1 cm of the flow's end, and within 8 degrees for the models that predict turning (the paper's
    heuristic translates only: an off-centre push turns the T behind its back)."""
    from d2f_core.acting.env import FlowEnv
    from d2f_core.acting.rollout import rollout
    from d2f_plugins.estimator.sim_particles import SimParticles
    from d2f_plugins.solver.random_shooting import RandomShootingOptions, RandomShootingSolver

    world = _world(2)
    obs = world.reset(0)
    p0 = np.array(obs.privileged["block_pose"], dtype=np.float64)
    d = S.rotation2(p0[2]) @ np.array([0.0, -1.0])                 # from the stem's end towards the bar
    p1 = p0 + np.array([0.04 * d[0], 0.04 * d[1], 0.0])
    local = S.t_surface_points(0.0075, sides=False)[0]
    steps = np.linspace(0.0, 1.0, 21)
    pts = np.stack([S.to_world(local, p0 + s * (p1 - p0)) for s in steps]).astype(np.float32)
    flow = ObjectFlow(points=pts, visible=np.ones(pts.shape[:2], bool))
    est = SimParticles()
    solver = RandomShootingSolver(RandomShootingOptions(num_samples=300, goal_tolerance=0.004, max_pushes=6))
    agent = solver.solve(Problem(flow=flow, observation=obs, embodiment=world.embodiment,
                                 task=Task(instruction="push", object="T"), dynamics=_model(registry, model, tmp_path),
                                 estimator=est, world=world, seed=0))
    env = FlowEnv(world, estimator=est, flow=flow, stop_on_success=False, horizon=600, base_seed=0)
    rollout(env, agent, 0)
    dist, yaw = S.pose_error(tuple(world.privileged_state()["block_pose"]), tuple(p1))
    assert dist < 0.01, (model, dist, yaw, agent.info["stopped"])
    if model != "heuristic":
        assert yaw < 8.0, (model, dist, yaw, agent.info["stopped"])
    assert agent.info["pushes"] >= 1
