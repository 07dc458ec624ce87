"""Reference perception/grasp plugins: file video, file depth, file mask, no-hands, centroid
grasper, heuristic push dynamics. Every check compares against known ground truth."""

from __future__ import annotations


import numpy as np
import pytest

from d2f_core import RGBD, Camera, Video
from d2f_core.registry import OptionsError, get_registry
from d2f_conformance.scenes import CheckEnv, look_at, pinhole, standard_scene
from d2f_conformance.settings import settings_for

from d2f_plugins.video.file_video import DEFAULT_FPS, read_video, write_video


@pytest.fixture(scope="module")
def scene():
    return standard_scene()


def create(kind, name, options=None):
    return get_registry().create(kind, name, options)


# --------------------------------------------------------------------------- video helpers

T, H, W, SQ = 9, 48, 64, 8


def square_origin(t: int) -> tuple[int, int]:
    """Top-left pixel (x, y) of the bright square in frame t."""
    return 6 + 4 * t, 10 + 2 * t


def moving_square() -> tuple[np.ndarray, np.ndarray]:
    """uint8 T x H x W x 3 frames of a bright square on a dark, slightly coloured background, and
    the true square centre per frame (pixel-centre convention: centre of pixels x0..x0+SQ-1)."""
    frames = np.empty((T, H, W, 3), np.uint8)
    frames[...] = (30, 40, 50)
    centres = np.zeros((T, 2))
    for t in range(T):
        x0, y0 = square_origin(t)
        frames[t, y0:y0 + SQ, x0:x0 + SQ] = (230, 220, 210)
        centres[t] = (x0 + (SQ - 1) / 2, y0 + (SQ - 1) / 2)
    return frames, centres


