"""Flow extraction (issue 3) on synthetic sequences with known 3D motion.

Ground truth comes from d2f_conformance.synthetic: every surface point's world position in every
frame is exact. Trackers: a ground-truth tracker double (isolates lifting, alignment, resolution
and the movable filter) and the real Lucas-Kanade tracker (end to end).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from d2f_core import Manifest, ObjectFlow, Tracks2D, Video
from d2f_core.flow.extract import extract
from d2f_core.flow.scene import load_scene, write_scene
from d2f_core.registry import Registry
from d2f_conformance.synthetic import hinged_panel_sequence, rigid_box_sequence

pytest.importorskip("PIL")
pytest.importorskip("imageio_ffmpeg")


class GroundTruthTracker:
    """Tracks from the known geometry: project each query's true 3D point into every frame;
    visible where the rendered surface there is that point (occlusion-aware)."""

    name = "gt-tracker"
    capabilities = frozenset({"deterministic"})

    def __init__(self, seq, scale: float = 1.0) -> None:
        self.seq, self.scale = seq, scale

    def track(self, video: Video, queries: np.ndarray) -> Tracks2D:
        seq = self.seq
        xy0 = queries[:, 1:3].astype(np.float64) / self.scale
        pts, ok = seq.true_points(xy0)
        T, N = pts.shape[:2]
        xy = np.zeros((T, N, 2), np.float32)
        vis = np.zeros((T, N), bool)
        for t in range(T):
            cam = seq.cameras[t]
            uv, z = cam.project(pts[t])
            xy[t] = uv * self.scale
            xi, yi = np.rint(uv[:, 0]).astype(int), np.rint(uv[:, 1]).astype(int)
            inside = (xi >= 0) & (yi >= 0) & (xi < cam.width) & (yi < cam.height) & (z > 0)
            d = np.zeros(N)
            d[inside] = seq.depth[t, yi[inside], xi[inside]]
            vis[t] = ok & inside & (np.abs(d - z) < 0.01)
        return Tracks2D(xy=xy, visible=vis, query_frame=np.zeros(N, np.int64))


class PartSegmenter:
    """A point-prompt segmenter double: the union of the parts under positive points, minus negatives."""

    name = "part-seg"
    capabilities = frozenset({"point_prompts", "deterministic"})

    def __init__(self, seq) -> None:
        self.seq = seq
        self.calls: list[tuple] = []

    def segment(self, image, text, *, points=None, labels=None):
        self.calls.append((text, None if points is None else np.asarray(points).copy(),
                           None if labels is None else np.asarray(labels).copy()))
        pid = self.seq.part_id[0]
        if points is None:
            raise ValueError("part-seg needs point prompts in this test")
        xi, yi = np.rint(points[:, 0]).astype(int), np.rint(points[:, 1]).astype(int)
        votes = pid[yi, xi]
        keep = [p for p in set(votes[labels == 1].tolist()) - {-1}
                if (votes[labels == 1] == p).sum() > (votes[labels == 0] == p).sum()]
        return np.isin(pid, keep)


def registry_with(seq, *, scale: float = 1.0, segmenter=None) -> Registry:
    reg = Registry().discover()
    reg.add(Manifest(name="gt-tracker", kind="tracker", factory=lambda o: GroundTruthTracker(seq, scale)))
    if segmenter is not None:
        reg.add(Manifest(name="part-seg", kind="segmenter", factory=lambda o: segmenter))
    return reg


def make_scene(tmp: Path, seq, *, depth_frames=None, mask_parts=("box",), video_frames=None,
               instruction="move the box", obj="box") -> Path:
    video = Video(frames=seq.rgb if video_frames is None else video_frames, fps=8.0)
    return write_scene(tmp / "scene", seq.rgbd(0), instruction, obj, video=video,
                       depth_frames=seq.depth if depth_frames is None else depth_frames,
                       mask=seq.mask(*mask_parts))


def flow_error(flow: ObjectFlow, seq, queries_xy: np.ndarray) -> tuple[float, float]:
    """Mean and 95th percentile 3D error (m) of visible flow points against the truth."""
    truth, ok = seq.true_points(queries_xy)
    vis = flow.visible & ok[None]
    err = np.linalg.norm(flow.points - truth, axis=-1)[vis]
    return float(err.mean()), float(np.percentile(err, 95))


def _queries(run_dir: Path) -> np.ndarray:
    with np.load(run_dir / "tracks.npz") as z:
        return z["queries"][:, 1:3].astype(np.float64)


TRACKERS = ["gt-tracker", pytest.param("lucas-kanade", marks=pytest.mark.skipif(
    __import__("importlib").util.find_spec("cv2") is None, reason="lucas-kanade needs the cv extra"))]


@pytest.mark.parametrize("tracker", TRACKERS)
def test_rigid_box_exact_depth_sub_cm(tmp_path, tracker):
    # LK needs texture at a realistic resolution: 320x240 (the others run at 160x120)
    seq = rigid_box_sequence(num_frames=12) if tracker == "gt-tracker" else rigid_box_sequence(24, 320, 240)
    scene = make_scene(tmp_path, seq)
    res = extract(scene, tmp_path / "flow.npz", overrides=[f"tracker.plugin={tracker}", "flow.num_points=200"],
                  registry=registry_with(seq))
    flow = ObjectFlow.load(tmp_path / "flow.npz")
    assert flow.points.shape == (seq.num_frames, 200, 3) and flow.points.dtype == np.float32
    mean, p95 = flow_error(flow, seq, _queries(tmp_path / "flow_run"))
    assert mean < 0.01, mean
    if tracker == "gt-tracker":
        assert mean < 0.003  # exact depth and exact tracks: only bilinear depth sampling error remains
    assert flow.visible[0].mean() > 0.9 and flow.visible[-1].mean() > (0.5 if tracker == "gt-tracker" else 0.3)
    # the box really moved 0.12, 0.06, 0.05 m: the flow says so
    both = flow.visible[0] & flow.visible[-1]
    shift = (flow.points[-1][both] - flow.points[0][both]).mean(0)
    assert np.linalg.norm(shift - [0.12, 0.06, 0.05]) < 0.03
    q = json.loads((tmp_path / "flow.quality.json").read_text())
    assert q["camera_moving"] is False
    assert q["object_left_view"] is (q["visible_fraction_final"] < 0.5)
    assert q["rigidity"]["max_m"] < 0.01
    assert q["alignment"]["scale"] == pytest.approx(1.0, abs=1e-3)
    assert set(res["outputs"]) >= {"flow", "quality", "overlay", "plot3d"}
    kinds = {s["kind"]: s["plugin"] for s in res["stand_ins"]}
    assert kinds == {"video": "scene", "depth": "scene", "segmenter": "scene"}


@pytest.mark.parametrize("tracker", TRACKERS)
def test_affine_corrupted_depth_is_realigned(tmp_path, tracker):
    seq = rigid_box_sequence(num_frames=12) if tracker == "gt-tracker" else rigid_box_sequence(24, 320, 240)
    rng = np.random.default_rng(3)
    scale, shift = 1.7, -0.25  # unknown to the pipeline: est = (Z - shift) / scale, plus 1 % noise
    est = (seq.depth - shift) / scale
    est = est * (1 + 0.01 * rng.standard_normal(est.shape))
    est[seq.depth <= 0] = 0
    scene = make_scene(tmp_path, seq, depth_frames=est.astype(np.float32))
    extract(scene, tmp_path / "flow.npz", overrides=[f"tracker.plugin={tracker}", "flow.num_points=200"],
            registry=registry_with(seq))
    flow = ObjectFlow.load(tmp_path / "flow.npz")
    mean, _ = flow_error(flow, seq, _queries(tmp_path / "flow_run"))
    assert mean < 0.015, mean
    al = flow.provenance["alignment"]
    assert al["scale"] == pytest.approx(scale, rel=0.03)
    assert al["shift"] == pytest.approx(shift, abs=0.03)


def test_video_at_another_resolution_is_mapped_back(tmp_path):
    """A 'model' video at 2x width and 1.5x height (stretched, like diffusers' Wan): tracks in the
    model's pixels are brought back to camera pixels, K unchanged, flow still exact."""
    seq = rigid_box_sequence(num_frames=10)
    from d2f_core.flow.resolution import fit_image, framing_for
    fr = framing_for(seq.camera.width, seq.camera.height, 2 * seq.camera.width, int(1.5 * seq.camera.height))
    big = np.stack([fit_image(f, fr) for f in seq.rgb])
    scene = make_scene(tmp_path, seq, video_frames=big)
    res = extract(scene, tmp_path / "flow.npz", overrides=["tracker.plugin=gt-tracker", "flow.num_points=150"],
                  registry=registry_with(seq))
    flow = ObjectFlow.load(tmp_path / "flow.npz")
    mean, _ = flow_error(flow, seq, _queries(tmp_path / "flow_run"))
    assert mean < 0.01, mean
    assert res["video_framing"]["native_size"] == [2 * seq.camera.width, int(1.5 * seq.camera.height)]
    assert any("video_framing" in w for w in res.get("warnings", []))
    from d2f_core.artifacts import load_frames
    frames = load_frames(tmp_path / "flow_run" / "video.npz")
    assert frames.shape[1:3] == (seq.camera.height, seq.camera.width)
    # the mapped-back video matches the camera-resolution truth closely (interpolation only)
    assert np.abs(frames.astype(float) - seq.rgb.astype(float)).mean() < 12


@pytest.mark.parametrize("tracker", TRACKERS)
def test_movable_filter_keeps_the_panel_and_drops_the_frame(tmp_path, tracker):
    seq = hinged_panel_sequence(num_frames=12, width=320, height=240)
    scene = make_scene(tmp_path, seq, mask_parts=("body", "door"), instruction="open the oven", obj="oven")
    extract(scene, tmp_path / "flow.npz", overrides=[f"tracker.plugin={tracker}", "flow.num_points=300"],
            registry=registry_with(seq))
    q = json.loads((tmp_path / "flow.quality.json").read_text())
    assert q["movable"]["method"] == "filter"
    assert q["movable"]["moving"] > 30 and q["movable"]["static"] > 30
    xy = _queries(tmp_path / "flow_run")
    pid = seq.part_id[0, np.rint(xy[:, 1]).astype(int), np.rint(xy[:, 0]).astype(int)]
    door = seq.parts.index("door")
    assert (pid == door).mean() > (0.97 if tracker == "gt-tracker" else 0.9)  # kept: the panel; dropped: the frame
    flow = ObjectFlow.load(tmp_path / "flow.npz")
    assert flow_error(flow, seq, xy)[0] < 0.01


def test_movable_part_reprompt_resamples_in_the_part(tmp_path):
    seq = hinged_panel_sequence(num_frames=12, width=320, height=240)
    seg = PartSegmenter(seq)
    scene = make_scene(tmp_path, seq, mask_parts=("body", "door"), instruction="open the oven", obj="oven")
    extract(scene, tmp_path / "flow.npz", overrides=["tracker.plugin=gt-tracker", "segmenter.plugin=part-seg",
                                                     "flow.num_points=300"],
            registry=registry_with(seq, segmenter=seg))
    q = json.loads((tmp_path / "flow.quality.json").read_text())
    assert q["movable"]["method"] == "reprompt"
    text, pts, labels = seg.calls[-1]
    assert text == "oven" and set(labels.tolist()) == {0, 1}
    pid = seq.part_id[0, np.rint(pts[:, 1]).astype(int), np.rint(pts[:, 0]).astype(int)]
    door = seq.parts.index("door")
    assert (pid[labels == 1] == door).all() and (pid[labels == 0] != door).mean() >= 0.6
    xy = _queries(tmp_path / "flow_run")
    assert len(xy) == 300  # resampled: all points in the part, not a filtered subset
    qp = seq.part_id[0, np.rint(xy[:, 1]).astype(int), np.rint(xy[:, 0]).astype(int)]
    assert (qp == door).mean() > 0.97


def test_quality_flags_camera_motion(tmp_path):
    seq = rigid_box_sequence(num_frames=12, camera_shake_px=1.5)
    scene = make_scene(tmp_path, seq)
    res = extract(scene, tmp_path / "flow.npz", overrides=["tracker.plugin=gt-tracker", "flow.num_points=100"],
                  registry=registry_with(seq))
    q = json.loads((tmp_path / "flow.quality.json").read_text())
    assert q["camera_moving"] is True and q["camera_motion"]["max_px"] > 5
    assert any("camera moves" in w for w in q["warnings"])
    assert any("camera moves" in w for w in res["warnings"])


def test_quality_still_camera_not_flagged_and_leaving_view_flagged(tmp_path):
    seq = rigid_box_sequence(num_frames=12, leave_view=True)
    scene = make_scene(tmp_path, seq)
    extract(scene, tmp_path / "flow.npz", overrides=["tracker.plugin=gt-tracker", "flow.num_points=100"],
            registry=registry_with(seq))
    q = json.loads((tmp_path / "flow.quality.json").read_text())
    assert q["object_left_view"] is True and q["visible_fraction_final"] < 0.2
    assert q["camera_moving"] is False
    assert q["lost_for_good"] > 50


def test_scene_round_trip(tmp_path):
    seq = rigid_box_sequence(num_frames=6, width=96, height=72)
    scene = load_scene(make_scene(tmp_path, seq))
    assert scene.instruction == "move the box" and scene.object_name == "box"
    np.testing.assert_allclose(scene.rgbd.camera.K, seq.camera.K)
    np.testing.assert_allclose(scene.rgbd.camera.T_world_cam, seq.camera.T_world_cam)
    np.testing.assert_array_equal(scene.rgbd.depth, seq.depth[0])
    assert scene.video.num_frames == 6 and scene.mask.sum() == seq.mask("box").sum()
    gray = lambda a: a.astype(float) @ [0.299, 0.587, 0.114]  # noqa: E731
    # mp4 (yuv420p) is lossy: colour is subsampled, brightness kept closely
    assert np.abs(gray(scene.video.frames) - gray(seq.rgb)).mean() < 6


def test_rerun_recording_on_request(tmp_path):
    pytest.importorskip("rerun")
    seq = rigid_box_sequence(num_frames=6, width=96, height=72)
    scene = make_scene(tmp_path, seq)
    res = extract(scene, tmp_path / "flow.npz", overrides=["tracker.plugin=gt-tracker", "flow.num_points=50",
                                                            "flow.rerun=true"], registry=registry_with(seq))
    assert res["outputs"]["rerun"].endswith("flow.rrd")
    assert (tmp_path / "flow.rrd").stat().st_size > 5000  # 6 frames of points and images
