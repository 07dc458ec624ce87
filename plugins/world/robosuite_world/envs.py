"""robosuite environments of the dream2flow tasks (imports robosuite: import only inside factories).

Every environment here adds to robosuite's model, after it is built:

* a directional fill light ``d2f_fill`` from the robot's side (no shadows);
* a fixed camera ``d2f_camera`` in the world body (its pose and field of view are set at run time
  through ``model.cam_pos/cam_quat/cam_fovy``, so one compiled model serves any view);
* :data:`N_MARKERS` small calibration spheres ``d2f_marker{i}`` in geom group 5 (never drawn
  except by the world's calibration probe; no collisions, no mass).

Random placements are drawn from ``env.d2f_rng`` (a ``numpy.random.Generator`` the world reseeds
before every reset), never from global state.

Tasks:
  * :class:`D2FDoor`: robosuite's ``Door`` (latched door; hinge range [0, 0.4] rad; its own sampler
    draws the door pose; the world hands it the seeded generator).
  * :class:`D2FBreadInBowl`: robosuite's bread loaf (free joint) and a static bowl on a table.
  * :class:`D2FOpenOven`: a static countertop oven (assets/oven.xml) with a bottom-hinged door.
  * :class:`D2FCoverBowl`: a cloth (MuJoCo flex, a 2-D grid with elasticity) and a static bowl.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET

import numpy as np
from robosuite.environments.manipulation.door import Door
from robosuite.environments.manipulation.manipulation_env import ManipulationEnv
from robosuite.models.arenas import TableArena
from robosuite.models.tasks import ManipulationTask

from . import objects
from .render import MARKER_GROUP

__all__ = ["CAMERA_NAME", "N_MARKERS", "CLOTH", "D2FDoor", "D2FBreadInBowl", "D2FOpenOven", "D2FCoverBowl", "yaw_quat"]

CAMERA_NAME = "d2f_camera"
N_MARKERS = 5
MARKER_RADIUS = 0.01


def yaw_quat(yaw: float) -> np.ndarray:
    """Quaternion (w, x, y, z) of a rotation by ``yaw`` radians about world z."""
    return np.array([math.cos(yaw / 2), 0.0, 0.0, math.sin(yaw / 2)])


class _D2FMixin:
    """Adds the dream2flow camera and calibration markers; holds the seeded generator."""

    d2f_rng: np.random.Generator

    def _d2f_add_elements(self) -> None:
        wb = self.model.worldbody
        # a fill light from the robot's side: faces turned towards the robot (the oven's door) are lit too
        ET.SubElement(wb, "light", {"name": "d2f_fill", "directional": "true", "pos": "-1.5 -0.8 3.0",
                                    "dir": "1 0.35 -0.6", "diffuse": "0.4 0.4 0.4", "specular": "0.1 0.1 0.1",
                                    "castshadow": "false"})
        ET.SubElement(wb, "camera", {"name": CAMERA_NAME, "mode": "fixed", "pos": "1.0 0 1.5",
                                     "quat": "1 0 0 0", "fovy": "45"})
        for i in range(N_MARKERS):
            ET.SubElement(wb, "geom", {"name": f"d2f_marker{i}", "type": "sphere", "size": f"{MARKER_RADIUS}",
                                       "pos": f"{0.1 * i} 0 -5", "group": str(MARKER_GROUP), "contype": "0",
                                       "conaffinity": "0", "mass": "0", "rgba": "1 0 0 1"})

    def _table_model(self, mujoco_objects) -> None:
        """Robot at the table's edge, a table arena, the objects: the usual robosuite task model."""
        xpos = self.robots[0].robot_model.base_xpos_offset["table"](self.table_full_size[0])
        self.robots[0].robot_model.set_base_xpos(xpos)
        arena = TableArena(table_full_size=self.table_full_size, table_friction=(1.0, 0.005, 0.0001),
                           table_offset=self.table_offset)
        arena.set_origin([0, 0, 0])
        self.model = ManipulationTask(mujoco_arena=arena, mujoco_robots=[r.robot_model for r in self.robots],
                                      mujoco_objects=mujoco_objects)
        self._d2f_add_elements()

    @property
    def table_top_z(self) -> float:
        return float(self.table_offset[2])


