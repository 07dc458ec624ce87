"""``tabletop-2d`` world: planar quasi-static pushing of a textured block, pure numpy.

Scene (world frame, metres, radians; z up, table plane z = 0):

* a rigid box ("block") of size ``a x b x h`` (``block_size``) lying on the table, pose
  ``(x, y, yaw)`` of its centre; its texture is in block-local coordinates, so it moves with it;
* a goal pose for the block, drawn as a faint outline on the table;
* the point-mass pusher: a vertical cylinder of radius ``pusher_radius`` whose bottom tip is
  at the embodiment's joint position ``(x, y, z)``.

Actions are target pusher positions ``(x, y, z)`` (clipped to the embodiment's joint limits).
Each step the pusher moves in a straight line towards the target, by at most
``velocity_limit * dt`` along each axis (the move is scaled down uniformly when needed), in
substeps of at most ``max_substep`` metres. Contact with the block (pusher tip below the block
top and its disk overlapping the block's rectangle) is resolved by moving the block
quasi-statically (see :meth:`Tabletop2DWorld._resolve_contact` for the model and its
derivation). The pusher never passes through the block: coming from above it rests on the
block's top face; sideways it pushes.

``render()`` ray-casts the calibrated camera (oblique, looking down at the table): the table,
the block's top *and* side faces, the pusher cylinder and the goal outline. Depth is the metric
camera z of the first hit (float32), exact up to float32 rounding.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from d2f_core import RGBD, Camera, Manifest, Observation, Task, hookimpl
from d2f_core.types import frames_match

__all__ = ["Tabletop2DOptions", "Tabletop2DWorld", "TabletopOracleRollout", "SUPPORTED_ROBOTS"]

SUPPORTED_ROBOTS = ("point-mass",)
"""Embodiment ``robot`` identifiers this world can drive."""

_LIGHT = np.array([0.3, -0.5, 1.0]) / np.linalg.norm([0.3, -0.5, 1.0])
_PUSHER_RGB = np.array([215.0, 70.0, 45.0])
_GOAL_RGB = np.array([120.0, 255.0, 140.0])


class Tabletop2DOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    width: int = Field(default=320, ge=8, le=4096, description="rendered image width, pixels")
    height: int = Field(default=240, ge=8, le=4096, description="rendered image height, pixels")
    fov_deg: float = Field(default=60.0, gt=1.0, lt=170.0,
                           description="horizontal field of view of the camera, degrees")
    camera_eye: list[float] = Field(default=[0.0, -0.36, 0.42],
                                    description="camera centre (x, y, z), metres, world frame")
    camera_target: list[float] = Field(default=[0.0, 0.04, 0.0],
                                       description="point the camera looks at (x, y, z), metres, world frame")
    block_size: list[float] = Field(default=[0.10, 0.06, 0.04],
                                    description="block extent along its local x, y, z axes, metres")
    pusher_radius: float = Field(default=0.01, gt=0.0, le=0.05, description="pusher cylinder radius, metres")
    pusher_length: float = Field(default=0.06, gt=0.0, le=0.5,
                                 description="rendered pusher cylinder length above its tip, metres")
    friction: float = Field(default=0.5, ge=0.0, le=5.0,
                            description="pusher-block friction coefficient (dimensionless); bounds the "
                                        "friction cone of the sticking/sliding contact model")
    dt: float = Field(default=0.1, gt=0.0, le=10.0, description="duration of one step, seconds")
    max_substep: float = Field(default=0.002, gt=0.0, le=0.01,
                               description="longest pusher move per physics substep, metres")
    horizon: int = Field(default=200, ge=1, description="maximum number of steps of one episode")
    render_observations: bool = Field(default=True,
                                      description="render an RGB-D frame into every Observation "
                                                  "(False: Observation.rgbd is None; render() still works)")
    start_range: float = Field(default=0.05, ge=0.0, le=0.2,
                               description="block start centre uniform in [-r, r]^2 around the table "
                                           "centre, metres")
    goal_distance: list[float] = Field(default=[0.08, 0.15],
                                       description="[min, max] distance of the goal from the block start, "
                                                   "metres (direction uniform)")
    yaw_range_deg: float = Field(default=30.0, ge=0.0, le=90.0,
                                 description="block start yaw and goal yaw uniform in [-r, r], degrees")
    park: list[float] = Field(default=[0.0, -0.2, 0.1],
                              description="pusher tip position after reset (x, y, z), metres, world frame")
    success_distance: float = Field(default=0.02, gt=0.0, description="success: block centre within this "
                                                                      "distance of the goal, metres")
    success_yaw_deg: float = Field(default=15.0, gt=0.0, le=90.0,
                                   description="success: block yaw within this of the goal yaw (modulo "
                                               "180 degrees, the box is symmetric), degrees")
    table_seed: int = Field(default=1, description="seed of the table texture")
    block_seed: int = Field(default=2, description="seed of the block texture")

    @field_validator("camera_eye", "camera_target", "park")
    @classmethod
    def _xyz(cls, v: list[float]) -> list[float]:
        if len(v) != 3 or not all(math.isfinite(x) for x in v):
            raise ValueError("expected 3 finite numbers (x, y, z) in metres")
        return v

    @field_validator("block_size")
    @classmethod
    def _size(cls, v: list[float]) -> list[float]:
        if len(v) != 3 or not all(math.isfinite(x) and 0.005 <= x <= 0.5 for x in v):
            raise ValueError("expected 3 sizes (a, b, h) between 0.005 and 0.5 metres")
        return v

    @field_validator("goal_distance")
    @classmethod
    def _gd(cls, v: list[float]) -> list[float]:
        if len(v) != 2 or not (0.0 <= v[0] <= v[1] <= 0.5):
            raise ValueError("expected [min, max] with 0 <= min <= max <= 0.5 metres")
        return v


def _wrap_pi(a: float) -> float:
    """Angle wrapped to [-pi, pi)."""
    return (a + math.pi) % (2 * math.pi) - math.pi


def _wrap_half_pi(a: float) -> float:
    """Angle modulo pi (symmetric box), wrapped to [-pi/2, pi/2)."""
    return (a + math.pi / 2) % math.pi - math.pi / 2


class Tabletop2DWorld:
    """Planar pushing world (see the module docstring). Build with the ``tabletop-2d`` plugin."""

    name, kind, Options = "tabletop-2d", "world", Tabletop2DOptions
    capabilities = frozenset({"segmentation", "deterministic", "object_pose", "shaped_reward", "oracle"})
    description = ("pure-numpy planar pushing: a textured block, a goal pose, a point-mass pusher, "
                   "ray-cast RGB-D")
    verified = ("quasi-static pushing against the Lynch model; depth and masks against camera geometry; "
                "scripted push reaches the goal")
    object_names = ("block", "pusher", "table")
    reward_yaw_weight = 0.05
    """metres per radian: how :meth:`task_reward` weighs the block's yaw error (15 deg ~ 1.3 cm)."""
    reward_reach_weight = 0.1
    """how :meth:`task_reward` weighs the pusher's distance to the block (dimensionless)."""

    def __init__(self, options: Tabletop2DOptions | None = None, embodiment: Any = None) -> None:
        self.options = o = options or Tabletop2DOptions()
        if embodiment is None:
            from d2f_plugins.embodiment.point_mass import PointMass

            embodiment = PointMass()
        robot = getattr(embodiment, "robot", None)
        if robot not in SUPPORTED_ROBOTS:
            raise ValueError(
                f"embodiment.plugin: tabletop-2d drives robots {list(SUPPORTED_ROBOTS)}, but the configured "
                f"embodiment {getattr(embodiment, 'name', type(embodiment).__name__)!r} is robot {robot!r}; "
                "set `embodiment: {plugin: point-mass}`")
        lim = np.asarray(embodiment.joint_limits, dtype=np.float64)
        if lim.shape != (3, 2) or not np.all(np.isfinite(lim)):
            raise ValueError(f"embodiment.joint_limits: expected finite 3 x 2 (x, y, z) limits in metres, "
                             f"got shape {lim.shape}")
        self.embodiment = embodiment
        self.task = Task(instruction="push the block to the goal", object="block")
        self.horizon = int(o.horizon)
        self.control_freq = 1.0 / float(o.dt)
        self.action_low = lim[:, 0].copy()
        self.action_high = lim[:, 1].copy()
        self.action_low.flags.writeable = False
        self.action_high.flags.writeable = False
        self._max_move = np.asarray(embodiment.velocity_limits, dtype=np.float64) * o.dt
        if self._max_move.shape != (3,) or not np.all(self._max_move > 0):
            raise ValueError("embodiment.velocity_limits: expected 3 speeds > 0 m/s")
        a, b, h = (float(v) for v in o.block_size)
        self._A, self._B, self._h = a / 2, b / 2, h
        self._c2 = (a * a + b * b) / 12.0
        self._rp = float(o.pusher_radius)

        from d2f_conformance.scenes import look_at, pinhole

        self.camera = Camera(K=pinhole(o.width, o.height, o.fov_deg),
                             T_world_cam=look_at(o.camera_eye, o.camera_target),
                             width=o.width, height=o.height, name="tabletop")
        self._init_rays()
        # state (python floats: the physics runs per substep)
        self._block = (0.0, 0.0, 0.0)
        self._goal = (0.1, 0.0, 0.0)
        self._pusher = tuple(float(v) for v in o.park)
        self.t = 0
        self._version = 0
        self._cache: tuple[int, dict[str, np.ndarray]] | None = None
        self._background = self._table_rgb
        self._hide_pusher = False
        self._oracle_cache: list[TabletopOracleRollout] = []
        self.embodiment.bind(self)
        self._reset_state(0)

    # ------------------------------------------------------------------ episode
    def reset(self, seed: int) -> Observation:
        """New episode: block start, goal and yaws drawn from ``np.random.default_rng(seed)``."""
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed: expected a non-negative integer, got {seed!r}")
        self._reset_state(int(seed))
        return self._observation()

    def _reset_state(self, seed: int) -> None:
        o = self.options
        rng = np.random.default_rng(int(seed))
        r = o.start_range
        bx, by = (float(v) for v in rng.uniform(-r, r, size=2))
        yaw_r = math.radians(o.yaw_range_deg)
        byaw = float(rng.uniform(-yaw_r, yaw_r))
        direction = float(rng.uniform(-math.pi, math.pi))
        dist = float(rng.uniform(o.goal_distance[0], o.goal_distance[1]))
        gyaw = float(rng.uniform(-yaw_r, yaw_r))
        self.set_state(block_pose=(bx, by, byaw),
                       goal_pose=(bx + dist * math.cos(direction), by + dist * math.sin(direction), gyaw),
                       pusher=o.park)
        self.t = 0

    def step(self, action: np.ndarray) -> Observation:
        """Move the pusher towards ``action`` = target tip position (x, y, z) metres, one ``dt``."""
        self._advance(self._check_action(action))
        return self._observation()

    def success(self) -> bool:
        """Block centre within ``success_distance`` and yaw within ``success_yaw_deg`` (mod 180 deg)."""
        bx, by, byaw = self._block
        gx, gy, gyaw = self._goal
        return bool(math.hypot(gx - bx, gy - by) <= self.options.success_distance
                    and abs(_wrap_half_pi(gyaw - byaw)) <= math.radians(self.options.success_yaw_deg))

    def describe_state(self) -> str:
        """One line: the block's distance and yaw error to the goal against the success tolerances."""
        bx, by, byaw = self._block
        gx, gy, gyaw = self._goal
        return (f"block {100 * math.hypot(gx - bx, gy - by):.1f} cm and "
                f"{math.degrees(abs(_wrap_half_pi(gyaw - byaw))):.0f} deg from the goal (success needs "
                f"<= {100 * self.options.success_distance:g} cm and <= {self.options.success_yaw_deg:g} deg)")

    def privileged_state(self) -> Mapping[str, Any]:
        """{"block_pose": [x, y, yaw], "goal_pose": [x, y, yaw], "pusher": [x, y, z]}: metres, radians; and
        "object_pose": the block's pose lifted to 3D, T_world_block (4x4 nested list): rotation by yaw about z,
        origin at the centre of the block's bottom face on the table (x, y, 0)."""
        bx, by, yaw = self._block
        c, s = math.cos(yaw), math.sin(yaw)
        pose = [[c, -s, 0.0, bx], [s, c, 0.0, by], [0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]]
        return {"block_pose": list(self._block), "goal_pose": list(self._goal), "pusher": list(self._pusher),
                "object_pose": pose}

    def task_reward(self) -> float:
        """The task's shaped reward (privileged; reward plugin ``object-state``), <= 0, 0 at the goal:

        ``-(d_goal + reward_yaw_weight * |yaw error| + reward_reach_weight * d_reach)`` with ``d_goal`` the
        block centre's distance to the goal (m), the yaw error modulo 180 degrees (rad; the box is
        symmetric) and ``d_reach`` the horizontal gap between the pusher's disk and the block (m, 0 when
        touching).
        """
        bx, by, byaw = self._block
        gx, gy, gyaw = self._goal
        px, py, _ = self._pusher
        c, s = math.cos(byaw), math.sin(byaw)
        qx, qy = c * (px - bx) + s * (py - by), -s * (px - bx) + c * (py - by)
        gap = math.hypot(max(abs(qx) - self._A, 0.0), max(abs(qy) - self._B, 0.0))
        d_reach = max(0.0, gap - self._rp)
        return -(math.hypot(gx - bx, gy - by) + self.reward_yaw_weight * abs(_wrap_half_pi(gyaw - byaw))
                 + self.reward_reach_weight * d_reach)

    def set_state(self, *, block_pose=None, goal_pose=None, pusher=None) -> None:
        """Place the block / goal ((x, y, yaw) metres, radians) and the pusher tip ((x, y, z) metres).

        For tests and oracles. The pusher is clipped to the joint limits; it must not overlap the
        block below the block's top (ValueError).
        """
        def vec(name: str, v: Any) -> tuple[float, float, float]:
            a = np.array(v, dtype=np.float64)
            if a.shape != (3,) or not np.all(np.isfinite(a)):
                raise ValueError(f"{name}: expected 3 finite numbers, got {v!r}")
            return tuple(float(x) for x in a)  # type: ignore[return-value]

        block = vec("block_pose", block_pose) if block_pose is not None else self._block
        goal = vec("goal_pose", goal_pose) if goal_pose is not None else self._goal
        if pusher is not None:
            p = np.clip(np.array(vec("pusher", pusher)), self.action_low, self.action_high)
            pus = tuple(float(x) for x in p)
        else:
            pus = self._pusher
        old = self._block, self._goal, self._pusher
        self._block, self._goal, self._pusher = block, goal, pus
        if pus[2] < self._h and self._penetration(pus[0], pus[1]) is not None:
            self._block, self._goal, self._pusher = old
            raise ValueError("pusher: the pusher would overlap the block below its top; place it at least "
                             "pusher_radius away from the block or above the block's height")
        if goal != old[1]:
            self._background = self._draw_goal(self._table_rgb)
        self._version += 1

    def get_state(self) -> dict[str, Any]:
        """Everything :meth:`set_state` needs to restore the current state, plus the step count."""
        return {"block_pose": self._block, "goal_pose": self._goal, "pusher": self._pusher, "t": self.t}

    def _observation(self) -> Observation:
        rgbd = self.render() if self.options.render_observations else None
        p = np.array(self._pusher)
        return Observation(rgbd=rgbd, joints=p, state={"ee_pos": p.tolist()}, privileged=self.privileged_state())

    def _check_action(self, action: Any) -> np.ndarray:
        try:
            a = np.array(action, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"action: expected 3 numbers (target pusher x, y, z in metres), got {action!r}") from None
        if a.shape != (3,):
            raise ValueError(f"action: expected shape (3,) = target pusher (x, y, z) in metres, got {a.shape}")
        if not np.all(np.isfinite(a)):
            raise ValueError("action: contains NaN or inf")
        return np.clip(a, self.action_low, self.action_high)

    # ------------------------------------------------------------------ physics
    def _advance(self, target: np.ndarray) -> None:
        """One step towards the (already clipped) target, in substeps."""
        p = np.array(self._pusher)
        delta = target - p
        # straight towards the target; scaled down uniformly so no joint exceeds its speed limit
        over = float(np.max(np.abs(delta) / self._max_move))
        if over > 1.0:
            delta = delta / over
        n = max(1, int(math.ceil(float(np.linalg.norm(delta)) / self.options.max_substep - 1e-9)))
        dx, dy, dz = (float(v) / n for v in delta)
        for _ in range(n):
            self._substep(dx, dy, dz)
        # exact arrival (no accumulated rounding) unless the block stopped the pusher vertically
        x, y, z = self._pusher
        if abs(x - (p[0] + n * dx)) < 1e-9 and abs(y - (p[1] + n * dy)) < 1e-9:
            self._pusher = (float(p[0] + delta[0]), float(p[1] + delta[1]),
                            float(p[2] + delta[2]) if abs(z - (p[2] + n * dz)) < 1e-9 else z)
        self.t += 1
        self._version += 1

    def _substep(self, dx: float, dy: float, dz: float) -> None:
        px, py, pz = self._pusher
        h = self._h
        nz = pz + dz
        # vertical: coming from above onto the block, the tip rests on its top face
        if nz < h and pz >= h - 1e-12 and self._penetration(px, py) is not None:
            nz = h
        nx, ny = px + dx, py + dy
        if nz < h:
            nx, ny = self._resolve_contact(nx, ny, dx, dy)
        self._pusher = (nx, ny, nz)

    def _penetration(self, x: float, y: float):
        """Overlap of the pusher disk at (x, y) with the block rectangle, or None.

        Returns (depth, nx, ny, rx, ry): penetration depth (m), the unit normal pointing from the
        pusher into the block (world), and the contact point relative to the block centre (world).
        """
        bx, by, yaw = self._block
        c, s = math.cos(yaw), math.sin(yaw)
        qx = c * (x - bx) + s * (y - by)
        qy = -s * (x - bx) + c * (y - by)
        A, B, rp = self._A, self._B, self._rp
        if abs(qx) <= A and abs(qy) <= B:  # centre inside (only if something went wrong): exit the short way
            if A - abs(qx) < B - abs(qy):
                sx = 1.0 if qx >= 0 else -1.0
                depth, mx, my, cx, cy = A - abs(qx) + rp, sx, 0.0, sx * A, qy
            else:
                sy = 1.0 if qy >= 0 else -1.0
                depth, mx, my, cx, cy = B - abs(qy) + rp, 0.0, sy, qx, sy * B
        else:
            cx, cy = min(max(qx, -A), A), min(max(qy, -B), B)
            ddx, ddy = qx - cx, qy - cy
            d = math.hypot(ddx, ddy)
            if d >= rp:
                return None
            depth, mx, my = rp - d, ddx / d, ddy / d
        # local -> world; the normal into the block is minus the outward one
        return (depth, -(c * mx - s * my), -(s * mx + c * my), c * cx - s * cy, s * cx + c * cy)

    def _resolve_contact(self, x: float, y: float, dx: float, dy: float) -> tuple[float, float]:
        """Push the block out of the pusher disk at (x, y); (dx, dy) is the pusher's substep move.

        Model: quasi-static pushing with a point contact and an ellipsoidal limit surface
        (Lynch, Maekawa & Tanie 1992). With the contact force f applied at r (relative to the
        block centre) and moment m = r x f, the limit surface of a uniform a x b rectangle is
        approximated by fx^2 + fy^2 + (m / c)^2 = const with c^2 = (a^2 + b^2) / 12 (the
        rectangle's mean squared distance from its centre: pressure uniform). Quasi-static
        motion is normal to it: twist (vx, vy, w) ~ (fx, fy, m / c^2). The contact point then
        moves with u = (vx - w ry, vy + w rx) = M f,  M = I + [[ry^2, -rx ry], [-rx ry, rx^2]] / c^2.

        * Sticking (the pusher drags the contact point along, u = pusher motion v): f = M^-1 v, i.e.
          (vx, vy, w) = ((c^2 + rx^2) vx_p + rx ry vy_p, rx ry vx_p + (c^2 + ry^2) vy_p,
                         rx vy_p - ry vx_p) / (c^2 + rx^2 + ry^2).
          Valid while f lies inside the friction cone |f.t| <= mu f.n.
        * Sliding: otherwise f lies on the cone edge f = n + sign(f.t) mu t; the block twist is
          that direction scaled so the contact's normal velocity equals the pusher's.

        To resolve penetration exactly, the pusher "velocity" at the contact is taken as
        depth * n (normal: exactly the overlap) + the pusher's own tangential substep motion;
        a few iterations (normal only) remove second-order residue from the rotation, and any
        remaining overlap moves the pusher back, so the pusher never passes through the block.
        """
        c2, mu = self._c2, self.options.friction
        for it in range(6):
            pen = self._penetration(x, y)
            if pen is None or pen[0] <= 1e-12:
                return x, y
            depth, nx, ny, rx, ry = pen
            tx, ty = -ny, nx
            vt = (dx * tx + dy * ty) if it == 0 else 0.0
            ux, uy = depth * nx + vt * tx, depth * ny + vt * ty
            D = c2 + rx * rx + ry * ry
            fx = ((c2 + rx * rx) * ux + rx * ry * uy) / D
            fy = (rx * ry * ux + (c2 + ry * ry) * uy) / D
            fn, ft = fx * nx + fy * ny, fx * tx + fy * ty
            if fn > 0 and abs(ft) <= mu * fn:  # sticking
                vx, vy, w = fx, fy, (rx * uy - ry * ux) / D
            else:  # sliding: force on the edge of the friction cone
                sgn = 1.0 if ft >= 0 else -1.0
                ex, ey = nx + sgn * mu * tx, ny + sgn * mu * ty
                m = rx * ey - ry * ex
                uex, uey = ex - ry * m / c2, ey + rx * m / c2
                un = uex * nx + uey * ny
                if un <= 1e-9:  # degenerate geometry: push along the normal only
                    ex, ey, m = nx, ny, rx * ny - ry * nx
                    un = nx * (nx - ry * m / c2) + ny * (ny + rx * m / c2)
                lam = depth / un
                vx, vy, w = lam * ex, lam * ey, lam * m / c2
            bx, by, yaw = self._block
            self._block = (bx + vx, by + vy, _wrap_pi(yaw + w))
        pen = self._penetration(x, y)
        if pen is not None:  # never pass through: back off along the normal
            depth, nx, ny = pen[:3]
            x, y = x - (depth + 1e-12) * nx, y - (depth + 1e-12) * ny
        return x, y

    # ------------------------------------------------------------------ rendering
    def _init_rays(self) -> None:
        from d2f_conformance.scenes import texture

        cam = self.camera
        H, W = cam.height, cam.width
        xs, ys = np.meshgrid(np.arange(W, dtype=np.float64), np.arange(H, dtype=np.float64))
        d_cam = np.stack([(xs - cam.K[0, 2]) / cam.K[0, 0], (ys - cam.K[1, 2]) / cam.K[1, 1], np.ones_like(xs)], -1)
        R = cam.T_world_cam[:3, :3]
        self._o = np.array(cam.T_world_cam[:3, 3])
        self._d = d_cam @ R.T  # world ray per pixel, scaled so that its camera z is 1: t == depth
        with np.errstate(divide="ignore", invalid="ignore"):
            t_tab = -self._o[2] / self._d[..., 2]
        t_tab = np.where(np.isfinite(t_tab) & (t_tab > 0), t_tab, np.inf)
        self._t_table = t_tab
        p = self._o + np.where(np.isfinite(t_tab), t_tab, 0.0)[..., None] * self._d
        self._table_xy = p[..., :2]
        tex = texture(p[..., 0], p[..., 1], self.options.table_seed, 0.4).astype(np.float64)
        rgb = (0.22 * tex + 0.78 * np.array([150.0, 135.0, 115.0])).astype(np.uint8)  # muted wood-like table
        rgb[~np.isfinite(t_tab)] = (150, 180, 210)  # sky, if the camera sees the horizon
        self._table_rgb = rgb

    def _draw_goal(self, base: np.ndarray) -> np.ndarray:
        """Table image with the goal rectangle's outline (2.5 mm wide band inside its edge)."""
        gx, gy, gyaw = self._goal
        c, s = math.cos(gyaw), math.sin(gyaw)
        X, Y = self._table_xy[..., 0] - gx, self._table_xy[..., 1] - gy
        lx, ly = c * X + s * Y, -s * X + c * Y
        sd = np.maximum(np.abs(lx) - self._A, np.abs(ly) - self._B)
        band = (sd <= 0) & (sd >= -0.0025) & np.isfinite(self._t_table)
        out = base.copy()
        out[band] = (0.55 * base[band] + 0.45 * _GOAL_RGB).astype(np.uint8)
        return out

    def _window(self, corners: np.ndarray) -> tuple[slice, slice]:
        """Pixel window that contains the projection of ``corners`` (full image if unsure)."""
        uv, z = self.camera.project(corners)
        H, W = self.camera.height, self.camera.width
        if np.any(z <= 1e-6) or not np.all(np.isfinite(uv)):
            return slice(0, H), slice(0, W)
        x0, y0 = np.floor(uv.min(0)).astype(int) - 1
        x1, y1 = np.ceil(uv.max(0)).astype(int) + 2
        return slice(max(0, y0), max(0, min(H, y1))), slice(max(0, x0), max(0, min(W, x1)))

    def _block_corners(self) -> np.ndarray:
        """The 8 block corners (8 x 3), world frame, metres."""
        bx, by, yaw = self._block
        c, s = math.cos(yaw), math.sin(yaw)
        out = []
        for sx in (-1, 1):
            for sy in (-1, 1):
                lx, ly = sx * self._A, sy * self._B
                for z in (0.0, self._h):
                    out.append((bx + c * lx - s * ly, by + s * lx + c * ly, z))
        return np.array(out)

    def _raycast(self) -> dict[str, np.ndarray]:
        """Per pixel: depth ``t`` (inf = no hit), ``id`` (0 table, 1 block, 2 pusher), rgb."""
        if self._cache is not None and self._cache[0] == self._version:
            return self._cache[1]
        from d2f_conformance.scenes import texture

        t = self._t_table.copy()
        ident = np.where(np.isfinite(t), 0, -1).astype(np.int8)
        rgb = self._background.copy()
        o = self._o

        # ---- block: ray / oriented box (slab method in block-local coordinates)
        ys, xs = self._window(self._block_corners())
        d = self._d[ys, xs]
        if d.size:
            bx, by, yaw = self._block
            c, s = math.cos(yaw), math.sin(yaw)
            Rt = np.array([[c, s, 0.0], [-s, c, 0.0], [0.0, 0.0, 1.0]])  # world -> block
            ol = Rt @ (o - np.array([bx, by, 0.0]))
            dl = d @ Rt.T
            lo = np.array([-self._A, -self._B, 0.0])
            hi = np.array([self._A, self._B, self._h])
            with np.errstate(divide="ignore", invalid="ignore"):
                t1 = (lo - ol) / dl
                t2 = (hi - ol) / dl
            tmin = np.nan_to_num(np.minimum(t1, t2), nan=-np.inf)
            tmax = np.nan_to_num(np.maximum(t1, t2), nan=np.inf)
            tnear, tfar = tmin.max(-1), tmax.min(-1)
            face = tmin.argmax(-1)
            hit = (tnear <= tfar) & (tnear > 0) & (tnear < t[ys, xs])
            if np.any(hit):
                tn = tnear[hit]
                pl = ol + tn[:, None] * dl[hit]
                f = face[hit]
                seed = self.options.block_seed
                col = np.empty((tn.size, 3))
                nrm_l = np.zeros((tn.size, 3))
                top, fx, fy = f == 2, f == 0, f == 1
                col[top] = texture(pl[top, 0], pl[top, 1], seed, 0.12)
                col[fx] = texture(pl[fx, 1] + 0.37 * np.sign(pl[fx, 0]), pl[fx, 2], seed + 1, 0.12)
                col[fy] = texture(pl[fy, 0] + 0.37 * np.sign(pl[fy, 1]), pl[fy, 2], seed + 2, 0.12)
                nrm_l[top, 2] = 1.0
                nrm_l[fx, 0] = np.sign(pl[fx, 0])
                nrm_l[fy, 1] = np.sign(pl[fy, 1])
                shade = (0.35 + 0.65 * np.clip((nrm_l @ Rt) @ _LIGHT, 0, 1)) / (0.35 + 0.65 * _LIGHT[2])
                sub_t, sub_id, sub_rgb = t[ys, xs], ident[ys, xs], rgb[ys, xs]
                sub_t[hit] = tn
                sub_id[hit] = 1
                sub_rgb[hit] = np.clip(col * np.minimum(shade, 1.0)[:, None], 0, 255).astype(np.uint8)
                t[ys, xs], ident[ys, xs], rgb[ys, xs] = sub_t, sub_id, sub_rgb

        # ---- pusher: vertical cylinder (side surface and top cap); not drawn in a hidden-pusher oracle video
        px, py, pz = self._pusher
        if self._hide_pusher:
            ys = xs = slice(0, 0)
        else:
            ys, xs = None, None
        rp, L = self._rp, self.options.pusher_length
        box = np.array([[px + sx * rp, py + sy * rp, z] for sx in (-1, 1) for sy in (-1, 1) for z in (pz, pz + L)])
        if ys is None:
            ys, xs = self._window(box)
        d = self._d[ys, xs]
        if d.size:
            ox, oy = o[0] - px, o[1] - py
            a = d[..., 0] ** 2 + d[..., 1] ** 2
            b = 2 * (ox * d[..., 0] + oy * d[..., 1])
            cq = ox * ox + oy * oy - rp * rp
            disc = b * b - 4 * a * cq
            with np.errstate(divide="ignore", invalid="ignore"):
                ts = (-b - np.sqrt(np.maximum(disc, 0))) / (2 * a)
                zs = o[2] + ts * d[..., 2]
                side = (disc >= 0) & (a > 0) & (ts > 0) & (zs >= pz) & (zs <= pz + L)
                tc = (pz + L - o[2]) / d[..., 2]
                cx, cy = ox + tc * d[..., 0], oy + tc * d[..., 1]
                cap = (tc > 0) & (cx * cx + cy * cy <= rp * rp)
            tp = np.where(side, ts, np.where(cap, tc, np.inf))
            tp = np.where(side & cap, np.minimum(ts, tc), tp)
            hit = tp < t[ys, xs]
            if np.any(hit):
                use_cap = cap & (tp == tc)
                nx = np.where(use_cap, 0.0, (ox + ts * d[..., 0]) / rp)
                ny = np.where(use_cap, 0.0, (oy + ts * d[..., 1]) / rp)
                nz = np.where(use_cap, 1.0, 0.0)
                lam = nx * _LIGHT[0] + ny * _LIGHT[1] + nz * _LIGHT[2]
                shade = (0.35 + 0.65 * np.clip(lam, 0, 1))[hit]
                sub_t, sub_id, sub_rgb = t[ys, xs], ident[ys, xs], rgb[ys, xs]
                sub_t[hit] = tp[hit]
                sub_id[hit] = 2
                sub_rgb[hit] = np.clip(_PUSHER_RGB * shade[:, None], 0, 255).astype(np.uint8)
                t[ys, xs], ident[ys, xs], rgb[ys, xs] = sub_t, sub_id, sub_rgb

        out = {"t": t, "id": ident, "rgb": rgb}
        self._cache = (self._version, out)
        return out

    def render(self) -> RGBD:
        """The camera's RGB-D frame: RGB uint8 H x W x 3, depth float32 metres (camera z), 0 = no hit."""
        r = self._raycast()
        depth = np.where(np.isfinite(r["t"]), r["t"], 0.0).astype(np.float32)
        return RGBD(rgb=r["rgb"].copy(), depth=depth, camera=self.camera)

    def object_mask(self, name: str) -> np.ndarray:
        """bool H x W: pixels where ``name`` ("block", "pusher" or "table") is the visible surface."""
        key = str(name).strip().lower()
        ids = {"block": 1, "pusher": 2, "table": 0}
        if key not in ids:
            raise ValueError(f"name: tabletop-2d has no object {name!r}; known objects: {', '.join(ids)}")
        return self._raycast()["id"] == ids[key]

    # ------------------------------------------------------------------ oracle
    def resolve_name(self, text: str) -> str:
        """The object a name means: "block" (also "the block", "object", "box"), "pusher" or "table"."""
        key = " ".join(str(text).strip().lower().split())
        key = key[4:] if key.startswith("the ") else key
        key = {"object": "block", "box": "block", "robot": "pusher"}.get(key, key)
        if key not in self.object_names:
            raise ValueError(f"name: tabletop-2d has no object {text!r}; known objects: "
                             f"{', '.join(self.object_names)}")
        return key

    def oracle_rollout(self, num_frames: int = 49, *, hide_robot: bool = True) -> "TabletopOracleRollout":
        """The task done right from the current state, rendered: a STAND-IN for a generated video.

        :meth:`scripted_push` from the current state; the frames show the block's motion only (the
        steps where it moves, resampled evenly to ``num_frames``; the approach moves of the pusher,
        during which the block rests, are left out) with the pusher hidden (``hide_robot``). Cached
        per (state, num_frames, hide_robot); the world's state is unchanged afterwards.
        """
        if isinstance(num_frames, bool) or not isinstance(num_frames, (int, np.integer)) or num_frames < 2:
            raise ValueError(f"num_frames: expected an integer >= 2, got {num_frames!r}")
        key = (self._block, self._goal, self._pusher)
        for r in self._oracle_cache:
            if r.state_key == key and r.num_frames == num_frames and r.robot_hidden == bool(hide_robot):
                return r
        saved = (self._block, self._goal, self._pusher, self.t, self._version, self._cache, self._hide_pusher)
        try:
            actions = self.scripted_push()
            states = [(self._block, self._pusher)]
            for a in actions:
                self._advance(a)
                if self._block != states[-1][0]:
                    states.append((self._block, self._pusher))
            success = self.success()
            idx = np.round(np.linspace(0, len(states) - 1, int(num_frames))).astype(int)
            frames, depth, poses = [], [], []
            self._hide_pusher = bool(hide_robot)
            for i in idx:
                self._block, self._pusher = states[i]
                self._version += 1
                f = self.render()
                frames.append(f.rgb)
                depth.append(f.depth)
                poses.append(self._block)
        finally:
            (self._block, self._goal, self._pusher, self.t, self._version, self._cache,
             self._hide_pusher) = saved
        r = TabletopOracleRollout(task="tabletop_push", object_name="block", camera=self.camera,
                                  fps=float(self.control_freq), frames=np.stack(frames),
                                  depth=np.stack(depth).astype(np.float32), block_poses=np.array(poses),
                                  success=bool(success), robot_hidden=bool(hide_robot), state_key=key,
                                  num_frames=int(num_frames))
        self._oracle_cache = (self._oracle_cache + [r])[-4:]
        return r

    def find_oracle_rollout(self, frames: np.ndarray) -> "TabletopOracleRollout | None":
        """A cached rollout whose frames are ``frames`` (T x H x W x 3), or None."""
        for r in reversed(self._oracle_cache):
            if r.matches(frames):
                return r
        return None

    def scripted_push(self, goal: Any = None) -> list[np.ndarray]:
        """A scripted action sequence that pushes the block to ``goal`` (default: the task goal).

        Closed-loop planning on a copy of the current state (the world is deterministic, so
        replaying the returned actions from the current state reproduces it), restored
        afterwards. The script: first turn the block in place-ish by pushing a long face
        off-centre, then translate it by pushing along a line through its centre towards the
        goal (within the friction cone of the face, else along the face normal closest to
        the goal direction); the pusher approaches behind the block at low height, lifting over
        the block when it has to change sides, and re-approaches whenever the block turned away
        from the push line. At most ``horizon`` actions (x, y, z) metres.
        """
        if goal is None:
            g = self._goal
        else:
            ga = np.array(goal, dtype=np.float64)
            if ga.shape != (3,) or not np.all(np.isfinite(ga)):
                raise ValueError(f"goal: expected a block pose (x, y, yaw) in metres and radians, got {goal!r}")
            g = tuple(float(v) for v in ga)
        saved = (self._block, self._goal, self._pusher, self.t, self._version, self._cache)
        ctrl = _PushController(self, g)
        actions: list[np.ndarray] = []
        try:
            for _ in range(self.horizon):
                a = ctrl.act()
                if a is None:
                    break
                a = np.clip(np.asarray(a, dtype=np.float64), self.action_low, self.action_high)
                actions.append(a)
                self._advance(a)
        finally:
            self._block, self._goal, self._pusher, self.t, self._version, self._cache = saved
        return actions


