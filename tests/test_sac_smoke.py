"""Stable-Baselines3 SAC on robosuite Open Door with the paper's 3D-flow reward: a few hundred steps.

The env is ``make_env("open_door")`` with ``reward: flow`` and ``estimator: sim-particles`` (the paper's
RL setting: particles moved by the door's joint state); the perception stages run once per module.
SAC has the paper's hyper-parameters (:data:`d2f_core.acting.train.PAPER_SAC`) except a smaller batch
and replay buffer; training goes through :func:`d2f_core.acting.train.train_sb3` (what a training
solver's ``train`` runs): checkpoints with the replay buffer, a resume, the logged metrics.
"""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.sim

pytest.importorskip("robosuite")
pytest.importorskip("stable_baselines3")

STEPS = 300


@pytest.fixture(scope="module")
def door_env(tmp_path_factory):
    import torch

    from d2f_core import make_env
    # (d2f_core.gl loads Triton's native library before the first EGL context: no workaround here)
    torch.set_num_threads(1)
    env = make_env("open_door", seed=0, workdir=tmp_path_factory.mktemp("door"),
                   overrides={"reward.plugin": "flow", "estimator.plugin": "sim-particles", "solver": None})
    yield env
    env.close()


@pytest.fixture(scope="module")
def trained(door_env, tmp_path_factory):
    """(model, logged rows, out folder) after STEPS steps of SAC."""
    from stable_baselines3 import SAC

    from d2f_core.acting.train import PAPER_SAC, train_sb3
    out = tmp_path_factory.mktemp("sac")
    rows: list[tuple[int, dict]] = []
    hyper = {**PAPER_SAC, "batch_size": 64, "buffer_size": 5_000, "learning_starts": 100}
    model, final = train_sb3(SAC, door_env, out, resume=False, budget=STEPS, checkpoint_every=150, seed=0,
                             log=lambda step, m: rows.append((step, dict(m))), log_every=50, **hyper)
    return model, rows, out, final


def test_the_env_passes_gymnasium_check_env(door_env):
    from gymnasium.utils.env_checker import check_env
    check_env(door_env, skip_render_check=True)
    assert door_env.horizon == 500 and door_env.reward_fn.name == "flow" and door_env.estimator.name == "sim-particles"


def test_sac_collects_rewards_in_the_flow_rewards_range_and_learns(trained):
    model, rows, out, final = trained
    assert model.num_timesteps == STEPS
    # the paper's hyper-parameters (batch and buffer reduced for the smoke run)
    assert (model.learning_rate, model.gamma, model.tau, model.target_update_interval) == (3e-4, 0.99, 0.005, 1)
    assert model.policy.net_arch == [256, 256] or model.policy_kwargs["net_arch"] == [256, 256]
    # the replay buffer holds every step taken, with finite flow rewards in [0, 1]
    buf = model.replay_buffer
    assert buf.size() == STEPS
    r = buf.rewards[:STEPS].ravel()
    assert np.all(np.isfinite(r)) and r.min() >= 0.0 and r.max() <= 1.0
    assert np.ptp(r) > 0  # the reward responds to the motion (not a constant)
    assert np.all(np.isfinite(buf.observations[:STEPS])) and buf.observations.shape[-1] == 20
    # log rows every 50 steps; gradient updates ran after learning_starts
    assert [s for s, _ in rows] == [50, 100, 150, 200, 250, 300]
    last = rows[-1][1]
    assert {"reward", "actor_loss", "critic_loss", "ent_coef", "buffer"} <= set(last)
    assert all(np.isfinite(v) for v in last.values()) and last["buffer"] == STEPS
    assert 0.0 <= last["reward"] <= 1.0 and final == last


def test_checkpoint_saves_and_loads_model_and_replay_buffer_and_the_loaded_policy_acts(trained, door_env):
    from stable_baselines3 import SAC

    from d2f_core.acting.train import Checkpoints, load_sb3
    model, _, out, _ = trained
    ck = Checkpoints(out / "checkpoints")
    assert ck.steps() == [150, 300]
    step, path, state = ck.latest()
    assert step == 300 and state["seed"] == 0
    assert {"model.zip", "replay_buffer.pkl", "rng.pkl", "state.json"} <= {p.name for p in path.iterdir()}
    loaded = load_sb3(SAC, path, door_env)
    assert loaded.num_timesteps == STEPS and loaded.replay_buffer.size() == STEPS
    np.testing.assert_array_equal(loaded.replay_buffer.rewards[:STEPS], model.replay_buffer.rewards[:STEPS])
    for (k, a), (_, b) in zip(model.policy.state_dict().items(), loaded.policy.state_dict().items()):
        assert np.array_equal(a.cpu().numpy(), b.cpu().numpy()), k
    obs, _ = door_env.reset(seed=3)
    action, _ = loaded.predict(obs, deterministic=True)
    np.testing.assert_allclose(action, model.predict(obs, deterministic=True)[0], atol=1e-6)
    assert action.shape == door_env.action_space.shape and door_env.action_space.contains(action.astype(np.float32))
    _, reward, _, _, _ = door_env.step(action)  # the loaded policy acts in the env
    assert 0.0 <= reward <= 1.0
    # the final model folder is the same model
    final = load_sb3(SAC, out / "model", door_env)
    assert final.num_timesteps == STEPS


def test_resume_continues_from_the_last_checkpoint(trained, door_env):
    from stable_baselines3 import SAC

    from d2f_core.acting.train import PAPER_SAC, train_sb3
    _, _, out, _ = trained
    rows: list[int] = []
    model, _ = train_sb3(SAC, door_env, out, resume=True, budget=STEPS + 50, checkpoint_every=150, seed=0,
                         log=lambda step, m: rows.append(step), log_every=25,
                         **{**PAPER_SAC, "batch_size": 64, "buffer_size": 5_000, "learning_starts": 100})
    assert rows == [325, 350]  # from step 300 on, not from zero
    assert model.num_timesteps == STEPS + 50 and model.replay_buffer.size() == STEPS + 50
