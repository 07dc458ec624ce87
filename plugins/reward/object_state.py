"""``object-state`` reward: the task's own shaped reward from the simulator (a privileged stand-in).

The paper's Open Door baseline: the reward robosuite's Door task computes from the simulator's
object state (gripper-to-handle distance, handle angle, hinge angle), not from any flow. This
plugin asks the run's world for it: ``world.task_reward()`` (world capability ``shaped_reward``),
evaluated on the world's live state, i.e. the state of the observation the world just returned.
What each world computes is documented on its ``task_reward`` (robosuite: ``tasks.task_reward``;
tabletop-2d: ``Tabletop2DWorld.task_reward``).

It reads privileged simulator state (declared: capabilities ``privileged`` and ``stand_in``), so it
exists for baselines and for checking the flow reward, never for a real robot. The flow and the
particles are ignored (``particles`` may be None: no estimator is needed).
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np

from d2f_core import Manifest, ObjectFlow, Observation, hookimpl
from d2f_core.registry import PluginUnavailableError

__all__ = ["ObjectStateReward"]


def _world_name(world: Any) -> str:
    return str(getattr(world, "name", type(world).__name__))


class ObjectStateReward:
    """``world.task_reward()`` as a reward (see the module docstring)."""

    name, kind = "object-state", "reward"
    capabilities = frozenset({"privileged", "stand_in", "deterministic"})
    description = ("the task's own shaped reward from the simulator's object state (privileged; the paper's "
                   "Open Door baseline: robosuite's shaped Door reward)")
    verified = "open_door equals robosuite's own shaped Door.reward(); tabletop-2d by hand (tests/test_rewards.py)"

    def __init__(self, world: Any) -> None:
        if world is None:
            raise ValueError("world: the object-state reward reads the run's world; configure one, e.g. "
                             "`world: {plugin: robosuite, options: {task: open_door}}`")
        if not callable(getattr(world, "task_reward", None)):
            raise ValueError(f"world.plugin: the object-state reward reads the world's own shaped reward "
                             f"(task_reward(), world capability 'shaped_reward'), but world {_world_name(world)!r} "
                             "has none; use a world that declares it (robosuite, tabletop-2d) or the `flow` reward")
        self.world = world

    def reset(self, flow: ObjectFlow, observation: Observation) -> None:
        """Start an episode; the flow is not used (checked for type only)."""
        if not isinstance(flow, ObjectFlow):
            raise ValueError(f"flow: expected a d2f_core.ObjectFlow, got {type(flow).__name__}")
        if not isinstance(observation, Observation):
            raise ValueError(f"observation: expected a d2f_core.Observation, got {type(observation).__name__}")

    def __call__(self, observation: Observation, particles: np.ndarray | None = None, *,
                 visible: np.ndarray | None = None) -> tuple[float, Mapping[str, Any]]:
        """(world.task_reward(), {"task_reward": r}) for the world's current state; particles are ignored."""
        if not isinstance(observation, Observation):
            raise ValueError(f"observation: expected a d2f_core.Observation, got {type(observation).__name__}")
        r = self.world.task_reward()
        try:
            value = float(r)
        except (TypeError, ValueError):
            value = math.nan
        if not math.isfinite(value):
            raise ValueError(f"world.task_reward: world {_world_name(self.world)!r} returned {r!r}; a shaped reward "
                             "must be a finite number (fix the world's task_reward)")
        return value, {"task_reward": value}


def _factory(options: Any, ctx: Any = None) -> ObjectStateReward:
    world = ctx.component("world") if ctx is not None else None
    if world is None:
        raise PluginUnavailableError(
            "reward plugin 'object-state' reads the run's world (its task_reward()), and none is configured: add "
            "`world: {plugin: robosuite}` (or tabletop-2d); `d2f check` builds plugins without a world, so its "
            "checks run in the tests instead (tests/test_rewards.py)")
    return ObjectStateReward(world)


@hookimpl
def d2f_register(register):
    register(Manifest.of(ObjectStateReward, factory=_factory))
