"""Data contracts: validation messages, camera geometry, versioned flow files."""

import json

import numpy as np
import pytest

from d2f_core import (RGBD, Camera, DataError, Grasp, HandTrack, JointTrajectory, ObjectFlow, Task,
                      Tracks2D, Video)
from d2f_core.types import FLOW_FORMAT_VERSION
from d2f_conformance.scenes import look_at, pinhole


def make_camera(w=64, h=48):
    return Camera(K=pinhole(w, h), T_world_cam=look_at((0.1, -0.3, 0.5), (0, 0, 0)), width=w, height=h)


def test_project_backproject_round_trip_and_known_point():
    cam = make_camera()
    rng = np.random.default_rng(0)
    pts = rng.uniform(-0.1, 0.1, size=(50, 3))
    uv, z = cam.project(pts)
    back = cam.backproject(uv, z)
    np.testing.assert_allclose(back, pts, atol=1e-9)
    # the look-at target projects to the principal point
    uv0, z0 = cam.project(np.zeros(3))
    np.testing.assert_allclose(uv0, cam.K[:2, 2], atol=1e-9)
    assert z0 == pytest.approx(np.linalg.norm([0.1, -0.3, 0.5]))


def test_camera_resized_keeps_rays():
    cam = make_camera(64, 48)
    big = cam.resized(128, 96)
    p = np.array([0.03, -0.02, 0.01])
    uv, _ = cam.project(p)
    uv2, _ = big.project(p)
    # pixel-centre convention: x' = (x + 0.5) * 2 - 0.5
    np.testing.assert_allclose(uv2, (uv + 0.5) * 2 - 0.5, atol=1e-9)
    crop = cam.cropped(10, 5, 40, 30)
    np.testing.assert_allclose(crop.project(p)[0], uv - [10, 5], atol=1e-9)


def test_camera_reads_official_calibration_json(tmp_path):
    cam = make_camera()
    path = tmp_path / "camera_calibration_info.json"
    path.write_text(json.dumps({"cam": {"intrinsics": cam.K.tolist(), "extrinsics": cam.T_world_cam.tolist()}}))
    got = Camera.from_json(path)
    np.testing.assert_allclose(got.K, cam.K)
    np.testing.assert_allclose(got.T_world_cam, cam.T_world_cam)
    assert (got.width, got.height) == (64, 48)  # estimated from the principal point
    assert got.name == "cam"
    # our own layout round-trips exactly
    assert Camera.from_json(cam.to_json()).to_json() == cam.to_json()


def test_camera_json_errors_name_the_problem(tmp_path):
    cam = make_camera()
    two = {"a": {"intrinsics": cam.K.tolist(), "extrinsics": cam.T_world_cam.tolist()},
           "b": {"intrinsics": cam.K.tolist(), "extrinsics": cam.T_world_cam.tolist()}}
    with pytest.raises(DataError, match="choose one by name"):
        Camera.from_json(two)
    assert Camera.from_json(two, "b").name == "b"
    with pytest.raises(DataError, match="no camera named 'c'"):
        Camera.from_json(two, "c")
    with pytest.raises(DataError, match="not invertible"):
        Camera.from_json({"cam": {"intrinsics": np.zeros((3, 3)).tolist(), "extrinsics": np.eye(4).tolist()}})
    bad = np.eye(4)
    bad[:3, :3] *= 2
    with pytest.raises(DataError, match="proper rotation"):
        Camera(K=cam.K, T_world_cam=bad, width=64, height=48)
    with pytest.raises(DataError, match="not found"):
        Camera.from_json(tmp_path / "missing.json")


def test_video_rejects_float_and_bgr_shapes_with_fix():
    f = np.zeros((3, 8, 8, 3), np.float32) + 0.5
    with pytest.raises(DataError, match="multiply by 255"):
        Video(frames=f)
    with pytest.raises(DataError, match="channels-first"):
        Video(frames=np.zeros((3, 3, 8, 8), np.uint8))
    with pytest.raises(DataError, match="at least 2 frames"):
        Video(frames=np.zeros((1, 8, 8, 3), np.uint8))
    v = Video(frames=np.zeros((2, 8, 8, 3), np.uint8))
    with pytest.raises(ValueError):
        v.frames[0, 0, 0, 0] = 1  # read-only: components cannot mutate shared data


