"""Checks of rewards (d2f_core.protocols.Reward).

Inputs: the standard scene as an episode (:func:`d2f_conformance.acting.scene_observations`), the
scene's true flow, and as particles the flow's own points of a frame (what a perfect estimator
would give) for rewards that declare ``needs_particles``; the others get ``particles=None``, as
from a run without an estimator.
"""

from __future__ import annotations

import copy
import math
from typing import Any, Mapping

import numpy as np

from ..acting import scene_observations
from ..results import CheckFailed
from ..scenes import CheckEnv
from .common import (Check, Snapshot, blocked_by, call, common_checks, expect_value_error, has_cap, require_cap,
                     require_same, skip_if_cap, values_equal)


OBSERVATION_FIX = "check isinstance(observation, d2f_core.Observation) and raise ValueError('observation: ...')"


def _particles(component: Any, env: CheckEnv, t: int) -> np.ndarray | None:
    if not has_cap(component, "needs_particles"):
        return None
    return np.array(env.scene.flow.points[t], dtype=np.float32, copy=True)


def _value(out: Any, what: str) -> float:
    if not isinstance(out, tuple) or len(out) != 2:
        raise CheckFailed(f"{what} returned {type(out).__name__}, expected a tuple (reward float, info mapping)")
    r, info = out
    if isinstance(r, (bool, np.bool_)) or not isinstance(r, (float, int, np.floating, np.integer)):
        raise CheckFailed(f"{what} returned a reward of type {type(r).__name__}; return a Python float: float(r)")
    if not math.isfinite(float(r)):
        raise CheckFailed(f"{what} returned the reward {r}; a reward must be finite")
    if not isinstance(info, Mapping):
        raise CheckFailed(f"{what} returned info of type {type(info).__name__}; return a dict (empty is fine)")
    return float(r)


def _rewards(component: Any, env: CheckEnv, frames: list[int], *, root: bool = False) -> list[float]:
    obs, flow = scene_observations(env.scene), env.scene.flow
    call("reset(flow, observation)", component.reset, flow, obs[0])
    out = []
    for t in frames:
        what = f"reward(observation of frame {t}, particles)"
        res = call(what, component, obs[t], _particles(component, env, t))
        try:
            out.append(_value(res, what))
        except CheckFailed as e:
            if root:
                raise
            blocked_by("reward_output_types", str(e).split(";")[0])
    return out


def check_reward_output_types(component: Any, env: CheckEnv) -> None:
    T = env.scene.flow.num_frames
    _rewards(component, env, [0, T // 2, T - 1], root=True)


def check_reward_determinism(component: Any, env: CheckEnv) -> None:
    skip_if_cap(component, "api", "a remote service need not be reproducible")
    frames = [1, 3, 5]
    require_same(_rewards(component, env, frames), _rewards(component, env, frames),
                 "episode (reset on frame 0, frames 1, 3, 5)", "rewards", rtol=0.0, atol=0.0)


def check_reward_follows_the_flow(component: Any, env: CheckEnv) -> None:
    require_cap(component, "needs_particles", "a reward that ignores the particles cannot follow the flow")
    obs, flow = scene_observations(env.scene), env.scene.flow
    T = flow.num_frames
    call("reset(flow, observation)", component.reset, flow, obs[0])
    early, late = (_value(call(f"reward(observation, particles at flow step {t})", component, obs[0],
                               _particles(component, env, t)), f"reward(observation, particles at flow step {t})")
                   for t in (1, T - 1))
    if not late > early:
        raise CheckFailed(f"with the end-effector fixed, particles at the flow's last step get reward {late:.4g}, not "
                          f"more than particles at its step 1 ({early:.4g}); a reward that follows the flow pays for "
                          "progress along it (compare the particles with every flow step, in the flow's order)")


def check_reward_rejects_malformed_input(component: Any, env: CheckEnv) -> None:
    obs, flow = scene_observations(env.scene), env.scene.flow
    expect_value_error("reset(flow, observation)", component.reset, np.array(flow.points), obs[0], arg="flow",
                       given="a bare T x N x 3 array as flow",
                       fix="check isinstance(flow, d2f_core.ObjectFlow) and raise ValueError('flow: ...')")
    call("reset(flow, observation)", component.reset, flow, obs[0])
    p = _particles(component, env, 1)
    expect_value_error("reward(observation, particles)", component, {"ee_pos": [0, 0, 0]}, p, arg="observation",
                       given="a dict as observation",
                       fix=OBSERVATION_FIX)
    if p is None:
        return
    n = flow.num_points
    fix = (f"check particles is a float {n} x 3 array (the flow's points, in order) and raise "
           "ValueError('particles: ...')")
    expect_value_error("reward(observation, particles)", component, obs[1], np.array(p[:, :2]), arg="particles",
                       given=f"{n} x 2 particles", fix=fix)
    expect_value_error("reward(observation, particles)", component, obs[1], np.array(p[:-1]), arg="particles",
                       given=f"{n - 1} x 3 particles for a flow of {n} points", fix=fix)
    expect_value_error("reward(observation, particles)", component, obs[1], None, arg="particles",
                       given="particles=None (no estimator configured)",
                       fix="a reward declaring needs_particles must say it needs an estimator: raise "
                           "ValueError('particles: ... configure an estimator')")


def check_reward_no_input_mutation(component: Any, env: CheckEnv) -> None:
    obs, flow = scene_observations(env.scene), env.scene.flow
    p = _particles(component, env, 2)
    snap = Snapshot(points=flow.points, visible=flow.visible, particles=p)
    plain = copy.deepcopy((dict(obs[2].state), dict(obs[2].privileged)))
    call("reset(flow, observation)", component.reset, flow, obs[0])
    call("reward(observation, particles)", component, obs[2], p)
    snap.assert_unchanged("reset()/reward()")
    for name, before, after in (("state", plain[0], obs[2].state), ("privileged", plain[1], obs[2].privileged)):
        ok, why = values_equal(before, dict(after))
        if not ok:
            raise CheckFailed(f"reward() modified observation.{name} ({why}); never write into an observation")


CHECKS: list[Check] = [
    *common_checks("reward"),
    Check("reward_output_types", "reward", check_reward_output_types,
          "reward(observation, particles) returns (finite float, info mapping)"),
    Check("reward_determinism", "reward", check_reward_determinism,
          "the same episode gives the same rewards (skipped for 'api')"),
    Check("reward_follows_the_flow", "reward", check_reward_follows_the_flow,
          "needs_particles: particles at the flow's end earn more than at its start (end-effector fixed)"),
    Check("reward_rejects_malformed_input", "reward", check_reward_rejects_malformed_input,
          "a bare array as flow, a non-Observation, and (needs_particles) bad or missing particles raise ValueError"),
    Check("reward_no_input_mutation", "reward", check_reward_no_input_mutation,
          "the flow, the particles and the observation are unchanged after reset()/reward()"),
]
