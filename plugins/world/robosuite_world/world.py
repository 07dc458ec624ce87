"""The ``robosuite`` world: robosuite/MuJoCo tasks driven by a robosuite embodiment.

Built once per world: the robosuite environment (``hard_reset=False``: ``reset`` re-seeds and
re-places objects in the same compiled model, it never rebuilds), the camera and an offscreen
renderer. The embodiment (``franka``, ``spot``, ``gr1``) names the robosuite robot and its
controller configuration and is bound to the world after the environment exists.

Frames and units: world frame = robosuite's (z up, metres, the table top at z = 0.8 m); images
are RGB uint8 H x W x 3, depth float32 metres along the camera's z axis (0 where nothing is drawn),
and ``camera`` is our OpenCV-convention :class:`~d2f_core.Camera` (see :mod:`.camera`).
"""

from __future__ import annotations

import hashlib
import math
import re
from typing import Any, Mapping

import numpy as np

from d2f_core import RGBD, Observation, Task

from . import tasks as T
from .camera import camera_from_mujoco, mujoco_pose_from_look_at
from .options import SIM_INSTALL, SIM_REQUIRES, RobosuiteWorldOptions
from .oracle import OracleRollout
from .render import MARKER_GROUP, ROBOT_GROUP, VISUAL_GROUP, SimRenderer

__all__ = ["RobosuiteWorld", "BuiltinRobot"]

_ARTICLES = re.compile(r"^(the|a|an)\s+")


def _norm(name: str) -> str:
    return re.sub(r"\s+", " ", _ARTICLES.sub("", str(name).strip().lower().replace("_", " ")))


class BuiltinRobot:
    """Fallback embodiment when no robosuite embodiment plugin is installed: a Panda under
    robosuite's default controller (OSC pose deltas + gripper). No IK; ``current_q`` reads the arm."""

    name = "robosuite-default"
    capabilities = frozenset()

    def __init__(self, robot: str = "Panda") -> None:
        self.robot = self.robosuite_robot = robot
        self._world = None

    def controller_config(self):
        return None

    def bind(self, world: Any) -> None:
        self._world = world

    def current_q(self) -> np.ndarray:
        """The robot's arm joint positions (rad), robosuite's ``_ref_arm_joint_pos_indexes``."""
        r = self._world.env.robots[0]
        return np.array(self._world.data.qpos[r._ref_arm_joint_pos_indexes], dtype=np.float64)


