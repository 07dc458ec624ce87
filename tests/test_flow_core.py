"""Core flow pieces against ground truth: alignment, sampling, lifting, grasp choice."""

import numpy as np
import pytest

from d2f_core import Grasp, HandTrack, ObjectFlow, Tracks2D
from d2f_core.flow.align import AlignmentError, apply_alignment, fit_scale_shift
from d2f_core.flow.lifting import lift_tracks
from d2f_core.flow.sampling import erode, farthest_point_sampling, sample_object_points
from d2f_core.grasp_choice import choose_grasp
from d2f_conformance.scenes import standard_scene


@pytest.fixture(scope="module")
def scene():
    return standard_scene()


@pytest.mark.parametrize("scale,shift", [(0.5, 0.1), (2.0, -0.3), (1.3, 0.0), (0.7, 0.2)])
def test_alignment_recovers_affine_with_noise_and_outliers(scene, scale, shift):
    rng = np.random.default_rng(0)
    d0 = scene.depth[0].astype(np.float64)
    est = (d0 - shift) / scale
    est = est * (1 + 0.01 * rng.standard_normal(est.shape))
    out = rng.random(est.shape) < 0.05
    est[out] *= 3.0  # 5 % gross outliers
    al = fit_scale_shift(est, d0)
    assert al.scale == pytest.approx(scale, rel=0.04)  # 1 % noise on a 12 cm depth range attenuates the slope slightly
    assert al.shift == pytest.approx(shift, abs=0.02)
    z = apply_alignment(est, al)
    assert np.median(np.abs(z[~out] - d0[~out])) < 0.004


def test_alignment_refuses_degenerate(scene):
    d0 = scene.depth[0]
    with pytest.raises(AlignmentError, match="only 0 pixels"):
        fit_scale_shift(np.zeros_like(d0), d0)
    with pytest.raises(AlignmentError, match="not positive"):
        fit_scale_shift(1.0 / d0, d0)  # inverse depth fits a negative scale
    with pytest.raises(AlignmentError, match="constant"):
        fit_scale_shift(np.ones_like(d0), d0)
    assert fit_scale_shift(np.ones_like(d0) * 2, np.ones_like(d0), mode="scale").scale == pytest.approx(0.5)


def test_sampling_and_fps(scene):
    m = np.zeros((10, 10), bool)
    m[2:8, 2:8] = True
    assert erode(m, 1).sum() == 16 and erode(m, 3).sum() == 0
    pts = np.array([[0, 0, 0], [0.001, 0, 0], [1, 0, 0], [0, 1, 0]], float)
    idx = farthest_point_sampling(pts, 3, seed=1)
    assert len(set(idx)) == 3 and {2, 3} <= set(idx)  # the two far points are always kept
    q, p3 = sample_object_points(scene.rgbd, scene.mask, 40, erode_px=1)
    assert q.shape == (40, 3) and np.all(q[:, 0] == 0)
    assert np.all(scene.mask[q[:, 2].astype(int), q[:, 1].astype(int)])
    np.testing.assert_allclose(p3[:, 2], 0.04, atol=1e-6)  # box top face is 4 cm above the table


def test_lifting_exact_tracks_recovers_true_flow(scene):
    # ground-truth tracks: project the true 3D flow
    uv, _ = scene.camera.project(scene.flow.points.astype(np.float64))
    keep = np.arange(0, scene.flow.num_points, 3)
    tracks = Tracks2D(xy=uv[:, keep].astype(np.float32), visible=np.ones((8, len(keep)), bool),
                      query_frame=np.zeros(len(keep), np.int64))
    flow = lift_tracks(tracks, scene.depth, scene.camera, max_relative_jump=None)
    err = np.linalg.norm(flow.points - scene.flow.points[:, keep], axis=2)[flow.visible]
    assert flow.visible.mean() > 0.8
    assert err.mean() < 0.002  # bilinear interpolation error only


def test_lifting_marks_outside_and_invalid_invisible(scene):
    xy = np.array([[[-5, 10], [20, 20], [10, 42]]] * 8, np.float32)
    depth = scene.depth.copy()
    depth[:, 20:22, 19:22] = 0
    tracks = Tracks2D(xy=xy, visible=np.ones((8, 3), bool), query_frame=np.zeros(3, np.int64))
    flow = lift_tracks(tracks, depth, scene.camera)
    assert not flow.visible[:, 0].any() and not flow.visible[:, 1].any() and flow.visible[:, 2].all()


def _grasp_at(p):
    T = np.eye(4)
    T[:3, 3] = p
    return Grasp(T_world_grasp=T, width=0.04, score=1.0)


def test_grasp_choice_thumb_then_fallback(scene):
    cam = scene.camera
    pts = np.zeros((4, 3, 3), np.float32)
    pts[:, 0] = [0.0, 0.0, 0.04]  # a static point
    for t in range(4):
        pts[t, 1:] = [[0.1 + 0.02 * t, 0.0, 0.04], [0.1 + 0.02 * t, 0.02, 0.04]]  # moving part
    flow = ObjectFlow(points=pts, visible=np.ones((4, 3), bool))
    cands = [_grasp_at([0.0, 0.0, 0.04]), _grasp_at([0.1, 0.01, 0.04]), _grasp_at([-0.05, 0.05, 0.04])]
    i, why = choose_grasp(cands, flow)
    assert i == 1 and "movable part" in why
    # a thumb 1 cm from candidate 2 at frame 1 wins over the movable-part heuristic
    depth = np.tile(scene.depth[:1], (4, 1, 1)).copy()
    thumb3d = np.array([-0.05, 0.05, 0.05])
    uv, z = cam.project(thumb3d)
    depth[1] = z  # the thumb's pixel depth in frame 1 (flat depth is enough here)
    kp = np.full((4, 21, 2), np.nan, np.float32)
    kp[1:, :] = uv.astype(np.float32)
    hands = HandTrack(keypoints=kp, present=np.array([False, True, True, True]))
    i, why = choose_grasp(cands, flow, hands=hands, depth=depth, camera=cam)
    assert i == 2 and "frame 1" in why
    # a thumb far from every candidate falls back to the movable part
    far = cam.project(np.array([0.3, -0.1, 0.0]))[0].astype(np.float32)
    kp[1:, :] = far
    i, why = choose_grasp(cands, flow, hands=HandTrack(keypoints=kp, present=hands.present),
                          depth=np.tile(scene.depth[:1], (4, 1, 1)), camera=cam)
    assert i == 1 and "no hand near a candidate" in why
