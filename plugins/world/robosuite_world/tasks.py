"""The tasks: names, cameras, success checks, privileged state and the oracle's scripted motions.

Everything here works on a raw ``mujoco.MjData`` of the world's model (the live one or a scratch
copy), so the oracle can evaluate and render states without touching the episode.

Success checks (the task's own, used by ``world.success()`` and by the oracle's final state):

* ``open_door``: door hinge angle > 0.3 rad (robosuite ``Door._check_success``; the paper's 17°).
* ``open_oven``: oven door hinge angle >= ``oven_open_threshold`` (default 0.5 rad, ~29°).
* ``bread_in_bowl``: the bread rests inside the bowl: its centre within ``r_top - wall - 0.015`` m
  of the bowl's axis horizontally and below ``rim + 0.01`` m; it touches the bowl and neither the
  table nor the robot; its speed is below 0.05 m/s.
* ``cover_bowl``: the cloth covers the bowl's opening: of 17 test points (the bowl's centre and 16
  points on a circle of 0.95 x the rim radius), at least 16 lie under the cloth, i.e. inside the
  horizontal projection of a cloth triangle whose vertices are on average more than 2 cm above
  the table.

Oracle motions (time s in [0, 1] over the video, minimum-jerk profiles between key poses, the
object held still for the first and last few percent, as a video of a hand doing the task):

* ``open_door``: the handle turns down by :data:`DOOR_LATCH_TURN` rad (s 0.08-0.30), then the door
  swings to :data:`DOOR_HINGE_TARGET` rad (s 0.30-0.92), inside robosuite's hinge range [0, 0.4].
* ``open_oven``: the door turns down to :data:`OVEN_HINGE_TARGET` rad (s 0.08-0.92), inside [0, 1.6].
* ``bread_in_bowl``: the bread is lifted until its bottom is 3 cm above the bowl rim (s 0.04-0.28),
  carried over the bowl while turning to its final orientation (s 0.28-0.70), and lowered into
  its resting pose (s 0.70-0.96). The resting pose is found first by dropping
  the bread from 1 cm above the bowl floor and letting physics settle (robot held still), so the
  final frame is a physically resting state.
* ``cover_bowl`` (physics, not a scripted pose): the row of cloth vertices farthest from the bowl
  is held (its positions imposed every 2 ms step) and pulled over the bowl along a min-jerk path
  (lifted 18 cm, ending :data:`CLOTH_PULL` beyond the bowl's centre, put down), the rest of the
  cloth simulated by MuJoCo's flex; then released and settled for 1 s. Frames sample this
  simulation evenly; the robot is held still (and hidden).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["TaskSpec", "TASKS", "min_jerk", "task_reward", "object_pose", "MOVING_BODY", "DOOR_HINGE_TARGET", "DOOR_LATCH_TURN", "OVEN_HINGE_TARGET",
           "bread_in_bowl_success", "cover_bowl_success", "CLOTH_PULL"]

DOOR_HINGE_TARGET = 0.38
"""rad; success needs > 0.3, robosuite's hinge range is [0, 0.4]."""
DOOR_LATCH_TURN = 1.2
"""rad; the latch releases the door past ~1 rad (measured: a 5 Nm pull opens it only then)."""
OVEN_HINGE_TARGET = 0.8
"""rad; inside the oven door's range [0, 1.6], beyond the default success threshold 0.5 (the door's
face stays in view of the task camera)."""
CLOTH_PULL = 0.15
"""m; where the held edge of the cloth ends, beyond the bowl's centre, in cover_bowl's oracle."""


@dataclass(frozen=True)
class TaskSpec:
    """One task.

    Fields:
        name: option value (``task: open_door``).
        instruction / object: the Task (``object`` is the movable part the flow follows).
        env: class name in :mod:`.envs`.
        camera: default (eye, target, fovy_deg) of ``d2f_camera``, world frame, metres / degrees.
        names: object name -> selectors: ``"subtree:BODY"`` (the body and its children),
            ``"body:BODY"`` (that body's own geoms), ``"geoms:G1,G2"``, ``"robot"``.
        aliases: other spellings -> a name of ``names``.
        contact: (body name, geom name) whose centre a hand would hold (the sim-hand thumb).
    """

    name: str
    instruction: str
    object: str
    env: str
    camera: tuple[tuple[float, float, float], tuple[float, float, float], float]
    names: dict[str, tuple[str, ...]]
    aliases: dict[str, str] = field(default_factory=dict)
    contact: tuple[str, str] = ("", "")


