"""``pymunk`` dynamics: Push-T pushes predicted with a copy of gym-pusht's own physics.

**A privileged oracle, not a learned model.** It knows the T's exact shape, mass, centre of gravity
and moment, the pusher's disk and gym-pusht's control law and contact model (it builds them with
gym-pusht's own ``PushTEnv.add_tee`` / ``add_circle`` / ``add_segment`` and reads the env's
constants), so it is the upper bound every learned Push-T model is measured against. Its only
input from perception is the T's pose, fitted to the particles.

An action is a push ``(contact_x, contact_y, push_dx, push_dy)`` in metres, world frame (as
``heuristic``). ``predict(points N x 3, actions B x 4) -> B x N x 3``:

1. **Pose**: the T's pose ``(x, y, yaw)`` fitted to the particles
   (:func:`d2f_plugins.world.pusht_scene.fit_t_pose`; pose convention and the 1000 px/m scale of
   :mod:`~d2f_plugins.world.pusht_scene`).
2. **Push**, simulated as the ``pusht`` world executes it under the random-shooting executor: the
   pusher travels above the T (no contact) to the descent point ``s = contact - backoff * d``
   (``d`` the unit push direction), touches down there at rest and is then driven towards
   ``contact + (push_dx, push_dy)`` by gym-pusht's PD law (``velocity += (k_p (target - p) +
   k_v (0 - velocity)) dt`` before each of the ``1 / (dt control_hz)`` = 10 substeps of ``dt`` =
   0.01 s per 10 Hz step), the same target repeated step after step until the executor's rule
   ends the waypoint: the tip within ``waypoint_tolerance`` of it, or moved less than
   ``stall_distance`` in two steps in a row, or ``max_waypoint_steps`` steps done (checked before
   every step, as ``RandomShootingAgent._advance_queue``). The pusher then lifts clear of the T in
   one step (the ``pusht`` world raises the tip 5 cm per step and a tip at or above the T's top
   collides with nothing); the prediction is the T after that lift step: it coasted one substep on
   the velocity the last contact gave it (pymunk integrates positions before it damps velocities)
   and rested, or, pressed into a wall, sprang part of the way back out. A disk that overlaps the
   T at ``s`` lands on the T's top and slides over it colliding with nothing (the ``pusht`` world
   rests the tip there) until a step starts with the disk off the T's footprint; from then on it
   is down and collides, so it can still push the T (e.g. sliding off the bar into the stem's
   side); if it never gets off, the push moves nothing. A push whose disk never comes within reach
   of the T (while down) moves nothing. Descent point and end are clipped to
   where the pusher's centre can go (inside the walls by its radius: 22..489 units, the world's
   action bounds). The board's walls are in the simulation (``walls``).
3. **Particles**: moved rigidly by the simulated pose change relative to the fitted pose
   (``p' = t' + R(yaw' - yaw) (p - t)``; z unchanged), so the fit's error does not move the
   particles by itself (it only shifts where the simulated push meets the T). Pushes that move
   nothing return the particles unchanged.

**Fast**: all simulated candidates share ONE pymunk ``Space``, each candidate's T, pusher and walls
offset by 2048 units on a grid so none interacts with another, stepped together; the pusher's path
is a kinematic function of its target alone (pymunk never moves a kinematic body), so it is computed
in numpy beforehand, exactly as pymunk integrates it, and its velocities are set with ``pymunk.batch``
every substep. Pushes that land on the T or never reach it are not simulated, and a candidate's walls
are left out when its T cannot reach them. Exact: the same poses as gym-pusht's env stepped with the
same targets (to rounding, 1e-14 m), except while a T touches a wall: squeezed between the kinematic
pusher and a wall, pymunk's 10-iteration contact solver does not converge and its answer depends on
the order it visits the contacts, which the shared space changes (on gym-pusht's 10 initial states x
100 sampled pushes: 24 of 1000 differ from one-candidate-alone by more than 1e-6, 4 by more than
1 mm, all with the T within 25 units of a wall; a 5 cm push straight into a wall can differ by a
radian). The true outcome of such a push is as sensitive: gym-pusht's own env, its pusher first
placed elsewhere, ends a 4 cm squeeze 0.9 mm and 0.7 degrees away from the same env placed directly.
Limits: the pusher is taken to start the push at rest exactly at ``s``; the world's pusher arrives
within the executor's 2 mm of it with some speed left. Against the ``pusht`` world's own ``push``
(60 sampled pushes in sequence from its 10 initial states, the T moving 14 mm and 8 degrees
median) the predicted pose is off by 0.03 mm and 0.02 degrees median, 0.34 mm and 0.11 degrees at
worst; the world's pymunk also carries cached contact impulses and bias velocities that no pose
holds (its initial state 6 starts with gym-pusht's pusher overlapping the T, whose push-out bias
moves the T in the episode's first step).

**gym-pusht's physics as shipped** (0.1.8, pymunk 6): ``add_tee`` sets ``body.friction = 1``, which
is a plain Python attribute of ``pymunk.Body``, not a shape's friction: the shapes keep pymunk's
default friction 0, so the pusher-T contact is frictionless (the pusher only pushes along the
contact normal); there is no table friction either (a planar space, no gravity), but
``space.damping`` = 0 zeroes every dynamic body's velocity each substep, so the T moves only while
pushed (quasi-static). The T's centre of gravity is the mean of its two rectangles' centroids,
local (0, 45) units, not the area centroid (0, 40.7); its moment is 3000, twice the bar's moment
about the local origin (``inertia2`` is computed from the bar's vertices), where a uniform T of mass
1 has about 1930 about its centroid.

``sample_actions`` is ``heuristic``'s sampler with the same sampling options, so every model is
compared on the same candidates.
"""

