"""``anygrasp`` adapter: AnyGrasp's gripper frame -> ours, camera -> world, the inputs it gives the
SDK, and the grasper checks against a stand-in gsnet/graspnetAPI (tests/standins/anygrasp)."""

from __future__ import annotations

import os

import numpy as np
import pytest

from d2f_conformance import check_plugin, format_results
from d2f_conformance.scenes import pinhole, standard_scene
from d2f_core import RGBD, Camera, DataError
from d2f_core.registry import PluginUnavailableError, get_registry
from d2f_plugins.grasp import anygrasp as ag
from standins.standin_env import STANDINS, standin_modules

STANDIN = STANDINS / "anygrasp"


def rot_x(a):
    c, s = np.cos(a), np.sin(a)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def test_gripper_frame_conversion_known_matrices():
    # AnyGrasp identity: approach = x, closing = y  ->  ours: z = x_a, x = y_a, y = z_a
    T = ag.anygrasp_to_ours(np.eye(3)[None], np.array([[0.1, 0.2, 0.3]]), np.array([0.02]))[0]
    assert np.allclose(T[:3, :3], [[0, 0, 1], [1, 0, 0], [0, 1, 0]])
    assert np.allclose(T[:3, 3], [0.12, 0.2, 0.3])                 # fingertips: depth along approach
    # approaching along the camera's +z, closing along +x  ->  our frame is the camera's
    R_a = np.array([[0, 1, 0], [0, 0, 1], [1, 0, 0]], float)       # columns x_a=(0,0,1), y_a=(1,0,0), z_a=(0,1,0)
    T = ag.anygrasp_to_ours(R_a[None], np.zeros((1, 3)), np.array([0.03]))[0]
    assert np.allclose(T[:3, :3], np.eye(3)) and np.allclose(T[:3, 3], [0, 0, 0.03])
    assert np.isclose(np.linalg.det(ag.M_ANYGRASP_TO_OURS), 1.0)


class FakeAnyGrasp:
    """Records get_grasp's inputs; returns the given grasps (view-frame graspnetAPI rows) per call."""

    def __init__(self, rows_per_call):
        self.rows_per_call, self.calls = list(rows_per_call), []

    def get_grasp(self, points, colors, lims=None, apply_object_mask=True, dense_grasp=False,
                  collision_detection=True):
        self.calls.append(dict(points=points, colors=colors, lims=lims, apply_object_mask=apply_object_mask,
                               dense_grasp=dense_grasp, collision_detection=collision_detection, cwd=os.getcwd()))
        from graspnetAPI import GraspGroup
        rows = self.rows_per_call.pop(0) if self.rows_per_call else []
        return GraspGroup(np.array(rows, np.float32) if len(rows) else None), None


def row(score, width, depth, R, t):
    r = np.zeros(17, np.float32)
    r[0], r[1], r[2], r[3] = score, width, 0.03, depth
    r[4:13], r[13:16], r[16] = np.asarray(R).reshape(-1), t, -1
    return r


def overhead_scene():
    """A 40 x 30 camera 1 m above the origin looking straight down; a 10 x 10 cm square object
    10 cm tall in the middle, on a table at z = 0."""
    W, H = 40, 30
    K = pinhole(W, H, 60.0)
    T_world_cam = np.eye(4)
    T_world_cam[:3, :3] = rot_x(np.pi)                 # camera z = world -z, camera y = world -y
    T_world_cam[:3, 3] = [0.0, 0.0, 1.0]
    cam = Camera(K=K, T_world_cam=T_world_cam, width=W, height=H)
    ys, xs = np.mgrid[0:H, 0:W]
    pts_on_table = np.stack([(xs - K[0, 2]) / K[0, 0], (ys - K[1, 2]) / K[1, 1]], -1)   # at depth 1
    obj = (np.abs(pts_on_table[..., 0]) < 0.05) & (np.abs(pts_on_table[..., 1]) < 0.05)
    depth = np.where(obj, 0.9, 1.0).astype(np.float32)
    rgb = np.zeros((H, W, 3), np.uint8)
    rgb[...] = (10, 120, 250)
    return RGBD(rgb=rgb, depth=depth, camera=cam), obj