TASKS: dict[str, TaskSpec] = {
    "open_door": TaskSpec(
        name="open_door", instruction="open the door", object="door", env="D2FDoor",
        camera=((0.55, 0.55, 1.55), (-0.15, -0.30, 1.02), 45.0),
        names={"door": ("subtree:Door_door",), "handle": ("subtree:Door_latch",),
               "door frame": ("body:Door_frame",), "table": ("body:table",), "robot": ("robot",)},
        aliases={"door handle": "handle", "frame": "door frame", "the door": "door"},
        contact=("Door_latch", "Door_handle_visual")),
    "open_oven": TaskSpec(
        name="open_oven", instruction="open the oven", object="oven door", env="D2FOpenOven",
        camera=((-0.45, -0.55, 1.02), (0.08, 0.10, 0.90), 45.0),
        names={"oven door": ("subtree:oven_door",),
               "handle": ("geoms:oven_handle_bar_vis,oven_handle_post_l_vis,oven_handle_post_r_vis",),
               "oven": ("subtree:oven_main",), "oven body": ("body:oven_main",), "table": ("body:table",),
               "robot": ("robot",)},
        aliases={"door": "oven door", "oven handle": "handle", "door handle": "handle"},
        contact=("oven_door", "oven_handle_bar_vis")),
    "bread_in_bowl": TaskSpec(
        name="bread_in_bowl", instruction="put the bread in the bowl", object="bread", env="D2FBreadInBowl",
        camera=((0.25, -0.35, 1.20), (-0.06, -0.01, 0.82), 45.0),
        names={"bread": ("subtree:bread_main",), "bowl": ("subtree:bowl_main",), "table": ("body:table",),
               "robot": ("robot",)},
        aliases={"loaf": "bread", "bread loaf": "bread"},
        contact=("bread_main", "bread_g0_visual")),
    "cover_bowl": TaskSpec(
        name="cover_bowl", instruction="cover the bowl with the cloth", object="cloth", env="D2FCoverBowl",
        camera=((0.27, -0.48, 1.20), (-0.06, -0.05, 0.80), 45.0),
        names={"cloth": ("flex:cloth",), "bowl": ("subtree:bowl_main",), "table": ("body:table",), "robot": ("robot",)},
        aliases={"scarf": "cloth", "towel": "cloth", "the cloth": "cloth"},
        contact=("", "")),
}


def min_jerk(u: float) -> float:
    """Minimum-jerk time scaling of u in [0, 1] (clipped): 0 -> 0, 1 -> 1, zero speed and acceleration at both ends."""
    u = min(1.0, max(0.0, float(u)))
    return u * u * u * (10.0 - 15.0 * u + 6.0 * u * u)


def _phase(s: float, a: float, b: float) -> float:
    return min_jerk((s - a) / (b - a))


# ----------------------------------------------------------------------------- success


def bread_in_bowl_success(m, d, env) -> tuple[bool, dict[str, Any]]:
    """(success, the numbers it looked at) for bread_in_bowl on MjData ``d`` (after mj_forward)."""
    from .objects import BOWL

    bread, bowl = env.bread_body_id, env.bowl_body_id
    p = np.array(d.xpos[bread])
    c = np.array(d.xpos[bowl])
    r = float(np.hypot(*(p[:2] - c[:2])))
    h = float(p[2] - c[2])
    bread_g, bowl_g = set(env.bread_geom_ids), set(env.bowl_geom_ids)
    robot_g = getattr(env, "d2f_robot_geoms", set())
    table_g = getattr(env, "d2f_table_geoms", set())
    touch_bowl = touch_table = touch_robot = False
    for i in range(d.ncon):
        g1, g2 = int(d.contact[i].geom1), int(d.contact[i].geom2)
        other = g2 if g1 in bread_g else g1 if g2 in bread_g else None
        if other is None:
            continue
        touch_bowl |= other in bowl_g
        touch_table |= other in table_g
        touch_robot |= other in robot_g
    adr = m.jnt_dofadr[m.body_jntadr[bread]]
    speed = float(np.linalg.norm(d.qvel[adr:adr + 3]))
    ok = (r <= BOWL["r_top"] - BOWL["wall"] - 0.015 and h <= BOWL["height"] + 0.01 and touch_bowl
          and not touch_table and not touch_robot and speed < 0.05)
    return bool(ok), {"radial_m": r, "height_m": h, "touch_bowl": touch_bowl, "touch_table": touch_table,
                      "touch_robot": touch_robot, "speed_mps": speed}


