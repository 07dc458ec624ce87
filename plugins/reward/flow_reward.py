"""``flow`` reward: the paper's 3D object flow reward (Open Door reinforcement learning).

``R = w_particle * t*/t_end + w_ee * (1 - tanh(ee_scale * ||ee - x_bar||))`` (0.75, 0.25, 10/m by
default), ``t*`` the flow step nearest the estimator's current particles (mean per-point distance,
recomputed every step, not forced monotonic), ``x_bar`` the mean of the current particles. The maths,
the 0-based index convention (``t`` in ``1 .. T-1``, ``t_end = T - 1``) and what happens when no
particle is visible are in :mod:`d2f_core.flow.reward`.

Inputs: the particles come from the run's estimator (``estimator: {plugin: sim-particles}`` or
``tracking``), metres, world frame, in the flow's order; the end-effector position is
``observation.state["ee_pos"]`` (x, y, z metres, world frame: the robosuite world's end-effector
site, tabletop-2d's pusher tip). The caller may pass the estimator's ``visible`` flags as the
keyword ``visible`` (lost particles are then left out of the distances); without it every
particle counts.

``info``: ``t_star``, ``t_end``, ``r_particle``, ``r_ee``, ``mean_distance`` (m), ``points_used``,
``ee_distance`` (m).
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from d2f_core import Manifest, ObjectFlow, Observation, hookimpl
from d2f_core.flow.reward import FLOW_REWARD_DEFAULTS, flow_reward

__all__ = ["FlowRewardOptions", "FlowReward", "ee_position"]


class FlowRewardOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    w_particle: float = Field(default=FLOW_REWARD_DEFAULTS["w_particle"], ge=0.0,
                              description="weight of the flow-progress term t*/t_end (dimensionless; paper 0.75)")
    w_ee: float = Field(default=FLOW_REWARD_DEFAULTS["w_ee"], ge=0.0,
                        description="weight of the end-effector term 1 - tanh(ee_scale * distance) (dimensionless; "
                                    "paper 0.25); 0 drops it, and then no end-effector position is needed")
    ee_scale: float = Field(default=FLOW_REWARD_DEFAULTS["ee_scale"], gt=0.0,
                            description="tanh scale of the end-effector term, 1/metre (paper 10)")


def ee_position(observation: Observation, who: str) -> np.ndarray:
    """``observation.state["ee_pos"]`` as a float (3,) array (metres, world frame); ValueError naming the
    field and the fix when the world does not provide it."""
    state = observation.state if isinstance(observation.state, Mapping) else {}
    if "ee_pos" not in state:
        raise ValueError(f"observation.state['ee_pos']: {who} needs the end-effector position (x, y, z metres, "
                         f"world frame), and this observation has only {sorted(map(str, state)) or 'no state'}; "
                         "use a world that reports it (robosuite, tabletop-2d) or set reward.options.w_ee: 0")
    try:
        e = np.asarray(state["ee_pos"], dtype=np.float64)
    except (TypeError, ValueError):
        e = np.zeros(0)
    if e.shape != (3,) or not np.all(np.isfinite(e)):
        raise ValueError(f"observation.state['ee_pos']: expected 3 finite numbers (x, y, z metres), got "
                         f"{state['ee_pos']!r}")
    return e


class FlowReward:
    """The 3D object flow reward (see the module docstring). ``reset(flow, observation)`` first."""

    name, kind, Options = "flow", "reward", FlowRewardOptions
    capabilities = frozenset({"needs_particles", "deterministic"})
    description = "the paper's 3D object flow reward: 0.75 t*/t_end + 0.25 (1 - tanh(10 |ee - mean particle|))"
    verified = "hand-computed t*, r_particle and r_ee on constructed particle states (tests/test_rewards.py)"

    def __init__(self, options: FlowRewardOptions | None = None) -> None:
        self.options = options or FlowRewardOptions()
        self.flow: ObjectFlow | None = None

    def reset(self, flow: ObjectFlow, observation: Observation) -> None:
        """Follow ``flow`` (T >= 2 steps, metres, world frame) from ``observation`` (its particles are
        ``flow.points[0]``)."""
        if not isinstance(flow, ObjectFlow):
            raise ValueError(f"flow: expected a d2f_core.ObjectFlow (T x N x 3 metres, world frame), got "
                             f"{type(flow).__name__}")
        if flow.num_frames < 2:
            raise ValueError(f"flow: has {flow.num_frames} step(s); the flow reward needs at least 2 (start and goal)")
        if not isinstance(observation, Observation):
            raise ValueError(f"observation: expected a d2f_core.Observation, got {type(observation).__name__}")
        self.flow = flow

    def __call__(self, observation: Observation, particles: np.ndarray | None, *,
                 visible: np.ndarray | None = None) -> tuple[float, Mapping[str, Any]]:
        """(reward, info) for the current ``particles`` (N x 3 metres, world frame, the flow's order) and
        the end-effector in ``observation.state["ee_pos"]``; ``visible`` (bool N): the estimator's flags."""
        if self.flow is None:
            raise RuntimeError("flow reward: call reset(flow, observation) before computing rewards")
        if not isinstance(observation, Observation):
            raise ValueError(f"observation: expected a d2f_core.Observation, got {type(observation).__name__}")
        n = self.flow.num_points
        if particles is None:
            raise ValueError("particles: the flow reward needs the estimator's current particles; configure "
                             "`estimator: {plugin: sim-particles}` (simulator) or `estimator: {plugin: tracking}`")
        if not isinstance(particles, np.ndarray) or particles.shape != (n, 3) \
                or not np.issubdtype(particles.dtype, np.floating):
            raise ValueError(f"particles: expected a float array {n} x 3 (metres, world frame, the flow's points "
                             f"in order), got {getattr(particles, 'dtype', type(particles).__name__)} "
                             f"{getattr(particles, 'shape', '')}")
        if visible is not None:
            visible = np.asarray(visible)
            if visible.dtype != np.bool_ or visible.shape != (n,):
                raise ValueError(f"visible: expected bool ({n},), got {visible.dtype} {visible.shape}")
        o = self.options
        ee = ee_position(observation, "the flow reward's end-effector term (w_ee > 0)") if o.w_ee > 0 else None
        return flow_reward(self.flow.points, particles, ee, flow_visible=self.flow.visible, visible=visible,
                           w_particle=o.w_particle, w_ee=o.w_ee, ee_scale=o.ee_scale)


@hookimpl
def d2f_register(register):
    register(Manifest.of(FlowReward))