def bright_centroid(frame: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(frame.astype(np.float64).mean(-1) > 130)
    return np.array([xs.mean(), ys.mean()])


def play(path, num_frames=T, **options):
    model = create("video", "file", {"path": str(path), **options})
    frames0 = read_video(path)[0][0]
    return model.generate(frames0, "push the box", num_frames=num_frames, seed=3)


# --------------------------------------------------------------------------- file video


@pytest.mark.parametrize("target", ["v.npy", "v.npz", "frames"])
def test_video_lossless_round_trip(tmp_path, target):
    frames, _ = moving_square()
    path = write_video(tmp_path / target, frames, fps=12.0)
    video = play(path)
    assert isinstance(video, Video)
    np.testing.assert_array_equal(video.frames, frames)
    # .npz stores fps; .npy and PNG folders fall back to the default
    assert video.fps == pytest.approx(12.0 if target.endswith(".npz") else DEFAULT_FPS)
    assert video.model == f"file:{path}"
    assert video.prompt == "push the box" and video.seed == 3


def test_video_png_folder_natural_order(tmp_path):
    frames, _ = moving_square()
    from PIL import Image
    folder = tmp_path / "unpadded"
    folder.mkdir()
    for i, f in enumerate(frames):  # frame_2 must come before frame_10
        Image.fromarray(f).save(folder / f"frame_{i}.png")
    (folder / "notes.txt").write_text("ignored")
    np.testing.assert_array_equal(play(folder).frames, frames)


def test_video_mp4_round_trip_keeps_motion(tmp_path):
    frames, centres = moving_square()
    path = write_video(tmp_path / "v.mp4", frames, fps=8.0)
    video = play(path)
    assert video.frames.shape == (T, H, W, 3) and video.frames.dtype == np.uint8
    assert video.fps == pytest.approx(8.0)
    err = np.abs(video.frames.astype(np.int16) - frames.astype(np.int16))
    assert err.mean() < 3.0, f"mp4 too lossy: mean abs error {err.mean():.2f}"
    for t in range(T):
        c = bright_centroid(video.frames[t])
        assert np.all(np.abs(c - centres[t]) <= 1.0), f"frame {t}: centroid {c}, truth {centres[t]}"


def test_video_mp4_odd_size_kept(tmp_path):
    frames, _ = moving_square()
    odd = np.ascontiguousarray(frames[:, :47, :63])
    got, fps = read_video(write_video(tmp_path / "odd.mp4", odd, fps=10.0))
    assert got.shape == odd.shape and fps == pytest.approx(10.0)
    assert np.abs(got.astype(np.int16) - odd).mean() < 3.0


def test_video_gif_round_trip_with_repeated_frames(tmp_path):
    frames, _ = moving_square()
    frames[1] = frames[0]  # GIF writers merge identical consecutive frames; reading expands them
    frames[2] = frames[0]
    path = write_video(tmp_path / "v.gif", frames, fps=10.0)
    video = play(path)
    np.testing.assert_array_equal(video.frames, frames)  # 2 colours: palette is exact
    assert video.fps == pytest.approx(10.0)


def test_video_subsampling_keeps_first_and_last(tmp_path):
    frames, _ = moving_square()  # 9 frames
    path = write_video(tmp_path / "v.npz", frames, fps=8.0)
    v5 = play(path, num_frames=5)
    np.testing.assert_array_equal(v5.frames, frames[[0, 2, 4, 6, 8]])
    assert v5.fps == pytest.approx(4.0)  # same 1 s duration with half the frames
    v3 = play(path, num_frames=3)
    np.testing.assert_array_equal(v3.frames, frames[[0, 4, 8]])
    v_more = play(path, num_frames=49)  # more than the file holds: all of them
    np.testing.assert_array_equal(v_more.frames, frames)
    assert v_more.fps == pytest.approx(8.0)
    ten = np.repeat(frames[:1], 10, axis=0).copy()
    ten[:, 0, 0, 0] = np.arange(10)  # frame index in a pixel
    v4 = play(write_video(tmp_path / "ten.npy", ten), num_frames=4)
    assert v4.frames[:, 0, 0, 0].tolist() == [0, 3, 6, 9]


def test_video_gray_and_rgba_become_rgb(tmp_path):
    frames, _ = moving_square()
    gray = frames[..., 0].copy()
    np.save(tmp_path / "gray.npy", gray)
    got = play(tmp_path / "gray.npy").frames
    assert got.shape == (T, H, W, 3)
    for c in range(3):
        np.testing.assert_array_equal(got[..., c], gray)
    rgba = np.concatenate([frames, np.full((T, H, W, 1), 77, np.uint8)], -1)
    np.save(tmp_path / "rgba.npy", rgba)
    np.testing.assert_array_equal(play(tmp_path / "rgba.npy").frames, frames)


def test_video_errors(tmp_path):
    frames, _ = moving_square()
    missing = tmp_path / "nope.mp4"
    with pytest.raises(ValueError, match="nope.mp4") as e:
        create("video", "file", {"path": str(missing)})
    assert "\n" not in str(e.value)
    path = write_video(tmp_path / "v.npy", frames)
    model = create("video", "file", {"path": str(path)})
    with pytest.raises(ValueError, match="end_frame_conditioning"):
        model.generate(frames[0], "x", last_image=frames[-1])
    with pytest.raises(ValueError, match="image"):
        model.generate(frames[0].astype(np.float32) / 255, "x")
    with pytest.raises(ValueError, match="num_frames"):
        model.generate(frames[0], "x", num_frames=1)
    np.save(tmp_path / "float.npy", frames.astype(np.float32) / 255)
    with pytest.raises(ValueError, match="uint8"):
        play(tmp_path / "float.npy")
    with pytest.raises(ValueError, match="unsupported"):
        write_video(tmp_path / "v.xyz", frames)


def test_video_input_not_mutated_and_output_independent(tmp_path):
    frames, _ = moving_square()
    model = create("video", "file", {"path": str(write_video(tmp_path / "v.npy", frames))})
    image = frames[0].copy()
    a = model.generate(image, "x", num_frames=T)
    np.testing.assert_array_equal(image, frames[0])
    b = model.generate(image, "x", num_frames=T)
    np.testing.assert_array_equal(a.frames, b.frames)  # deterministic


# --------------------------------------------------------------------------- file depth


def test_depth_npy_round_trip(tmp_path, scene):
    np.save(tmp_path / "d.npy", scene.depth)
    dv = create("depth", "file", {"path": str(tmp_path / "d.npy"), "metric": True}).estimate(scene.video)
    assert dv.depth.dtype == np.float32 and dv.metric is True
    np.testing.assert_array_equal(dv.depth, scene.depth)
    assert dv.model == f"file:{tmp_path / 'd.npy'}"
    dv_rel = create("depth", "file", {"path": str(tmp_path / "d.npy")}).estimate(scene.video)
    assert dv_rel.metric is False


def test_depth_npz_keys(tmp_path, scene):
    rel = (2.0 * scene.depth + 0.5).astype(np.float64)
    np.savez(tmp_path / "named.npz", depth=rel, other=np.zeros(3))
    np.savez(tmp_path / "only.npz", disparity=rel)
    np.savez(tmp_path / "ambiguous.npz", a=rel, b=rel)
    for name in ("named.npz", "only.npz"):
        dv = create("depth", "file", {"path": str(tmp_path / name)}).estimate(scene.video)
        np.testing.assert_allclose(dv.depth, rel.astype(np.float32))
    with pytest.raises(ValueError, match="'depth'"):
        create("depth", "file", {"path": str(tmp_path / "ambiguous.npz")}).estimate(scene.video)


def test_depth_invalid_values_become_zero(tmp_path, scene):
    d = scene.depth.copy()
    d[0, 0, 0], d[1, 2, 3], d[2, 4, 5], d[3, 6, 7] = np.nan, np.inf, -1.0, 0.0
    np.save(tmp_path / "d.npy", d)
    dv = create("depth", "file", {"path": str(tmp_path / "d.npy")}).estimate(scene.video)
    assert dv.depth[0, 0, 0] == 0 and dv.depth[1, 2, 3] == 0 and dv.depth[2, 4, 5] == 0
    assert not dv.valid[3, 6, 7]
    assert dv.depth[0, 10, 10] == scene.depth[0, 10, 10]


def test_depth_shape_mismatch_names_file_and_shapes(tmp_path, scene):
    np.save(tmp_path / "short.npy", scene.depth[:5])
    est = create("depth", "file", {"path": str(tmp_path / "short.npy")})
    with pytest.raises(ValueError) as e:
        est.estimate(scene.video)
    msg = str(e.value)
    assert "short.npy" in msg and "5x48x64" in msg and "8x48x64" in msg
    with pytest.raises(ValueError, match="not found.*missing.npy"):
        create("depth", "file", {"path": str(tmp_path / "missing.npy")})


def test_depth_pt(tmp_path, scene):
    try:
        import torch
    except ImportError:
        (tmp_path / "d.pt").write_bytes(b"not really")
        est = create("depth", "file", {"path": str(tmp_path / "d.pt")})
        with pytest.raises(ValueError, match="pip install torch"):
            est.estimate(scene.video)
        return
    torch.save(torch.from_numpy(scene.depth.copy()), tmp_path / "d.pt")
    dv = create("depth", "file", {"path": str(tmp_path / "d.pt")}).estimate(scene.video)
    np.testing.assert_array_equal(dv.depth, scene.depth)


# --------------------------------------------------------------------------- file mask


def _save_png(path, array):
    from PIL import Image
    Image.fromarray(array).save(path)
    return path


def test_mask_round_trip(tmp_path, scene):
    path = _save_png(tmp_path / "m.png", scene.mask.astype(np.uint8) * 255)
    seg = create("segmenter", "file", {"path": str(path)})
    mask = seg.segment(scene.rgbd.rgb, "box")
    assert mask.dtype == np.bool_
    np.testing.assert_array_equal(mask, scene.mask)
    mask[:] = False  # the caller owns its copy
    np.testing.assert_array_equal(seg.segment(scene.rgbd.rgb, "box"), scene.mask)


def test_mask_colour_and_alpha(tmp_path, scene):
    rgb = np.zeros((H, W, 3), np.uint8)
    rgb[scene.mask] = (0, 0, 9)  # any nonzero channel is object
    np.testing.assert_array_equal(read_file_mask(_save_png(tmp_path / "rgb.png", rgb), scene), scene.mask)
    rgba = np.full((H, W, 4), 255, np.uint8)
    rgba[..., 3] = np.where(scene.mask, 255, 0)  # transparent = background
    np.testing.assert_array_equal(read_file_mask(_save_png(tmp_path / "rgba.png", rgba), scene), scene.mask)


def read_file_mask(path, scene):
    return create("segmenter", "file", {"path": str(path)}).segment(scene.rgbd.rgb, "box")


def test_mask_errors(tmp_path, scene):
    small = _save_png(tmp_path / "small.png", np.full((24, 32), 255, np.uint8))
    with pytest.raises(ValueError) as e:
        read_file_mask(small, scene)
    msg = str(e.value)
    assert "small.png" in msg and "32x24" in msg and "64x48" in msg and "resize" in msg
    empty = _save_png(tmp_path / "empty.png", np.zeros((H, W), np.uint8))
    with pytest.raises(ValueError, match="empty"):
        read_file_mask(empty, scene)
    good = _save_png(tmp_path / "good.png", scene.mask.astype(np.uint8) * 255)
    seg = create("segmenter", "file", {"path": str(good)})
    with pytest.raises(ValueError, match="point_prompts"):
        seg.segment(scene.rgbd.rgb, "box", points=np.array([[3.0, 4.0]]), labels=np.array([1]))
    with pytest.raises(ValueError, match="image"):
        seg.segment(scene.rgbd.rgb[..., 0], "box")
    with pytest.raises(ValueError, match="nope.png"):
        create("segmenter", "file", {"path": str(tmp_path / "nope.png")})


# --------------------------------------------------------------------------- no hands


def test_no_hands(scene):
    det = create("hand", "no-hands")
    track = det.detect(scene.video)
    assert track.keypoints.shape == (8, 21, 2) and track.keypoints.dtype == np.float32
    assert np.all(np.isnan(track.keypoints)) and np.all(np.isnan(track.thumb_tip))
    assert track.present.shape == (8,) and not track.present.any()
    with pytest.raises(ValueError, match="video"):
        det.detect(scene.video.frames)


# --------------------------------------------------------------------------- centroid grasper


def test_centroid_grasp_on_conformance_box(scene):
    grasps = create("grasper", "centroid").propose(scene.rgbd, scene.mask, top_k=5)
    assert len(grasps) == 1
    g = grasps[0]
    box = scene.poses[0]  # box 0.08 x 0.06 x 0.04 m, yaw 0: minor side along world y
    assert np.linalg.norm(g.position[:2] - [box.x, box.y]) < 0.005
    assert g.width == pytest.approx(0.06 + 0.01, abs=0.01)
    R = g.T_world_grasp[:3, :3]
    np.testing.assert_allclose(R[:, 2], [0, 0, -1], atol=1e-9)  # approach points down
    assert abs(R[1, 0]) > 0.99  # closing axis along the box's minor side (world y)
    assert g.position[2] == pytest.approx(0.04, abs=1e-4)  # only the top face is seen: clipped to it


def top_down_camera(width=120, height=90, z=0.3) -> Camera:
    return Camera(K=pinhole(width, height, 60.0), T_world_cam=look_at((0, 0, z), (0, 0, 0)),
                  width=width, height=height)


def render_slabs(cam: Camera, slabs) -> RGBD:
    """Depth of stacked horizontal rectangles (cx, cy, yaw, sx, sy, top_z), highest first,
    seen by a camera looking straight down; the table (z = 0) elsewhere. Returns (RGBD, mask)."""
    ys, xs = np.mgrid[0:cam.height, 0:cam.width].astype(np.float64)
    d = np.stack([(xs - cam.K[0, 2]) / cam.K[0, 0], (ys - cam.K[1, 2]) / cam.K[1, 1], np.ones_like(xs)], -1)
    d = d @ cam.T_world_cam[:3, :3].T
    o = cam.T_world_cam[:3, 3]
    depth = (0.0 - o[2]) / d[..., 2]  # camera z (d has camera-z 1) of the table hit
    mask = np.zeros(xs.shape, bool)
    for cx, cy, yaw, sx, sy, h in sorted(slabs, key=lambda s: -s[5]):
        t = (h - o[2]) / d[..., 2]
        p = o + t[..., None] * d
        c, s = np.cos(yaw), np.sin(yaw)
        lx = c * (p[..., 0] - cx) + s * (p[..., 1] - cy)
        ly = -s * (p[..., 0] - cx) + c * (p[..., 1] - cy)
        hit = ~mask & (np.abs(lx) <= sx / 2) & (np.abs(ly) <= sy / 2)
        depth = np.where(hit, t, depth)
        mask |= hit
    rgb = np.where(mask[..., None], 200, 60).astype(np.uint8).repeat(3, -1)
    return RGBD(rgb=rgb, depth=depth.astype(np.float32), camera=cam), mask


def test_centroid_grasp_rotated_box_axis_width_height():
    yaw = np.deg2rad(30.0)
    rgbd, mask = render_slabs(top_down_camera(), [(0.02, -0.01, yaw, 0.07, 0.03, 0.05)])
    g = create("grasper", "centroid", {"margin": 0.005}).propose(rgbd, mask)[0]
    assert np.linalg.norm(g.position[:2] - [0.02, -0.01]) < 0.002
    minor = np.array([-np.sin(yaw), np.cos(yaw), 0.0])
    x_axis = g.T_world_grasp[:3, 0]
    assert abs(x_axis @ minor) > 0.995
    assert x_axis[0] >= 0  # deterministic sign
    # oblique edges: the pixel-footprint correction errs wide (the safe side), by < 2 pixels (6 mm)
    assert 0.03 + 0.005 - 0.001 <= g.width <= 0.03 + 0.005 + 0.006
    assert np.linalg.det(g.T_world_grasp[:3, :3]) == pytest.approx(1.0)
    assert g.position[2] == pytest.approx(0.05, abs=1e-4)


def test_centroid_grasp_height_below_top_and_clipping():
    # a step: upper slab (top 0.05) over most of the object, lower ledge (top 0.02) at one end
    slabs = [(0.0, 0.0, 0.0, 0.05, 0.04, 0.05), (0.035, 0.0, 0.0, 0.02, 0.04, 0.02)]
    rgbd, mask = render_slabs(top_down_camera(), slabs)
    g = create("grasper", "centroid").propose(rgbd, mask)[0]
    assert g.position[2] == pytest.approx(0.05 - 0.01, abs=1e-4)
    deep = create("grasper", "centroid", {"depth_below_top": 0.2}).propose(rgbd, mask)[0]
    assert deep.position[2] == pytest.approx(0.02, abs=1e-4)  # clipped to the lowest object point
    # union spans x in [-0.025, 0.045] (0.07) by y 0.04: minor axis is y
    assert abs(g.T_world_grasp[1, 0]) > 0.99
    assert g.width == pytest.approx(0.04 + 0.01, abs=0.004)


def test_centroid_grasp_errors(scene):
    grasper = create("grasper", "centroid")
    with pytest.raises(ValueError, match="max_width"):
        create("grasper", "centroid", {"max_width": 0.05}).propose(scene.rgbd, scene.mask)
    with pytest.raises(ValueError, match="empty"):
        grasper.propose(scene.rgbd, np.zeros_like(scene.mask))
    no_depth = RGBD(rgb=scene.rgbd.rgb, depth=np.where(scene.mask, 0, scene.rgbd.depth).astype(np.float32),
                    camera=scene.camera)
    with pytest.raises(ValueError, match="valid depth"):
        grasper.propose(no_depth, scene.mask)
    with pytest.raises(ValueError, match="mask"):
        grasper.propose(scene.rgbd, scene.mask.astype(np.uint8))
    with pytest.raises(ValueError, match="top_k"):
        grasper.propose(scene.rgbd, scene.mask, top_k=0)


# --------------------------------------------------------------------------- heuristic dynamics


def test_heuristic_translates_exactly():
    rng = np.random.default_rng(0)
    pts = rng.uniform(-0.1, 0.1, (50, 3)).astype(np.float32)
    actions = rng.uniform(-0.05, 0.05, (7, 4))
    dyn = create("dynamics", "heuristic")
    assert dyn.action_dim == 4 and len(dyn.action_names) == 4
    pts_before, act_before = pts.copy(), actions.copy()
    out = dyn.predict(pts, actions)
    assert out.shape == (7, 50, 3) and out.dtype == np.float32
    for b in range(7):
        want = pts.astype(np.float64) + [actions[b, 2], actions[b, 3], 0.0]
        np.testing.assert_allclose(out[b], want, atol=1e-7)
        np.testing.assert_array_equal(out[b, :, 2], pts[:, 2])  # z unchanged
    np.testing.assert_array_equal(pts, pts_before)
    np.testing.assert_array_equal(actions, act_before)


def test_heuristic_contact_radius():
    pts = np.array([[0.0, 0.0, 0.02], [0.01, 0.0, 0.02]], np.float32)
    actions = np.array([[0.025, 0.0, 0.03, 0.0],   # 0.015 m from the nearest particle: pushes
                        [0.10, 0.0, 0.03, 0.0],    # 0.09 m away: misses
                        [0.0, 0.021, 0.0, -0.02]])  # 0.021 m: just misses
    out = create("dynamics", "heuristic", {"contact_radius": 0.02}).predict(pts, actions)
    np.testing.assert_allclose(out[0], pts + [0.03, 0.0, 0.0], atol=1e-7)
    np.testing.assert_array_equal(out[1], pts)
    np.testing.assert_array_equal(out[2], pts)
    free = create("dynamics", "heuristic").predict(pts, actions)  # no radius: every push moves it
    np.testing.assert_allclose(free[1], pts + [0.03, 0.0, 0.0], atol=1e-7)


def test_heuristic_validates_shapes():
    dyn = create("dynamics", "heuristic")
    pts = np.zeros((3, 3), np.float32)
    with pytest.raises(ValueError, match=r"actions\[None\]"):
        dyn.predict(pts, np.zeros(4))
    with pytest.raises(ValueError, match="B x 4"):
        dyn.predict(pts, np.zeros((2, 3)))
    with pytest.raises(ValueError, match="points"):
        dyn.predict(np.zeros((3, 2), np.float32), np.zeros((1, 4)))


# --------------------------------------------------------------------------- registry integration


@pytest.mark.parametrize("kind,name,bad,valid", [
    ("video", "file", {"path": "x.mp4", "fsp": 8}, ["path", "fps"]),
    ("depth", "file", {"path": "d.npy", "metrc": True}, ["path", "metric"]),
    ("segmenter", "file", {"pth": "m.png"}, ["path"]),
    ("grasper", "centroid", {"margn": 0.01}, ["depth_below_top", "margin", "max_width"]),
    ("dynamics", "heuristic", {"contact_raduis": 0.02}, ["contact_radius"]),
    ("hand", "no-hands", {"threshold": 0.5}, []),
])
def test_option_typos_rejected(kind, name, bad, valid):
    with pytest.raises(OptionsError) as e:
        create(kind, name, bad)
    msg = str(e.value)
    for key in valid:
        assert key in msg
    if not valid:
        assert "takes no options" in msg


def test_manifests():
    reg = get_registry()
    want = {("video", "file"): {"stand_in", "deterministic"},
            ("depth", "file"): {"stand_in", "deterministic"},
            ("segmenter", "file"): {"stand_in", "deterministic"},
            ("hand", "no-hands"): {"deterministic"},
            ("grasper", "centroid"): {"top_down", "deterministic"},
            ("dynamics", "heuristic"): {"particles", "deterministic", "sample_actions"}}
    for (kind, name), caps in want.items():
        m = reg.get(kind, name).manifest
        assert m.capabilities == caps, (kind, name)
        assert m.description and "\n" not in m.description
        if settings_for(kind, name, m).options is None:  # no file to prepare: builds with default options
            assert reg.create(kind, name).name == name
    assert reg.get("video", "file").manifest.extra == "io"
    assert reg.get("video", "file").manifest.requires == () and reg.get("video", "file").manifest.extra == "io"


def test_conformance_options_reproduce_the_scene(tmp_path, scene):
    reg = get_registry()
    env = CheckEnv(tmp_dir=tmp_path, scene=scene)
    video_model = reg.create("video", "file", settings_for("video", "file").resolve_options(env))
    video = video_model.generate(scene.rgbd.rgb, scene.task.instruction, num_frames=scene.video.num_frames)
    np.testing.assert_array_equal(video.frames, scene.video.frames)
    assert video.fps == pytest.approx(scene.video.fps)
    depth = reg.create("depth", "file", settings_for("depth", "file").resolve_options(env))
    dv = depth.estimate(scene.video)
    np.testing.assert_array_equal(dv.depth, scene.depth)
    assert dv.metric
    seg = reg.create("segmenter", "file", settings_for("segmenter", "file").resolve_options(env))
    np.testing.assert_array_equal(seg.segment(scene.rgbd.rgb, scene.task.object), scene.mask)


def test_playback_without_the_io_extra(tmp_path):
    """A bare install (no Pillow/imageio) plays .npz videos and .npy masks; other formats name the extra."""
    import subprocess
    import sys
    frames = np.random.default_rng(0).integers(0, 255, (3, 8, 10, 3), dtype=np.uint8)
    np.savez(tmp_path / "v.npz", frames=frames)
    np.save(tmp_path / "m.npy", np.eye(8, 10, dtype=bool))
    (tmp_path / "v.mp4").write_bytes(b"")
    code = f"""
import sys
for m in ("PIL", "imageio", "imageio_ffmpeg"):
    sys.modules[m] = None  # make the io extra absent
import numpy as np
from d2f_core.registry import get_registry
reg = get_registry()
rows = {{(r["kind"], r["name"]): r["status"] for r in reg.rows()}}
assert rows[("video", "file")] == "ok" and rows[("segmenter", "file")] == "ok", rows
v = reg.create("video", "file", {{"path": r"{tmp_path / 'v.npz'}"}}).generate(np.zeros((8, 10, 3), np.uint8), "x")
assert v.num_frames == 3
m = reg.create("segmenter", "file", {{"path": r"{tmp_path / 'm.npy'}"}}).segment(np.zeros((8, 10, 3), np.uint8), "x")
assert m.sum() == 8
try:
    reg.create("video", "file", {{"path": r"{tmp_path / 'v.mp4'}"}}).generate(np.zeros((8, 10, 3), np.uint8), "x")
except ValueError as e:
    assert "pip install 'dream2flow[io]'" in str(e), e
else:
    raise AssertionError("mp4 without imageio did not fail")
print("ok")
"""
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert p.returncode == 0 and p.stdout.strip() == "ok", p.stderr
