"""``heuristic`` dynamics: the paper's heuristic pushing baseline.

A push translates every particle by the push vector, without rotation. An action is
``(contact_x, contact_y, push_dx, push_dy)`` in metres, world frame, in the table plane;
z is unchanged. With ``contact_radius`` set, a push whose contact point is farther than that
(in xy) from every particle misses the object and moves nothing.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from d2f_core import Manifest, hookimpl
from d2f_core.validate import check_points

__all__ = ["HeuristicOptions", "HeuristicPushDynamics"]


class HeuristicOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    contact_radius: float | None = Field(
        default=None, gt=0.0,
        description="metres; a push whose contact point is farther than this from every particle "
                    "(xy distance) moves nothing. None: every push moves the object")


class HeuristicPushDynamics:
    """``predict(points N x 3, actions B x 4) -> B x N x 3``: points + (push_dx, push_dy, 0)."""

    name = "heuristic"
    capabilities = frozenset({"particles", "deterministic"})
    action_dim = 4
    action_names = ("contact_x m", "contact_y m", "push_dx m", "push_dy m")

    def __init__(self, options: HeuristicOptions | None = None) -> None:
        self.options = options or HeuristicOptions()

    def predict(self, points: np.ndarray, actions: np.ndarray) -> np.ndarray:
        pts = check_points(points, "points").astype(np.float64)
        if not isinstance(actions, np.ndarray):
            raise ValueError(f"actions: expected a numpy array B x 4, got {type(actions).__name__}")
        if actions.ndim == 1:
            raise ValueError(f"actions: expected a batch B x 4, got a single action of shape {actions.shape}; "
                             "use actions[None] for one action")
        if actions.ndim != 2 or actions.shape[1] != self.action_dim:
            raise ValueError(f"actions: expected B x 4 rows of (contact_x, contact_y, push_dx, push_dy) "
                             f"metres, got shape {actions.shape}")
        if not (np.issubdtype(actions.dtype, np.floating) or np.issubdtype(actions.dtype, np.integer)):
            raise ValueError(f"actions: expected numbers (metres), got dtype {actions.dtype}")
        a = actions.astype(np.float64)
        if not np.all(np.isfinite(a)):
            raise ValueError("actions: contains NaN or inf")
        shift = np.zeros((a.shape[0], 3))
        shift[:, :2] = a[:, 2:4]
        radius = self.options.contact_radius
        if radius is not None:
            if pts.shape[0] == 0:
                hits = np.zeros(a.shape[0], bool)
            else:
                d2 = ((a[:, None, :2] - pts[None, :, :2]) ** 2).sum(-1)  # B x N
                hits = d2.min(axis=1) <= radius ** 2
            shift[~hits] = 0.0
        return (pts[None] + shift[:, None, :]).astype(np.float32)


def _factory(options: HeuristicOptions | None, ctx: Any = None) -> HeuristicPushDynamics:
    return HeuristicPushDynamics(options)


@hookimpl
def d2f_register(register):
    register(Manifest(
        name="heuristic", kind="dynamics", factory=_factory, options_model=HeuristicOptions,
        capabilities=HeuristicPushDynamics.capabilities,
        description="paper's heuristic push baseline: every particle moves by the push vector, no rotation",
        verified="exact translations and contact_radius misses in tests"))