class D2FDoor(_D2FMixin, Door):
    """robosuite ``Door`` (latched) with the dream2flow camera and markers."""

    def __init__(self, *args, **kwargs):
        self.d2f_rng = np.random.default_rng(0)
        super().__init__(*args, **kwargs)

    def _load_model(self):
        super()._load_model()
        self._d2f_add_elements()

    def _reset_internal(self):
        self.placement_initializer.rng = self.d2f_rng
        super()._reset_internal()


class D2FBreadInBowl(_D2FMixin, ManipulationEnv):
    """A bread loaf and a bowl on a 0.8 x 0.8 m table; success: the bread rests inside the bowl.

    Placement (world frame, metres; the table centre is the origin in x, y; the robot base sits
    at the table's -x edge): bread centre x in [-0.14, -0.08], y in [-0.16, -0.10], yaw uniform;
    bowl centre x in [-0.02, 0.04], y in [0.06, 0.12].
    """

    BREAD_RANGE = ((-0.14, -0.08), (-0.16, -0.10))
    BOWL_RANGE = ((-0.02, 0.04), (0.06, 0.12))

    def __init__(self, robots, **kwargs):
        self.table_full_size = (0.8, 0.8, 0.05)
        self.table_offset = np.array((0.0, 0.0, 0.8))
        self.d2f_rng = np.random.default_rng(0)
        self.bread_min_z = 0.0  # lowest point of the bread mesh in its body frame (set after compile)
        super().__init__(robots=robots, **kwargs)

    def reward(self, action=None):
        return float(self._check_success())

    def _load_model(self):
        super()._load_model()
        self.bread = objects.make_bread("bread")
        self.bowl = objects.make_bowl("bowl")
        self._table_model([self.bread, self.bowl])

    def _setup_references(self):
        super()._setup_references()
        m = self.sim.model._model
        self.bread_body_id = self.sim.model.body_name2id(self.bread.root_body)
        self.bowl_body_id = self.sim.model.body_name2id(self.bowl.root_body)
        self.bread_geom_ids = [i for i in range(m.ngeom) if m.geom_bodyid[i] == self.bread_body_id]
        self.bowl_geom_ids = [i for i in range(m.ngeom) if m.geom_bodyid[i] == self.bowl_body_id]
        self.bread_min_z = _lowest_point(m, self.bread_geom_ids)

    def _reset_internal(self):
        super()._reset_internal()
        rng = self.d2f_rng
        (bx0, bx1), (by0, by1) = self.BREAD_RANGE
        (wx0, wx1), (wy0, wy1) = self.BOWL_RANGE
        bread_xy = rng.uniform([bx0, by0], [bx1, by1])
        yaw = float(rng.uniform(-math.pi, math.pi))
        bowl_xy = rng.uniform([wx0, wy0], [wx1, wy1])
        m = self.sim.model._model
        m.body_pos[self.bowl_body_id] = [bowl_xy[0], bowl_xy[1], self.table_top_z]
        m.body_quat[self.bowl_body_id] = [1, 0, 0, 0]
        z = self.table_top_z - self.bread_min_z + 0.0005
        self.sim.data.set_joint_qpos(self.bread.joints[0], np.concatenate([[bread_xy[0], bread_xy[1], z],
                                                                            yaw_quat(yaw)]))

    def _check_success(self):
        from .tasks import bread_in_bowl_success

        return bread_in_bowl_success(self.sim.model._model, self.sim.data._data, self)[0]