def test_rgbd_checks_size_against_camera():
    cam = make_camera()
    with pytest.raises(DataError, match="Camera.resized"):
        RGBD(rgb=np.zeros((24, 32, 3), np.uint8), depth=np.zeros((24, 32), np.float32), camera=cam)
    rgbd = RGBD(rgb=np.zeros((48, 64, 3), np.uint8), depth=np.full((48, 64), 0.5, np.float32), camera=cam)
    pts, cols = rgbd.point_cloud()
    assert pts.shape == (48 * 64, 3) and cols.dtype == np.uint8
    # every back-projected point lies at camera depth 0.5
    _, z = cam.project(pts)
    np.testing.assert_allclose(z, 0.5, atol=1e-9)


def test_tracks_and_hands_validate_dtypes():
    with pytest.raises(DataError, match="dtype bool"):
        Tracks2D(xy=np.zeros((2, 3, 2), np.float32), visible=np.ones((2, 3), np.float32),
                 query_frame=np.zeros(3, np.int64))
    with pytest.raises(DataError, match=r"\[0, T\)"):
        Tracks2D(xy=np.zeros((2, 3, 2), np.float32), visible=np.ones((2, 3), bool),
                 query_frame=np.full(3, 5, np.int64))
    h = HandTrack(keypoints=np.full((4, 21, 2), np.nan, np.float32), present=np.zeros(4, bool))
    assert np.isnan(h.thumb_tip).all() and h.thumb_tip.shape == (4, 2)
    with pytest.raises(DataError, match="present must have finite"):
        HandTrack(keypoints=np.full((4, 21, 2), np.nan, np.float32), present=np.ones(4, bool))


def test_object_flow_save_load_round_trip(tmp_path):
    rng = np.random.default_rng(1)
    pts = rng.normal(size=(5, 7, 3)).astype(np.float32)
    vis = rng.random((5, 7)) > 0.3
    flow = ObjectFlow(points=pts, visible=vis, colors=rng.integers(0, 255, (7, 3), dtype=np.uint8),
                      normals=np.tile(np.float32([0, 0, 1]), (7, 1)), fps=12.0, provenance={"video": "x"})
    path = flow.save(tmp_path / "flow.npz")
    got = ObjectFlow.load(path)
    np.testing.assert_array_equal(got.points, pts)
    np.testing.assert_array_equal(got.visible, vis)
    np.testing.assert_array_equal(got.colors, flow.colors)
    np.testing.assert_array_equal(got.normals, flow.normals)
    assert got.fps == 12.0 and got.provenance == {"video": "x"}
    # a name without .npz is written exactly there
    assert flow.save(tmp_path / "flowfile").exists()


def test_object_flow_load_rejects_other_version_and_bad_shapes(tmp_path):
    pts = np.zeros((3, 4, 3), np.float32)
    np.savez(tmp_path / "v2.npz", points=pts, visible=np.ones((3, 4), bool), format_version=np.int64(2))
    with pytest.raises(DataError, match=f"version 2.*reads version {FLOW_FORMAT_VERSION}"):
        ObjectFlow.load(tmp_path / "v2.npz")
    np.savez(tmp_path / "bad.npz", points=pts, visible=np.ones((3, 5), bool),
             format_version=np.int64(FLOW_FORMAT_VERSION))
    with pytest.raises(DataError, match="bad.npz.*ObjectFlow.visible.*expected shape 3x4"):
        ObjectFlow.load(tmp_path / "bad.npz")
    np.savez(tmp_path / "nover.npz", points=pts)
    with pytest.raises(DataError, match="no format_version"):
        ObjectFlow.load(tmp_path / "nover.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="not a readable"):
        ObjectFlow.load(tmp_path / "junk.npz")


def test_grasp_task_trajectory_validation():
    with pytest.raises(DataError, match="proper rotation"):
        Grasp(T_world_grasp=np.diag([1, 1, -1, 1.0]), width=0.02)
    with pytest.raises(DataError, match="width"):
        Grasp(T_world_grasp=np.eye(4), width=-0.01)
    with pytest.raises(DataError, match="Task.object"):
        Task(instruction="open the oven", object=" ")
    with pytest.raises(DataError, match="strictly increasing"):
        JointTrajectory(q=np.zeros((3, 2)), t=np.array([0, 1, 1.0]), gripper=np.zeros(3))
