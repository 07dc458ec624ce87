"""``rollout(env, agent, seed)``: one episode of an agent in a :class:`~.env.FlowEnv`, as a report.

The shape of LeRobot's ``rollout()`` and Gymnasium's loop: the env is always reset with ``seed``,
the agent is reset on the first observation, then ``agent.act(observation)`` until the agent
returns None (done), the world's success check terminates the episode, or the horizon truncates
it. Whatever happens, an :class:`~.episode.EpisodeReport` comes back with a one-line reason for a
failure: an exception inside the loop becomes ``ended="error"`` with the exception named, never a
lost episode.
"""

from __future__ import annotations

import time
from typing import Any, Callable

import numpy as np

from .episode import EpisodeReport

__all__ = ["rollout", "refusal_of"]


def refusal_of(agent: Any) -> str | None:
    """Why ``agent`` will not act at all (``agent.refused``: a plan the solver refused), or None."""
    reason = getattr(agent, "refused", None)
    return str(reason) if reason else None


def rollout(env: Any, agent: Any, seed: int, *, max_steps: int | None = None,
            frames: list[np.ndarray] | None = None, frame_every: int = 1,
            progress: Callable[[int, int], None] | None = None,
            trace: list[dict[str, Any]] | None = None) -> EpisodeReport:
    """Run one episode (see the module docstring).

    Args:
        env: a :class:`~.env.FlowEnv` (or anything with its ``reset``/``step``/``observation``/
            ``describe``/``world`` attributes).
        agent: a :class:`d2f_core.protocols.Agent` (``reset(obs)``, ``act(obs) -> action | None``).
        seed: the world's reset seed.
        max_steps: cap below the env's horizon.
        frames: a list to append RGB frames to (the first after reset, then every ``frame_every``
            steps and the last), or None for no video.
        progress: called as ``progress(step, max_steps)`` every 10 steps.
        trace: a list to append ``{"step": k, **world.privileged_state()}`` to after the reset (k = 0) and
            every step (plain JSON values; the 4x4 ``object_pose`` left out), or None: what the world's
            ground truth was along the episode, for pictures and reports (never shown to the agent).
    """
    t0 = time.perf_counter()
    steps, ret, rewards = 0, 0.0, []
    ended, reason = "timeout", ""
    last_info: dict[str, Any] = {}
    grab = _grabber(env) if frames is not None else None
    try:
        _, info = env.reset(seed=int(seed))
        obs = env.observation
        agent.reset(obs)
        if trace is not None:
            trace.append(_state(env, 0))
        if grab is not None:
            frames.append(grab(obs))
        refused = refusal_of(agent)
        limit = min(int(env.horizon), int(max_steps)) if max_steps else int(env.horizon)
        if refused:
            ended, reason = "refused", f"plan refused: {refused}"
        else:
            while True:
                if steps >= limit:
                    ended = "timeout"
                    break
                action = agent.act(obs)
                if action is None:
                    ended = "agent_done"
                    break
                _, r, terminated, truncated, last_info = env.step(np.asarray(action, dtype=np.float64))
                obs = env.observation
                steps += 1
                ret += float(r)
                rewards.append(float(r))
                if trace is not None:
                    trace.append(_state(env, steps))
                if grab is not None and (steps % max(1, frame_every) == 0):
                    frames.append(grab(obs))
                if progress is not None and steps % 10 == 0:
                    progress(steps, limit)
                if terminated:
                    ended = "success"
                    break
                if truncated:
                    ended = "timeout"
                    break
        if grab is not None and steps % max(1, frame_every) != 0:
            frames.append(grab(obs))
        success = bool(env.world.success())
    except Exception as e:  # noqa: BLE001 - an episode that raised is a failed episode, reported
        success, ended = False, "error"
        reason = f"{type(e).__name__} at step {steps}: {str(e)[:300]}"
    if not success and not reason:
        state = env.describe()
        if ended == "agent_done":
            reason = f"the agent stopped after {steps} steps: {state}"
        elif ended == "success":  # terminated on success, then the check failed (cannot happen in one step)
            reason = f"success lost after step {steps}: {state}"
        else:
            reason = f"timeout after {steps} steps: {state}"
    try:
        final = EpisodeReport.plain(dict(env.world.privileged_state()))
    except Exception as e:  # noqa: BLE001
        final = {"error": f"{type(e).__name__}: {e}"}
    return EpisodeReport(seed=int(seed), success=success, steps=steps, episode_return=ret,
                         reason="" if success else reason, ended=ended,
                         seconds=time.perf_counter() - t0, final_state=final, rewards=tuple(rewards),
                         info=EpisodeReport.plain({"last": last_info}))


def _state(env: Any, step: int) -> dict[str, Any]:
    state = {k: v for k, v in dict(env.world.privileged_state()).items() if k != "object_pose"}
    return {"step": int(step), **EpisodeReport.plain(state)}


def _grabber(env: Any) -> Callable[[Any], np.ndarray]:
    world = env.world
    video = getattr(world, "video_frame", None)

    def grab(obs: Any) -> np.ndarray:
        if getattr(obs, "rgbd", None) is not None:
            return obs.rgbd.rgb
        return video() if callable(video) else world.render().rgb
    return grab
