"""``pusht`` world: gym-pusht's Push-T (pymunk physics) lifted to 3D, ray-cast RGB-D from 5 calibrated cameras.

The paper's Push-T task (Dream2Flow, arXiv 2512.24766): push a T-shaped block onto a goal pose on a
board. Geometry, scale and pose convention are those of :mod:`d2f_plugins.world.pusht_scene` (1000
gym-pusht units per metre, the board's centre at the origin, z up, the T extruded to 3 cm; a pose
``(x, y, yaw)`` is gym-pusht's ``block.position`` / ``block.angle``).

**Physics is gym-pusht's own** (``gymnasium.make("gym_pusht/PushT-v0", obs_type="state").unwrapped``,
gym-pusht 0.1.8 with pymunk 6): each :meth:`PushTWorld.step` hands the target pusher position to the
env's own ``step`` (its PD control, k_p 100, k_v 20, and 10 pymunk substeps of 10 ms), so with the
pusher down the block moves bit for bit as in gym-pusht. dream2flow adds a third axis:

* **Action**: the target pusher tip ``(x, y, z)`` in metres, world frame, clipped to
  :attr:`~PushTWorld.action_low` / :attr:`~PushTWorld.action_high`: x, y inside the walls less the
  pusher's radius (gym-pusht units [22, 489]: the walls' inner faces are at 7 and 504), z in
  [0, 0.15] m; intersected with the point-mass embodiment's joint limits. ``dt`` = 0.1 s (gym-pusht
  controls at 10 Hz).
* **z**: each step the tip's z moves towards the target z by at most ``velocity_limits[2] * dt``
  (the embodiment's, 0.05 m per step by default) before the xy step. At or above the T's top
  (:data:`~d2f_plugins.world.pusht_scene.T_HEIGHT`, 3 cm) the pusher's disk collides with nothing
  (its pymunk shape filter is set to collide with nothing, and restored when it goes down), so a
  lifted pusher crosses the T without moving it. Coming down onto the T (the disk overlapping the T's
  footprint) the tip rests on the T's top (z = T_HEIGHT, still not colliding) and descends once it
  has moved off. The xy motion is not speed-limited beyond gym-pusht's own PD control.
* **horizon**: 2000 steps by default; gym-pusht's own 300 is too short for push-by-push control
  (one planar push with lifts takes 10-40 steps).

**Episodes** (the paper: 10 initial states x 10 seeds): ``reset(seed)`` uses initial state
``seed // seeds_per_state`` (default 10; option ``initial_state`` overrides it), whose T pose and
pusher xy come from gym-pusht's own random reset ``env.reset(seed=index)``; the pusher starts lifted
at ``park_height``. The goal is gym-pusht's ``(256, 256, pi/4)`` = :data:`~pusht_scene.GOAL_POSE`.
:meth:`~PushTWorld.success` is the paper's criterion (the T's centre within 2 cm of the goal's and
its yaw within 15 degrees); :meth:`~PushTWorld.success_coverage` is gym-pusht's (coverage > 0.95).

**Rendering** (pure numpy ray casting, windowed): the textured board (0.512 m square at z = 0;
nothing outside it: depth 0), the goal T's outline drawn on it, the T extruded to 3 cm with a
texture in its own local frame on its top and sides (it moves with the T: trackable), and the pusher
(a cylinder of radius 1.5 cm standing on its tip). ``render()`` is the main camera (oblique, in front
of the board); :meth:`~PushTWorld.render_views` the paper's 4 calibrated board cameras (one on each
side, looking down at the board's centre at 45 degrees), also in every observation as
``observation.state["views"]``, rendered only when first read. Depth is metric camera z.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from d2f_core import RGBD, Camera, Manifest, Observation, Task, hookimpl
from d2f_core.types import frames_match

from . import pusht_scene as S

__all__ = [
    "PUSHT_INSTALL",
    "PUSHT_REQUIRES",
    "PX_ACTION_HIGH",
    "PX_ACTION_LOW",
    "SUPPORTED_ROBOTS",
    "VIEW_NAMES",
    "PushTOptions",
    "PushTOracleRollout",
    "PushTWorld",
]

SUPPORTED_ROBOTS = ("point-mass",)
"""Embodiment ``robot`` identifiers this world can drive."""
PUSHT_REQUIRES = ("gym_pusht", "pymunk", "pygame", "shapely", "gymnasium")
PUSHT_INSTALL = ("pip install 'dream2flow[pusht]' (gym-pusht==0.1.8 with pymunk>=6.6,<7 and pygame<2.7: pymunk 7 "
                 "breaks gym-pusht)")
VIEW_NAMES = ("board-front", "board-right", "board-back", "board-left")
"""The 4 board cameras, in :meth:`PushTWorld.render_views` order: on the board's -y, +x, +y, -x side."""
PX_ACTION_LOW = 22.0
"""gym-pusht units: the lowest pusher centre x / y inside the walls (inner face 5 + 2, plus radius 15)."""
PX_ACTION_HIGH = 489.0
"""gym-pusht units: the highest pusher centre x / y inside the walls (inner face 506 - 2, less radius 15)."""
Z_MAX = 0.15
"""metres: the highest pusher tip target."""
DT = 0.1
"""seconds per step: gym-pusht's control period (10 Hz)."""

_LIGHT = np.array([0.3, -0.5, 1.0]) / np.linalg.norm([0.3, -0.5, 1.0])
_PUSHER_RGB = np.array([65.0, 105.0, 225.0])     # gym-pusht's RoyalBlue
_GOAL_RGB = np.array([70.0, 200.0, 90.0])        # a deeper LightGreen, visible on the light board
_BOARD_RGB = np.array([214.0, 208.0, 196.0])
_NO_HIT_RGB = (34, 36, 42)
_GOAL_BAND = 0.004                               # metres: width of the goal outline, inside the goal T's edge
_T_ID, _PUSHER_ID, _BOARD_ID, _NONE_ID = 1, 2, 0, -1