def test_camera_to_world_and_inputs_given_to_the_sdk():
    rgbd, mask = overhead_scene()
    # one grasp in the camera frame: at the object's top centre (camera z 0.9), approaching along
    # the camera's +z (world down), closing along the camera's +x (world +x), depth 2 cm
    R_a = np.array([[0, 1, 0], [0, 0, 1], [1, 0, 0]], float)
    far = row(0.9, 0.05, 0.02, R_a, [0.3, 0.0, 0.9])                    # 30 cm off the object: dropped
    fake = FakeAnyGrasp([[row(0.5, 0.06, 0.02, R_a, [0.0, 0.0, 0.9]), far]])
    with standin_modules(STANDIN):
        g = ag.AnyGraspGrasper(fake, ag.AnyGraspOptions(virtual_top_down=False))
        grasps = g.propose(rgbd, mask, top_k=5)
    assert len(grasps) == 1
    T = grasps[0].T_world_grasp
    assert np.allclose(T[:3, 3], [0.0, 0.0, 1.0 - 0.92], atol=1e-6)    # 2 cm below the top, world frame
    assert np.allclose(T[:3, 2], [0, 0, -1]) and np.allclose(T[:3, 0], [1, 0, 0])  # approach down, close along x
    assert grasps[0].width == pytest.approx(0.06) and grasps[0].source == "camera"
    call = fake.calls[0]
    assert call["points"].dtype == np.float32 and call["colors"].dtype == np.float32
    assert call["colors"].max() <= 1.0 and np.allclose(call["colors"][0], np.array([10, 120, 250]) / 255.0)
    assert np.allclose(call["points"][:, 2].min(), 0.9, atol=1e-6)     # camera frame: the top is 0.9 m away
    x0, x1, y0, y1, z0, z1 = call["lims"]
    assert x0 < -0.05 < 0.05 < x1 and z0 <= 0.9 <= z1 and z1 < 1.0    # the object's box, grown by 5 cm
    assert call["apply_object_mask"] and call["collision_detection"] and not call["dense_grasp"]


def approach_z(theta):
    """AnyGrasp rotation approaching along the view's +z, closing at angle theta in the view's x-y plane."""
    a, c = np.array([0.0, 0.0, 1.0]), np.array([np.cos(theta), np.sin(theta), 0.0])
    return np.stack([a, c, np.cross(a, c)], 1)


def test_virtual_top_down_view_and_quota():
    rgbd, mask = overhead_scene()
    # four grasps per view, 45 degrees apart (so NMS keeps them all)
    cam_rows = [row(0.9 - 0.1 * i, 0.06, 0.02, approach_z(i * np.pi / 4), [0.01 * i, 0.0, 0.9]) for i in range(4)]
    top_rows = [row(0.95 - 0.1 * i, 0.06, 0.02, approach_z(i * np.pi / 4), [0.0, 0.01 * i, 0.5]) for i in range(4)]
    fake = FakeAnyGrasp([cam_rows, top_rows])
    with standin_modules(STANDIN):
        g = ag.AnyGraspGrasper(fake, ag.AnyGraspOptions(top_down_height=0.5))
        grasps = g.propose(rgbd, mask, top_k=5)
    assert [x.source for x in grasps].count("camera") == 3 and [x.source for x in grasps].count("top-down") == 2
    assert [x.score for x in grasps] == sorted([x.score for x in grasps], reverse=True)
    # the virtual camera is 0.5 m above the object's top (z 0.1) looking down: view depth 0.6 = the top
    top = [x for x in grasps if x.source == "top-down"]
    assert np.allclose(top[0].T_world_grasp[:3, 3], [0.0, 0.0, 0.1 - 0.02], atol=1e-6)
    assert np.allclose(top[1].T_world_grasp[:3, 3], [0.0, -0.01, 0.08], atol=1e-6)   # view y = world -y
    pts_top = fake.calls[1]["points"]
    assert np.allclose(pts_top[:, 2].min(), 0.5, atol=1e-5)