class RobosuiteWorld:
    """A robosuite task (``options.task``) as a d2f World; see the package docstring for tasks."""

    name, kind, Options = "robosuite", "world", RobosuiteWorldOptions
    capabilities = frozenset({"segmentation", "oracle", "deterministic", "object_pose", "shaped_reward"})
    """``object_pose`` holds for the tasks with a rigid moving part (not cover_bowl: an instance built for
    cover_bowl drops it from its own ``capabilities``)."""
    description = ("robosuite/MuJoCo tasks open_door, bread_in_bowl, open_oven, cover_bowl for franka/spot/gr1; "
                   "RGB-D + segmentation camera; scripted oracle")
    extra, requires, install = "sim", SIM_REQUIRES, SIM_INSTALL
    verified = ("camera projection of markers vs their rendered masks (< 1 px), table-plane depth (< 5 mm), "
                "oracle final states pass success for seeds 0-9, reset determinism")

    def __init__(self, options: Any, embodiment: Any) -> None:
        import mujoco

        from . import envs

        self._mj = mujoco
        self.options = o = options
        if o.task not in T.TASKS:
            raise ValueError(f"task: {o.task!r} is not available; tasks: {', '.join(sorted(T.TASKS))}")
        self.spec = T.TASKS[o.task]
        if self.spec.name not in T.MOVING_BODY:
            self.capabilities = type(self).capabilities - {"object_pose"}
        robot = getattr(embodiment, "robosuite_robot", None)
        if not isinstance(robot, str) or not callable(getattr(embodiment, "bind", None)):
            raise ValueError(
                f"embodiment.plugin: the robosuite world drives robosuite robots (franka, spot, gr1), but the "
                f"configured embodiment {getattr(embodiment, 'name', type(embodiment).__name__)!r} has no "
                "robosuite_robot; set `embodiment: {plugin: franka}` (or spot, gr1)")
        self.embodiment = embodiment
        self.task = Task(instruction=self.spec.instruction, object=self.spec.object)
        self.horizon = int(o.horizon)
        self.control_freq = float(o.control_freq)
        env_cls = getattr(envs, self.spec.env)
        kw: dict[str, Any] = {}
        if self.spec.name == "open_oven":
            kw["open_threshold"] = o.oven_open_threshold
        ctrl = embodiment.controller_config() if callable(getattr(embodiment, "controller_config", None)) else None
        self.env = env_cls(robots=robot, controller_configs=ctrl, has_renderer=False, has_offscreen_renderer=False,
                           use_camera_obs=False, hard_reset=False, ignore_done=True, horizon=self.horizon,
                           control_freq=o.control_freq, initialization_noise=None, **kw)
        self.env.d2f_rng = np.random.default_rng(0)
        self.env.reset()
        self.model = self.env.sim.model._model
        self.data = self.env.sim.data._data
        # robosuite's arena sets air density 1.2 and viscosity 2e-5; with its inflated link inertias
        # that drag (~10 N m at 0.3 rad/s) equals the Panda wrist's torque limit and makes joint 7 lag
        # by up to 0.9 rad on fast paths. The tasks need no air: turn it off.
        self.model.opt.density = 0.0
        self.model.opt.viscosity = 0.0
        self._index_model()
        self._setup_camera()
        self.renderer = SimRenderer(self.model, o.width, o.height, self._cam_id)
        lo, hi = (np.array(b, dtype=np.float64) for b in self.env.action_spec)
        bad = ~(np.isfinite(lo) & np.isfinite(hi))
        lo[bad], hi[bad] = -2 * math.pi, 2 * math.pi  # e.g. WholeBodyIK's +-inf bounds
        lo.flags.writeable = hi.flags.writeable = False
        self.action_low, self.action_high = lo, hi
        self.seed: int | None = 0  # the state after construction is reset(0)'s
        self.t = 0
        self._version = 0
        self._seg_cache: tuple[int, np.ndarray] | None = None
        self._oracle_cache: list[OracleRollout] = []
        self.embodiment.bind(self)

    # ------------------------------------------------------------------ set-up
    def _index_model(self) -> None:
        mj, m = self._mj, self.model
        root = m.body(self.env.robots[0].robot_model.root_body).id
        robot_bodies = set(np.nonzero(m.body_rootid == m.body_rootid[root])[0].tolist())
        self._robot_geoms = {g for g in range(m.ngeom) if int(m.geom_bodyid[g]) in robot_bodies}
        for g in self._robot_geoms:  # draw the robot from its own group so the oracle can hide it
            if m.geom_group[g] == VISUAL_GROUP:
                m.geom_group[g] = ROBOT_GROUP
        self._robot_qpos, self._robot_dofs = [], []
        for j in range(m.njnt):
            if int(m.jnt_bodyid[j]) in robot_bodies:
                n_q = {0: 7, 1: 4}.get(int(m.jnt_type[j]), 1)
                n_v = {0: 6, 1: 3}.get(int(m.jnt_type[j]), 1)
                self._robot_qpos += range(m.jnt_qposadr[j], m.jnt_qposadr[j] + n_q)
                self._robot_dofs += range(m.jnt_dofadr[j], m.jnt_dofadr[j] + n_v)
        self._robot_qpos = np.array(self._robot_qpos, dtype=np.int64)
        self._robot_dofs = np.array(self._robot_dofs, dtype=np.int64)
        self._object_qpos = np.setdiff1d(np.arange(m.nq), self._robot_qpos)
        self._object_dofs = np.setdiff1d(np.arange(m.nv), self._robot_dofs)
        table = m.body("table").id
        self.env.d2f_robot_geoms = self._robot_geoms
        self.env.d2f_table_geoms = {g for g in range(m.ngeom) if m.geom_bodyid[g] == table}
        # object name -> geom ids
        children: dict[int, list[int]] = {}
        for b in range(1, m.nbody):
            children.setdefault(int(m.body_parentid[b]), []).append(b)

        def subtree(b: int) -> list[int]:
            out, stack = [], [b]
            while stack:
                x = stack.pop()
                out.append(x)
                stack += children.get(x, [])
            return out

        self._names: dict[str, np.ndarray] = {}
        self._name_bodies: dict[str, list[int]] = {}
        for name, selectors in self.spec.names.items():
            geoms: set[int] = set()
            bodies: list[int] = []
            for sel in selectors:
                kind, _, arg = sel.partition(":")
                if kind == "robot":
                    geoms |= self._robot_geoms
                    bodies += sorted(robot_bodies)
                elif kind in ("subtree", "body"):
                    b = m.body(arg).id
                    bs = subtree(b) if kind == "subtree" else [b]
                    bodies += bs
                    geoms |= {g for g in range(m.ngeom) if int(m.geom_bodyid[g]) in bs}
                elif kind == "geoms":
                    ids = [m.geom(g).id for g in arg.split(",")]
                    geoms |= set(ids)
                    bodies += sorted({int(m.geom_bodyid[g]) for g in ids})
                elif kind == "flex":  # segmentation id of a flex: model.ngeom + flex id (see render.Frame)
                    f = mj.mj_name2id(m, mj.mjtObj.mjOBJ_FLEX, arg)
                    geoms.add(int(m.ngeom + f))
                    a, n = m.flex_vertadr[f], m.flex_vertnum[f]
                    bodies += [int(b) for b in m.flex_vertbodyid[a:a + n]]
                else:  # pragma: no cover - a spec error
                    raise ValueError(f"task spec: bad selector {sel!r}")
            self._names[name] = np.array(sorted(geoms), dtype=np.int64)
            self._name_bodies[name] = list(dict.fromkeys(bodies))
        self._markers = [m.geom(f"d2f_marker{i}").id for i in range(5)]
        body, geom = self.spec.contact
        self._oracle_contact_body: int | None = None
        if not body:  # set by the oracle's motion (cover_bowl: the held cloth vertex)
            self._contact_body, self._contact_geom, self._contact_local = -1, -1, np.zeros(3)
            return
        self._contact_body = m.body(body).id
        self._contact_geom = m.geom(geom).id
        self._contact_local = np.array(m.geom_pos[self._contact_geom], dtype=np.float64)
        if self.spec.name == "bread_in_bowl":  # the top of the loaf, above its centre
            self._contact_local[2] = self._highest_point(self._contact_geom)
            mat = m.geom_matid[self._contact_geom]
            if mat >= 0:  # robosuite's bread is glossy; a matte crust keeps its look steady as it turns
                m.mat_specular[mat], m.mat_shininess[mat], m.mat_reflectance[mat] = 0.15, 0.1, 0.0

    def _highest_point(self, g: int) -> float:
        mj, m = self._mj, self.model
        R = np.empty(9)
        mj.mju_quat2Mat(R, m.geom_quat[g])
        mid = m.geom_dataid[g]
        v = m.mesh_vert[m.mesh_vertadr[mid]:m.mesh_vertadr[mid] + m.mesh_vertnum[mid]] @ R.reshape(3, 3).T
        return float((v + m.geom_pos[g])[:, 2].max())

    def _setup_camera(self) -> None:
        mj, m, o = self._mj, self.model, self.options
        if o.camera == "task":
            cid = m.camera("d2f_camera").id
            eye, target, fovy = self.spec.camera
            eye = o.camera_eye if o.camera_eye is not None else eye
            target = o.camera_target if o.camera_target is not None else target
            fovy = o.camera_fovy if o.camera_fovy is not None else fovy
            pos, quat = mujoco_pose_from_look_at(eye, target)
            m.cam_pos[cid], m.cam_quat[cid], m.cam_fovy[cid] = pos, quat, fovy
        else:
            names = [m.camera(i).name for i in range(m.ncam) if m.cam_bodyid[i] == 0 and m.camera(i).name]
            cid = mj.mj_name2id(m, mj.mjtObj.mjOBJ_CAMERA, o.camera)
            if cid < 0 or m.cam_bodyid[cid] != 0:
                why = "does not exist" if cid < 0 else "moves with a body"
                raise ValueError(f"camera: {o.camera!r} {why}; use 'task' or a static camera: {', '.join(names)}")
        self._cam_id = int(cid)
        mj.mj_forward(m, self.data)
        self.camera = camera_from_mujoco(self.data.cam_xpos[cid], self.data.cam_xmat[cid], float(m.cam_fovy[cid]),
                                         o.width, o.height, name=m.camera(cid).name)

    # ------------------------------------------------------------------ episode
    def reset(self, seed: int) -> Observation:
        """New episode: object placements from ``np.random.default_rng(seed)``; the robot at its home pose."""
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed: expected a non-negative integer, got {seed!r}")
        self.env.d2f_rng = np.random.default_rng(int(seed))
        self.env.reset()
        self._mj.mj_forward(self.model, self.data)
        self.seed, self.t = int(seed), 0
        self._touch()
        if callable(getattr(self.embodiment, "sync", None)):  # base pose and hold targets of this episode
            self.embodiment.sync()
        return self._observation(render=True)

    def step(self, action: np.ndarray) -> Observation:
        """Apply one action (the robosuite action vector; clipped to the bounds) for 1/control_freq s."""
        try:
            a = np.array(action, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"action: expected {self.action_low.size} numbers, got {action!r}") from None
        if a.shape != self.action_low.shape:
            raise ValueError(f"action: expected shape {self.action_low.shape} (the robosuite action vector of "
                             f"{self.embodiment.robosuite_robot}), got {a.shape}")
        if not np.all(np.isfinite(a)):
            raise ValueError("action: contains NaN or inf")
        self.env.step(np.clip(a, self.action_low, self.action_high))
        self.t += 1
        self._touch()
        return self._observation(render=self.options.render_steps)

    def render(self) -> RGBD:
        """RGB-D of the calibrated camera, robot visible."""
        f = self.renderer.render(self.data, (VISUAL_GROUP, ROBOT_GROUP), rgb=True, depth=True, segmentation=True)
        self._seg_cache = (self._version, f.geom)
        return RGBD(rgb=f.rgb, depth=f.depth, camera=self.camera)

    def video_frame(self) -> np.ndarray:
        """RGB only (uint8 H x W x 3, robot visible): a rollout video frame, 4x cheaper than render()."""
        return self.renderer.render(self.data, (VISUAL_GROUP, ROBOT_GROUP), rgb=True, depth=False,
                                    segmentation=False).rgb

    def success(self) -> bool:
        """The task's own success check on the current state (see :mod:`.tasks`)."""
        return bool(T.success(self, self.data))

    def describe_state(self) -> str:
        """One line on the task's state against its success check (failure reasons of episodes)."""
        return T.describe(self, self.data)

    def privileged_state(self) -> Mapping[str, Any]:
        """Object poses (pos m, quat w-x-y-z) and joint angles (rad); ``task``; ``object_pose`` (T_world_object,
        4x4 nested list, metres) of the task's moving rigid part (door panel, oven door, bread; none for
        cover_bowl's cloth). For evaluation and privileged stand-ins only."""
        return T.privileged(self, self.data)

    def task_reward(self) -> float:
        """The task's own shaped reward on the current state (1.0 on success; open_door: robosuite's shaped
        Door reward; see :func:`.tasks.task_reward`). Privileged: for baselines (reward ``object-state``)."""
        return float(T.task_reward(self, self.data))

    def _observation(self, render: bool) -> Observation:
        r = self.env.robots[0]
        arm = "right" if "right" in r.arms else r.arms[0]
        sid = r.eef_site_id[arm]
        state = {"ee_pos": [float(v) for v in self.data.site_xpos[sid]],
                 "ee_xmat": [float(v) for v in self.data.site_xmat[sid]], "t": self.t,
                 "robot": self.embodiment.robosuite_robot}
        q = self.embodiment.current_q() if callable(getattr(self.embodiment, "current_q", None)) else np.zeros(1)
        return Observation(rgbd=self.render() if render else None, joints=np.asarray(q, dtype=np.float64),
                           state=state, privileged=self.privileged_state())

    def _touch(self) -> None:
        self._version += 1
        self._seg_cache = None

    # ------------------------------------------------------------------ segmentation
    @property
    def object_names(self) -> tuple[str, ...]:
        return tuple(self.spec.names)

    def resolve_name(self, name: str) -> str:
        """The object name ``name`` refers to (case, articles, underscores and aliases forgiven)."""
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"name: expected an object name such as {self.spec.object!r}, got {name!r}")
        n = _norm(name)
        if n in self.spec.names:
            return n
        aliases = {_norm(k): v for k, v in self.spec.aliases.items()}
        if n in aliases:
            return aliases[n]
        known = sorted(set(self.spec.names) | set(self.spec.aliases))
        raise ValueError(f"name: no object {name!r} in the {self.spec.name} scene; known objects: {', '.join(known)}")

    def geom_ids(self, name: str) -> np.ndarray:
        """MuJoCo geom ids of the named object."""
        return self._names[self.resolve_name(name)]

    def object_mask(self, name: str) -> np.ndarray:
        """bool H x W: pixels of ``render()`` showing the named object (robot visible, may occlude it)."""
        ids = self.geom_ids(name)
        if self._seg_cache is None or self._seg_cache[0] != self._version:
            f = self.renderer.render(self.data, (VISUAL_GROUP, ROBOT_GROUP), rgb=False, depth=False,
                                     segmentation=True)
            self._seg_cache = (self._version, f.geom)
        return np.isin(self._seg_cache[1], ids)

    # ------------------------------------------------------------------ calibration probe
    def calibration_probe(self) -> dict[str, Any]:
        """Known geometry for the camera checks (see d2f_conformance.checks.world).

        Places :data:`~.envs.N_MARKERS` small spheres in front of the camera (at pixels spread
        over the image, 0.6-1.2 m deep), renders each alone (segmentation), and reports the
        table-top plane with the pixels where ``render()`` shows it. The simulation state is
        not changed (markers are never drawn otherwise and do not collide).
        """
        mj, m = self._mj, self.model
        W, H = self.camera.width, self.camera.height
        px = np.array([[0.5, 0.5], [0.25, 0.3], [0.75, 0.3], [0.3, 0.75], [0.7, 0.7]]) * [W - 1, H - 1]
        depths = np.array([0.8, 0.6, 1.0, 0.9, 1.2])
        pts = self.camera.backproject(px, depths)
        old = np.array(m.geom_pos[self._markers])
        masks = []
        try:
            for i, g in enumerate(self._markers):
                m.geom_pos[self._markers] = [0.0, 0.0, -50.0]  # out of sight
                m.geom_pos[g] = pts[i]
                mj.mj_kinematics(m, self.data)
                f = self.renderer.render(self.data, (MARKER_GROUP,), rgb=False, depth=False, segmentation=True)
                masks.append(f.geom == g)
        finally:
            m.geom_pos[self._markers] = old
            mj.mj_forward(m, self.data)
        # table top: the pixels of the table's visual box whose ray meets the top face inside its rectangle
        table_vis = [g for g in self.env.d2f_table_geoms if m.geom_group[g] == VISUAL_GROUP
                     and m.geom_type[g] == mj.mjtGeom.mjGEOM_BOX]
        g = max(table_vis, key=lambda i: float(np.prod(m.geom_size[i][:2])))
        c, R, size = np.array(self.data.geom_xpos[g]), np.array(self.data.geom_xmat[g]).reshape(3, 3), m.geom_size[g]
        normal = R[:, 2]
        top = c + normal * size[2]
        f = self.renderer.render(self.data, (VISUAL_GROUP, ROBOT_GROUP), rgb=False, depth=False, segmentation=True)
        ys, xs = np.nonzero(f.geom == g)
        o = self.camera.position
        rays = self.camera.backproject(np.stack([xs, ys], -1).astype(np.float64), np.ones(len(xs))) - o
        tt = ((top - o) @ normal) / (rays @ normal)
        hit = o + tt[:, None] * rays
        local = (hit - top) @ R
        inside = (np.abs(local[:, 0]) < size[0] - 0.005) & (np.abs(local[:, 1]) < size[1] - 0.005) & (tt > 0)
        plane_mask = np.zeros((H, W), bool)
        plane_mask[ys[inside], xs[inside]] = True
        return {"points": pts, "masks": np.stack(masks), "plane_point": top, "plane_normal": normal,
                "plane_mask": plane_mask, "marker_radius": float(m.geom_size[self._markers[0]][0])}

    # ------------------------------------------------------------------ oracle
    def state_key(self) -> str:
        """Fingerprint of the live state (joint positions and velocities, placed static bodies, camera)."""
        h = hashlib.sha1()
        for a in (self.data.qpos, self.data.qvel, self.model.body_pos, self.model.body_quat,
                  self.camera.K, self.camera.T_world_cam):
            h.update(np.ascontiguousarray(a, dtype=np.float64).tobytes())
        return h.hexdigest()[:16]

    def _scratch(self, src=None):
        d = self._mj.MjData(self.model)
        d.qpos[:] = (src if src is not None else self.data).qpos
        d.qvel[:] = 0.0
        d.time = 0.0
        self._mj.mj_forward(self.model, d)
        return d

    def _settle_bread(self, d0) -> np.ndarray:
        """Resting qpos (7: pos, quat) of the bread dropped 1 cm above the bowl floor, on a scratch copy."""
        from .objects import BOWL

        mj, m, env = self._mj, self.model, self.env
        d = self._scratch(d0)
        adr = m.jnt_qposadr[m.body_jntadr[env.bread_body_id]]
        dof = m.jnt_dofadr[m.body_jntadr[env.bread_body_id]]
        bowl = np.array(d.xpos[env.bowl_body_id])
        yaw_q = np.array(d0.qpos[adr + 3:adr + 7])
        d.qpos[adr:adr + 3] = [bowl[0], bowl[1], bowl[2] + BOWL["floor"] - env.bread_min_z + 0.01]
        d.qpos[adr + 3:adr + 7] = yaw_q
        q_robot = np.array(d.qpos[self._robot_qpos])
        mj.mj_forward(m, d)
        for i in range(2000):
            mj.mj_step(m, d)
            d.qpos[self._robot_qpos] = q_robot
            d.qvel[self._robot_dofs] = 0.0
            if i >= 150 and np.linalg.norm(d.qvel[dof:dof + 6]) < 1e-3:
                break
        return np.array(d.qpos[adr:adr + 7])

    def oracle_rollout(self, num_frames: int = 49, *, hide_robot: bool = True) -> OracleRollout:
        """The task done right from the current state, rendered (see :class:`.oracle.OracleRollout`).

        Cached per (state, num_frames, hide_robot); the live simulation is not modified.
        """
        if isinstance(num_frames, bool) or not isinstance(num_frames, (int, np.integer)) or num_frames < 2:
            raise ValueError(f"num_frames: expected an integer >= 2, got {num_frames!r}")
        key = self.state_key()
        for r in self._oracle_cache:
            if r.state_key == key and r.num_frames == num_frames and r.robot_hidden == hide_robot:
                return r
        mj, m = self._mj, self.model
        d = self._scratch()
        qs = T.oracle_qpos(self, d, int(num_frames))
        groups = (VISUAL_GROUP,) if hide_robot else (VISUAL_GROUP, ROBOT_GROUP)
        part = self.spec.object
        part_geoms = self._names[part]
        flex_part = bool(np.any(part_geoms >= m.ngeom))
        if flex_part:  # a deformable: every vertex is a body (translation only)
            bodies = list(self._name_bodies[part])
        else:
            bodies = [b for b in self._name_bodies[part] if np.any(m.geom_bodyid[part_geoms] == b)]
        cb = self._oracle_contact_body if self.spec.contact[0] == "" else self._contact_body
        frames, depth, poses, contact = [], [], [], []
        seg0 = None
        for t, q in enumerate(qs):
            d.qpos[:] = q
            d.qvel[:] = 0.0
            mj.mj_forward(m, d)
            f = self.renderer.render(d, groups, rgb=True, depth=True, segmentation=(t == 0))
            if t == 0:
                seg0 = f.geom
            frames.append(f.rgb)
            depth.append(f.depth)
            P = np.zeros((len(bodies), 4, 4))
            P[:, 3, 3] = 1.0
            P[:, :3, :3] = np.array(d.xmat[bodies]).reshape(-1, 3, 3)
            P[:, :3, 3] = d.xpos[bodies]
            poses.append(P)
            contact.append(d.xpos[cb] + np.array(d.xmat[cb]).reshape(3, 3) @ self._contact_local)
        success = bool(T.success(self, d))
        frames_a, depth_a, poses_a = np.stack(frames), np.stack(depth), np.stack(poses)
        contact_a = np.stack(contact)
        contact_px, _ = self.camera.project(contact_a)
        # truth points: the movable part's visible pixels in frame 0, riding on their bodies
        mask0 = np.isin(seg0, part_geoms)
        ys, xs = np.nonzero(mask0 & (depth_a[0] > 0))
        keep = np.unique(np.linspace(0, len(xs) - 1, min(len(xs), 4000)).round().astype(np.int64)) if len(xs) else \
            np.zeros(0, np.int64)
        xs, ys = xs[keep], ys[keep]
        px = np.stack([xs, ys], -1).astype(np.float64)
        p0 = self.camera.backproject(px, depth_a[0][ys, xs])
        if flex_part:  # each pixel rides on its nearest vertex
            V0 = poses_a[0][:, :3, 3]
            pb = np.array([int(np.argmin(((V0 - p) ** 2).sum(1))) for p in p0], dtype=np.int64)
        else:
            body_of_geom = {int(g): int(m.geom_bodyid[g]) for g in part_geoms}
            pb = np.array([bodies.index(body_of_geom[int(g)]) for g in seg0[ys, xs]], dtype=np.int64)
        P0 = poses_a[0][pb]  # N x 4 x 4
        local = np.einsum("nji,nj->ni", P0[:, :3, :3], p0 - P0[:, :3, 3])
        Pt = poses_a[:, pb]  # T x N x 4 x 4
        pw = np.einsum("tnij,nj->tni", Pt[..., :3, :3], local) + Pt[..., :3, 3]
        r = OracleRollout(
            task=self.spec.name, object_name=part, camera=self.camera, fps=float(self.options.oracle_fps),
            frames=frames_a, depth=depth_a, qpos=np.stack(qs), mask0=mask0, points_px=px.astype(np.float32),
            points_world=pw.astype(np.float32), point_body=pb, bodies=tuple(m.body(b).name for b in bodies),
            body_poses=poses_a, contact_world=contact_a, contact_px=contact_px, success=success,
            robot_hidden=bool(hide_robot), state_key=key, extras={"seed": self.seed})
        for a in (r.frames, r.depth, r.qpos, r.mask0, r.points_px, r.points_world, r.body_poses, r.contact_world,
                  r.contact_px, r.point_body):
            a.flags.writeable = False
        self._oracle_cache = [x for x in self._oracle_cache if x.state_key == key][-3:] + [r]
        return r

    def find_oracle_rollout(self, frames: np.ndarray) -> OracleRollout | None:
        """A cached rollout whose frames are ``frames`` (T x H x W x 3), or None."""
        for r in reversed(self._oracle_cache):
            if r.matches(frames):
                return r
        return None

    def apply_oracle_state(self, rollout: OracleRollout, t: int = -1) -> None:
        """Put the objects of the live simulation in the state of the rollout's frame ``t`` (robot
        untouched, object velocities zero). For tests and demonstrations; ``reset`` undoes it."""
        q = np.asarray(rollout.qpos[t])
        if q.shape != (self.model.nq,):
            raise ValueError(f"rollout: its qpos has {q.shape} entries, this world's model {self.model.nq}; "
                             "the rollout comes from another world")
        self.data.qpos[self._object_qpos] = q[self._object_qpos]
        self.data.qvel[self._object_dofs] = 0.0
        self._mj.mj_forward(self.model, self.data)
        self._touch()

    def close(self) -> None:
        """Free the renderer's GL context and robosuite's simulation."""
        if getattr(self, "renderer", None) is not None:
            self.renderer.close()
        try:
            self.env.close()
        except Exception:  # noqa: BLE001
            pass