def cover_bowl_success(m, d, env) -> tuple[bool, dict[str, Any]]:
    """(success, numbers) for cover_bowl on MjData ``d`` (see the module docstring)."""
    from .objects import BOWL

    c = np.array(d.xpos[env.bowl_body_id])
    ang = np.linspace(0.0, 2 * math.pi, 16, endpoint=False)
    pts = np.concatenate([c[None, :2], c[:2] + 0.95 * BOWL["r_top"] * np.stack([np.cos(ang), np.sin(ang)], -1)])
    V = np.array(d.xpos[env.cloth_vert_bodies])
    tri = V[env.cloth_elems]  # E x 3 x 3
    high = tri[:, :, 2].mean(1) > env.table_top_z + 0.02
    a, b, cc = tri[high, 0, :2], tri[high, 1, :2], tri[high, 2, :2]
    v0, v1 = cc - a, b - a  # barycentric test of every point against every raised triangle
    d00, d01, d11 = (v0 * v0).sum(1), (v0 * v1).sum(1), (v1 * v1).sum(1)
    den = d00 * d11 - d01 * d01
    ok_den = np.abs(den) > 1e-14
    covered = np.zeros(len(pts), bool)
    for i, p in enumerate(pts):
        v2 = p - a
        d02, d12 = (v0 * v2).sum(1), (v1 * v2).sum(1)
        with np.errstate(divide="ignore", invalid="ignore"):
            u = (d11 * d02 - d01 * d12) / den
            v = (d00 * d12 - d01 * d02) / den
        covered[i] = bool(np.any(ok_den & (u >= 0) & (v >= 0) & (u + v <= 1)))
    n = int(covered.sum())
    return n >= 16, {"covered_points": n, "test_points": len(pts), "centre_covered": bool(covered[0])}


def success(world, d) -> bool:
    env, task = world.env, world.spec.name
    if task == "open_door":
        return bool(d.qpos[env.hinge_qpos_addr] > 0.3)
    if task == "open_oven":
        return bool(d.qpos[env.hinge_qpos_addr] >= world.options.oven_open_threshold)
    if task == "bread_in_bowl":
        return bread_in_bowl_success(world.model, d, env)[0]
    if task == "cover_bowl":
        return cover_bowl_success(world.model, d, env)[0]
    raise ValueError(f"task: no success check for {task!r}")


def describe(world, d) -> str:
    """One line on how far the task is from its success check (for failure reasons)."""
    env, task = world.env, world.spec.name
    if task == "open_door":
        return f"door at {float(d.qpos[env.hinge_qpos_addr]):.2f} rad (success needs > 0.3)"
    if task == "open_oven":
        return (f"oven door at {float(d.qpos[env.hinge_qpos_addr]):.2f} rad (success needs >= "
                f"{world.options.oven_open_threshold:g})")
    if task == "bread_in_bowl":
        from .objects import BOWL

        ok, info = bread_in_bowl_success(world.model, d, env)
        if ok:
            return "bread in the bowl"
        p = np.array(d.xpos[env.bread_body_id])
        why = []
        if info["radial_m"] > BOWL["r_top"] - BOWL["wall"] - 0.015:
            why.append(f"{100 * info['radial_m']:.1f} cm from the bowl axis")
        if info["height_m"] > BOWL["height"] + 0.01:
            why.append(f"{100 * info['height_m']:.1f} cm above the bowl's base")
        if p[2] < getattr(env, "table_top_z", 0.8) - 0.05:
            why.append("off the table")
        for key, text in (("touch_table", "touching the table"), ("touch_robot", "touching the robot")):
            if info[key]:
                why.append(text)
        if not info["touch_bowl"]:
            why.append("not touching the bowl")
        if info["speed_mps"] >= 0.05:
            why.append(f"moving at {info['speed_mps']:.2f} m/s")
        return "bread " + ", ".join(why or ["not in the bowl"])
    if task == "cover_bowl":
        ok, info = cover_bowl_success(world.model, d, env)
        return f"cloth covers {info['covered_points']} of {info['test_points']} bowl test points (needs 16)"
    return f"task {task!r}"