from __future__ import annotations

import functools
import math
from types import SimpleNamespace

import numpy as np
from d2f_plugins.dynamics.heuristic import HeuristicOptions, HeuristicPushDynamics
from d2f_plugins.world import pusht_scene as scene
from pydantic import BaseModel, ConfigDict, Field, field_validator

from d2f_core import Manifest, hookimpl
from d2f_core.validate import check_points

__all__ = ["CELL", "PymunkDynamics", "PymunkOptions"]

CELL = 2048.0
"""Spacing (gym-pusht units) of the candidates' copies of the board in the shared space: four board
widths, so no T, pusher or wall of one candidate comes near another's."""
_REACH_MARGIN = 1.0
"""units beyond the disk's radius within which a pusher path counts as reaching the T (and is
simulated); pymunk makes contact only on overlap, so this is a safety margin."""
_WALL_MARGIN = 10.0
"""units of slack in the test that leaves out the walls of a candidate whose T cannot reach them."""


class PymunkOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    push_length: list[float] = Field(
        default=[0.01, 0.05],
        description="sample_actions: [min, max] push length, metres (uniform; heuristic's sampler)")
    sample_margin: float = Field(
        default=0.015, ge=0.0, le=0.2,
        description="sample_actions: the contact point lies this far behind the object's rearmost particle "
                    "on the push line, metres (heuristic's sampler)")
    sample_band: float = Field(
        default=0.01, gt=0.0, le=0.2,
        description="sample_actions: particles within this distance of a push line (xy, metres) count as on it "
                    "(heuristic's sampler)")
    backoff: float = Field(
        default=0.01, ge=0.0, le=0.5,
        description="the pusher touches down this far behind the contact point (against the push), metres: "
                    "random-shooting's backoff")
    waypoint_tolerance: float = Field(
        default=0.002, gt=0.0,
        description="the push ends when the tip is this close to its end, metres: random-shooting's")
    stall_distance: float = Field(
        default=0.0005, ge=0.0,
        description="the push ends when the tip moved less than this in two steps in a row, metres: "
                    "random-shooting's")
    max_waypoint_steps: int = Field(
        default=15, ge=1, le=1000,
        description="the push ends after this many 10 Hz steps: random-shooting's")
    walls: bool = Field(default=True, description="simulate gym-pusht's board walls (the T stops at them)")

    @field_validator("push_length")
    @classmethod
    def _length(cls, v: list[float]) -> list[float]:
        if len(v) != 2 or not all(math.isfinite(x) for x in v) or not (0.0 < v[0] <= v[1] <= 1.0):
            raise ValueError("expected [min, max] push length in metres with 0 < min <= max <= 1")
        return v


