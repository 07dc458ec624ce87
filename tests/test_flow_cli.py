"""`d2f flow extract` at the command line: the contract interface, and one clear line per bad scene."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from cli_asserts import one_line_error
from d2f_core import ObjectFlow, Video
from d2f_core.cli import app
from d2f_core.flow.scene import write_scene
from d2f_conformance.synthetic import rigid_box_sequence

pytest.importorskip("PIL")
pytest.importorskip("imageio_ffmpeg")

runner = CliRunner()


@pytest.fixture(scope="module")
def seq():
    return rigid_box_sequence(num_frames=8, width=96, height=72)


def good_scene(tmp: Path, seq, **kw) -> Path:
    args = dict(video=Video(frames=seq.rgb, fps=8.0), depth_frames=seq.depth, mask=seq.mask("box"))
    args.update(kw)
    return write_scene(tmp / "scene", seq.rgbd(0), "move the box", "box", **args)


def run_cli(*args: str):
    return runner.invoke(app, ["flow", "extract", *args], catch_exceptions=False)


def test_cli_extracts_with_the_default_tracker(tmp_path, seq):
    pytest.importorskip("cv2")  # lucas-kanade, the default tracker, needs the cv extra
    scene = good_scene(tmp_path, seq)
    out = tmp_path / "out" / "flow.npz"
    res = run_cli("--scene", str(scene), "--out", str(out), "--set", "flow.num_points=64")
    assert res.exit_code == 0, res.output
    flow = ObjectFlow.load(out)
    assert flow.points.shape == (8, 64, 3) and flow.visible.dtype == bool
    q = json.loads((tmp_path / "out" / "flow.quality.json").read_text())
    assert len(q["visible_fraction_per_frame"]) == 8
    assert (tmp_path / "out" / "flow_3d.png").stat().st_size > 1000
    assert "stand-in: video = scene" in res.output


@pytest.mark.parametrize("breakage, needles", [
    ("no_rgb", ["camera_rgb.png"]),
    ("no_depth", ["initial_depth.npy"]),
    ("no_calib", ["camera_calibration_info.json"]),
    ("no_data", ["scene_data.yaml"]),
    ("depth_shape", ["initial_depth.npy", "registered"]),
    ("depth_zero", ["initial_depth.npy", "zero"]),
    ("singular_K", ["camera_calibration_info.json", "not invertible"]),
    ("bad_K_shape", ["camera_calibration_info.json", "intrinsics"]),
    ("two_cameras", ["--camera"]),
    ("empty_mask", ["mask.png", "empty"]),
    ("mask_size", ["mask.png", "size"]),
    ("one_frame", ["rgb.mp4", "1 frame"]),
    ("depth_frames_count", ["depth_frames.npy", "frames"]),
    ("no_video_no_model", ["rgb.mp4", "video.plugin"]),
    ("missing_keys", ["scene_data.yaml", "object_name"]),
])
def test_malformed_scene_gives_one_clear_line(tmp_path, seq, breakage, needles):
    scene = good_scene(tmp_path, seq)
    if breakage == "no_rgb":
        (scene / "camera_rgb.png").unlink()
    elif breakage == "no_depth":
        (scene / "initial_depth.npy").unlink()
    elif breakage == "no_calib":
        (scene / "camera_calibration_info.json").unlink()
    elif breakage == "no_data":
        (scene / "scene_data.yaml").unlink()
    elif breakage == "depth_shape":
        np.save(scene / "initial_depth.npy", np.ones((10, 12), np.float32))
    elif breakage == "depth_zero":
        np.save(scene / "initial_depth.npy", np.zeros((72, 96), np.float32))
    elif breakage in ("singular_K", "bad_K_shape", "two_cameras"):
        cal = json.loads((scene / "camera_calibration_info.json").read_text())
        cam = cal["camera"]
        if breakage == "singular_K":
            cam["intrinsics"] = [[0, 0, 47.5], [0, 0, 35.5], [0, 0, 1]]
        elif breakage == "bad_K_shape":
            cam["intrinsics"] = [[1, 0], [0, 1]]
        else:
            cal["other"] = dict(cam)
        (scene / "camera_calibration_info.json").write_text(json.dumps(cal))
    elif breakage == "empty_mask":
        from PIL import Image
        Image.fromarray(np.zeros((72, 96), np.uint8)).save(scene / "mask.png")
    elif breakage == "mask_size":
        from PIL import Image
        Image.fromarray(np.full((10, 10), 255, np.uint8)).save(scene / "mask.png")
    elif breakage == "one_frame":
        from d2f_plugins.video.file_video import write_video
        write_video(scene / "rgb.mp4", seq.rgb[:1], 8.0)
        (scene / "depth_frames.npy").unlink()
    elif breakage == "depth_frames_count":
        np.save(scene / "depth_frames.npy", seq.depth[:3])
    elif breakage == "no_video_no_model":
        (scene / "rgb.mp4").unlink()
    elif breakage == "missing_keys":
        (scene / "scene_data.yaml").write_text("instruction: move the box\n")
    res = run_cli("--scene", str(scene), "--out", str(tmp_path / "flow.npz"))
    one_line_error(res, *needles)


def test_missing_scene_folder_and_bad_out(tmp_path):
    one_line_error(run_cli("--scene", str(tmp_path / "nope"), "--out", str(tmp_path / "f.npz")), "not a folder")
    one_line_error(run_cli("--scene", str(tmp_path), "--out", str(tmp_path / "f.txt")), ".npz")


def test_d2f_run_accepts_a_scene_instead_of_a_world(tmp_path, seq):
    """`scene: DIR` in a run config: observation and files from the folder, stages up to the flow."""
    pytest.importorskip("cv2")
    scene = good_scene(tmp_path, seq)
    cfg = tmp_path / "scene.yaml"
    cfg.write_text(f"name: from-scene\nscene: {scene}\ntracker: {{plugin: lucas-kanade}}\n"
                   "flow: {num_points: 40}\n")
    res = runner.invoke(app, ["run", str(cfg), "--out", str(tmp_path / "run")], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    result = json.loads((tmp_path / "run" / "result.json").read_text())
    assert result["completed"] == ["observe", "video", "depth", "segment", "track", "flow"]
    assert "nothing acted" in result["message"]
    flow = ObjectFlow.load(tmp_path / "run" / "flow.npz")
    assert flow.num_points == 40 and flow.num_frames == 8


def test_initial_depth_as_pt_tensor(tmp_path, seq):
    """initial_depth.pt (a torch H x W tensor, as the release may ship it) instead of .npy."""
    torch = pytest.importorskip("torch")
    from d2f_core.flow.scene import load_scene
    scene = good_scene(tmp_path, seq)
    depth = np.load(scene / "initial_depth.npy")
    (scene / "initial_depth.npy").unlink()
    torch.save(torch.from_numpy(depth), scene / "initial_depth.pt")
    loaded = load_scene(scene)
    np.testing.assert_array_equal(loaded.rgbd.depth, depth)


def test_release_file_variants_depth_frames_pt_and_language_instruction_yaml(tmp_path, seq):
    """The official release ships depth_frames.pt (a T x H x W tensor) and, in earlier versions,
    language_instruction.yaml instead of scene_data.yaml: both are read."""
    torch = pytest.importorskip("torch")
    from d2f_core.flow.scene import load_scene
    scene = good_scene(tmp_path, seq)
    frames = np.load(scene / "depth_frames.npy")
    (scene / "depth_frames.npy").unlink()
    torch.save(torch.from_numpy(frames), scene / "depth_frames.pt")
    (scene / "scene_data.yaml").rename(scene / "language_instruction.yaml")
    loaded = load_scene(scene)
    np.testing.assert_array_equal(loaded.depth_frames, frames)
    assert loaded.provided()["depth"] == "depth_frames.pt" and loaded.object_name == "box"