def _pose(d, body: int) -> dict[str, list[float]]:
    return {"pos": [float(v) for v in d.xpos[body]], "quat": [float(v) for v in d.xquat[body]]}


def privileged(world, d) -> dict[str, Any]:
    """Plain data: positions (m), quaternions (w, x, y, z), joint angles (rad); ``task`` (the task name) and,
    for tasks with a rigid moving part, ``object_pose`` (see :func:`object_pose`)."""
    env, task, m = world.env, world.spec.name, world.model
    if task == "open_door":
        out = {"hinge_qpos": float(d.qpos[env.hinge_qpos_addr]), "handle_qpos": float(d.qpos[env.handle_qpos_addr]),
               "door": _pose(d, m.body("Door_door").id), "frame": _pose(d, m.body("Door_frame").id),
               "handle_pos": [float(v) for v in d.site_xpos[env.door_handle_site_id]]}
    elif task == "open_oven":
        out = {"hinge_qpos": float(d.qpos[env.hinge_qpos_addr]), "oven": _pose(d, env.oven_body_id),
               "door": _pose(d, env.oven_door_body_id),
               "handle_pos": [float(v) for v in d.site_xpos[env.oven_handle_site_id]]}
    elif task == "bread_in_bowl":
        ok, info = bread_in_bowl_success(m, d, env)
        out = {"bread": _pose(d, env.bread_body_id), "bowl": _pose(d, env.bowl_body_id),
               "bread_in_bowl": ok, **{k: (float(v) if isinstance(v, float) else bool(v)) for k, v in info.items()}}
    elif task == "cover_bowl":
        ok, info = cover_bowl_success(m, d, env)
        V = np.array(d.xpos[env.cloth_vert_bodies])
        out = {"bowl": _pose(d, env.bowl_body_id), "cloth_centroid": [float(v) for v in V.mean(0)],
               "cloth_vertices": V.round(5).tolist(), "bowl_covered": ok, **info}
    else:
        raise ValueError(f"task: unknown {task!r}")
    pose = object_pose(world, d)
    if pose is not None:
        out["object_pose"] = pose
    out["task"] = task
    return out


MOVING_BODY = {"open_door": "Door_door", "open_oven": "oven_door", "bread_in_bowl": "bread_main"}
"""The rigid body whose pose is ``object_pose``, per task: the door panel (it turns with the hinge; the
handle's own turn is not in it), the oven door, the bread. cover_bowl's cloth has no rigid pose."""


def object_pose(world, d) -> list[list[float]] | None:
    """T_world_object (4x4 nested list, metres) of the task's moving rigid part (:data:`MOVING_BODY`), or None
    (cover_bowl: a cloth)."""
    body = MOVING_BODY.get(world.spec.name)
    if body is None:
        return None
    b = world.model.body(body).id
    T = np.eye(4)
    T[:3, :3] = np.array(d.xmat[b]).reshape(3, 3)
    T[:3, 3] = d.xpos[b]
    return T.tolist()


def _ee_distance(world, d, target: np.ndarray) -> float:
    """Smallest distance (m) from ``target`` (3,) to an end-effector site of the robot (each arm's; robosuite's
    ``_gripper_to_handle`` convention)."""
    r = world.env.robots[0]
    return min(float(np.linalg.norm(np.asarray(target) - d.site_xpos[r.eef_site_id[arm]])) for arm in r.arms)


def _reach(dist: float) -> float:
    """robosuite's reaching term: 0.25 * (1 - tanh(10 * dist)), dist in metres."""
    return 0.25 * (1.0 - math.tanh(10.0 * dist))


