"""Rewards against hand-computed values: the paper's 3D flow reward (t*, r_particle, r_ee, visibility, the
frame transform), the `flow` and `object-state` plugins, the worlds' shaped rewards (tabletop-2d by hand,
robosuite open_door against robosuite's own shaped Door.reward), and the reward conformance checks
(each deliberately broken reward caught by the named check)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from d2f_conformance import check_component
from d2f_conformance.doubles import TargetWorld
from d2f_core import ObjectFlow, Observation
from d2f_core.flow.reward import flow_reward, nearest_flow_step
from d2f_core.registry import BuildContext, PluginUnavailableError, get_registry
from d2f_plugins.reward.flow_reward import FlowReward, FlowRewardOptions
from d2f_plugins.reward.object_state import ObjectStateReward
from d2f_plugins.world.tabletop_2d import Tabletop2DOptions, Tabletop2DWorld

# A flow of T = 5 steps, two points sliding +x by 0.25 m per step: P_t = [(0.25 t, 0, 0), (0.25 t, 1, 0)] (binary-exact
# numbers, so distance ties are exact ties).
T, STEP = 5, 0.25
FLOW_PTS = np.array([[[STEP * t, 0.0, 0.0], [STEP * t, 1.0, 0.0]] for t in range(T)], np.float32)


def at(x: float) -> np.ndarray:
    """Both particles at x (their flow's y)."""
    return np.array([[x, 0.0, 0.0], [x, 1.0, 0.0]], np.float32)


def obs(ee=(0.0, 0.5, 0.0), **state) -> Observation:
    st = {"ee_pos": list(ee)} if ee is not None else {}
    st.update(state)
    return Observation(rgbd=None, joints=np.zeros(3), state=st)


# --------------------------------------------------------------------------- core maths


@pytest.mark.parametrize("x, t_star", [
    (0.75, 3),   # exactly on step 3
    (0.65, 3),   # 10 cm from step 3, 15 cm from step 2
    (0.6, 2),    # the other side of the midpoint
    (0.0, 1),    # the start: step 0 is not a candidate, so step 1 (r_particle = 0.75 / 4)
    (-0.5, 1),
    (2.0, 4),    # beyond the end: the last step
])
def test_t_star_is_the_nearest_flow_step(x, t_star):
    r, info = flow_reward(FLOW_PTS, at(x), None, w_ee=0.0)
    assert info["t_star"] == t_star and info["t_end"] == 4
    assert r == pytest.approx(0.75 * t_star / 4) and info["r_particle"] == pytest.approx(0.75 * t_star / 4)
    assert info["mean_distance"] == pytest.approx(abs(x - STEP * t_star), abs=1e-6)
    assert info["points_used"] == 2 and info["r_ee"] == 0.0


def test_mean_distance_is_per_point_not_of_the_centroids():
    # point 0 at step 3's position, point 1 at step 1's: the centroids would match step 2 exactly; the per-point
    # means are 0.25 at steps 1, 2 and 3 (a tie, resolved to the earliest step) and 0.5 at step 4
    p = np.array([[0.75, 0.0, 0.0], [0.25, 1.0, 0.0]], np.float32)
    t, d, n, per_step = nearest_flow_step(FLOW_PTS, p)
    assert (t, n) == (1, 2) and d == 0.25
    np.testing.assert_array_equal(per_step, [np.inf, 0.25, 0.25, 0.25, 0.5])


def test_visibility_of_the_estimate_and_of_the_flow():
    p = np.array([[0.75, 0.0, 0.0], [0.25, 1.0, 0.0]], np.float32)
    # only point 0 is seen now: it is at step 3
    assert nearest_flow_step(FLOW_PTS, p, visible=np.array([True, False]))[0] == 3
    # only point 1: step 1
    assert nearest_flow_step(FLOW_PTS, p, visible=np.array([False, True]))[0] == 1
    # point 0 invisible in the flow at step 3: step 3 cannot be scored; steps 2 and 4 tie at 0.25 -> step 2
    fv = np.ones((T, 2), bool)
    fv[3, 0] = False
    t, d, n, per_step = nearest_flow_step(FLOW_PTS, p, flow_visible=fv, visible=np.array([True, False]))
    assert (t, n) == (2, 1) and d == 0.25 and per_step[3] == np.inf


def test_no_visible_particle_credits_no_progress_but_keeps_the_end_effector_term():
    r, info = flow_reward(FLOW_PTS, at(0.75), np.array([0.75, 0.5, 0.0]), visible=np.zeros(2, bool))
    assert info["t_star"] == 0 and info["r_particle"] == 0.0 and math.isnan(info["mean_distance"])
    assert info["points_used"] == 0
    assert info["r_ee"] == pytest.approx(0.25) and r == pytest.approx(0.25)  # ee on the mean of all particles


@pytest.mark.parametrize("dist", [0.0, 0.05, 0.1, 0.3])
def test_end_effector_term_at_known_distances(dist):
    # particles at step 2 (mean (0.5, 0.5, 0)); the end-effector `dist` above their mean
    r, info = flow_reward(FLOW_PTS, at(0.5), np.array([0.5, 0.5, dist]))
    r_ee = 0.25 * (1.0 - math.tanh(10.0 * dist))
    assert info["ee_distance"] == pytest.approx(dist, abs=1e-6)
    assert info["r_ee"] == pytest.approx(r_ee, abs=1e-7)
    assert r == pytest.approx(0.75 * 2 / 4 + r_ee, abs=1e-7)


def test_x_bar_is_the_mean_of_the_visible_particles():
    p = np.array([[0.5, 0.0, 0.0], [5.0, 5.0, 5.0]], np.float32)  # particle 1 lost far away
    _, info = flow_reward(FLOW_PTS, p, np.array([0.5, 0.0, 0.1]), visible=np.array([True, False]))
    assert info["ee_distance"] == pytest.approx(0.1, abs=1e-6)


def test_weights_and_scale_are_parameters():
    r, info = flow_reward(FLOW_PTS, at(1.0), np.array([1.0, 0.5, 0.05]), w_particle=1.0, w_ee=2.0, ee_scale=4.0)
    assert r == pytest.approx(1.0 + 2.0 * (1 - math.tanh(0.2)))


def _rot_z(angle: float, t) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    T_ = np.eye(4)
    T_[:3, :3] = [[c, -s, 0], [s, c, 0], [0, 0, 1]]
    T_[:3, 3] = t
    return T_


def test_frame_transform_compares_world_particles_with_a_flow_in_an_object_frame():
    T_world_door = _rot_z(math.pi / 2, [1.0, 2.0, 0.5])
    world_at_3 = FLOW_PTS[3] @ T_world_door[:3, :3].T + T_world_door[:3, 3]  # the particles, world frame
    r, info = flow_reward(FLOW_PTS, world_at_3, None, w_ee=0.0, frame=T_world_door)
    assert info["t_star"] == 3 and info["mean_distance"] == pytest.approx(0.0, abs=1e-6)
    # read as world coordinates the same flow is 2+ m away and t* is wrong
    _, plain = flow_reward(FLOW_PTS, world_at_3, None, w_ee=0.0)
    assert plain["mean_distance"] > 1.0
    # the end-effector term is frame-independent: ee 0.1 m from the world-frame particle mean
    ee = world_at_3.mean(0) + [0.0, 0.0, 0.1]
    _, with_ee = flow_reward(FLOW_PTS, world_at_3, ee, frame=T_world_door)
    assert with_ee["r_ee"] == pytest.approx(0.25 * (1 - math.tanh(1.0)), abs=1e-6)


@pytest.mark.parametrize("kwargs, arg", [
    (dict(flow_points=FLOW_PTS[:1], particles=at(0.0), ee=None, w_ee=0.0), "flow_points"),
    (dict(flow_points=FLOW_PTS, particles=at(0.0)[:, :2], ee=None, w_ee=0.0), "particles"),
    (dict(flow_points=FLOW_PTS, particles=np.zeros((3, 3)), ee=None, w_ee=0.0), "particles"),
    (dict(flow_points=FLOW_PTS, particles=at(0.0), ee=None), "ee"),
    (dict(flow_points=FLOW_PTS, particles=at(0.0), ee=[0, 0], w_ee=0.25), "ee"),
    (dict(flow_points=FLOW_PTS, particles=at(0.0), ee=None, w_ee=0.0, frame=np.diag([2.0, 1, 1, 1])), "frame"),
    (dict(flow_points=FLOW_PTS, particles=at(0.0), ee=None, w_ee=0.0, visible=np.ones(2)), "visible"),
    (dict(flow_points=FLOW_PTS, particles=at(0.0), ee=None, w_ee=-1.0), "w_ee"),
])
def test_core_errors_name_the_argument(kwargs, arg):
    with pytest.raises(ValueError, match=rf"^{arg}: "):
        flow_reward(**kwargs)


# --------------------------------------------------------------------------- the `flow` plugin


def _flow() -> ObjectFlow:
    return ObjectFlow(points=FLOW_PTS.copy(), visible=np.ones((T, 2), bool))


def test_flow_plugin_reads_the_end_effector_and_recomputes_t_star_every_step():
    reward = FlowReward()
    reward.reset(_flow(), obs())
    r1, i1 = reward(obs(ee=(0.75, 0.5, 0.0)), at(0.75))
    assert i1["t_star"] == 3 and r1 == pytest.approx(0.75 * 3 / 4 + 0.25)
    r2, i2 = reward(obs(ee=(0.25, 0.5, 0.2)), at(0.25))  # moved back: t* follows, not forced monotonic
    assert i2["t_star"] == 1 and r2 == pytest.approx(0.75 / 4 + 0.25 * (1 - math.tanh(2.0)))
    _, i3 = reward(obs(), at(0.75), visible=np.array([False, True]))
    assert i3["t_star"] == 3 and i3["points_used"] == 1
    assert set(i1) >= {"t_star", "t_end", "r_particle", "r_ee", "mean_distance"}


def test_flow_plugin_options_and_errors():
    reward = FlowReward(FlowRewardOptions(w_ee=0.0))
    reward.reset(_flow(), obs(ee=None))
    r, _ = reward(obs(ee=None, robot="x"), at(1.0))  # no end-effector needed without its term
    assert r == pytest.approx(0.75)
    full = FlowReward()
    full.reset(_flow(), obs())
    with pytest.raises(ValueError, match=r"^observation.state\['ee_pos'\]: .*'robot'.*w_ee: 0"):
        full(obs(ee=None, robot="x"), at(0.4))
    with pytest.raises(ValueError, match=r"^particles: .*estimator: \{plugin: sim-particles\}"):
        full(obs(), None)
    with pytest.raises(ValueError, match=r"^particles: expected a float array 2 x 3"):
        full(obs(), at(0.4)[:1])
    with pytest.raises(ValueError, match=r"^flow: has 1 step"):
        full.reset(ObjectFlow(points=FLOW_PTS[:1].copy(), visible=np.ones((1, 2), bool)), obs())
    with pytest.raises(RuntimeError, match="reset"):
        FlowReward()(obs(), at(0.4))
    defaults = FlowRewardOptions()
    assert (defaults.w_particle, defaults.w_ee, defaults.ee_scale) == (0.75, 0.25, 10.0)
    with pytest.raises(ValueError):
        FlowRewardOptions(gain=1.0)  # extra="forbid"


def test_flow_plugin_on_tabletop_reads_the_pusher_tip():
    w = Tabletop2DWorld(Tabletop2DOptions(width=32, height=24))
    o = w.reset(0)
    reward = FlowReward()
    reward.reset(_flow(), o)
    _, info = reward(o, at(0.5))
    ee = np.array(o.state["ee_pos"])
    assert info["ee_distance"] == pytest.approx(float(np.linalg.norm(ee - [0.5, 0.5, 0.0])), abs=1e-6)


# ------------------------------------------------------------------ object-state and the worlds' shaped rewards


def test_tabletop_shaped_reward_by_hand():
    w = Tabletop2DWorld(Tabletop2DOptions(width=32, height=24))
    w.reset(0)
    # block at the origin, yaw 0 (half-extent 0.05 along x); goal 0.1 m away, yaw 0.2; pusher tip 3 cm from the
    # block's -x face, i.e. a 2 cm gap to its 1 cm disk
    w.set_state(block_pose=(0.0, 0.0, 0.0), goal_pose=(0.1, 0.0, 0.2), pusher=(-0.08, 0.0, 0.01))
    assert w.task_reward() == pytest.approx(-(0.1 + 0.05 * 0.2 + 0.1 * 0.02))
    # the yaw error is modulo 180 degrees (a box), the pusher touching costs nothing, the goal pays 0
    w.set_state(goal_pose=(0.0, 0.0, math.pi - 0.1), pusher=(-0.0605, 0.0, 0.01))
    assert w.task_reward() == pytest.approx(-0.05 * 0.1 - 0.1 * 0.0005)
    w.set_state(pusher=(0.0, 0.0, 0.05))  # resting above the block: no gap
    w.set_state(goal_pose=(0.0, 0.0, 0.0))
    assert w.task_reward() == pytest.approx(0.0, abs=1e-12)
    assert {"shaped_reward", "object_pose"} <= w.capabilities


def test_object_state_reward_is_the_worlds_task_reward():
    w = Tabletop2DWorld(Tabletop2DOptions(width=32, height=24))
    o = w.reset(3)
    reward = get_registry().create("reward", "object-state", None,
                                   ctx=BuildContext(getter=lambda kind: w if kind == "world" else None))
    reward.reset(_flow(), o)
    r, info = reward(o, None)
    assert r == w.task_reward() == info["task_reward"] and r < 0
    o2 = w.step(np.array([0.0, 0.0, 0.05]))
    assert reward(o2, None)[0] == pytest.approx(w.task_reward())
    assert {"privileged", "stand_in"} <= reward.capabilities
    assert get_registry().get("reward", "object-state").manifest.stand_in


def test_object_state_refuses_a_missing_world_or_one_without_task_reward():
    with pytest.raises(PluginUnavailableError, match="reads the run's world.*world: \\{plugin: robosuite\\}"):
        get_registry().create("reward", "object-state", None, ctx=BuildContext())
    with pytest.raises(ValueError, match=r"^world.plugin: .*'shaped_reward'.*'conformance-target' has none; "):
        ObjectStateReward(TargetWorld())


class _NaNWorld:
    name = "nan-world"

    def task_reward(self):
        return float("nan")


def test_object_state_refuses_a_non_finite_task_reward():
    reward = ObjectStateReward(_NaNWorld())
    reward.reset(_flow(), obs())
    with pytest.raises(ValueError, match=r"^world.task_reward: world 'nan-world' returned nan"):
        reward(obs(), None)


# --------------------------------------------------------------------------- conformance


def _statuses(component):
    return {r.check: (r.status, r.message) for r in check_component(component, "reward")}


def test_shipped_rewards_pass_the_conformance_checks():
    res = _statuses(FlowReward())
    assert all(s == "passed" for s, _ in res.values()), res
    w = Tabletop2DWorld(Tabletop2DOptions(width=32, height=24))
    w.reset(0)
    res = _statuses(ObjectStateReward(w))
    assert res.pop("reward_follows_the_flow")[0] == "skipped"  # no needs_particles
    assert all(s == "passed" for s, _ in res.values()), res


class ConstantReward(FlowReward):
    """Ignores where the particles are."""

    def __call__(self, observation, particles, **kw):
        super().__call__(observation, particles, **kw)
        return 0.5, {}


class NaNReward(FlowReward):
    def __call__(self, observation, particles, **kw):
        return float("nan"), {}


class LenientReward(FlowReward):
    """Accepts N x 2 particles (pads z)."""

    def __call__(self, observation, particles, **kw):
        if isinstance(particles, np.ndarray) and particles.ndim == 2 and particles.shape[1] == 2:
            particles = np.concatenate([particles, np.zeros((len(particles), 1), particles.dtype)], 1)
        return super().__call__(observation, particles, **kw)


class MutatingReward(FlowReward):
    def __call__(self, observation, particles, **kw):
        if particles is not None:
            particles -= particles.mean(axis=0)  # centres the caller's array in place
        return super().__call__(observation, particles, **kw)


@pytest.mark.parametrize("broken, check, fragment", [
    (ConstantReward, "reward_follows_the_flow", "pays for progress along it"),
    (NaNReward, "reward_output_types", "must be finite"),
    (LenientReward, "reward_rejects_malformed_input", "accepted"),
    (MutatingReward, "reward_no_input_mutation", "modified its input 'particles'"),
], ids=["constant", "nan", "lenient", "mutating"])
def test_reward_checks_catch_broken_rewards(broken, check, fragment):
    status, message = _statuses(broken())[check]
    assert status == "failed" and fragment in message, message


# --------------------------------------------------------------------------- robosuite open_door


@pytest.mark.sim
def test_open_door_task_reward_is_robosuites_shaped_door_reward():
    pytest.importorskip("robosuite")
    from d2f_plugins.world.robosuite_world import RobosuiteWorldOptions, make_world

    w = make_world(RobosuiteWorldOptions(task="open_door", width=64, height=48))
    try:
        env, d = w.env, w.data
        assert {"shaped_reward", "object_pose"} <= w.capabilities
        for seed, handle, hinge in ((0, 0.0, 0.0), (1, 0.6, 0.1), (2, -0.9, 0.25), (3, 1.2, 0.35)):
            w.reset(seed)
            d.qpos[env.handle_qpos_addr], d.qpos[env.hinge_qpos_addr] = handle, hinge
            w._mj.mj_forward(w.model, d)
            # by hand, from the paper's formula
            ee = d.site_xpos[env.robots[0].eef_site_id["right"]]
            dist = float(np.linalg.norm(d.site_xpos[env.door_handle_site_id] - ee))
            want = 1.0 if hinge > 0.3 else (0.25 * (1 - math.tanh(10 * dist))
                                            + float(np.clip(0.25 * abs(handle) / (0.5 * math.pi), -0.25, 0.25)))
            assert w.task_reward() == pytest.approx(want, abs=1e-12)
            # and robosuite's own Door.reward with reward shaping on
            env.reward_shaping = True
            try:
                assert w.task_reward() == pytest.approx(env.reward(None), abs=1e-12)
            finally:
                env.reward_shaping = False
        reward = ObjectStateReward(w)
        o = w.reset(0)
        reward.reset(_flow(), o)
        assert reward(o, None)[0] == pytest.approx(w.task_reward())
    finally:
        w.close()


@pytest.mark.sim
@pytest.mark.parametrize("task", ["open_oven", "bread_in_bowl", "cover_bowl"])
def test_other_robosuite_tasks_shaped_rewards_by_hand(task):
    pytest.importorskip("robosuite")
    from d2f_plugins.world.robosuite_world import RobosuiteWorldOptions, make_world
    from d2f_plugins.world.robosuite_world.tasks import bread_in_bowl_success, cover_bowl_success

    w = make_world(RobosuiteWorldOptions(task=task, width=64, height=48))
    try:
        o = w.reset(1)
        env, d, m = w.env, w.data, w.model
        ee = np.array(d.site_xpos[env.robots[0].eef_site_id["right"]])

        def reach(target):
            return 0.25 * (1 - math.tanh(10 * float(np.linalg.norm(np.asarray(target) - ee))))

        if task == "open_oven":
            thr = w.options.oven_open_threshold
            for hinge in (0.0, 0.2, thr):
                d.qpos[env.hinge_qpos_addr] = hinge
                w._mj.mj_forward(m, d)
                want = 1.0 if hinge >= thr else reach(d.site_xpos[env.oven_handle_site_id]) + 0.5 * hinge / thr
                assert w.task_reward() == pytest.approx(want, abs=1e-12)
            np.testing.assert_allclose(np.array(w.privileged_state()["object_pose"])[:3, 3],
                                       w.privileged_state()["door"]["pos"])
        elif task == "bread_in_bowl":
            bread, bowl = d.xpos[env.bread_body_id], d.xpos[env.bowl_body_id]
            radial = float(np.hypot(*(bread[:2] - bowl[:2])))
            assert not bread_in_bowl_success(m, d, env)[0]
            assert w.task_reward() == pytest.approx(reach(bread) + 0.5 * (1 - math.tanh(10 * radial)), abs=1e-12)
            np.testing.assert_allclose(np.array(o.privileged["object_pose"])[:3, 3], o.privileged["bread"]["pos"])
        else:
            ok, info = cover_bowl_success(m, d, env)
            V = np.array(d.xpos[env.cloth_vert_bodies])
            nearest = V[np.argmin(np.linalg.norm(V - ee, axis=1))]
            want = reach(nearest) + 0.5 * info["covered_points"] / info["test_points"]
            assert not ok and w.task_reward() == pytest.approx(want, abs=1e-12)
            assert "object_pose" not in o.privileged and o.privileged["task"] == "cover_bowl"
        assert 0.0 <= w.task_reward() <= 1.0
    finally:
        w.close()
