"""``FlowEnv``: a Gymnasium environment around a dream2flow world (+ embodiment, reward, estimator).

Needs ``gymnasium`` (extra ``sim`` or ``rl``); imported only by this module, never by ``import
d2f_core``.

* ``reset(seed) -> (obs, info)``: resets the world with ``seed`` (``None``: the next seed of this
  env's sequence, ``base_seed + episode index``, so a learner sees a new scene every episode and the
  sequence is reproducible), then the estimator and the reward.
* ``step(a) -> (obs, reward, terminated, truncated, info)``: one world step; ``terminated`` when the
  world's own success check passes (``stop_on_success``), ``truncated`` at the horizon.
* Observation: a float32 vector, the embodiment's joints followed by every numeric entry of the
  world's ``Observation.state`` in key order (see :func:`observation_vector`), plus the mean of
  the estimated particles (3) when ``observe_particles``. The full dream2flow
  :class:`~d2f_core.Observation` of the last step is :attr:`FlowEnv.observation` (agents act on it).
* Action: the world's action vector, ``Box(world.action_low, world.action_high)``.
* ``info``: ``success``, ``t`` (steps so far), the reward's info under ``reward_info``, and
  ``particles_visible`` (fraction) when an estimator runs.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import gymnasium as gym
import numpy as np

from ..types import ObjectFlow, Observation

__all__ = ["FlowEnv", "observation_vector"]


def observation_vector(observation: Observation) -> np.ndarray:
    """float32 vector: ``joints`` then every numeric entry of ``observation.state`` (sorted keys,
    flattened); strings and other non-numeric entries are skipped, and so are the keys a state lists in
    its ``image_keys`` (camera views it renders only when read)."""
    parts = [np.asarray(observation.joints, dtype=np.float64).ravel()]
    images = set(getattr(observation.state, "image_keys", ()))  # images rendered on access (pusht's views)
    for key in sorted(observation.state):
        if key in images:
            continue
        value = observation.state[key]
        if isinstance(value, (str, bytes)) or value is None:
            continue
        try:
            arr = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError):
            continue
        if arr.dtype.kind in "fiub" and arr.size:
            parts.append(arr.ravel())
    return np.concatenate(parts).astype(np.float32)


class FlowEnv(gym.Env):
    """A Gymnasium env over a dream2flow world (module docstring for the contract).

    Args:
        world: a :class:`d2f_core.protocols.World` (its embodiment already bound).
        reward: a :class:`d2f_core.protocols.Reward`, or None (reward 0).
        estimator: a :class:`d2f_core.protocols.StateEstimator`, or None.
        flow: the 3D object flow the reward and estimator follow (needed when either is given).
        horizon: steps before truncation (default: the world's).
        base_seed: the first episode's seed when ``reset`` gets none.
        stop_on_success: terminate when the world's success check passes.
        observe_particles: append the mean of the estimated particles to the observation.
        render_mode: None or "rgb_array" (``render()`` returns the world's camera image).
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 20}

    def __init__(self, world: Any, *, reward: Any = None, estimator: Any = None, flow: ObjectFlow | None = None,
                 horizon: int | None = None, base_seed: int = 0, stop_on_success: bool = True,
                 observe_particles: bool = False, render_mode: str | None = None) -> None:
        if (reward is not None or estimator is not None) and flow is None:
            raise ValueError("flow: a reward or an estimator follows a 3D object flow; pass flow=ObjectFlow(...) "
                             "(make_env runs the perception stages of the config to get one)")
        if observe_particles and estimator is None:
            raise ValueError("observe_particles: needs an estimator (configure `estimator: {plugin: ...}`)")
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode: {render_mode!r} is not supported; use None or 'rgb_array'")
        self.world, self.reward_fn, self.estimator, self.flow = world, reward, estimator, flow
        self.horizon = int(horizon if horizon is not None else world.horizon)
        if self.horizon < 1:
            raise ValueError(f"horizon: expected >= 1 steps, got {self.horizon}")
        self.base_seed, self.stop_on_success = int(base_seed), bool(stop_on_success)
        self.observe_particles, self.render_mode = bool(observe_particles), render_mode
        self._episodes = 0
        self.t = 0
        self.seed_in_use: int | None = None
        self.particles: np.ndarray | None = None
        self.visible: np.ndarray | None = None
        low = np.asarray(world.action_low, dtype=np.float32)
        high = np.asarray(world.action_high, dtype=np.float32)
        self.action_space = gym.spaces.Box(low=low, high=high, dtype=np.float32)
        self.observation: Observation = world.reset(self.base_seed)
        self._start_components(self.observation)
        dim = self._vector(self.observation).shape[0]
        self.observation_space = gym.spaces.Box(low=-np.inf, high=np.inf, shape=(dim,), dtype=np.float32)

    # ------------------------------------------------------------------ helpers
    def _start_components(self, obs: Observation) -> None:
        if self.estimator is not None:
            self.estimator.reset(obs, self.flow)
            self.particles, self.visible = self.estimator.estimate(obs)
        if self.reward_fn is not None:
            self.reward_fn.reset(self.flow, obs)

    def _vector(self, obs: Observation) -> np.ndarray:
        v = observation_vector(obs)
        if self.observe_particles:
            p = self.particles if self.particles is not None else np.zeros((1, 3), np.float32)
            v = np.concatenate([v, np.asarray(p, np.float32).mean(axis=0)])
        return v.astype(np.float32)

    def _info(self, reward_info: Mapping[str, Any] | None = None) -> dict[str, Any]:
        info: dict[str, Any] = {"success": bool(self.world.success()), "t": self.t, "seed": self.seed_in_use}
        if reward_info:
            info["reward_info"] = dict(reward_info)
        if self.visible is not None:
            info["particles_visible"] = float(np.mean(self.visible)) if len(self.visible) else 0.0
        return info

    # ------------------------------------------------------------------ Gymnasium API
    def reset(self, *, seed: int | None = None, options: Mapping[str, Any] | None = None):
        super().reset(seed=seed)
        if seed is None:
            seed = self.base_seed + self._episodes
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed: expected a non-negative integer, got {seed!r}")
        self._episodes += 1
        self.seed_in_use, self.t = int(seed), 0
        self.observation = self.world.reset(int(seed))
        self._start_components(self.observation)
        return self._vector(self.observation), self._info()

    def step(self, action: Any):
        a = np.asarray(action, dtype=np.float64)
        if a.shape != self.action_space.shape:
            raise ValueError(f"action: expected shape {self.action_space.shape} (the world's action vector), "
                             f"got {a.shape}")
        if not np.all(np.isfinite(a)):
            raise ValueError("action: contains NaN or inf")
        self.observation = self.world.step(a)
        self.t += 1
        return self._after_world_moved()

    def _after_world_moved(self):
        """Estimate, reward, info and the episode's end for :attr:`observation`: what step and push return."""
        obs = self.observation
        if self.estimator is not None:
            self.particles, self.visible = self.estimator.estimate(obs)
        reward, rinfo = 0.0, None
        if self.reward_fn is not None:
            reward, rinfo = self.reward_fn(obs, self.particles, visible=self.visible)
            reward = float(reward)
            if not math.isfinite(reward):
                raise ValueError(f"reward: {getattr(self.reward_fn, 'name', 'the reward')} returned {reward}; "
                                 "a reward must be finite")
        info = self._info(rinfo)
        terminated = bool(self.stop_on_success and info["success"])
        truncated = bool(self.t >= self.horizon and not terminated)
        return self._vector(obs), reward, terminated, truncated, info

    def push(self, action: Any):
        """One whole planar push ``(contact_x, contact_y, push_dx, push_dy)`` (metres, world frame) through the
        world's ``push`` (capability ``pushes``: its own pusher travels, descends behind the contact point,
        pushes, lifts; many world steps). Returns what :meth:`step` returns; ``t`` counts the world's steps."""
        push = getattr(self.world, "push", None)
        if not callable(push) or "pushes" not in getattr(self.world, "capabilities", frozenset()):
            raise ValueError(f"world: {getattr(self.world, 'name', type(self.world).__name__)!r} cannot execute a "
                             "whole push (capability 'pushes'); use a push world such as `world: {plugin: pusht}`")
        a = np.asarray(action, dtype=np.float64)
        if a.shape != (4,) or not np.all(np.isfinite(a)):
            raise ValueError(f"action: a push is 4 finite numbers (contact_x, contact_y, push_dx, push_dy) metres, "
                             f"got shape {a.shape}")
        t_before = int(getattr(self.world, "t", self.t))
        self.observation = push(a)
        self.t += max(1, int(getattr(self.world, "t", t_before + 1)) - t_before)
        return self._after_world_moved()

    def render(self):
        if self.render_mode is None:
            return None
        frame = getattr(self.world, "video_frame", None)
        return frame() if callable(frame) else self.world.render().rgb

    def close(self) -> None:
        close = getattr(self.world, "close", None)
        if callable(close):
            close()

    # ------------------------------------------------------------------ reports
    def describe(self) -> str:
        """One line on the world's task state (the world's ``describe_state()`` when it has one)."""
        describe = getattr(self.world, "describe_state", None)
        if callable(describe):
            try:
                return str(describe())
            except Exception as e:  # noqa: BLE001 - a report must not fail the episode
                return f"state not described ({type(e).__name__}: {e})"
        return "the world's success check did not pass"