def _outline_local() -> np.ndarray:
    """The T's outline (8 x 2, local metres), counter-clockwise from the bar's outer-edge corner (-6 cm, 0)."""
    b, s = S.BAR_LOCAL, S.STEM_LOCAL
    return np.array([b[3], b[2], b[1], s[3], s[2], s[1], s[0], b[0]])


_OUTLINE = _outline_local()


def _t_footprint_distance(xy_local: np.ndarray) -> np.ndarray:
    """Distance (metres) from local xy point(s) (..., 2) to the T's footprint; 0 inside."""
    p = np.asarray(xy_local, dtype=np.float64)
    out = np.full(p.shape[:-1], np.inf)
    for rect in (S.BAR_LOCAL, S.STEM_LOCAL):
        lo, hi = rect.min(0), rect.max(0)
        g = np.maximum(np.maximum(lo - p, p - hi), 0.0)
        out = np.minimum(out, np.hypot(g[..., 0], g[..., 1]))
    return out


def _outline_distance(xy_local: np.ndarray) -> np.ndarray:
    """Distance (metres) from local xy point(s) (..., 2) to the T's outline (its 8 edges)."""
    p = np.asarray(xy_local, dtype=np.float64)
    out = np.full(p.shape[:-1], np.inf)
    for i in range(len(_OUTLINE)):
        a, b = _OUTLINE[i], _OUTLINE[(i + 1) % len(_OUTLINE)]
        e = b - a
        s = np.clip(((p - a) @ e) / float(e @ e), 0.0, 1.0)
        q = a + s[..., None] * e
        out = np.minimum(out, np.linalg.norm(p - q, axis=-1))
    return out


class PushTOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    width: int = Field(default=320, ge=8, le=4096, description="main camera image width, pixels")
    height: int = Field(default=240, ge=8, le=4096, description="main camera image height, pixels")
    fov_deg: float = Field(default=50.0, gt=1.0, lt=170.0, description="main camera horizontal field of view, degrees")
    camera_eye: list[float] = Field(default=[0.0, -0.12, 0.76],
                                    description="main camera centre (x, y, z), metres, world frame (in front of "
                                                "the board, which spans [-0.256, 0.256] in x and y)")
    camera_target: list[float] = Field(default=[0.0, 0.0, 0.0],
                                       description="point the main camera looks at (x, y, z), metres, world frame")
    view_width: int = Field(default=160, ge=8, le=2048, description="board camera image width, pixels")
    view_height: int = Field(default=120, ge=8, le=2048, description="board camera image height, pixels")
    view_fov_deg: float = Field(default=60.0, gt=1.0, lt=170.0,
                                description="board camera horizontal field of view, degrees")
    view_distance: float = Field(default=0.7, gt=0.05, le=5.0,
                                 description="distance of each board camera from the board's centre, metres")
    view_elevation_deg: float = Field(default=45.0, gt=5.0, lt=90.0,
                                      description="board cameras look down at the board's centre at this angle "
                                                  "below the horizontal, degrees")
    horizon: int = Field(default=2000, ge=1,
                         description="maximum number of steps of one episode (gym-pusht's own 300 is too short for "
                                     "push-by-push control: one push with its lifts takes 10-40 steps)")
    seeds_per_state: int = Field(default=10, ge=1,
                                 description="reset(seed) uses gym-pusht's initial state seed // seeds_per_state "
                                             "(the paper: 10 initial states x 10 seeds)")
    initial_state: int | None = Field(default=None, ge=0,
                                      description="use this gym-pusht initial state (env.reset(seed=initial_state)) "
                                                  "for every seed instead of seed // seeds_per_state")
    park_height: float = Field(default=0.06, ge=S.T_HEIGHT, le=Z_MAX,
                               description="pusher tip height after reset, metres (at or above the T's top 0.03 "
                                           "m: lifted, colliding with nothing)")
    pusher_length: float = Field(default=0.08, gt=0.0, le=0.5,
                                 description="rendered pusher cylinder length above its tip, metres")
    render_observations: bool = Field(default=True,
                                      description="render the main camera into every Observation (False: "
                                                  "Observation.rgbd is None; render() still works)")
    board_seed: int = Field(default=1, description="seed of the board texture")
    t_seed: int = Field(default=2, description="seed of the T's texture")
    t_texture_scale: float = Field(default=0.03, gt=0.005, le=1.0,
                                   description="length scale of the T's texture, metres (smaller: finer)")

    @field_validator("camera_eye", "camera_target")
    @classmethod
    def _xyz(cls, v: list[float]) -> list[float]:
        if len(v) != 3 or not all(math.isfinite(x) for x in v):
            raise ValueError("expected 3 finite numbers (x, y, z) in metres")
        return v


# --------------------------------------------------------------------------- ray casting


_BLOBS: dict[tuple[int, float], np.ndarray] = {}


def _plaid(u: np.ndarray, v: np.ndarray, seed: int, scale: float) -> np.ndarray:
    """The T's texture (float RGB 0-255) at surface coordinates (u, v) metres: isotropic colour blobs about
    ``scale`` / 2 across (random noise on a periodic grid of ``scale`` / 8 cells, Gaussian-smoothed, sampled
    bilinearly). Blobs have gradients in every direction and look alike turned by any angle, so Lucas-Kanade
    neither slides along stripes nor loses them when the T turns."""
    key = (int(seed), float(scale))
    if key not in _BLOBS:
        from scipy.ndimage import gaussian_filter

        n = 128
        rng = np.random.default_rng(seed)
        g = np.stack([gaussian_filter(rng.standard_normal((n, n)), 1.6, mode="wrap") for _ in range(3)], -1)
        g = g / g.std()
        _BLOBS[key] = np.clip(127.5 + 70.0 * g, 0.0, 255.0)
    g = _BLOBS[key]
    n = g.shape[0]
    cell = scale / 8.0
    x, y = np.asarray(u, dtype=np.float64) / cell, np.asarray(v, dtype=np.float64) / cell
    x0, y0 = np.floor(x), np.floor(y)
    fx, fy = (x - x0)[..., None], (y - y0)[..., None]
    i0, j0 = x0.astype(np.int64) % n, y0.astype(np.int64) % n
    i1, j1 = (i0 + 1) % n, (j0 + 1) % n
    return ((1 - fx) * (1 - fy) * g[i0, j0] + fx * (1 - fy) * g[i1, j0] + (1 - fx) * fy * g[i0, j1]
            + fx * fy * g[i1, j1])