class D2FOpenOven(_D2FMixin, ManipulationEnv):
    """A countertop oven on a 0.8 x 0.8 m table, its door facing the robot.

    Placement: oven base centre x in [0.17, 0.23], y in [0.10, 0.16], yaw in [0.55, 0.85] rad about
    z (0 = door facing -x, towards the robot; ~0.7 = facing the robot's front right, so that a
    camera on that side sees the door's face as it opens). The door starts closed (hinge 0).
    """

    OVEN_RANGE = ((0.17, 0.23), (0.10, 0.16), (0.55, 0.85))

    def __init__(self, robots, open_threshold: float = 0.5, **kwargs):
        self.table_full_size = (0.8, 0.8, 0.05)
        self.table_offset = np.array((0.0, 0.0, 0.8))
        self.d2f_rng = np.random.default_rng(0)
        self.open_threshold = float(open_threshold)
        super().__init__(robots=robots, **kwargs)

    def reward(self, action=None):
        return float(self._check_success())

    def _load_model(self):
        super()._load_model()
        self.oven = objects.make_oven("oven")
        self._table_model([self.oven])

    def _setup_references(self):
        super()._setup_references()
        self.oven_body_id = self.sim.model.body_name2id(self.oven.root_body)
        self.oven_door_body_id = self.sim.model.body_name2id(self.oven.naming_prefix + "door")
        self.hinge_qpos_addr = self.sim.model.get_joint_qpos_addr(self.oven.naming_prefix + "hinge")
        self.oven_handle_site_id = self.sim.model.site_name2id(self.oven.naming_prefix + "handle")

    def _reset_internal(self):
        super()._reset_internal()
        (x0, x1), (y0, y1), (a0, a1) = self.OVEN_RANGE
        x, y, yaw = self.d2f_rng.uniform([x0, y0, a0], [x1, y1, a1])
        m = self.sim.model._model
        m.body_pos[self.oven_body_id] = [x, y, self.table_top_z]
        m.body_quat[self.oven_body_id] = yaw_quat(float(yaw))
        self.sim.data.qpos[self.hinge_qpos_addr] = 0.0

    def _check_success(self):
        return bool(self.sim.data.qpos[self.hinge_qpos_addr] >= self.open_threshold)


CLOTH = dict(count=13, size=0.32, mass=0.04, radius=0.003, young=3.0e4, poisson=0.2, thickness=0.001,
             damping=0.0005, friction=0.8)
"""The cloth of cover_bowl: a ``count`` x ``count`` vertex square of side ``size`` metres (a scarf)."""