def task_reward(world, d) -> float:
    """The task's shaped reward on MjData ``d`` (dimensionless, 1.0 on success).

    * ``open_door``: robosuite's shaped ``Door.reward`` (latched door, reward_scale 1): 1.0 when the hinge
      is past 0.3 rad, else ``0.25 (1 - tanh(10 d)) + clip(0.25 |handle| / (pi/2), -0.25, 0.25)`` with ``d``
      the gripper-to-handle distance (m, the nearest arm's end-effector site) and ``handle`` the latch
      angle (rad).
    * ``open_oven`` (same shape): 1.0 on success (hinge >= ``oven_open_threshold``), else
      ``0.25 (1 - tanh(10 d_handle)) + 0.5 clip(hinge / threshold, 0, 1)``.
    * ``bread_in_bowl``: 1.0 on success, else ``0.25 (1 - tanh(10 d_bread)) + 0.5 (1 - tanh(10 r))`` with
      ``d_bread`` the end-effector-to-bread-centre distance and ``r`` the bread centre's horizontal
      distance to the bowl's axis (m).
    * ``cover_bowl``: 1.0 on success, else ``0.25 (1 - tanh(10 d_cloth)) + 0.5 covered / test points`` with
      ``d_cloth`` the end-effector's distance to the nearest cloth vertex (m) and the success check's
      covered bowl test points.
    Below success every shaped value is at most 0.75 (0.5 for open_door), so success always pays most.
    """
    env, task, m = world.env, world.spec.name, world.model
    if task == "open_door":
        if d.qpos[env.hinge_qpos_addr] > 0.3:
            return 1.0
        handle = float(d.qpos[env.handle_qpos_addr])
        dist = _ee_distance(world, d, d.site_xpos[env.door_handle_site_id])
        return _reach(dist) + float(np.clip(0.25 * abs(handle / (0.5 * np.pi)), -0.25, 0.25))
    if task == "open_oven":
        hinge, thr = float(d.qpos[env.hinge_qpos_addr]), float(world.options.oven_open_threshold)
        if hinge >= thr:
            return 1.0
        return _reach(_ee_distance(world, d, d.site_xpos[env.oven_handle_site_id])) \
            + 0.5 * float(np.clip(hinge / thr, 0.0, 1.0))
    if task == "bread_in_bowl":
        ok, info = bread_in_bowl_success(m, d, env)
        if ok:
            return 1.0
        dist = _ee_distance(world, d, d.xpos[env.bread_body_id])
        return _reach(dist) + 0.5 * (1.0 - math.tanh(10.0 * info["radial_m"]))
    if task == "cover_bowl":
        ok, info = cover_bowl_success(m, d, env)
        if ok:
            return 1.0
        V = np.array(d.xpos[env.cloth_vert_bodies])
        dist = min(_ee_distance(world, d, v) for v in V)
        return _reach(dist) + 0.5 * info["covered_points"] / info["test_points"]
    raise ValueError(f"task: no shaped reward for {task!r}")


# ----------------------------------------------------------------------------- oracle motions


def _quat_slerp(q0: np.ndarray, q1: np.ndarray, u: float) -> np.ndarray:
    q0, q1 = np.asarray(q0, float), np.asarray(q1, float)
    dot = float(np.dot(q0, q1))
    if dot < 0:
        q1, dot = -q1, -dot
    if dot > 0.9995:
        q = q0 + u * (q1 - q0)
        return q / np.linalg.norm(q)
    th = math.acos(dot)
    return (math.sin((1 - u) * th) * q0 + math.sin(u * th) * q1) / math.sin(th)