def test_unavailable_and_errors(monkeypatch, tmp_path):
    monkeypatch.delenv("ANYGRASP_DIR", raising=False)
    if not ag._importable():
        reason = get_registry().unavailable_reason(get_registry().get("grasper", "anygrasp").manifest)
        assert "AnyGrasp SDK" in reason and "ANYGRASP_DIR" in reason
    sdk = tmp_path / "sdk"
    sdk.mkdir()
    (sdk / "gsnet.py").symlink_to(STANDIN / "gsnet.py")
    monkeypatch.setenv("ANYGRASP_DIR", str(sdk))
    assert "no AnyGrasp licence" in ag._available() and "license_checker -f" in ag._available()
    (sdk / "license").mkdir()
    assert ag._available() is None
    with pytest.raises(PluginUnavailableError) as e:
        get_registry().create("grasper", "anygrasp", {})
    assert "\n" not in str(e.value) and "grasper.options.checkpoint" in str(e.value)
    with pytest.raises(DataError, match="grasper.options.checkpoint"):
        get_registry().create("grasper", "anygrasp", {"checkpoint": str(tmp_path / "missing.tar")})


@pytest.fixture
def sdk(tmp_path, monkeypatch):
    monkeypatch.setenv("ANYGRASP_DIR", str(STANDIN))
    ckpt = tmp_path / "checkpoint_detection.tar"
    ckpt.write_bytes(b"placeholder")
    cwd = os.getcwd()
    with standin_modules(STANDIN):
        yield ckpt
    assert os.getcwd() == cwd


def test_conformance_passes_on_the_standin(sdk):
    res = check_plugin("anygrasp", "grasper", options={"checkpoint": str(sdk)})
    assert all(r.status == "passed" for r in res), format_results(res)


def test_standin_grasps_on_the_conformance_box(sdk):
    """Through the real SDK call path (licence folder found by running in ANYGRASP_DIR)."""
    s = standard_scene()
    g = get_registry().create("grasper", "anygrasp", {"checkpoint": str(sdk)})
    grasps = g.propose(s.rgbd, s.mask, top_k=6)
    assert {x.source for x in grasps} == {"camera", "top-down"}
    box = np.array([s.poses[0].x, s.poses[0].y])
    for x in grasps:
        assert np.linalg.norm(x.position[:2] - box) < 0.03                # over the box
        assert 0.0 < x.position[2] < 0.04                                 # fingertips below its top
        assert x.T_world_grasp[2, 2] < -0.99                              # approach straight down
        assert abs(x.T_world_grasp[1, 0]) > 0.99                          # close across the 6 cm side (y)
        assert 0.06 <= x.width <= 0.08


def test_sdk_runs_in_its_folder_and_restores_cwd(sdk, monkeypatch):
    s = standard_scene()
    g = get_registry().create("grasper", "anygrasp", {"checkpoint": str(sdk)})
    seen = []
    real = g.anygrasp.get_grasp
    monkeypatch.setattr(g.anygrasp, "get_grasp", lambda *a, **k: (seen.append(os.getcwd()), real(*a, **k))[1])
    g.propose(s.rgbd, s.mask, top_k=2)
    assert seen and all(os.path.samefile(p, STANDIN) for p in seen)


# --------------------------------------------------------------------------- the virtual view is z-buffered


PLATE_LO, PLATE_HI = np.array([-0.06, -0.06, 0.15]), np.array([0.06, 0.06, 0.16])


def _side_scene_under_a_shelf():
    """A camera 40 cm in front and 35 cm up sees a 12 x 12 cm shelf plate 15-16 cm above the table
    (its top and front) and, through the gap under it, a 6 cm cube on the table. From straight
    above, the plate hides the cube and the table beneath it."""
    from d2f_conformance.scenes import look_at
    W, H = 160, 120
    cam = Camera(K=pinhole(W, H, 60.0), T_world_cam=look_at((0.0, -0.4, 0.35), (0.0, 0.0, 0.03)), width=W, height=H)
    xs, ys = np.meshgrid(np.arange(W, dtype=float), np.arange(H, dtype=float))
    d_cam = np.stack([(xs - cam.K[0, 2]) / cam.K[0, 0], (ys - cam.K[1, 2]) / cam.K[1, 1], np.ones_like(xs)], -1)
    o, d = cam.T_world_cam[:3, 3], d_cam @ cam.T_world_cam[:3, :3].T

    def slab(lo, hi):
        with np.errstate(divide="ignore", invalid="ignore"):
            t1, t2 = (np.asarray(lo) - o) / d, (np.asarray(hi) - o) / d
        tmin, tmax = np.nanmax(np.minimum(t1, t2), -1), np.nanmin(np.maximum(t1, t2), -1)
        return np.where((tmax >= tmin) & (tmin > 0), tmin, np.inf)

    cube = slab((-0.03, -0.03, 0.0), (0.03, 0.03, 0.06))
    plate = slab(PLATE_LO, PLATE_HI)
    with np.errstate(divide="ignore", invalid="ignore"):
        tt = -o[2] / d[..., 2]
    table = np.where(np.isfinite(tt) & (tt > 0), tt, np.inf)
    t = np.minimum(np.minimum(cube, plate), table)
    depth = np.where(np.isfinite(t), t, 0.0).astype(np.float32)
    mask = np.isfinite(cube) & (cube <= np.minimum(plate, table))
    rgb = np.where(mask[..., None], [200, 120, 60], [90, 90, 90]).astype(np.uint8)
    return RGBD(rgb=rgb, depth=depth, camera=cam), mask