@functools.cache
def _physics() -> SimpleNamespace:
    """gym-pusht's classes and constants, read from a set-up (never stepped) ``PushTEnv``."""
    try:
        import pymunk
        import pymunk.batch
        from gym_pusht.envs.pusht import PushTEnv
    except ImportError as e:  # pragma: no cover - depends on the installation
        raise ImportError(f"dynamics 'pymunk' simulates gym-pusht's physics and needs gym-pusht and pymunk < 7 "
                          f"({e}); install them with `pip install 'dream2flow[pusht]'`") from e
    env = PushTEnv(obs_type="state")
    env._setup()
    (circle,) = env.agent.shapes
    rects = []
    for shape in env._block_shapes:
        v = np.array([tuple(p) for p in shape.get_vertices()], dtype=np.float64)
        rects.append((v.min(0), v.max(0)))  # add_tee's shapes are axis-aligned rectangles in the T's frame
    # space.shapes keeps the order they were added in (static_body.shapes is a set): the same order as the env
    walls = [(tuple(s.a), tuple(s.b), float(s.radius)) for s in env.space.shapes if s.body is env.space.static_body]
    cog = np.array(tuple(env.block.center_of_gravity), dtype=np.float64)
    # where the pusher's centre can go: inside the walls' inner faces by its radius (the pusht world clips its
    # targets to these: PX_ACTION_LOW / PX_ACTION_HIGH, 22 and 489 units)
    lines = [(a[k], r) for a, b, r in walls for k in (0, 1) if a[k] == b[k]]  # (wall's x or y, its radius)
    low = min(c + r for c, r in lines) + float(circle.radius)
    high = max(c - r for c, r in lines) - float(circle.radius)
    reach = max(float(np.linalg.norm(np.array([x, y]) - cog)) for lo, hi in rects for x in (lo[0], hi[0])
                for y in (lo[1], hi[1]))
    sp = env.space
    return SimpleNamespace(
        pymunk=pymunk, batch=pymunk.batch, PushTEnv=PushTEnv,
        k_p=env.k_p, k_v=env.k_v, dt=env.dt, substeps=int(1 / (env.dt * env.control_hz)),
        radius=float(circle.radius), rects=rects, walls=walls, cog=cog, reach=reach, low=low, high=high,
        space={"gravity": tuple(sp.gravity), "damping": sp.damping, "iterations": sp.iterations,
               "collision_slop": sp.collision_slop, "collision_bias": sp.collision_bias,
               "collision_persistence": sp.collision_persistence,
               "idle_speed_threshold": sp.idle_speed_threshold,
               "sleep_time_threshold": sp.sleep_time_threshold})


def _distance_to_t(local: np.ndarray, rects: list) -> np.ndarray:
    """Distance (units) from points in the T's frame (..., 2) to the T's footprint (0 inside)."""
    out = None
    for lo, hi in rects:
        g = np.maximum(np.maximum(lo - local, local - hi), 0.0)
        d = np.hypot(g[..., 0], g[..., 1])
        out = d if out is None else np.minimum(out, d)
    return out


