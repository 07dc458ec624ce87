"""The ``antipodal`` grasper on ray-cast scenes of known geometry.

A small numpy ray caster renders depth (and the object mask) from a pinhole camera for a box on a
table (plane z = 0) and for a horizontal bar (a cylinder along world x) in front of a wall (plane
y = const). The checks compare the proposed grasps with that geometry: where the best grasp is,
which way it closes, how wide it opens, and that no candidate's gripper model (finger and palm
boxes, as documented in the plugin) reaches into the table, the wall or the object's true volume
(which is only partly seen by the camera).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from d2f_conformance import all_passed, check_component, format_results
from d2f_conformance.scenes import look_at, pinhole
from d2f_core import RGBD, Camera, Grasp
from d2f_plugins.grasp.antipodal import AntipodalGrasper, AntipodalOptions, d2f_register

W, H = 320, 240
BOX_CENTRE = np.array([0.03, -0.02])
BOX_SIZE = (0.05, 0.12, 0.06)  # x (the narrow axis before yaw), y, z; metres
BOX_YAW = math.radians(25.0)
BAR_Z, BAR_R, BAR_HALF = 0.30, 0.01, 0.10  # bar along world x, through (0, 0, BAR_Z)
WALL_Y = 0.03  # the wall plane behind the bar: its axis is 3 cm in front of it


# --------------------------------------------------------------------------- ray caster


def _rays(cam: Camera) -> tuple[np.ndarray, np.ndarray]:
    """Camera centre (3,) and per-pixel world ray directions (H, W, 3) scaled to camera z = 1,
    so the ray parameter t of a hit is its depth."""
    xs, ys = np.meshgrid(np.arange(cam.width, dtype=np.float64), np.arange(cam.height, dtype=np.float64))
    d_cam = np.stack([(xs - cam.K[0, 2]) / cam.K[0, 0], (ys - cam.K[1, 2]) / cam.K[1, 1], np.ones_like(xs)], -1)
    return cam.T_world_cam[:3, 3], d_cam @ cam.T_world_cam[:3, :3].T


def _plane(o, d, axis: int, value: float) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (value - o[axis]) / d[..., axis]
    return np.where(np.isfinite(t) & (t > 0), t, np.inf)


def _box(o, d, centre, size, yaw) -> np.ndarray:
    """Slab test against a box resting on z = 0, yawed about z."""
    c, s = math.cos(yaw), math.sin(yaw)
    Rt = np.array([[c, s, 0], [-s, c, 0], [0, 0, 1.0]])  # world -> box
    ol = Rt @ (o - np.array([centre[0], centre[1], size[2] / 2]))
    dl = d @ Rt.T
    h = np.array(size) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        t1, t2 = (-h - ol) / dl, (h - ol) / dl
    tmin = np.nanmax(np.minimum(t1, t2), -1)
    tmax = np.nanmin(np.maximum(t1, t2), -1)
    return np.where((tmax >= tmin) & (tmin > 0), tmin, np.inf)


def _bar(o, d) -> np.ndarray:
    """Cylinder of radius BAR_R along x (|x| <= BAR_HALF) through (0, 0, BAR_Z), with end caps."""
    oy, oz = o[1], o[2] - BAR_Z
    a = d[..., 1] ** 2 + d[..., 2] ** 2
    b = 2 * (oy * d[..., 1] + oz * d[..., 2])
    c = oy ** 2 + oz ** 2 - BAR_R ** 2
    disc = b * b - 4 * a * c
    with np.errstate(invalid="ignore", divide="ignore"):
        t = (-b - np.sqrt(disc)) / (2 * a)
    x = o[0] + t * d[..., 0]
    side = np.where((disc >= 0) & (t > 0) & (np.abs(x) <= BAR_HALF), t, np.inf)
    caps = []
    for xc in (-BAR_HALF, BAR_HALF):
        tc = _plane(o, d, 0, xc)
        y, z = o[1] + tc * d[..., 1], o[2] + tc * d[..., 2] - BAR_Z
        caps.append(np.where(y ** 2 + z ** 2 <= BAR_R ** 2, tc, np.inf))
    return np.minimum(side, np.minimum(*caps))


def _rgbd(cam: Camera, t_obj: np.ndarray, t_rest: np.ndarray) -> tuple[RGBD, np.ndarray]:
    t = np.minimum(t_obj, t_rest)
    depth = np.where(np.isfinite(t), t, 0.0).astype(np.float32)
    mask = np.isfinite(t_obj) & (t_obj <= t_rest)
    rgb = np.where(mask[..., None], [200, 120, 60], [90, 90, 90]).astype(np.uint8)
    return RGBD(rgb=rgb, depth=depth, camera=cam), mask


def _camera(eye, target) -> Camera:
    return Camera(K=pinhole(W, H, 60.0), T_world_cam=look_at(eye, target), width=W, height=H, name="test")


def box_scene(size=BOX_SIZE) -> tuple[RGBD, np.ndarray]:
    cam = _camera((BOX_CENTRE[0] + 0.10, BOX_CENTRE[1] - 0.40, 0.42), (BOX_CENTRE[0], BOX_CENTRE[1], 0.03))
    o, d = _rays(cam)
    return _rgbd(cam, _box(o, d, BOX_CENTRE, size, BOX_YAW), _plane(o, d, 2, 0.0))


def bar_scene() -> tuple[RGBD, np.ndarray]:
    cam = _camera((0.06, -0.42, 0.52), (0.0, 0.0, BAR_Z))
    o, d = _rays(cam)
    return _rgbd(cam, _bar(o, d), _plane(o, d, 1, WALL_Y))


# --------------------------------------------------------------------------- gripper model (as documented)


def gripper_boxes(g: Grasp, o: AntipodalOptions) -> list[tuple[np.ndarray, np.ndarray]]:
    """(centre in the grasp frame, half size) of the left finger, right finger and palm."""
    L, t = o.finger_length, o.finger_thickness
    fx = g.width / 2 + t / 2
    fh = np.array([t / 2, o.finger_depth / 2, L / 2])
    return [(np.array([-fx, 0, -L / 2]), fh), (np.array([fx, 0, -L / 2]), fh),
            (np.array([0, 0, -L - o.palm_height / 2]), np.array([o.palm_width, o.palm_depth, o.palm_height]) / 2)]


def inside(g: Grasp, box: tuple[np.ndarray, np.ndarray], pts: np.ndarray) -> np.ndarray:
    T = g.T_world_grasp
    local = (pts - T[:3, 3]) @ T[:3, :3]
    return np.all(np.abs(local - box[0]) <= box[1], axis=1)


def corners(g: Grasp, box: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    signs = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], float)
    local = box[0] + signs * box[1]
    T = g.T_world_grasp
    return local @ T[:3, :3].T + T[:3, 3]


def box_volume_points(size=BOX_SIZE, step=0.004) -> np.ndarray:
    axes = [np.arange(-s / 2, s / 2 + 1e-9, step) for s in size]
    g = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)
    c, s = math.cos(BOX_YAW), math.sin(BOX_YAW)
    R = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]])
    return g @ R.T + [BOX_CENTRE[0], BOX_CENTRE[1], size[2] / 2]


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def box():
    rgbd, mask = box_scene()
    grasper = AntipodalGrasper()
    return rgbd, mask, grasper, grasper.propose(rgbd, mask, top_k=20)


@pytest.fixture(scope="module")
def bar():
    rgbd, mask = bar_scene()
    grasper = AntipodalGrasper()
    return rgbd, mask, grasper, grasper.propose(rgbd, mask, top_k=20)


# --------------------------------------------------------------------------- box on a table


def test_box_best_grasp_is_centred_across_the_narrow_axis(box):
    _, _, grasper, grasps = box
    assert grasps, "no grasp on a 5 x 12 x 6 cm box"
    best = grasps[0]
    assert np.linalg.norm(best.position[:2] - BOX_CENTRE) < 0.01, best.position
    narrow = np.array([math.cos(BOX_YAW), math.sin(BOX_YAW), 0.0])
    assert abs(best.T_world_grasp[:3, 0] @ narrow) >= math.cos(math.radians(15)), best.T_world_grasp[:3, 0]
    assert abs(best.width - (BOX_SIZE[0] + grasper.options.margin)) <= 0.015, best.width
    # the fingertips are between the box's top and the table, the fingers around the box
    assert 0.0 < best.position[2] < BOX_SIZE[2]


def test_box_candidates_do_not_reach_into_the_table_or_the_box(box):
    _, _, grasper, grasps = box
    o = grasper.options
    solid = box_volume_points()
    xs, ys = np.meshgrid(np.arange(-0.3, 0.3, 0.002), np.arange(-0.3, 0.3, 0.002))
    table = np.stack([xs.ravel() + BOX_CENTRE[0], ys.ravel() + BOX_CENTRE[1], np.zeros(xs.size)], 1)
    for i, g in enumerate(grasps):
        for k, b in enumerate(gripper_boxes(g, o)):
            assert not inside(g, b, table).any(), f"grasp {i} ({g.source}) box {k} contains table points"
            assert not inside(g, b, solid).any(), f"grasp {i} ({g.source}) box {k} cuts into the box"
            assert corners(g, b)[:, 2].min() > -1e-9, f"grasp {i} box {k} goes below the table"


def test_box_widths_cover_the_object_and_fit_the_gripper(box):
    _, _, grasper, grasps = box
    o = grasper.options
    narrow = np.array([math.cos(BOX_YAW), math.sin(BOX_YAW), 0.0])
    for g in grasps:
        assert g.width <= o.max_width + 1e-9
        if abs(g.T_world_grasp[:3, 0] @ narrow) > 0.99:  # closing straight across the 5 cm axis
            assert g.width >= BOX_SIZE[0] - 0.002, g.width


def test_box_both_sources_sorted_and_top_down_goes_down(box):
    rgbd, mask, grasper, grasps = box
    assert len(grasps) == 20
    assert {g.source for g in grasps} == {"camera", "top-down"}
    scores = [g.score for g in grasps]
    assert scores == sorted(scores, reverse=True)
    top = [g for g in grasps if g.source == "top-down"]
    assert top[0].T_world_grasp[:3, 2] @ [0, 0, -1] > math.cos(math.radians(10))
    two = grasper.propose(rgbd, mask, top_k=2)
    assert sorted(g.source for g in two) == ["camera", "top-down"]
    one = grasper.propose(rgbd, mask, top_k=1)
    assert len(one) == 1 and np.allclose(one[0].T_world_grasp, grasps[0].T_world_grasp)


def test_candidates_are_spread(box):
    _, _, grasper, grasps = box
    o = grasper.options
    for i, a in enumerate(grasps):
        for b in grasps[i + 1:]:
            if a.source != b.source:
                continue
            far = np.linalg.norm(a.position - b.position) >= o.nms_distance
            Ra, Rb = a.T_world_grasp[:3, :3], b.T_world_grasp[:3, :3]
            ang = min(np.arccos(np.clip((np.trace(Ra.T @ Rb @ np.diag(f)) - 1) / 2, -1, 1))
                      for f in ([1, 1, 1], [-1, -1, 1]))
            assert far or ang >= o.nms_angle - 1e-6


def test_deterministic_for_a_seed(box):
    rgbd, mask, _, _ = box
    opts = AntipodalOptions(seed=3, max_samples=300)  # subsampled: the seed matters
    a = AntipodalGrasper(opts).propose(rgbd, mask, top_k=10)
    b = AntipodalGrasper(opts).propose(rgbd, mask, top_k=10)
    assert len(a) == len(b) > 0
    for g, h in zip(a, b):
        assert np.array_equal(g.T_world_grasp, h.T_world_grasp) and g.width == h.width and g.score == h.score


# --------------------------------------------------------------------------- bar in front of a wall


def test_bar_best_grasp_closes_across_the_bar(bar):
    _, _, grasper, grasps = bar
    assert grasps, "no grasp on a 2 cm bar"
    best = grasps[0]
    assert abs(best.T_world_grasp[:3, 0] @ [1, 0, 0]) <= math.sin(math.radians(15)), best.T_world_grasp[:3, 0]
    assert abs(best.width - (2 * BAR_R + grasper.options.margin)) <= 0.006, best.width
    # between the fingertips: within reach of the bar's axis, not beyond the wall
    assert np.hypot(best.position[1], best.position[2] - BAR_Z) <= 0.03
    assert abs(best.position[0]) < BAR_HALF


def test_bar_candidates_do_not_hit_the_wall_or_the_bar(bar):
    _, _, grasper, grasps = bar
    o = grasper.options
    ys, zs = np.meshgrid(np.arange(-0.01, 0.0101, 0.002), np.arange(-0.01, 0.0101, 0.002))
    disc = (ys ** 2 + zs ** 2) <= BAR_R ** 2
    xs = np.arange(-BAR_HALF, BAR_HALF + 1e-9, 0.004)
    solid = np.stack([np.repeat(xs, disc.sum()), np.tile(ys[disc], len(xs)), np.tile(zs[disc], len(xs)) + BAR_Z], 1)
    for i, g in enumerate(grasps):
        for k, b in enumerate(gripper_boxes(g, o)):
            assert corners(g, b)[:, 1].max() < WALL_Y, f"grasp {i} ({g.source}) box {k} hits the wall"
            assert not inside(g, b, solid).any(), f"grasp {i} ({g.source}) box {k} cuts into the bar"


# --------------------------------------------------------------------------- errors


def test_too_wide_object_names_max_width():
    rgbd, mask = box_scene(size=(0.12, 0.12, 0.06))
    with pytest.raises(ValueError, match="max_width"):
        AntipodalGrasper().propose(rgbd, mask)


def test_gripper_narrower_than_the_box_names_max_width(box):
    rgbd, mask, _, _ = box
    with pytest.raises(ValueError, match="max_width"):
        AntipodalGrasper(AntipodalOptions(max_width=0.04)).propose(rgbd, mask)


def test_bad_masks_name_mask(box):
    rgbd, mask, grasper, _ = box
    with pytest.raises(ValueError, match="mask"):
        grasper.propose(rgbd, np.zeros_like(mask))
    depth = np.array(rgbd.depth)
    depth[mask] = 0.0  # the object's pixels have no depth
    with pytest.raises(ValueError, match="mask"):
        grasper.propose(RGBD(rgb=rgbd.rgb, depth=depth, camera=rgbd.camera), mask)
    with pytest.raises(ValueError, match="mask"):
        grasper.propose(rgbd, mask[:-1])
    with pytest.raises(ValueError, match="top_k"):
        grasper.propose(rgbd, mask, top_k=0)


def test_options_are_checked():
    with pytest.raises(ValueError, match="push_depths"):
        AntipodalOptions(push_depths=(0.06,))
    with pytest.raises(ValueError, match="max_width"):
        AntipodalOptions(max_width=0.005)
    with pytest.raises(ValueError):
        AntipodalOptions(unknown=1)


# --------------------------------------------------------------------------- plugin


def test_registers_and_passes_conformance():
    got = []
    d2f_register(register=got.append)
    (m,) = got
    assert (m.name, m.kind) == ("antipodal", "grasper")
    grasper = m.factory(AntipodalOptions(max_width=0.07), None)
    assert grasper.options.max_width == 0.07
    results = check_component(AntipodalGrasper(), "grasper")
    assert all_passed(results), format_results(results)