class _Caster:
    """Per-camera rays (camera z = 1 along each, so t == depth) and the static board image."""

    def __init__(self, camera: Camera, board_seed: int, t_seed: int, t_scale: float, pusher_length: float) -> None:
        from d2f_conformance.scenes import texture

        self.camera = cam = camera
        self.t_seed, self.t_scale, self.pusher_length = int(t_seed), float(t_scale), float(pusher_length)
        H, W = cam.height, cam.width
        xs, ys = np.meshgrid(np.arange(W, dtype=np.float64), np.arange(H, dtype=np.float64))
        d_cam = np.stack([(xs - cam.K[0, 2]) / cam.K[0, 0], (ys - cam.K[1, 2]) / cam.K[1, 1], np.ones_like(xs)], -1)
        self.o = np.array(cam.T_world_cam[:3, 3], dtype=np.float64)
        self.d = d_cam @ np.asarray(cam.T_world_cam[:3, :3]).T
        with np.errstate(divide="ignore", invalid="ignore"):
            t = -self.o[2] / self.d[..., 2]
        t = np.where(np.isfinite(t) & (t > 0), t, np.inf)
        p = self.o + np.where(np.isfinite(t), t, 0.0)[..., None] * self.d
        half = S.BOARD_SIZE / 2
        on = np.isfinite(t) & (np.abs(p[..., 0]) <= half) & (np.abs(p[..., 1]) <= half)
        self.t_base = np.where(on, t, np.inf)
        self.id_base = np.where(on, _BOARD_ID, _NONE_ID).astype(np.int8)
        tex = texture(p[..., 0], p[..., 1], board_seed, 0.4).astype(np.float64)
        rgb = 0.25 * tex + 0.75 * _BOARD_RGB
        # the goal T's outline: a band just inside its edge
        loc = S.to_local(p[..., :2], S.GOAL_POSE)
        band = on & S.inside_t(loc) & (_outline_distance(loc) <= _GOAL_BAND)
        rgb[band] = 0.35 * rgb[band] + 0.65 * _GOAL_RGB
        rgb = np.clip(rgb, 0, 255).astype(np.uint8)
        rgb[~on] = _NO_HIT_RGB
        self.rgb_base = rgb

    def window(self, corners: np.ndarray) -> tuple[slice, slice]:
        """Pixel window containing the projection of ``corners`` (the full image when unsure)."""
        uv, z = self.camera.project(corners)
        H, W = self.camera.height, self.camera.width
        if np.any(z <= 1e-6) or not np.all(np.isfinite(uv)):
            return slice(0, H), slice(0, W)
        x0, y0 = np.floor(uv.min(0)).astype(int) - 1
        x1, y1 = np.ceil(uv.max(0)).astype(int) + 2
        return slice(max(0, y0), max(0, min(H, y1))), slice(max(0, x0), max(0, min(W, x1)))

    def cast(self, pose: tuple[float, float, float], pusher: tuple[float, float, float] | None
             ) -> dict[str, np.ndarray]:
        """Per pixel: ``t`` (camera z, inf = no hit), ``id`` (-1 nothing, 0 board, 1 T, 2 pusher), ``rgb``."""
        t, ident, rgb = self.t_base.copy(), self.id_base.copy(), self.rgb_base.copy()
        o = self.o
        # ---- the T: union of two boxes (bar, stem) in its local frame; first hit = the nearer box entry
        corners = np.concatenate([np.column_stack([S.to_world(_OUTLINE, pose), np.full(8, z)])
                                  for z in (0.0, S.T_HEIGHT)])
        ys, xs = self.window(corners)
        d = self.d[ys, xs]
        if d.size:
            x, y, yaw = pose
            c, s = math.cos(yaw), math.sin(yaw)
            Rt = np.array([[c, s, 0.0], [-s, c, 0.0], [0.0, 0.0, 1.0]])  # world -> T local
            ol = Rt @ (o - np.array([x, y, 0.0]))
            dl = d @ Rt.T
            best_t = np.full(d.shape[:-1], np.inf)
            best_axis = np.zeros(d.shape[:-1], np.int64)
            for rect in (S.BAR_LOCAL, S.STEM_LOCAL):
                lo = np.array([rect[:, 0].min(), rect[:, 1].min(), 0.0])
                hi = np.array([rect[:, 0].max(), rect[:, 1].max(), S.T_HEIGHT])
                with np.errstate(divide="ignore", invalid="ignore"):
                    t1, t2 = (lo - ol) / dl, (hi - ol) / dl
                tmin = np.nan_to_num(np.minimum(t1, t2), nan=-np.inf)
                tmax = np.nan_to_num(np.maximum(t1, t2), nan=np.inf)
                tnear, tfar = tmin.max(-1), tmax.min(-1)
                hit = (tnear <= tfar) & (tnear > 0) & (tnear < best_t)
                best_t = np.where(hit, tnear, best_t)
                best_axis = np.where(hit, tmin.argmax(-1), best_axis)
            hit = best_t < t[ys, xs]
            if np.any(hit):
                tn = best_t[hit]
                dh = dl[hit]
                pl = ol + tn[:, None] * dh
                ax = best_axis[hit]
                col = np.empty((tn.size, 3))
                nrm = np.zeros((tn.size, 3))
                top, fx, fy = ax == 2, ax == 0, ax == 1
                sc, seed = self.t_scale, self.t_seed
                col[top] = _plaid(pl[top, 0], pl[top, 1], seed, sc)
                col[fx] = _plaid(pl[fx, 1] + 3.0 * pl[fx, 0], pl[fx, 2], seed + 1, sc)
                col[fy] = _plaid(pl[fy, 0] + 3.0 * pl[fy, 1], pl[fy, 2], seed + 2, sc)
                nrm[top, 2] = 1.0
                nrm[fx, 0] = -np.sign(dh[fx, 0])  # the face a ray enters faces against it
                nrm[fy, 1] = -np.sign(dh[fy, 1])
                shade = (0.35 + 0.65 * np.clip((nrm @ Rt) @ _LIGHT, 0, 1)) / (0.35 + 0.65 * _LIGHT[2])
                sub_t, sub_id, sub_rgb = t[ys, xs], ident[ys, xs], rgb[ys, xs]
                sub_t[hit] = tn
                sub_id[hit] = _T_ID
                sub_rgb[hit] = np.clip(col * np.minimum(shade, 1.0)[:, None], 0, 255).astype(np.uint8)
                t[ys, xs], ident[ys, xs], rgb[ys, xs] = sub_t, sub_id, sub_rgb
        # ---- the pusher: a vertical cylinder (side and top cap) standing on its tip
        if pusher is not None:
            px, py, pz = pusher
            rp, L = S.PUSHER_RADIUS, self.pusher_length
            box = np.array([[px + sx * rp, py + sy * rp, z] for sx in (-1, 1) for sy in (-1, 1) for z in (pz, pz + L)])
            ys, xs = self.window(box)
            d = self.d[ys, xs]
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
                    with np.errstate(invalid="ignore"):
                        nx = np.where(use_cap, 0.0, (ox + ts * d[..., 0]) / rp)
                        ny = np.where(use_cap, 0.0, (oy + ts * d[..., 1]) / rp)
                    nz = np.where(use_cap, 1.0, 0.0)
                    lam = nx * _LIGHT[0] + ny * _LIGHT[1] + nz * _LIGHT[2]
                    shade = (0.35 + 0.65 * np.clip(lam, 0, 1))[hit]
                    sub_t, sub_id, sub_rgb = t[ys, xs], ident[ys, xs], rgb[ys, xs]
                    sub_t[hit] = tp[hit]
                    sub_id[hit] = _PUSHER_ID
                    sub_rgb[hit] = np.clip(_PUSHER_RGB * shade[:, None], 0, 255).astype(np.uint8)
                    t[ys, xs], ident[ys, xs], rgb[ys, xs] = sub_t, sub_id, sub_rgb
        return {"t": t, "id": ident, "rgb": rgb}

    def rgbd(self, r: Mapping[str, np.ndarray]) -> RGBD:
        depth = np.where(np.isfinite(r["t"]), r["t"], 0.0).astype(np.float32)
        return RGBD(rgb=r["rgb"].copy(), depth=depth, camera=self.camera)


