"""The conformance checks, one module per component kind, gathered in :data:`CHECKS`.

``CHECKS[kind]`` is the full list a component of that kind is checked with (the common checks
first). Each :class:`Check` has a public ``name``, the ``kind`` it is defined for (``"common"``
for shared ones), a ``func(component, env)`` raising CheckFailed/CheckSkipped and a one-line
``doc``. Checks only look at the protocol and the declared capabilities, never at plugin names.
"""

from __future__ import annotations

from d2f_core.protocols import KINDS

from . import depth, dynamics, embodiment, estimator, grasper, hand, reward, segmenter, solver, tracker, video, world
from .common import Check

CHECKS: dict[str, list[Check]] = {
    "video": video.CHECKS, "depth": depth.CHECKS, "segmenter": segmenter.CHECKS, "tracker": tracker.CHECKS,
    "hand": hand.CHECKS, "grasper": grasper.CHECKS, "dynamics": dynamics.CHECKS,
    "estimator": estimator.CHECKS, "reward": reward.CHECKS,
    "embodiment": embodiment.CHECKS, "world": world.CHECKS, "solver": solver.CHECKS,
}

assert set(CHECKS) == set(KINDS), "every kind needs a check list"
for _kind, _checks in CHECKS.items():
    _names = [c.name for c in _checks]
    assert len(_names) == len(set(_names)), f"duplicate check names for {_kind}"


def check_names(kind: str) -> list[str]:
    """Names of the checks run on a component of ``kind``, in order."""
    return [c.name for c in CHECKS[kind]]


__all__ = ["CHECKS", "Check", "check_names"]