class PymunkDynamics:
    """``predict(points N x 3, actions B x 4) -> B x N x 3`` with gym-pusht's own physics (a privileged
    oracle: module docstring); ``simulate_poses(pose, actions) -> B x 3`` the T's poses after the pushes;
    ``sample_actions(points, n, rng)`` heuristic's contact pushes."""

    name, kind, Options = "pymunk", "dynamics", PymunkOptions
    capabilities = frozenset({"particles", "sample_actions", "deterministic", "privileged_model"})
    description = ("Push-T oracle: simulates each push with a copy of gym-pusht's pymunk physics (exact T, "
                   "pusher, PD control, walls) from the T pose fitted to the particles; the upper bound for "
                   "learned models, not a learned model")
    verified = ("equals gym-pusht's own env stepped with the same targets to 1e-6 m (pushes, landings on the T, "
                "a T pushed into a wall); the batched space equals one candidate at a time; a missing push moves "
                "nothing; a centred axial push does not turn")
    action_dim = 4
    action_names = ("contact_x m", "contact_y m", "push_dx m", "push_dy m")

    def __init__(self, options: PymunkOptions | None = None) -> None:
        self.options = options or PymunkOptions()
        o = self.options
        self._sampler = HeuristicPushDynamics(HeuristicOptions(
            push_length=list(o.push_length), sample_margin=o.sample_margin, sample_band=o.sample_band))

    # ------------------------------------------------------------------ API
    def predict(self, points: np.ndarray, actions: np.ndarray) -> np.ndarray:
        pts = check_points(points, "points").astype(np.float64)
        a = self._check_actions(actions)
        B, N = a.shape[0], pts.shape[0]
        out = np.repeat(pts[None], B, axis=0)
        if N == 0 or B == 0:
            return out.astype(np.float32)
        if N < 3:
            raise ValueError(f"points: fitting the T's pose needs at least 3 particles, got {N}")
        fit = np.array(scene.fit_t_pose(pts), dtype=np.float64)
        poses = self.simulate_poses(fit, a)
        moved = np.any(poses != fit[None], axis=1)
        if moved.any():
            p = poses[moved]
            dyaw = p[:, 2] - fit[2]
            c, s = np.cos(dyaw)[:, None], np.sin(dyaw)[:, None]
            rx, ry = pts[None, :, 0] - fit[0], pts[None, :, 1] - fit[1]
            out[moved, :, 0] = p[:, :1] + c * rx - s * ry
            out[moved, :, 1] = p[:, 1:2] + s * rx + c * ry
        return out.astype(np.float32)

    def sample_actions(self, points: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
        """``heuristic``'s sampler with this model's ``push_length``, ``sample_margin`` and ``sample_band``:
        float64 n x 4 pushes that make contact with the particles (see :mod:`.heuristic`)."""
        return self._sampler.sample_actions(points, n, rng)

    def simulate_poses(self, pose, actions: np.ndarray) -> np.ndarray:
        """The T's poses (B x 3: x, y metres, yaw radians; pusht_scene's convention) after each push of
        ``actions`` (B x 4, metres) from the T at ``pose``, with gym-pusht's physics (module docstring).
        A push that moves nothing returns ``pose`` exactly."""
        ph = _physics()
        pose = np.asarray(pose, dtype=np.float64).reshape(-1)
        if pose.shape != (3,) or not np.all(np.isfinite(pose)):
            raise ValueError(f"pose: expected finite (x, y, yaw) metres and radians, got {pose!r}")
        a = self._check_actions(actions)
        B = a.shape[0]
        poses = np.repeat(pose[None], B, axis=0)
        if B == 0:
            return poses
        start, end = (np.clip(p, ph.low, ph.high) for p in self._start_end(a))
        path, vel, nsteps = self._pusher_paths(ph, start, end)
        u0, v0, ang = scene.pose_to_px(pose)
        c, s = math.cos(ang), math.sin(ang)
        rel = path - np.array([u0, v0])
        local = np.stack([c * rel[..., 0] + s * rel[..., 1], -s * rel[..., 0] + c * rel[..., 1]], -1)
        dist = _distance_to_t(local, ph.rects)                 # B x (1 + K S)
        # the pusher comes down (and collides from then on) at the first step that starts with its disk off the
        # T's footprint: step 0 unless it landed on the T's top at s, then when it has slid off (or never)
        off = dist[:, ::ph.substeps] >= ph.radius              # B x (K + 1): at the start of each step
        down = np.where(off.any(axis=1), off.argmax(axis=1), off.shape[1])
        index = np.arange(dist.shape[1])[None]
        colliding = (index >= (down * ph.substeps)[:, None]) & (index <= (nsteps * ph.substeps)[:, None])
        reaches = np.where(colliding, dist, np.inf).min(axis=1) <= ph.radius + _REACH_MARGIN
        sim = np.nonzero(reaches & (down < nsteps))[0]
        if len(sim):
            walls = self._near_walls(ph, (u0, v0, ang), path[sim], nsteps[sim]) if self.options.walls \
                else np.zeros(len(sim), bool)
            poses[sim] = self._run(ph, (u0, v0, ang), start[sim], vel[sim], nsteps[sim], down[sim], walls)
        return poses

    # ------------------------------------------------------------------ internals
    def _check_actions(self, actions: np.ndarray) -> np.ndarray:
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
        return a

    def _start_end(self, a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Descent point and push end (B x 2 each, gym-pusht units), as random-shooting's push_waypoints."""
        length = np.hypot(a[:, 2], a[:, 3])
        ok = length > 1e-12
        safe = np.where(ok, length, 1.0)
        u = np.where(ok[:, None], a[:, 2:4] / safe[:, None], 0.0)
        start_m = a[:, :2] - self.options.backoff * u
        end_m = a[:, :2] + a[:, 2:4]
        return scene.m_to_px(start_m), scene.m_to_px(end_m)

    def _pusher_paths(self, ph: SimpleNamespace, start: np.ndarray, end: np.ndarray
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The pusher under gym-pusht's PD law and the executor's rule, in numpy (the kinematic body's
        path does not depend on contacts). Returns positions B x (1 + K S) x 2 (units; [:, 0] = start,
        then after each substep), the velocity set before each substep B x K S x 2, and the number of
        10 Hz steps executed per push (B)."""
        o = self.options
        S, K = ph.substeps, o.max_waypoint_steps
        tol, stall = o.waypoint_tolerance * scene.PX_PER_M, o.stall_distance * scene.PX_PER_M
        B = start.shape[0]
        path = np.repeat(start[:, None], 1 + K * S, axis=1)  # positions not yet run: held
        vel = np.zeros((B, K * S, 2))
        nsteps = np.zeros(B, dtype=np.int64)
        p, v = start.copy(), np.zeros((B, 2))
        active = np.ones(B, bool)
        stalls = np.zeros(B, dtype=np.int64)
        prev = p.copy()
        for k in range(K + 1):
            reached = np.hypot(*(p - end).T) <= tol
            if k > 0:
                moved = np.hypot(*(p - prev).T)
                stalls = np.where(reached, stalls, np.where(moved < stall, stalls + 1, 0))
            active &= ~(reached | (stalls >= 2) | (k >= K))
            if not active.any():
                break
            nsteps[active] += 1
            prev = p.copy()
            for j in range(S):
                # gym-pusht's step: acceleration = k_p (action - p) + k_v (0 - v); v += acceleration dt;
                # then pymunk integrates p += v dt (kinematic body: no bias velocity)
                acc = ph.k_p * (end - p) + ph.k_v * (0.0 - v)
                v_new = v + acc * ph.dt
                p_new = p + v_new * ph.dt
                v = np.where(active[:, None], v_new, v)
                p = np.where(active[:, None], p_new, p)
                vel[:, k * S + j] = v
                path[:, 1 + k * S + j] = p
            path[:, 1 + (k + 1) * S:] = p[:, None]  # steps not run (yet): the pusher stays where it is
        return path, vel, nsteps

    @staticmethod
    def _near_walls(ph: SimpleNamespace, tee: tuple[float, float, float], path: np.ndarray,
                    nsteps: np.ndarray) -> np.ndarray:
        """bool (M): the T may reach a wall during the push. A pushed T's centre of gravity moves no faster
        than the pusher (one frictionless contact impulse moves the contact point by at most the pusher's
        motion and the centre by less), and every point of the T lies within ``ph.reach`` of it, so a T
        whose centre is farther than reach + the pusher's path length (+ slack) from every wall cannot
        touch one; its walls are left out of the space (they cost most of the build)."""
        c, s = math.cos(tee[2]), math.sin(tee[2])
        cog = np.array([tee[0] + c * ph.cog[0] - s * ph.cog[1], tee[1] + s * ph.cog[0] + c * ph.cog[1]])
        steps = np.linalg.norm(np.diff(path, axis=1), axis=-1)     # M x K S
        travel = steps.sum(axis=1)  # the path is held after the push ends: no length there
        gap = np.inf
        for a, b, r in ph.walls:
            a, b = np.array(a), np.array(b)
            t = np.clip(np.dot(cog - a, b - a) / np.dot(b - a, b - a), 0.0, 1.0)
            gap = min(gap, float(np.linalg.norm(cog - (a + t * (b - a)))) - r)
        return gap <= ph.reach + travel + _WALL_MARGIN

    def _run(self, ph: SimpleNamespace, tee: tuple[float, float, float], start: np.ndarray, vel: np.ndarray,
             nsteps: np.ndarray, down: np.ndarray, walls: np.ndarray) -> np.ndarray:
        """Simulate M pushes in one space (the board's walls where ``walls``; each pusher colliding from step
        ``down`` on, as the world's shape filter); the T poses (M x 3, metres and radians) after each push's
        lift step."""
        pm, PushTEnv = ph.pymunk, ph.PushTEnv
        space = pm.Space()
        for key, value in ph.space.items():
            setattr(space, key, value)
        M = start.shape[0]
        grid = math.ceil(math.sqrt(M))
        offsets = np.stack([np.arange(M) % grid, np.arange(M) // grid], -1).astype(np.float64) * CELL
        tees, agents, down_filter = [], [], {}
        for i in range(M):
            ox, oy = offsets[i]
            # gym-pusht's _setup order: walls, pusher, T
            if walls[i]:
                space.add(*[PushTEnv.add_segment(space, (a[0] + ox, a[1] + oy), (b[0] + ox, b[1] + oy), r)
                            for a, b, r in ph.walls])
            agent = PushTEnv.add_circle(space, (start[i, 0] + ox, start[i, 1] + oy), ph.radius)
            if down[i] > 0:  # resting on the T's top: colliding with nothing (the pusht world's filter)
                (shape,) = agent.shapes
                down_filter[i] = shape.filter
                shape.filter = pm.ShapeFilter(categories=0, mask=0)
            body, _ = PushTEnv.add_tee(space, (tee[0] + ox, tee[1] + oy), tee[2])
            tees.append(body)
            agents.append(agent)

        get_buf, set_buf = ph.batch.Buffer(), ph.batch.Buffer()
        fields_v = ph.batch.BodyFields.VELOCITY

        def agent_rows(live: np.ndarray) -> np.ndarray:
            get_buf.clear()
            ph.batch.get_space_bodies(space, ph.batch.BodyFields.BODY_ID, get_buf)
            ids = np.frombuffer(get_buf.int_buf(), dtype=np.uintp)
            row = {int(i): r for r, i in enumerate(ids)}
            return np.array([row[agents[m].id] for m in live], dtype=np.int64)

        pushing = np.arange(M)  # candidates whose pusher is still down
        rows = agent_rows(pushing)
        S = ph.substeps
        out = np.empty((M, 3))
        for k in range(int(nsteps.max()) + 1):
            for m in np.nonzero(down == k)[0]:
                if k > 0:  # slid off the T's top: the pusher comes down and collides
                    (shape,) = agents[m].shapes
                    shape.filter = down_filter[m]
            for j in range(S):
                if len(pushing):
                    get_buf.clear()
                    ph.batch.get_space_bodies(space, fields_v, get_buf)
                    v = np.frombuffer(get_buf.float_buf(), dtype=np.float64).reshape(-1, 2).copy()
                    v[rows] = vel[pushing, k * S + j]
                    set_buf.set_float_buf(v)
                    ph.batch.set_space_bodies(space, fields_v, set_buf)
                space.step(ph.dt)
            # a push of n steps is observed after its lift, step n (the pusher up, colliding with nothing): the T
            # coasted one substep on its last velocity and, if pressed into a wall, sprang back for 10 substeps
            for m in np.nonzero(nsteps == k)[0]:
                x, y = tees[m].position
                out[m] = (*scene.px_to_m((x - offsets[m, 0], y - offsets[m, 1])), tees[m].angle)
                space.remove(tees[m], *tees[m].shapes)
            ended = nsteps[pushing] == k + 1
            if ended.any():
                for m in pushing[ended]:
                    space.remove(agents[m], *agents[m].shapes)  # the pusher lifts clear of the T
                pushing = pushing[~ended]
                if len(pushing):
                    rows = agent_rows(pushing)
        return out


@hookimpl
def d2f_register(register):
    register(Manifest.of(PymunkDynamics))
