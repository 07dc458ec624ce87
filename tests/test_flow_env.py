"""FlowEnv (Gymnasium), make_env, rollout and the episode report."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("gymnasium")
from gymnasium.utils.env_checker import check_env  # noqa: E402

from d2f_core import make_env, rollout  # noqa: E402
from d2f_core.acting.env import FlowEnv, observation_vector  # noqa: E402
from d2f_core.acting.episode import EpisodeReport  # noqa: E402
from d2f_core.acting.evaluate import episode_record, parse_seeds  # noqa: E402
from d2f_core.registry import get_registry  # noqa: E402
from d2f_core.types import Observation  # noqa: E402

TABLETOP = {"name": "tt", "world": {"plugin": "tabletop-2d", "options": {"width": 64, "height": 48}},
            "embodiment": {"plugin": "point-mass"}}


def _tabletop_env(tmp_path, **kw):
    return make_env(TABLETOP, seed=0, workdir=tmp_path / "tt", **kw)


def test_check_env_tabletop(tmp_path):
    env = _tabletop_env(tmp_path)
    check_env(env, skip_render_check=True)
    assert env.action_space.shape == (3,)
    np.testing.assert_allclose(env.action_space.low, [-0.3, -0.3, 0.0])


def test_reset_is_seeded_and_steps_are_the_worlds(tmp_path):
    env = _tabletop_env(tmp_path)
    o1, i1 = env.reset(seed=4)
    block1 = env.world.privileged_state()["block_pose"]
    env.reset(seed=5)
    assert env.world.privileged_state()["block_pose"] != block1
    o2, _ = env.reset(seed=4)
    np.testing.assert_array_equal(o1, o2)
    assert i1 == {"success": False, "t": 0, "seed": 4}
    # an unseeded reset continues the env's own sequence: base_seed + episode index
    env2 = _tabletop_env(tmp_path)
    env2.reset()
    env2.reset()
    assert env2.seed_in_use == 1
    # the vector is the joints then the state's numbers, and a step moves the pusher toward the target
    target = np.array([0.05, -0.15, 0.1], np.float32)
    obs, r, term, trunc, info = env.step(target)
    assert r == 0.0 and not term and not trunc and info["t"] == 1
    q = env.observation.joints
    assert np.linalg.norm(q - target) < np.linalg.norm(np.array([0.0, -0.2, 0.1]) - target)
    np.testing.assert_allclose(obs[:3], q, atol=1e-6)


def test_truncates_at_horizon_and_terminates_on_success(tmp_path):
    env = make_env(TABLETOP, seed=0, workdir=tmp_path / "tt", overrides={"execute.max_steps": 3})
    env.reset(seed=0)
    park = env.observation.joints.copy()
    flags = [env.step(park)[3] for _ in range(3)]
    assert flags == [False, False, True]
    # put the block on its goal: the next step terminates, not truncates
    env.reset(seed=0)
    goal = env.world.privileged_state()["goal_pose"]
    env.world.set_state(block_pose=goal)
    _, _, term, trunc, info = env.step(park)
    assert term and not trunc and info["success"]


def test_observation_vector_skips_strings():
    obs = Observation(rgbd=None, joints=np.array([1.0, 2.0]), state={"b": [3.0, 4.0], "a": 5, "robot": "Panda"})
    np.testing.assert_array_equal(observation_vector(obs), np.array([1, 2, 5, 3, 4], np.float32))


def test_flowenv_needs_a_flow_for_a_reward(tmp_path):
    env = _tabletop_env(tmp_path)
    with pytest.raises(ValueError, match="^flow: a reward or an estimator"):
        FlowEnv(env.world, reward=object())


class _Scripted:
    """An agent: a fixed list of actions then None; counts resets."""

    def __init__(self, actions, refused=None):
        self.actions, self.refused, self.resets, self.i = list(actions), refused, 0, 0

    def reset(self, observation):
        self.resets += 1
        self.i = 0

    def act(self, observation):
        if self.i >= len(self.actions):
            return None
        self.i += 1
        return self.actions[self.i - 1]


def test_rollout_reports_success_and_failure_reasons(tmp_path):
    env = _tabletop_env(tmp_path)
    env.reset(seed=2)
    park = env.observation.joints.copy()
    agent = _Scripted([park] * 4)
    rep = rollout(env, agent, seed=2)
    assert (rep.success, rep.steps, rep.ended, agent.resets) == (False, 4, "agent_done", 1)
    assert rep.reason.startswith("the agent stopped after 4 steps: block ") and "from the goal" in rep.reason
    rep = rollout(env, _Scripted([], refused="unreachable: 40 mm off"), seed=2)
    assert (rep.ended, rep.steps, rep.reason) == ("refused", 0, "plan refused: unreachable: 40 mm off")
    rep = rollout(env, _Scripted([np.zeros(7)]), seed=2)  # wrong action width: reported, not raised
    assert rep.ended == "error" and rep.reason.startswith("ValueError at step 0: action: expected shape (3,)")
    frames: list = []
    rep = rollout(env, _Scripted([park] * 3), seed=2, max_steps=2, frames=frames)
    assert rep.ended == "timeout" and rep.steps == 2 and rep.reason.startswith("timeout after 2 steps")
    assert len(frames) == 3 and frames[0].shape == (48, 64, 3) and frames[0].dtype == np.uint8


def test_episode_report_contract():
    with pytest.raises(ValueError, match="^reason"):
        EpisodeReport(seed=0, success=False, steps=3, episode_return=0.0, reason=" ", ended="timeout")
    with pytest.raises(ValueError, match="^ended"):
        EpisodeReport(seed=0, success=True, steps=3, episode_return=0.0, reason="", ended="done")
    rep = EpisodeReport(seed=1, success=True, steps=3, episode_return=1.5, reason="", ended="success")
    assert json.loads(json.dumps(rep.to_json()))["return"] == 1.5
    assert EpisodeReport.plain({"a": np.arange(2), "b": np.float32(2.5)}) == {"a": [0, 1], "b": 2.5}


def test_parse_seeds():
    assert parse_seeds("0-3") == [0, 1, 2, 3]
    assert parse_seeds("5, 1,2-3") == [1, 2, 3, 5]
    for bad in ("", "a-b", "3-1", "-2"):
        with pytest.raises(ValueError, match="^--seeds"):
            parse_seeds(bad)


def test_episode_record_always_has_a_reason(tmp_path):
    rec = episode_record(3, {"success": False, "stopped_at": "plan", "message": ""}, tmp_path / "seed3", 1.0)
    assert rec["reason"] == "stopped at stage 'plan'" and rec["ended"] == "error"
    rec = episode_record(3, {"success": None}, tmp_path / "seed3", 1.0)
    assert rec["reason"] and not rec["success"]


@pytest.mark.sim
@pytest.mark.parametrize("embodiment", ["franka", "spot", "gr1"])
def test_check_env_robosuite_open_door(tmp_path, embodiment):
    pytest.importorskip("robosuite")
    cfg = {"name": "door", "world": {"plugin": "robosuite", "options": {"task": "open_door", "width": 64,
                                                                         "height": 48}},
           "embodiment": {"plugin": embodiment}}
    env = make_env(cfg, seed=0, workdir=tmp_path / embodiment)
    try:
        check_env(env, skip_render_check=True)
        assert env.action_space.shape == env.world.action_low.shape
        assert env.horizon == env.world.horizon
        # door positions differ between seeds; the same seed gives the same observation
        env.reset(seed=1)
        door1 = env.world.privileged_state()["door"]["pos"]
        env.reset(seed=2)
        assert env.world.privileged_state()["door"]["pos"] != door1
        rep = rollout(env, _Scripted([]), seed=1)
        assert rep.ended == "agent_done" and "door at 0.00 rad (success needs > 0.3)" in rep.reason
    finally:
        env.close()


def test_no_silent_substitution(tmp_path):
    """A configured acting component the solver cannot use is an error before any stage runs."""
    from d2f_core.config import config_from_dict
    from d2f_core.pipeline import Run
    from d2f_core.registry import PluginError

    cfg = config_from_dict(dict(TABLETOP, dynamics={"plugin": "heuristic"}, solver={"plugin": "trajopt"}))
    run = Run(config=cfg, out_dir=tmp_path / "r", registry=get_registry())
    with pytest.raises(PluginError, match=r"^dynamics.plugin: solver 'trajopt' needs a dynamics with capability "
                                          r"'rigid_grasp'; 'heuristic' lacks it"):
        run.execute()
    assert not (tmp_path / "r" / "stages").exists()
    cfg = config_from_dict(dict(TABLETOP, dynamics={"plugin": "heuristic"}, solver={"plugin": "replay",
                                                                                     "options": {"actions": [[0, 0, 0]]}}))
    with pytest.raises(PluginError, match=r"^dynamics.plugin: solver 'replay' cannot use a dynamics \('heuristic'\)"):
        Run(config=cfg, out_dir=tmp_path / "r2", registry=get_registry()).execute()