def _segment_hits_box(eye, P, lo, hi):
    """Whether the segment from eye to each point P passes through the box [lo, hi] before P."""
    d = P - eye
    with np.errstate(divide="ignore", invalid="ignore"):
        t1, t2 = (lo - eye) / d, (hi - eye) / d
    tmin, tmax = np.nanmax(np.minimum(t1, t2), -1), np.nanmin(np.maximum(t1, t2), -1)
    return (tmax >= tmin) & (tmax > 0) & (tmin < 0.999)


def test_virtual_top_down_view_culls_points_under_an_occluder():
    rgbd, mask = _side_scene_under_a_shelf()
    assert mask.sum() > 200
    fake = FakeAnyGrasp([[], []])
    with standin_modules(STANDIN):
        g = ag.AnyGraspGrasper(fake, ag.AnyGraspOptions(top_down_height=0.5))
        g.propose(rgbd, mask, top_k=4)
    obj_w, _ = rgbd.point_cloud(mask)
    T_top = ag.top_down_camera(obj_w, 0.5)
    Tc = rgbd.camera.T_world_cam
    cam_pts = fake.calls[0]["points"].astype(np.float64) @ Tc[:3, :3].T + Tc[:3, 3]
    top_pts = fake.calls[1]["points"].astype(np.float64) @ T_top[:3, :3].T + T_top[:3, 3]
    # the top-down view's points are the camera view's (same context cloud), minus the culled ones
    top_keys = {tuple(p) for p in np.round(top_pts, 5)}
    kept = np.array([tuple(p) in top_keys for p in np.round(cam_pts, 5)])
    assert kept.sum() == len(top_pts)
    # ground truth by ray casting from the virtual camera's centre: below the plate, a point is
    # hidden when the segment to it crosses the plate (shrunk by 1 cm: surely hidden) and visible
    # when it misses the plate grown by 1 cm (surely visible); the band in between is pixel-size
    eye = T_top[:3, 3]
    below = cam_pts[:, 2] < 0.14
    hidden = below & _segment_hits_box(eye, cam_pts, PLATE_LO + 0.01, PLATE_HI - 0.01)
    visible = below & ~_segment_hits_box(eye, cam_pts, PLATE_LO - 0.01, PLATE_HI + 0.01)
    cube = below & (np.abs(cam_pts[:, 0]) < 0.031) & (np.abs(cam_pts[:, 1]) < 0.031) & (cam_pts[:, 2] > 0.001)
    assert hidden.sum() > 500 and cube.sum() > 200 and (cube <= hidden).all()  # the cube is in the plate's shadow
    assert visible.sum() > 100                                                 # table beyond the shadow
    assert not kept[hidden].any()
    assert kept[visible].all()
    # the plate's top is kept whole
    plate_top = np.abs(cam_pts[:, 2] - 0.16) < 0.002
    assert plate_top.sum() > 50 and kept[plate_top].all()
    # the same z-buffer as the antipodal grasper's virtual view: one winner per pixel, nearest first
    from d2f_core.geometry import zbuffer
    K = np.array([[10.0, 0, 1.0], [0, 10.0, 1.0], [0, 0, 1]])
    pts = np.array([[0.0, 0.0, 2.0], [0.0, 0.0, 1.0], [0.0, 0.0, 1.0], [0.1, 0.0, 1.0]])
    win = zbuffer(pts, K, (3, 3), splat=0)
    assert win[1, 1] == 1 and win[1, 2] == 3 and (win == 0).sum() == 0 and (win == -1).sum() == 7
