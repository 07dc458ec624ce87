"""Task objects as robosuite ``MujocoXMLObject``s: a bowl (generated MJCF) and an oven (assets/oven.xml).

Conventions (robosuite's): the XML holds ``<worldbody><body><body name="object">...``; geoms in
group 0 collide, geoms in group 1 are drawn; the outer body carries the ``bottom_site``,
``top_site`` and ``horizontal_radius_site`` robosuite's placement uses.

Bowl (object frame: origin at the centre of its base, z up; metres):
    outer radius ``r_bottom`` at the base widening linearly to ``r_top`` at the rim height
    ``height``; wall ``wall`` thick; floor ``floor`` thick. Collision: a floor cylinder and
    ``n_walls`` slanted box staves; drawn: a smooth closed lathe mesh of the same profile.

Oven: see assets/oven.xml (front faces -x, door hinged at the bottom front edge, handle bar near
the door's top; joint ``hinge`` opens for positive angles in [0, 1.6] rad).
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import numpy as np

__all__ = ["BOWL", "bowl_xml", "make_bowl", "make_oven", "make_bread", "ASSETS"]

ASSETS = Path(__file__).resolve().parent / "assets"

BOWL = dict(r_bottom=0.05, r_top=0.085, height=0.055, wall=0.006, floor=0.008, n_walls=20)
"""Bowl dimensions, metres (the success check of bread_in_bowl reads them)."""


def _fmt(v) -> str:
    return " ".join(f"{float(x):.6g}" for x in np.ravel(v))


def _lathe(profile: list[tuple[float, float]], segments: int) -> tuple[np.ndarray, np.ndarray]:
    """Vertices and triangles of the surface of revolution of a closed (r, z) profile about z.

    The profile starts and ends on the axis (r = 0); axis points become single vertices.
    """
    verts: list[list[float]] = []
    rings: list[list[int]] = []
    for r, z in profile:
        if r <= 1e-9:
            verts.append([0.0, 0.0, z])
            rings.append([len(verts) - 1] * segments)
        else:
            idx = []
            for k in range(segments):
                a = 2 * math.pi * k / segments
                verts.append([r * math.cos(a), r * math.sin(a), z])
                idx.append(len(verts) - 1)
            rings.append(idx)
    faces: list[list[int]] = []
    for i in range(len(rings) - 1):
        a, b = rings[i], rings[i + 1]
        for k in range(segments):
            k2 = (k + 1) % segments
            quad = (a[k], a[k2], b[k2], b[k])
            for tri in ((quad[0], quad[1], quad[2]), (quad[0], quad[2], quad[3])):
                if len(set(tri)) == 3:
                    faces.append(list(tri))
    return np.array(verts), np.array(faces, dtype=np.int64)


def bowl_xml(r_bottom: float, r_top: float, height: float, wall: float, floor: float, n_walls: int,
             rgba: str = "0.80 0.86 0.94 1") -> str:
    """MJCF text of the bowl object (see the module docstring)."""
    slope = math.atan2(r_top - r_bottom, height)  # wall tilt from vertical, outwards
    length = height / math.cos(slope)
    r_mid = 0.5 * (r_bottom + r_top) - 0.5 * wall * math.cos(slope)
    half_w = math.pi * r_top / n_walls * 1.15
    staves = []
    for k in range(n_walls):
        a = 2 * math.pi * k / n_walls
        # stave frame: x radial (thickness), y tangential (width), z along the slanted wall
        c, s = math.cos(a), math.sin(a)
        R = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]]) @ np.array(
            [[math.cos(slope), 0, math.sin(slope)], [0, 1, 0], [-math.sin(slope), 0, math.cos(slope)]])
        pos = np.array([r_mid * c, r_mid * s, 0.5 * height])
        staves.append(f'<geom name="wall{k}" type="box" group="0" size="{_fmt([wall / 2, half_w, length / 2])}" '
                      f'pos="{_fmt(pos)}" xyaxes="{_fmt(np.concatenate([R[:, 0], R[:, 1]]))}" '
                      f'friction="1 0.005 0.0001" solref="0.01 1" rgba="{rgba}"/>')
    r_in_b, r_in_t = r_bottom - wall, r_top - wall
    profile = [(0.0, 0.0), (r_bottom, 0.0), (r_top, height), (r_in_t, height), (r_in_b + (r_in_t - r_in_b)
                                                                                 * floor / height, floor),
               (0.0, floor)]
    v, f = _lathe(profile, 48)
    return f"""<mujoco model="bowl">
  <asset>
    <mesh name="bowl_mesh" vertex="{_fmt(v)}" face="{_fmt(f)}"/>
    <material name="bowl_mat" rgba="{rgba}" specular="0.4" shininess="0.4"/>
  </asset>
  <worldbody>
    <body>
      <body name="object">
        <inertial pos="0 0 0.02" mass="0.4" diaginertia="0.001 0.001 0.0015"/>
        <geom name="floor" type="cylinder" group="0" size="{_fmt([r_bottom, floor / 2])}" pos="0 0 {floor / 2:.6g}"
              friction="1 0.005 0.0001" solref="0.01 1" rgba="{rgba}"/>
        {chr(10).join('        ' + s for s in staves).strip()}
        <geom name="shell" type="mesh" mesh="bowl_mesh" group="1" contype="0" conaffinity="0" mass="0"
              material="bowl_mat"/>
      </body>
      <site rgba="0 0 0 0" size="0.005" pos="0 0 0" name="bottom_site"/>
      <site rgba="0 0 0 0" size="0.005" pos="0 0 {height:.6g}" name="top_site"/>
      <site rgba="0 0 0 0" size="0.005" pos="{r_top:.6g} 0 0" name="horizontal_radius_site"/>
    </body>
  </worldbody>
</mujoco>
"""


def _xml_object(cls, text: str, **kw):
    """Build a MujocoXMLObject from XML text (robosuite reads objects from files)."""
    with tempfile.TemporaryDirectory(prefix="d2f-mjcf-") as tmp:
        path = Path(tmp) / "object.xml"
        path.write_text(text)
        return cls(str(path), **kw)


def make_bowl(name: str = "bowl"):
    """The bowl as a static robosuite object (no joint: placed through its body pose)."""
    from robosuite.models.objects import MujocoXMLObject

    return _xml_object(MujocoXMLObject, bowl_xml(**BOWL), name=name, joints=None, obj_type="all",
                       duplicate_collision_geoms=False)


def make_oven(name: str = "oven"):
    """The oven (assets/oven.xml) as a static robosuite object with its door hinge."""
    from robosuite.models.objects import MujocoXMLObject

    return MujocoXMLObject(str(ASSETS / "oven.xml"), name=name, joints=None, obj_type="all",
                           duplicate_collision_geoms=False)


BREAD_SCALE = 1.5
"""robosuite's bread mesh is a 4 x 4.8 x 4.8 cm bun; scaled by 1.5 (6 x 7.2 x 7.2 cm) it reads as bread
in a 640 x 480 view and still fits the Panda's 8 cm gripper across its narrow side (1.8, used
before, made it 7.2 cm across: no clearance left for the fingers)."""


def make_bread(name: str = "bread"):
    """robosuite's bread loaf (mesh, free joint), scaled by :data:`BREAD_SCALE`."""
    from robosuite.models.objects import MujocoXMLObject
    from robosuite.utils.mjcf_utils import xml_path_completion

    return MujocoXMLObject(xml_path_completion("objects/bread.xml"), name=name,
                           joints=[dict(type="free", damping="0.0005")], obj_type="all",
                           duplicate_collision_geoms=True, scale=BREAD_SCALE)
