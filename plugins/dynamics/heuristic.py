"""``heuristic`` dynamics: the paper's heuristic pushing baseline.

A push translates every particle by the push vector, without rotation. An action is
``(contact_x, contact_y, push_dx, push_dy)`` in metres, world frame, in the table plane;
z is unchanged. With ``contact_radius`` set, a push whose contact point is farther than that
(in xy) from every particle misses the object and moves nothing.

``sample_actions(points, n, rng)`` (capability ``sample_actions``, for random shooting) proposes
pushes that make contact at different points and in different directions, from the particles'
footprint in the table plane (xy):

1. a push direction ``d`` uniform on the circle;
2. a push line along ``d`` whose lateral offset is uniform over the particles' extent across
   ``d`` (so every line crosses the object: centred pushes translate it, off-centre ones turn it);
3. the contact point on that line just behind the object: ``sample_margin`` metres before the
   rearmost particle within ``sample_band`` of the line (the pusher's tip starts outside the
   object and meets it there);
4. a length uniform in ``push_length`` = [min, max] metres: ``(push_dx, push_dy) = length * d``.

Pure numpy, vectorised over the ``n`` candidates; the same ``rng`` state gives the same pushes.

``rotation`` (option) chooses the model:

* ``"none"`` (default): **the paper's heuristic baseline**, exactly as above: every particle moves by
  the push vector, nothing turns.
* ``"quasi-static"``: **our extension, not the paper's baseline**. The push line (through the contact
  point along the push) meets the object at the rearmost particle within ``sample_band`` of it (no
  particle that close: the push misses, nothing moves); the pusher (tip radius ``pusher_radius``)
  travels freely until it touches that particle, and for the rest of the push the particles move
  rigidly in the table plane as a slider pushed at a sticking point contact would: quasi-static
  pushing with an ellipsoidal limit surface (Lynch,
  Maekawa & Tanie 1992), ``c^2`` = the particles' mean squared xy distance from their centroid
  (exactly (a^2 + b^2) / 12 for a uniformly sampled a x b rectangle), integrated in ``substeps``
  steps. With the contact at ``r`` from the centroid and the pusher moving by ``u``, the centroid
  moves by ``((c^2 + rx^2) ux + rx ry uy, rx ry ux + (c^2 + ry^2) uy) / D`` and the particles turn
  about it by ``(rx uy - ry ux) / D``, ``D = c^2 + rx^2 + ry^2``. Sliding at the contact (a push
  outside the friction cone) is not modelled. This is the sticking branch of the ``tabletop-2d``
  world's own contact model, so on that world it is a strong (though not exact) model; it is not
  what the paper compares against.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from d2f_core import Manifest, hookimpl
from d2f_core.validate import check_points

__all__ = ["HeuristicOptions", "HeuristicPushDynamics"]


class HeuristicOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    contact_radius: float | None = Field(
        default=None, gt=0.0,
        description="metres; a push whose contact point is farther than this from every particle "
                    "(xy distance) moves nothing. None: every push moves the object")
    push_length: list[float] = Field(
        default=[0.01, 0.05],
        description="sample_actions: [min, max] push length, metres (uniform)")
    sample_margin: float = Field(
        default=0.015, ge=0.0, le=0.2,
        description="sample_actions: the contact point lies this far behind the object's rearmost particle "
                    "on the push line, metres (the pusher starts outside the object)")
    sample_band: float = Field(
        default=0.01, gt=0.0, le=0.2,
        description="sample_actions: particles within this distance of a push line (xy, metres) count as "
                    "on it; a line with none uses the particle nearest to it")

    rotation: Literal["none", "quasi-static"] = Field(
        default="none",
        description="'none': the paper's heuristic (translate by the push, no rotation); 'quasi-static': "
                    "particles also turn as under a sticking point push (module docstring; not the paper's)")
    substeps: int = Field(default=10, ge=1, le=1000,
                          description="'quasi-static' only: integration steps over one push")
    pusher_radius: float = Field(default=0.0, ge=0.0, le=0.2,
                                 description="'quasi-static' only: radius of the pusher's tip, metres: it meets "
                                             "the object this far before the rearmost particle on its line")

    @field_validator("push_length")
    @classmethod
    def _length(cls, v: list[float]) -> list[float]:
        if len(v) != 2 or not all(math.isfinite(x) for x in v) or not (0.0 < v[0] <= v[1] <= 1.0):
            raise ValueError("expected [min, max] push length in metres with 0 < min <= max <= 1")
        return v


class HeuristicPushDynamics:
    """``predict(points N x 3, actions B x 4) -> B x N x 3``: points + (push_dx, push_dy, 0);
    ``sample_actions(points, n, rng) -> n x 4`` contact pushes (module docstring)."""

    name, kind, Options = "heuristic", "dynamics", HeuristicOptions
    capabilities = frozenset({"particles", "deterministic", "sample_actions"})
    description = ("paper's heuristic push baseline: every particle moves by the push vector, no rotation; "
                   "samples contact pushes for random shooting")
    verified = ("exact translations and contact_radius misses in tests; sampled pushes start outside the "
                "particles and their lines cross them")
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
        radius = self.options.contact_radius
        hits = np.ones(a.shape[0], bool)
        if radius is not None:
            if pts.shape[0] == 0:
                hits = np.zeros(a.shape[0], bool)
            else:
                d2 = ((a[:, None, :2] - pts[None, :, :2]) ** 2).sum(-1)  # B x N
                hits = d2.min(axis=1) <= radius ** 2
        if self.options.rotation == "quasi-static" and pts.shape[0] > 0:
            return self._quasi_static(pts, a, hits)
        shift = np.zeros((a.shape[0], 3))
        shift[:, :2] = a[:, 2:4]
        shift[~hits] = 0.0
        return (pts[None] + shift[:, None, :]).astype(np.float32)

    def _quasi_static(self, pts: np.ndarray, a: np.ndarray, hits: np.ndarray) -> np.ndarray:
        """``rotation="quasi-static"`` (module docstring): B x N x 3 float32."""
        o = self.options
        B = a.shape[0]
        xy = pts[:, :2]
        centre = xy.mean(axis=0)
        rel = xy - centre                                       # N x 2
        c2 = max(float((rel ** 2).sum(axis=1).mean()), 1e-10)
        length = np.hypot(a[:, 2], a[:, 3])
        safe = np.where(length > 1e-12, length, 1.0)
        d = a[:, 2:4] / safe[:, None]                           # B x 2 unit push directions
        perp = np.stack([-d[:, 1], d[:, 0]], -1)
        start = ((a[:, :2] - centre) * d).sum(axis=1)           # contact point along d
        offset = ((a[:, :2] - centre) * perp).sum(axis=1)       # push line across d
        along, across = d @ rel.T, perp @ rel.T                 # B x N
        near = np.abs(across - offset[:, None]) <= o.sample_band
        rear = np.where(near, along, np.inf).min(axis=1)
        touches = near.any(axis=1) & hits & (length > 1e-12)
        rear = np.where(touches, rear, 0.0)
        free = np.maximum(rear - o.pusher_radius - start, 0.0)      # pusher travel before it touches
        travel = np.where(touches, np.clip(length - free, 0.0, None), 0.0)
        r0 = offset[:, None] * perp + rear[:, None] * d         # touch point from the centroid, B x 2
        t = np.zeros((B, 2))
        theta = np.zeros(B)
        u = d * (travel / o.substeps)[:, None]                  # pusher motion per substep
        for _ in range(o.substeps):
            c, s = np.cos(theta), np.sin(theta)
            rx = c * r0[:, 0] - s * r0[:, 1]
            ry = s * r0[:, 0] + c * r0[:, 1]
            D = c2 + rx * rx + ry * ry
            ux, uy = u[:, 0], u[:, 1]
            t[:, 0] += ((c2 + rx * rx) * ux + rx * ry * uy) / D
            t[:, 1] += (rx * ry * ux + (c2 + ry * ry) * uy) / D
            theta += (rx * uy - ry * ux) / D
        c, s = np.cos(theta)[:, None], np.sin(theta)[:, None]
        out = np.repeat(pts[None], B, axis=0)
        out[:, :, 0] = centre[0] + t[:, :1] + c * rel[None, :, 0] - s * rel[None, :, 1]
        out[:, :, 1] = centre[1] + t[:, 1:] + s * rel[None, :, 0] + c * rel[None, :, 1]
        return out.astype(np.float32)

    def sample_actions(self, points: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` candidate pushes (float64 n x 4: contact_x, contact_y, push_dx, push_dy; metres, world
        frame) that make contact with the particles ``points`` (N x 3, metres, world frame; N >= 1)
        at different points and directions; drawn from ``rng`` (see the module docstring)."""
        pts = check_points(points, "points").astype(np.float64)
        if pts.shape[0] == 0:
            raise ValueError("points: no particles to push; pass the object's N x 3 particles (N >= 1)")
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"n: expected a positive integer number of candidate pushes, got {n!r}")
        if not isinstance(rng, np.random.Generator):
            raise ValueError(f"rng: expected a numpy Generator (np.random.default_rng(seed)), got "
                             f"{type(rng).__name__}")
        o = self.options
        n = int(n)
        xy = pts[:, :2]
        centre = xy.mean(axis=0)
        rel = xy - centre                                   # N x 2
        theta = rng.uniform(-np.pi, np.pi, size=n)
        d = np.stack([np.cos(theta), np.sin(theta)], -1)    # n x 2 push directions
        perp = np.stack([-d[:, 1], d[:, 0]], -1)            # n x 2, d rotated +90 degrees
        along = d @ rel.T                                   # n x N: particle coordinate along d
        across = perp @ rel.T                               # n x N: particle coordinate across d
        lo, hi = across.min(axis=1), across.max(axis=1)
        offset = lo + rng.uniform(0.0, 1.0, size=n) * (hi - lo)   # lateral position of the push line
        gap = np.abs(across - offset[:, None])
        on_line = gap <= o.sample_band
        nearest = gap.argmin(axis=1)
        on_line[np.arange(n), nearest] = True               # a line always meets at least one particle
        rear = np.where(on_line, along, np.inf).min(axis=1)  # rearmost particle on the line
        s = rear - o.sample_margin
        contact = centre + offset[:, None] * perp + s[:, None] * d
        length = rng.uniform(o.push_length[0], o.push_length[1], size=n)
        return np.concatenate([contact, length[:, None] * d], axis=1)


@hookimpl
def d2f_register(register):
    register(Manifest.of(HeuristicPushDynamics))