class _ObservationState(Mapping):
    """``Observation.state`` of the pusht world: ``ee_pos`` (x, y, z metres) and ``views`` (the 4 board cameras'
    RGB-D of the observed state, tuple of :class:`~d2f_core.RGBD`), rendered on first access of ``views``."""

    image_keys = ("views",)
    """keys whose values are images rendered on access (FlowEnv's observation vector skips them)"""

    def __init__(self, plain: dict[str, Any], views: Callable[[], tuple[RGBD, ...]]) -> None:
        self._plain = plain
        self._render_views = views
        self._views: tuple[RGBD, ...] | None = None

    def __getitem__(self, key: str) -> Any:
        if key == "views":
            if self._views is None:
                self._views = self._render_views()
            return self._views
        return self._plain[key]

    def __iter__(self) -> Iterator[str]:
        yield from self._plain
        yield "views"

    def __len__(self) -> int:
        return len(self._plain) + 1

    def __repr__(self) -> str:
        shown = "rendered" if self._views is not None else "not rendered yet"
        return f"{{{', '.join(f'{k!r}: {v!r}' for k, v in self._plain.items())}, 'views': <4 RGBD, {shown}>}}"


# --------------------------------------------------------------------------- the world


class PushTWorld:
    """gym-pusht's Push-T in 3D (see the module docstring). Build with the ``pusht`` plugin."""

    name, kind, Options = "pusht", "world", PushTOptions
    capabilities = frozenset({"segmentation", "deterministic", "object_pose", "oracle", "pushes", "multiview",
                              "goal_image",
                              "shaped_reward"})
    extra, requires, install = "pusht", PUSHT_REQUIRES, PUSHT_INSTALL
    description = ("Push-T: gym-pusht's pymunk physics (bit-identical) with a 3D point-mass pusher; ray-cast RGB-D "
                   "from a main camera and 4 calibrated board cameras")
    verified = ("block poses bit-identical to gym-pusht's own step; masks and depth against projected T geometry "
                "(main and 4 board cameras, 1 px / 2 mm); success criteria on constructed poses; pushes")
    object_names = ("T", "pusher", "board")
    reward_yaw_weight = 0.05
    """metres per radian: how :meth:`task_reward` weighs the T's yaw error (15 deg ~ 1.3 cm)."""
    reward_reach_weight = 0.1
    """how :meth:`task_reward` weighs the pusher's distance to the T (dimensionless)."""

    def __init__(self, options: PushTOptions | None = None, embodiment: Any = None) -> None:
        self.options = o = options or PushTOptions()
        if embodiment is None:
            from d2f_plugins.embodiment.point_mass import PointMass

            embodiment = PointMass()
        robot = getattr(embodiment, "robot", None)
        if robot not in SUPPORTED_ROBOTS:
            raise ValueError(
                f"embodiment.plugin: pusht drives robots {list(SUPPORTED_ROBOTS)}, but the configured embodiment "
                f"{getattr(embodiment, 'name', type(embodiment).__name__)!r} is robot {robot!r}; set "
                "`embodiment: {plugin: point-mass}`")
        lim = np.asarray(embodiment.joint_limits, dtype=np.float64)
        if lim.shape != (3, 2) or not np.all(np.isfinite(lim)):
            raise ValueError(f"embodiment.joint_limits: expected finite 3 x 2 (x, y, z) limits in metres, got shape "
                             f"{lim.shape}")
        xy_lo, xy_hi = (float(v) for v in S.px_to_m([PX_ACTION_LOW, PX_ACTION_HIGH]))
        low = np.maximum(np.array([xy_lo, xy_lo, 0.0]), lim[:, 0])
        high = np.minimum(np.array([xy_hi, xy_hi, Z_MAX]), lim[:, 1])
        if np.any(low >= high) or high[2] < o.park_height:
            raise ValueError(f"embodiment.joint_limits: {lim.tolist()} leave no room inside the Push-T workspace (x, y "
                             f"in [{xy_lo:.3f}, {xy_hi:.3f}] m, z in [0, {Z_MAX}] m, park_height {o.park_height} m); "
                             "widen the point-mass joint limits")
        vz = float(np.asarray(embodiment.velocity_limits, dtype=np.float64).reshape(-1)[2])
        if not (math.isfinite(vz) and vz > 0):
            raise ValueError("embodiment.velocity_limits: expected 3 speeds > 0 m/s (z is used)")
        self.embodiment = embodiment
        self.task = Task(instruction="push the T to the goal", object="T")
        self.horizon = int(o.horizon)
        self.control_freq = 1.0 / DT
        self.action_low, self.action_high = low, high
        self.action_low.flags.writeable = False
        self.action_high.flags.writeable = False
        self._max_dz = vz * DT
        self.goal_pose = tuple(float(v) for v in S.GOAL_POSE)

        self.env = self._make_env()
        if getattr(self.env, "control_hz", 10) != 10 or abs(self.env.dt - 0.01) > 1e-12:
            raise ValueError(f"gym-pusht: control at {self.env.control_hz} Hz with substeps of {self.env.dt} s; this "
                             f"world is written for gym-pusht 0.1.8 (10 Hz, 10 ms); {PUSHT_INSTALL}")

        from d2f_conformance.scenes import look_at, pinhole

        self.camera = Camera(K=pinhole(o.width, o.height, o.fov_deg), T_world_cam=look_at(o.camera_eye, o.camera_target),
                             width=o.width, height=o.height, name="pusht")
        e = math.radians(o.view_elevation_deg)
        Kv = pinhole(o.view_width, o.view_height, o.view_fov_deg)
        self.view_cameras: tuple[Camera, ...] = tuple(
            Camera(K=Kv, T_world_cam=look_at((o.view_distance * math.cos(e) * math.cos(az),
                                              o.view_distance * math.cos(e) * math.sin(az),
                                              o.view_distance * math.sin(e)), (0.0, 0.0, 0.0)),
                   width=o.view_width, height=o.view_height, name=name)
            for name, az in zip(VIEW_NAMES, (-math.pi / 2, 0.0, math.pi / 2, math.pi)))
        args = (o.board_seed, o.t_seed, o.t_texture_scale, o.pusher_length)
        self._main = _Caster(self.camera, *args)
        self._views = tuple(_Caster(c, *args) for c in self.view_cameras)
        self._cache: dict[tuple, Any] = {}
        self._oracle_cache: list[PushTOracleRollout] = []
        self.t = 0
        self._z = float(o.park_height)
        self.embodiment.bind(self)
        self._reset_state(0)

    # ------------------------------------------------------------------ gym-pusht
    @staticmethod
    def _make_env() -> Any:
        os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
        try:
            import gym_pusht  # noqa: F401  (registers gym_pusht/PushT-v0)
            import gymnasium
            import pymunk
        except ImportError as e:
            raise ImportError(f"pusht world: gym-pusht is not importable ({e}); install it with {PUSHT_INSTALL}") from None
        if not pymunk.version.startswith("6."):
            raise ImportError(f"pusht world: pymunk {pymunk.version} is installed, gym-pusht 0.1.8 needs pymunk 6 (7 "
                              f"breaks it); {PUSHT_INSTALL}")
        return gymnasium.make("gym_pusht/PushT-v0", obs_type="state").unwrapped

    def _on_new_space(self) -> None:
        """After gym-pusht rebuilt its space (reset): remember the pusher shape and its colliding filter."""
        import pymunk

        self._shape = next(iter(self.env.agent.shapes))
        self._collide_filter = self._shape.filter
        self._no_collide_filter = pymunk.ShapeFilter(categories=0, mask=0)

    def _set_colliding(self, on: bool) -> None:
        f = self._collide_filter if on else self._no_collide_filter
        if self._shape.filter != f:
            self._shape.filter = f

    @property
    def pusher_colliding(self) -> bool:
        """Whether the pusher's disk collides with the T now (tip below the T's top)."""
        return self._shape.filter == self._collide_filter

    def block_pose(self) -> tuple[float, float, float]:
        """The T's pose (x, y, yaw) metres, radians (yaw wrapped to [-pi, pi))."""
        x, y, yaw = S.pose_from_px(self.env.block.position, self.env.block.angle)
        return x, y, S.wrap_pi(yaw)

    def pusher(self) -> tuple[float, float, float]:
        """The pusher tip (x, y, z) metres, world frame."""
        x, y = (float(v) for v in S.px_to_m(self.env.agent.position))
        return x, y, float(self._z)

    def _disk_overlaps_t(self, x: float, y: float) -> bool:
        loc = S.to_local(np.array([x, y]), self.block_pose())
        return bool(_t_footprint_distance(loc) < S.PUSHER_RADIUS)

    def _key(self) -> tuple:
        return (self.block_pose(), self.pusher())

    # ------------------------------------------------------------------ episode
    def reset(self, seed: int) -> Observation:
        """New episode: gym-pusht's initial state ``seed // seeds_per_state`` (or ``initial_state``), pusher lifted."""
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed: expected a non-negative integer, got {seed!r}")
        self._reset_state(int(seed))
        return self._observation()

    def initial_state_index(self, seed: int) -> int:
        """The gym-pusht initial state (``env.reset(seed=index)``) that ``reset(seed)`` uses."""
        o = self.options
        return int(o.initial_state) if o.initial_state is not None else int(seed) // int(o.seeds_per_state)

    def _reset_state(self, seed: int) -> None:
        self.initial_state = self.initial_state_index(seed)
        self.env.reset(seed=self.initial_state)
        self._on_new_space()
        self._z = float(self.options.park_height)
        self._set_colliding(False)
        self.t = 0
        self._coverage = None

    def step(self, action: np.ndarray) -> Observation:
        """Move the pusher towards ``action`` = target tip (x, y, z) metres for one ``dt`` (0.1 s)."""
        self._advance(self._check_action(action))
        return self._observation()

    def _advance(self, a: np.ndarray) -> None:
        x, y, z = self.pusher()
        nz = z + float(np.clip(a[2] - z, -self._max_dz, self._max_dz))
        if nz < S.T_HEIGHT and z >= S.T_HEIGHT and self._disk_overlaps_t(x, y):
            nz = S.T_HEIGHT  # coming down onto the T: the tip rests on its top
        self._z = nz
        self._set_colliding(nz < S.T_HEIGHT)
        _, _, _, _, info = self.env.step(S.m_to_px(a[:2]))
        self._coverage = float(info["coverage"])
        self.t += 1

    def _check_action(self, action: Any) -> np.ndarray:
        try:
            a = np.array(action, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"action: expected 3 numbers (target pusher x, y, z in metres), got {action!r}") from None
        if a.shape != (3,):
            raise ValueError(f"action: expected shape (3,) = target pusher (x, y, z) in metres, got {a.shape}")
        if not np.all(np.isfinite(a)):
            raise ValueError("action: contains NaN or inf; expected a finite target pusher (x, y, z) in metres")
        return np.clip(a, self.action_low, self.action_high)

    # ------------------------------------------------------------------ task state
    def coverage(self) -> float:
        """gym-pusht's coverage: area(goal T and T) / area(T), in [0, 1]."""
        if self._coverage is None:
            self._coverage = float(self.env._get_coverage())
        return self._coverage

    def success(self) -> bool:
        """The paper's criterion: the T's centre within 2 cm of the goal's and its yaw within 15 degrees."""
        return bool(S.paper_success(self.block_pose(), self.goal_pose))

    def success_coverage(self) -> bool:
        """gym-pusht's own criterion: coverage > 0.95."""
        return bool(self.coverage() > self.env.success_threshold)

    def describe_state(self) -> str:
        """One line: the T's distance and yaw error to the goal, and the coverage, against both criteria."""
        d, a = S.pose_error(self.block_pose(), self.goal_pose)
        return (f"T {100 * d:.1f} cm and {a:.0f} deg from the goal, coverage {self.coverage():.2f} (paper success "
                f"needs <= {100 * S.SUCCESS_DISTANCE:g} cm and <= {S.SUCCESS_YAW_DEG:g} deg; gym-pusht's needs "
                f"coverage > {self.env.success_threshold:g})")

    def privileged_state(self) -> Mapping[str, Any]:
        """{"block_pose": [x, y, yaw], "goal_pose": [x, y, yaw], "pusher": [x, y, z]} (metres, radians; the pose
        convention of :mod:`pusht_scene`), "coverage" (gym-pusht's), "object_pose" (T_world_T 4x4 nested list,
        :func:`pusht_scene.pose_matrix`), "pose_error" [centre distance m, |yaw error| deg], "success" (the
        paper's), "success_coverage" (gym-pusht's), "initial_state" (gym-pusht's reset seed)."""
        pose = self.block_pose()
        d, a = S.pose_error(pose, self.goal_pose)
        return {"block_pose": list(pose), "goal_pose": list(self.goal_pose), "pusher": list(self.pusher()),
                "coverage": self.coverage(), "object_pose": S.pose_matrix(pose).tolist(), "pose_error": [d, a],
                "success": self.success(), "success_coverage": self.success_coverage(),
                "initial_state": int(self.initial_state)}

    def task_reward(self) -> float:
        """Shaped reward (privileged), <= 0, 0 at the goal: ``-(d_goal + reward_yaw_weight * |yaw error| +
        reward_reach_weight * d_reach)``: the T's centre's distance to the goal's (m), the yaw error (rad) and the
        gap between the pusher's disk and the T's footprint (m, 0 when touching)."""
        pose = self.block_pose()
        d, a = S.pose_error(pose, self.goal_pose)
        x, y, _ = self.pusher()
        gap = float(_t_footprint_distance(S.to_local(np.array([x, y]), pose)))
        d_reach = max(0.0, gap - S.PUSHER_RADIUS)
        return -(d + self.reward_yaw_weight * math.radians(a) + self.reward_reach_weight * d_reach)

    def set_state(self, *, block_pose: Any = None, pusher: Any = None, block_velocity: Any = None,
                  pusher_velocity: Any = None, t: int | None = None) -> None:
        """Place the T (``block_pose`` (x, y, yaw) metres, radians) and the pusher tip (``pusher`` (x, y, z)
        metres, clipped to the action bounds). Velocities (``block_velocity`` (vx, vy, w) m/s, rad/s;
        ``pusher_velocity`` (vx, vy) m/s) are zeroed unless given. For tests and oracles.

        The pusher must not overlap the T below the T's top (ValueError). pymunk's cached contact impulses
        are not part of the state, so a restored state resumes like gym-pusht only when nothing touches."""
        def vec(name: str, v: Any, n: int) -> np.ndarray:
            try:
                arr = np.array(v, dtype=np.float64)
            except (TypeError, ValueError):
                raise ValueError(f"{name}: expected {n} finite numbers, got {v!r}") from None
            if arr.shape != (n,) or not np.all(np.isfinite(arr)):
                raise ValueError(f"{name}: expected {n} finite numbers, got {v!r}")
            return arr

        body, agent = self.env.block, self.env.agent
        old = (body.position, body.angle, body.velocity, body.angular_velocity, agent.position, agent.velocity,
               self._z, self.t)
        pose = vec("block_pose", block_pose, 3) if block_pose is not None else None
        bv = vec("block_velocity", block_velocity, 3) if block_velocity is not None else np.zeros(3)
        p = np.clip(vec("pusher", pusher, 3), self.action_low, self.action_high) if pusher is not None else None
        pv = vec("pusher_velocity", pusher_velocity, 2) if pusher_velocity is not None else np.zeros(2)
        if t is not None and (isinstance(t, bool) or not isinstance(t, (int, np.integer)) or t < 0):
            raise ValueError(f"t: expected a non-negative step count, got {t!r}")
        if pose is not None:
            u, v, yaw = S.pose_to_px(pose)
            body.angle = yaw  # angle first: pymunk turns a body about its centre of gravity
            body.position = (u, v)
        if pose is not None or block_velocity is not None:
            body.velocity = (float(bv[0]) * S.PX_PER_M, float(bv[1]) * S.PX_PER_M)
            body.angular_velocity = float(bv[2])
        if p is not None:
            agent.position = tuple(float(c) for c in S.m_to_px(p[:2]))
            self._z = float(p[2])
        if p is not None or pusher_velocity is not None:
            agent.velocity = (float(pv[0]) * S.PX_PER_M, float(pv[1]) * S.PX_PER_M)
        x, y, z = self.pusher()
        if z < S.T_HEIGHT and self._disk_overlaps_t(x, y):
            body.angle = old[1]  # angle before position (see above)
            (body.position, body.velocity, body.angular_velocity, agent.position, agent.velocity, self._z,
             self.t) = (old[0], *old[2:])
            self.env.space.reindex_shapes_for_body(body)
            raise ValueError(f"pusher: the pusher's disk (radius {S.PUSHER_RADIUS} m) would overlap the T below its top "
                             f"({S.T_HEIGHT} m); place it at least that far from the T or at z >= {S.T_HEIGHT}")
        self._set_colliding(z < S.T_HEIGHT)
        self.env.space.reindex_shapes_for_body(body)
        self.env.space.reindex_shapes_for_body(agent)
        if t is not None:
            self.t = int(t)
        self._coverage = None

    def get_state(self) -> dict[str, Any]:
        """Everything :meth:`set_state` takes to restore the current state (velocities included), plus ``t``."""
        b, a = self.env.block, self.env.agent
        return {"block_pose": self.block_pose(), "pusher": self.pusher(),
                "block_velocity": (b.velocity[0] / S.PX_PER_M, b.velocity[1] / S.PX_PER_M, float(b.angular_velocity)),
                "pusher_velocity": (a.velocity[0] / S.PX_PER_M, a.velocity[1] / S.PX_PER_M), "t": self.t}

    # ------------------------------------------------------------------ observations
    def _observation(self) -> Observation:
        rgbd = self.render() if self.options.render_observations else None
        pose, p = self.block_pose(), self.pusher()
        state = _ObservationState({"ee_pos": list(p)}, lambda: self._views_at(pose, p))
        return Observation(rgbd=rgbd, joints=np.array(p), state=state, privileged=self.privileged_state())

    def _cast(self, which: str, pose: tuple, pusher: tuple | None) -> Any:
        key = (which, pose, pusher)
        hit = self._cache.get(key)
        if hit is None:
            if which == "main":
                hit = self._main.cast(pose, pusher)
            else:
                hit = tuple(c.cast(pose, pusher) for c in self._views)
            if len(self._cache) >= 8:
                self._cache.pop(next(iter(self._cache)))
            self._cache[key] = hit
        return hit

    def _views_at(self, pose: tuple, pusher: tuple | None) -> tuple[RGBD, ...]:
        return tuple(c.rgbd(r) for c, r in zip(self._views, self._cast("views", pose, pusher)))

    def render(self) -> RGBD:
        """The main camera's RGB-D frame: RGB uint8 H x W x 3, depth float32 metres (camera z), 0 = no hit."""
        return self._main.rgbd(self._cast("main", self.block_pose(), self.pusher()))

    def render_views(self) -> tuple[RGBD, ...]:
        """The 4 board cameras' RGB-D frames (:data:`VIEW_NAMES` order; cameras in :attr:`view_cameras`)."""
        return self._views_at(self.block_pose(), self.pusher())

    def resolve_name(self, text: str) -> str:
        """The object a name means: "T" (also "the T", "tee", "block", "object", "t-shaped block"), "pusher"
        (also "robot", "agent"), or "board" (also "table")."""
        key = " ".join(str(text).strip().lower().split())
        key = key.removeprefix("the ")
        aliases = {"t": "T", "tee": "T", "block": "T", "object": "T", "t block": "T", "t-shaped block": "T",
                   "t-block": "T", "pusher": "pusher", "robot": "pusher", "agent": "pusher", "board": "board",
                   "table": "board"}
        if key not in aliases:
            raise ValueError(f"name: pusht has no object {text!r}; known objects: {', '.join(self.object_names)} "
                             "(aliases: tee, block, object; robot; table)")
        return aliases[key]

    def object_mask(self, name: str, view: int | None = None) -> np.ndarray:
        """bool H x W: pixels where ``name`` (see :meth:`resolve_name`) is the visible surface, in the main camera
        (``view`` None) or board camera ``view`` (0-3, :data:`VIEW_NAMES` order)."""
        ids = {"T": _T_ID, "pusher": _PUSHER_ID, "board": _BOARD_ID}
        obj = self.resolve_name(name)
        if view is None:
            r = self._cast("main", self.block_pose(), self.pusher())
        else:
            if isinstance(view, bool) or not isinstance(view, (int, np.integer)) or not 0 <= view < len(self._views):
                raise ValueError(f"view: expected None (main camera) or a board camera index 0-{len(self._views) - 1} "
                                 f"({', '.join(VIEW_NAMES)}), got {view!r}")
            r = self._cast("views", self.block_pose(), self.pusher())[int(view)]
        return r["id"] == ids[obj]

    # ------------------------------------------------------------------ oracle
    def oracle_rollout(self, num_frames: int = 49, *, hide_robot: bool = True) -> PushTOracleRollout:
        """A STAND-IN for a generated video with end-frame conditioning: the T moved from its current pose to the
        goal (x, y linearly, yaw along the shortest wrap), no physics, rendered from the main camera with the pusher
        hidden (``hide_robot``; else drawn where it is now). Cached per (state, num_frames, hide_robot); the world's
        state is untouched."""
        if isinstance(num_frames, bool) or not isinstance(num_frames, (int, np.integer)) or num_frames < 2:
            raise ValueError(f"num_frames: expected an integer >= 2, got {num_frames!r}")
        key = self._key()
        for r in self._oracle_cache:
            if r.state_key == key and r.num_frames == num_frames and r.robot_hidden == bool(hide_robot):
                return r
        start, goal = np.array(key[0]), np.array(self.goal_pose)
        s = np.linspace(0.0, 1.0, int(num_frames))
        poses = np.empty((int(num_frames), 3))
        poses[:, :2] = start[:2] + s[:, None] * (goal[:2] - start[:2])
        poses[:, 2] = S.wrap_pi(start[2] + s * S.wrap_pi(float(goal[2] - start[2])))
        poses[0], poses[-1] = start, goal  # exactly (the lines above end there up to rounding)
        pusher = None if hide_robot else key[1]
        frames, depth = [], []
        for pose in poses:
            f = self._main.rgbd(self._main.cast(tuple(float(v) for v in pose), pusher))
            frames.append(f.rgb)
            depth.append(f.depth)
        r = PushTOracleRollout(task="pusht", object_name="T", camera=self.camera, fps=float(self.control_freq),
                               frames=np.stack(frames), depth=np.stack(depth), block_poses=poses,
                               success=bool(S.paper_success(poses[-1], self.goal_pose)),
                               robot_hidden=bool(hide_robot), state_key=key, num_frames=int(num_frames))
        self._oracle_cache = (self._oracle_cache + [r])[-4:]
        return r

    def goal_image(self) -> np.ndarray:
        """The main camera's RGB (uint8 H x W x 3) with the T at the goal pose and the pusher hidden: the end
        frame for a first-last-frame video model (Wan2.1 FLF2V, as the paper). The world's state is unchanged."""
        return self.oracle_rollout(2).frames[-1].copy()

    def find_oracle_rollout(self, frames: np.ndarray) -> PushTOracleRollout | None:
        """A cached rollout whose frames are ``frames`` (T x H x W x 3), or None."""
        for r in reversed(self._oracle_cache):
            if r.matches(frames):
                return r
        return None

    # ------------------------------------------------------------------ pushes
    def push(self, action: Any) -> Observation:
        """Execute one planar push ``action`` = (contact_x, contact_y, push_dx, push_dy) metres, world frame, with
        this world's :meth:`step`; returns the last Observation.

        The waypoints are :func:`d2f_plugins.solver.random_shooting.push_waypoints` with the T's top as the
        object's top and the random-shooting defaults (travel 3 cm above it, pushing 2 cm below it, descending
        1 cm behind the contact point); each waypoint's action is repeated until the tip is within 2 mm of it,
        moved less than 0.5 mm twice in a row (blocked) or 15 steps passed: the rules of
        ``RandomShootingAgent._advance_queue``. Waypoints are clipped to the action bounds before the check."""
        from d2f_plugins.solver.random_shooting import (
            RandomShootingOptions,
            push_waypoints,
        )

        try:
            a = np.array(action, dtype=np.float64)
        except (TypeError, ValueError):
            a = np.full(1, np.nan)
        if a.shape != (4,) or not np.all(np.isfinite(a)):
            raise ValueError(f"action: expected 4 finite numbers (contact_x, contact_y, push_dx, push_dy) in metres, "
                             f"got {action!r}")
        f = RandomShootingOptions.model_fields
        opt = {k: f[k].default for k in ("travel_height", "push_depth", "backoff", "waypoint_tolerance",
                                         "stall_distance", "max_waypoint_steps")}
        tip = np.array(self.pusher())
        queue = [np.clip(w, self.action_low, self.action_high)
                 for w in push_waypoints(a, tip, S.T_HEIGHT + opt["travel_height"], S.T_HEIGHT - opt["push_depth"],
                                         opt["backoff"])]
        on_waypoint, stalls, last_tip = 0, 0, None
        while True:
            tip = np.array(self.pusher())
            while queue:  # RandomShootingAgent._advance_queue
                reached = float(np.linalg.norm(tip - queue[0])) <= opt["waypoint_tolerance"]
                if last_tip is not None and on_waypoint > 0 and not reached:
                    moved = float(np.linalg.norm(tip - last_tip))
                    stalls = stalls + 1 if moved < opt["stall_distance"] else 0
                if reached or stalls >= 2 or on_waypoint >= opt["max_waypoint_steps"]:
                    queue.pop(0)
                    on_waypoint, stalls = 0, 0
                    continue
                break
            if not queue:
                return self._observation()  # built once, after the last step (not rendered every step)
            self._advance(queue[0])
            on_waypoint += 1
            last_tip = tip

    def __repr__(self) -> str:
        return f"PushTWorld(initial_state={self.initial_state}, t={self.t}, {self.describe_state()})"


@dataclass(frozen=True, eq=False)
class PushTOracleRollout:
    """The T moved to the goal, rendered (T frames, H x W images; metres, radians).

    Fields: ``task`` ("pusht"), ``object_name`` ("T"), ``camera`` (the main camera), ``fps`` (the world's control
    rate), ``frames`` uint8 T x H x W x 3 (pusher hidden when ``robot_hidden``), ``depth`` float32 T x H x W metric
    camera z (0 = no hit), ``block_poses`` float64 T x 3 (x, y, yaw) per frame, ``success`` (the paper's check on
    the last pose), ``state_key`` (the (T pose, pusher) it started from), ``num_frames``.
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


def _factory(options: PushTOptions | None, ctx: Any = None) -> PushTWorld:
    embodiment = ctx.component("embodiment") if ctx is not None else None
    return PushTWorld(options, embodiment)


@hookimpl
def d2f_register(register):
    register(Manifest.of(PushTWorld, factory=_factory))