class D2FCoverBowl(_D2FMixin, ManipulationEnv):
    """A cloth (flex grid, ``CLOTH``) lying flat on a 0.8 x 0.8 m table and a bowl; success: the cloth covers
    the bowl's opening.

    Placement: cloth centre x in [-0.15, -0.10], y in [-0.22, -0.17], yaw in [-0.3, 0.3] rad; bowl
    centre x in [-0.01, 0.05], y in [0.10, 0.15]. The cloth's vertices are bodies with three slide
    joints each (MuJoCo flexcomp), placed through their joint positions.
    """

    CLOTH_RANGE = ((-0.15, -0.10), (-0.22, -0.17), (-0.3, 0.3))
    BOWL_RANGE = ((-0.01, 0.05), (0.10, 0.15))

    def __init__(self, robots, **kwargs):
        self.table_full_size = (0.8, 0.8, 0.05)
        self.table_offset = np.array((0.0, 0.0, 0.8))
        self.d2f_rng = np.random.default_rng(0)
        super().__init__(robots=robots, **kwargs)

    def reward(self, action=None):
        return float(self._check_success())

    def _load_model(self):
        super()._load_model()
        self.bowl = objects.make_bowl("bowl")
        self._table_model([self.bowl])
        c = CLOTH
        asset = self.model.asset
        ET.SubElement(asset, "texture", {"name": "d2f_cloth_tex", "type": "2d",
                                         "file": str(objects.ASSETS / "cloth.png")})
        ET.SubElement(asset, "material", {"name": "d2f_cloth_mat", "texture": "d2f_cloth_tex", "specular": "0.1",
                                          "shininess": "0.1"})
        sp = c["size"] / (c["count"] - 1)
        fc = ET.SubElement(self.model.worldbody, "flexcomp", {
            "name": "cloth", "type": "grid", "count": f"{c['count']} {c['count']} 1", "spacing": f"{sp} {sp} {sp}",
            "pos": f"0 0 {self.table_offset[2] + 0.004}", "radius": str(c["radius"]), "dim": "2",
            "mass": str(c["mass"]), "material": "d2f_cloth_mat", "rgba": "1 1 1 1", "group": "1"})
        ET.SubElement(fc, "elasticity", {"young": str(c["young"]), "poisson": str(c["poisson"]),
                                         "thickness": str(c["thickness"]), "damping": str(c["damping"]),
                                         "elastic2d": "both"})
        ET.SubElement(fc, "contact", {"condim": "3", "solref": "0.005 1", "selfcollide": "none",
                                      "friction": str(c["friction"])})

    def _setup_references(self):
        super()._setup_references()
        m = self.sim.model._model
        self.bowl_body_id = self.sim.model.body_name2id(self.bowl.root_body)
        self.bowl_geom_ids = [i for i in range(m.ngeom) if m.geom_bodyid[i] == self.bowl_body_id]
        self.cloth_flex_id = 0
        a, n = m.flex_vertadr[0], m.flex_vertnum[0]
        self.cloth_vert_bodies = np.array(m.flex_vertbodyid[a:a + n], dtype=np.int64)
        self.cloth_qpos = np.array([m.jnt_qposadr[m.body_jntadr[b]] for b in self.cloth_vert_bodies])
        self.cloth_dofs = np.array([m.jnt_dofadr[m.body_jntadr[b]] for b in self.cloth_vert_bodies])
        self.cloth_rest = np.array(m.body_pos[self.cloth_vert_bodies])  # vertex positions at qpos = 0
        e0, ne = m.flex_elemdataadr[0], m.flex_elemnum[0]
        self.cloth_elems = np.array(m.flex_elem[e0:e0 + 3 * ne]).reshape(-1, 3)

    def cloth_qpos_for(self, points: np.ndarray) -> np.ndarray:
        """qpos entries (n x 3, in vertex order) that put the cloth's vertices at ``points`` (world, m)."""
        return np.asarray(points) - self.cloth_rest

    def _reset_internal(self):
        super()._reset_internal()
        (cx0, cx1), (cy0, cy1), (a0, a1) = self.CLOTH_RANGE
        (wx0, wx1), (wy0, wy1) = self.BOWL_RANGE
        rng = self.d2f_rng
        cx, cy, yaw = rng.uniform([cx0, cy0, a0], [cx1, cy1, a1])
        bowl_xy = rng.uniform([wx0, wy0], [wx1, wy1])
        m = self.sim.model._model
        m.body_pos[self.bowl_body_id] = [bowl_xy[0], bowl_xy[1], self.table_top_z]
        m.body_quat[self.bowl_body_id] = [1, 0, 0, 0]
        P = self.cloth_rest.copy()
        R = np.array([[math.cos(yaw), -math.sin(yaw)], [math.sin(yaw), math.cos(yaw)]])
        P[:, :2] = (P[:, :2] - P[:, :2].mean(0)) @ R.T + [cx, cy]
        P[:, 2] = self.table_top_z + 0.004
        q = self.cloth_qpos_for(P)
        for k in range(3):
            self.sim.data.qpos[self.cloth_qpos + k] = q[:, k]
            self.sim.data.qvel[self.cloth_dofs + k] = 0.0

    def _check_success(self):
        from .tasks import cover_bowl_success

        return cover_bowl_success(self.sim.model._model, self.sim.data._data, self)[0]


def _lowest_point(m, geom_ids) -> float:
    """Lowest z (body frame) over the given geoms (meshes: their vertices; others: bounding boxes)."""
    import mujoco

    low = math.inf
    for g in geom_ids:
        R = np.empty(9)
        mujoco.mju_quat2Mat(R, m.geom_quat[g])
        R = R.reshape(3, 3)
        if m.geom_type[g] == mujoco.mjtGeom.mjGEOM_MESH:
            mid = m.geom_dataid[g]
            a, n = m.mesh_vertadr[mid], m.mesh_vertnum[mid]
            v = m.mesh_vert[a:a + n] @ R.T + m.geom_pos[g]
            low = min(low, float(v[:, 2].min()))
        else:
            c = m.geom_aabb[g][:3] if hasattr(m, "geom_aabb") else np.zeros(3)
            h = m.geom_aabb[g][3:] if hasattr(m, "geom_aabb") else m.geom_rbound[g] * np.ones(3)
            corners = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)]) * h + c
            low = min(low, float((corners @ R.T + m.geom_pos[g])[:, 2].min()))
    return low if math.isfinite(low) else 0.0