@dataclass(frozen=True, eq=False)
class TabletopOracleRollout:
    """A scripted push of the block to the goal, rendered (T frames, H x W images, metres, radians).

    Fields: ``task`` ("tabletop_push"), ``object_name`` ("block"), ``camera``, ``fps`` (the world's
    control rate), ``frames`` uint8 T x H x W x 3 (pusher hidden when ``robot_hidden``), ``depth``
    float32 T x H x W metric camera z (0 = no hit), ``block_poses`` float64 T x 3 (x, y, yaw) per
    frame, ``success`` (the world's check on the last state), ``state_key`` (the state it started
    from), ``num_frames``.
    """

    task: str
    object_name: str
    camera: Camera
    fps: float
    frames: np.ndarray
    depth: np.ndarray
    block_poses: np.ndarray
    success: bool
    robot_hidden: bool
    state_key: tuple
    num_frames: int

    def matches(self, frames: np.ndarray, tol: float = 1.0) -> bool:
        """Whether ``frames`` are these frames (:func:`d2f_core.types.frames_match`)."""
        return frames_match(self.frames, frames, tol)


class _PushController:
    """The closed-loop pushing script behind :meth:`Tabletop2DWorld.scripted_push`."""

    POS_TOL = 0.004      # m: done translating
    YAW_ENTER = math.radians(4.0)
    YAW_EXIT = math.radians(1.5)
    STANDOFF = 0.01      # m: pre-push gap between pusher disk and block
    LATERAL_TOL = 0.001  # m: off the push line -> re-approach
    PUSH_STEP = 0.02     # m of block motion per step (translation)
    TURN_STEP = 0.015    # m of pusher travel per step (rotation)
    OFFSET = 0.7         # rotation pushes at this fraction of the half-length from the centre

    def __init__(self, world: Tabletop2DWorld, goal: tuple[float, float, float]) -> None:
        self.w = world
        self.goal = goal
        self.rotating = False
        h = world._h
        self.z_low = 0.5 * h
        self.z_high = h + 0.03

    def _plan(self):
        """The push to do now: (touch xy, direction d, length) or None when done."""
        w = self.w
        bx, by, yaw = w._block
        gx, gy, gyaw = self.goal
        ex, ey = gx - bx, gy - by
        dist = math.hypot(ex, ey)
        dyaw = _wrap_half_pi(gyaw - yaw)
        if abs(dyaw) > self.YAW_ENTER:
            self.rotating = True
        elif abs(dyaw) < self.YAW_EXIT:
            self.rotating = False
        if not self.rotating and dist < self.POS_TOL:
            return None
        c, s = math.cos(yaw), math.sin(yaw)
        A, B, rp = w._A, w._B, w._rp

        def world_v(lx, ly):
            return c * lx - s * ly, s * lx + c * ly

        def reachable(px, py, nx, ny):
            lo, hi = w.action_low, w.action_high
            for k in (0.0, self.STANDOFF + 0.002):
                x, y = px - k * nx, py - k * ny
                if not (lo[0] <= x <= hi[0] and lo[1] <= y <= hi[1]):
                    return False
            return True

        if self.rotating:
            sg = 1.0 if dyaw > 0 else -1.0
            # faces along the longer side; contact (rx, ry) and inward normal n in block frame, r x n has sign sg
            if A >= B:
                cands = [(sg * self.OFFSET * A, -B, 0.0, 1.0), (-sg * self.OFFSET * A, B, 0.0, -1.0)]
            else:
                cands = [(-A, -sg * self.OFFSET * B, 1.0, 0.0), (A, sg * self.OFFSET * B, -1.0, 0.0)]
            best = None
            for lx, ly, nlx, nly in cands:
                rx, ry = world_v(lx, ly)
                nx, ny = world_v(nlx, nly)
                tx, ty = bx + rx - rp * nx, by + ry - rp * ny
                score = (nx * ex + ny * ey) + (0.0 if reachable(tx, ty, nx, ny) else -10.0)
                if best is None or score > best[0]:
                    rate = abs(rx * ny - ry * nx) / (w._c2 + rx * rx + ry * ry)  # rad per metre pushed
                    best = (score, tx, ty, nx, ny, min(abs(dyaw) / rate, self.TURN_STEP))
            return best[1:]
        # translation along the line through the centre towards the goal
        ux, uy = ex / dist, ey / dist
        lux, luy = c * ux + s * uy, -s * ux + c * uy  # goal direction in the block frame
        # face hit by the ray from the centre backwards (-u): its inward normal is +-x or +-y
        sx = A / abs(lux) if abs(lux) > 1e-12 else math.inf
        sy = B / abs(luy) if abs(luy) > 1e-12 else math.inf
        nl = (math.copysign(1.0, lux), 0.0) if sx <= sy else (0.0, math.copysign(1.0, luy))
        cos_a = lux * nl[0] + luy * nl[1]
        if math.acos(min(1.0, cos_a)) <= 0.7 * math.atan(w.options.friction):
            s_b = min(sx, sy)
            rx, ry = -ux * s_b, -uy * s_b
            nx, ny = world_v(*nl)
            dx, dy, length = ux, uy, dist
        else:  # outside the friction cone: push along the face normal closest to the goal direction
            if abs(lux) >= abs(luy):
                nl = (math.copysign(1.0, lux), 0.0)
                rl = (-nl[0] * A, 0.0)
            else:
                nl = (0.0, math.copysign(1.0, luy))
                rl = (0.0, -nl[1] * B)
            nx, ny = world_v(*nl)
            rx, ry = world_v(*rl)
            dx, dy = nx, ny
            length = ex * nx + ey * ny
        tx, ty = bx + rx - rp * nx, by + ry - rp * ny  # pusher centre touching the face at the contact
        return tx, ty, dx, dy, min(length, self.PUSH_STEP)

    def act(self):
        plan = self._plan()
        if plan is None:
            return None
        tx, ty, dx, dy, length = plan
        px, py, pz = self.w._pusher
        # position relative to the push line through the touch point along d
        rel_x, rel_y = px - tx, py - ty
        along = rel_x * dx + rel_y * dy
        lateral = abs(-rel_x * dy + rel_y * dx)
        engaged = (lateral < self.LATERAL_TOL and -self.STANDOFF - 0.003 <= along <= 0.003
                   and abs(pz - self.z_low) < 0.003)
        if engaged:
            return np.array([tx + dx * length, ty + dy * length, self.z_low])
        prex, prey = tx - self.STANDOFF * dx, ty - self.STANDOFF * dy
        if math.hypot(px - prex, py - prey) > 5e-4:
            if pz < self.z_high - 1e-3:
                return np.array([px, py, self.z_high])  # lift clear of the block first
            return np.array([prex, prey, self.z_high])
        return np.array([prex, prey, self.z_low])


def _factory(options: Tabletop2DOptions | None, ctx: Any = None) -> Tabletop2DWorld:
    embodiment = ctx.component("embodiment") if ctx is not None else None
    return Tabletop2DWorld(options, embodiment)


@hookimpl
def d2f_register(register):
    register(Manifest.of(Tabletop2DWorld, factory=_factory))