def oracle_qpos(world, d0, num_frames: int) -> list[np.ndarray]:
    """Full qpos per frame of the scripted motion from the state in ``d0`` (not modified)."""
    env, task = world.env, world.spec.name
    q0 = np.array(d0.qpos)
    s_all = np.linspace(0.0, 1.0, num_frames)
    out = []
    if task == "open_door":
        h, l = env.hinge_qpos_addr, env.handle_qpos_addr
        for s in s_all:
            q = q0.copy()
            q[l] = q0[l] + (DOOR_LATCH_TURN - q0[l]) * _phase(s, 0.08, 0.30)
            q[h] = q0[h] + (DOOR_HINGE_TARGET - q0[h]) * _phase(s, 0.30, 0.92)
            out.append(q)
        return out
    if task == "open_oven":
        h = env.hinge_qpos_addr
        for s in s_all:
            q = q0.copy()
            q[h] = q0[h] + (OVEN_HINGE_TARGET - q0[h]) * _phase(s, 0.08, 0.92)
            out.append(q)
        return out
    if task == "bread_in_bowl":
        from .objects import BOWL

        m = world.model
        adr = m.jnt_qposadr[m.body_jntadr[env.bread_body_id]]
        p0, r0 = q0[adr:adr + 3].copy(), q0[adr + 3:adr + 7].copy()
        rest = world._settle_bread(d0)
        p1, r1 = rest[:3], rest[3:7]
        bowl_top = float(d0.xpos[env.bowl_body_id][2]) + BOWL["height"]
        z_lift = max(p0[2], bowl_top - env.bread_min_z) + 0.03
        for s in s_all:
            q = q0.copy()
            a, b, c = _phase(s, 0.04, 0.28), _phase(s, 0.28, 0.70), _phase(s, 0.70, 0.96)
            xy = p0[:2] + (p1[:2] - p0[:2]) * b
            z = p0[2] + (z_lift - p0[2]) * a + (p1[2] - z_lift) * c
            rot = _quat_slerp(r0, r1, _phase(s, 0.28, 0.96))
            q[adr:adr + 3] = [xy[0], xy[1], z]
            q[adr + 3:adr + 7] = rot
            out.append(q)
        out[-1][adr:adr + 7] = rest  # exactly the settled pose
        return out
    if task == "cover_bowl":
        return _cloth_oracle(world, d0, num_frames)
    raise ValueError(f"task: no oracle motion for {task!r}")


def _cloth_oracle(world, d0, num_frames: int) -> list[np.ndarray]:
    """cover_bowl: pull the cloth's far edge over the bowl, simulated (see the module docstring).

    Sets ``world._oracle_contact_body`` to the held edge's middle vertex body (the hand's point).
    """
    import mujoco

    m, env = world.model, world.env
    d = world._scratch(d0)
    V0 = np.array(d.xpos[env.cloth_vert_bodies])
    bowl = np.array(d.xpos[env.bowl_body_id])
    centre = V0[:, :2].mean(0)
    u = bowl[:2] - centre
    u /= np.linalg.norm(u)
    rest = env.cloth_rest
    proj = (V0[:, :2] - centre) @ u
    edges = [np.nonzero(np.abs(rest[:, a] - f(rest[:, a])) < 1e-6)[0] for a in (0, 1) for f in (np.min, np.max)]
    held = min(edges, key=lambda e: float(proj[e].mean()))
    mid = held[np.argmin(np.abs(((V0[held, :2] - V0[held, :2].mean(0)) @ np.array([-u[1], u[0]]))))]
    world._oracle_contact_body = int(env.cloth_vert_bodies[mid])
    start = V0[held].copy()
    # the held edge ends straight across the pull direction, centred CLOTH_PULL beyond the bowl's centre
    perp = np.array([-u[1], u[0]])
    along = (start[:, :2] - start[:, :2].mean(0)) @ perp
    end = start.copy()
    end[:, :2] = bowl[:2] + u * CLOTH_PULL + along[:, None] * perp
    lift = 0.18
    dt = float(m.opt.timestep)
    n_move, n_settle = int(round(2.0 / dt)), int(round(1.0 / dt))
    total = n_move + n_settle
    want = {int(round(k * total / (num_frames - 1))): k for k in range(num_frames)}
    q_robot = np.array(d.qpos[world._robot_qpos])
    qa, da = env.cloth_qpos[held], env.cloth_dofs[held]
    out: list[np.ndarray | None] = [None] * num_frames
    out[0] = np.array(d.qpos)
    for i in range(1, total + 1):
        if i <= n_move:
            s = i / n_move
            up = lift * min_jerk(s / 0.3) - lift * min_jerk((s - 0.7) / 0.3)
            p = start + (end - start) * min_jerk(s) + np.array([0.0, 0.0, up])
            q = p - rest[held]
            for k in range(3):
                d.qpos[qa + k] = q[:, k]
                d.qvel[da + k] = 0.0
        mujoco.mj_step(m, d)
        d.qpos[world._robot_qpos] = q_robot
        d.qvel[world._robot_dofs] = 0.0
        if i in want:
            out[want[i]] = np.array(d.qpos)
    for k in range(num_frames):  # frames falling between steps (tiny T): nearest recorded state
        if out[k] is None:
            out[k] = next(x for x in out[k:] + out[::-1] if x is not None)
    return out  # type: ignore[return-value]

