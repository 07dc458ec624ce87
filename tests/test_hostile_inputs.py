"""Hostile inputs (issue 18): no traceback, nothing silently accepted, nothing lost.

Every user-facing error is one line naming the file or field and the fix (exit 2 bad input, 1 failed
task); no rich markup is interpreted in error text; non-finite values, millimetre depth and
degenerate masks are refused; one process owns a run folder; cached artifacts are hash-checked;
array files are size-capped before they are read.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from cli_asserts import one_line_error
from d2f_core import DataError, ObjectFlow, Video
from d2f_core.cli import app
from d2f_core.config import ConfigError, load_config
from d2f_core.flow.scene import load_scene, write_scene
from d2f_conformance.synthetic import rigid_box_sequence

runner = CliRunner()
DEMO = Path(__file__).resolve().parents[1] / "configs" / "demo.yaml"


@pytest.fixture(scope="module")
def seq():
    return rigid_box_sequence(num_frames=8, width=96, height=72)


def good_scene(tmp: Path, seq, name: str = "scene") -> Path:
    pytest.importorskip("PIL")
    pytest.importorskip("imageio_ffmpeg")
    return write_scene(tmp / name, seq.rgbd(0), "move the box", "box", video=Video(frames=seq.rgb, fps=8.0),
                       depth_frames=seq.depth, mask=seq.mask("box"))


# ----------------------------------------------------------------------------- messages


def test_error_text_is_never_rich_markup(capsys):
    from d2f_core.cli_common import fail
    with pytest.raises(typer.Exit) as ei:
        fail("needs an extra: pip install 'dream2flow[veo]'; plugin '[/x]' [bold]x")
    assert ei.value.exit_code == 2
    err = capsys.readouterr().err
    assert "pip install 'dream2flow[veo]'" in err and "'[/x]'" in err and "[bold]x" in err


def test_markup_in_a_set_value_is_one_line_not_a_markup_crash(tmp_path):
    res = runner.invoke(app, ["run", str(DEMO), "--out", str(tmp_path / "r"), "--set", "tracker.plugin='[/x]'"],
                        catch_exceptions=False)
    one_line_error(res, "[/x]", "tracker")


def test_huge_error_text_is_clipped_to_one_line(capsys):
    from d2f_core.cli_common import fail
    with pytest.raises(typer.Exit):
        fail("first line\nsecond " + "x" * 100_000)
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and len(err) < 1000 and "more characters" in err


def test_yaml_alias_bomb_is_a_short_config_error(tmp_path):
    levels = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, cur in zip("abcdef", "bcdefg"):
        levels.append(f"{cur}: &{cur} [" + ",".join([f"*{prev}"] * 9) + "]")
    p = tmp_path / "bomb.yaml"
    p.write_text("\n".join(levels) + "\n")
    with pytest.raises(ConfigError) as ei:
        load_config(p)
    assert len(str(ei.value)) < 400 and "alias" in str(ei.value)


def test_deeply_nested_yaml_is_a_config_error(tmp_path):
    p = tmp_path / "deep.yaml"
    p.write_text("a: " + "[" * 20000 + "]" * 20000 + "\n")
    with pytest.raises(ConfigError, match="deep.yaml: nested too deeply"):
        load_config(p)


def test_validation_error_echo_is_capped(tmp_path):
    with pytest.raises(ConfigError) as ei:
        load_config(None, [f"seed={'9' * 5000}x"])
    assert len(str(ei.value)) < 500 and "more characters" in str(ei.value)


def test_duplicate_yaml_keys_are_refused(tmp_path):
    p = tmp_path / "dup.yaml"
    p.write_text("name: a\nseed: 1\nname: b\n")
    with pytest.raises(ConfigError, match=r"dup.yaml: line 3: key 'name' is given twice \(first on line 1\)"):
        load_config(p)


def test_non_utf8_config_is_one_line_naming_the_file(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_bytes(b"name: \xff\xfe\n")
    with pytest.raises(ConfigError, match="bad.yaml: not UTF-8"):
        load_config(p)
    one_line_error(runner.invoke(app, ["run", str(p)], catch_exceptions=False), "bad.yaml", "UTF-8")


# ----------------------------------------------------------------------------- values


@pytest.mark.parametrize("override, field", [
    ("solver.options.w_flow=.inf", "solver.options.w_flow"),
    ("flow.quality.camera_motion_px=.inf", "flow.quality.camera_motion_px"),
    ("flow.quality.rigidity_m=.nan", "flow.quality.rigidity_m"),
    ("solver.options.w_flow=-.inf", "solver.options.w_flow"),
])
def test_non_finite_values_are_refused_naming_the_field(override, field):
    with pytest.raises(ConfigError, match=f"{field}: .* not a finite number"):
        load_config(DEMO, [override])


@pytest.mark.parametrize("name", ["../../x", "a/b", "", ".hidden", "x" * 101])
def test_run_name_cannot_escape_runs(name):
    with pytest.raises(ConfigError, match="name: .*plain run name"):
        load_config(None, [f"name='{name}'"])


def test_plain_run_names_still_load():
    assert load_config(None, ["name=real_bread_in_bowl-2.v1"]).name == "real_bread_in_bowl-2.v1"


# ----------------------------------------------------------------------------- output folders


def test_out_empty_is_refused():
    one_line_error(runner.invoke(app, ["run", str(DEMO), "--out", ""], catch_exceptions=False), "--out ''")


def test_out_an_existing_file_is_one_line(tmp_path):
    f = tmp_path / "afile"
    f.write_text("x")
    one_line_error(runner.invoke(app, ["run", str(DEMO), "--out", str(f)], catch_exceptions=False),
                   str(f), "FileExistsError")


def test_out_unwritable_is_one_line(tmp_path, monkeypatch):
    real_mkdir = Path.mkdir

    def denied(self, *a, **k):
        if "ro" in self.parts:
            raise PermissionError(13, "Permission denied", str(self))
        return real_mkdir(self, *a, **k)

    monkeypatch.setattr(Path, "mkdir", denied)
    res = runner.invoke(app, ["run", str(DEMO), "--out", str(tmp_path / "ro" / "run")], catch_exceptions=False)
    one_line_error(res, "Permission denied", "choose a folder you can write")


def test_plugins_unknown_kind_is_an_error():
    one_line_error(runner.invoke(app, ["plugins", "--kind", "trackerz"], catch_exceptions=False),
                   "'trackerz'", "did you mean 'tracker'")


def test_world_show_out_behind_a_file_is_one_line(tmp_path):
    (tmp_path / "afile").write_text("x")
    res = runner.invoke(app, ["world", "show", "open_door", "--out", str(tmp_path / "afile" / "x.png")],
                        catch_exceptions=False)
    one_line_error(res, "afile", "not a folder")


def test_world_commands_report_a_bad_mujoco_gl_as_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("MUJOCO_GL", "bogus")
    for args in (["show", "open_door", "--out", str(tmp_path / "x.png")], ["oracle", "open_door", "--out",
                                                                           str(tmp_path / "sc")]):
        one_line_error(runner.invoke(app, ["world", *args], catch_exceptions=False), "MUJOCO_GL='bogus'", "egl")


def test_run_reports_a_bad_mujoco_gl_as_bad_input_before_any_stage(tmp_path, monkeypatch):
    """`d2f run` of a MuJoCo world with MUJOCO_GL=bogus: exit 2 and the same one line as `d2f world`
    (it used to be exit 1, "stage 'observe' failed: RuntimeError"), and no stage ran."""
    monkeypatch.setenv("MUJOCO_GL", "bogus")
    out = tmp_path / "run"
    res = runner.invoke(app, ["run", "demo", "--out", str(out)], catch_exceptions=False)
    one_line_error(res, "world.plugin", "MUJOCO_GL='bogus'", "egl")
    assert not (out / "stages").exists()


def test_an_unexpected_exception_is_one_line_without_debug(monkeypatch, capsys):
    import d2f_core.cli as cli

    def boom():
        raise RuntimeError("internal\nsecond line")

    monkeypatch.setattr(cli, "app", boom)
    monkeypatch.delenv("D2F_DEBUG", raising=False)
    with pytest.raises(SystemExit) as ei:
        cli.main()
    assert ei.value.code == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "RuntimeError: internal; second line" in err and "--debug" in err
    monkeypatch.setenv("D2F_DEBUG", "1")
    with pytest.raises(RuntimeError):
        cli.main()


def test_debug_flag_shows_the_traceback(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_bytes(b"name: \xff\n")
    env = {k: v for k, v in os.environ.items() if k != "D2F_DEBUG"}
    d2f = [sys.executable, "-c", "from d2f_core.cli import main; main()"]
    plain = subprocess.run(d2f + ["run", str(p)], capture_output=True, text=True, env=env, timeout=120)
    assert plain.returncode == 2 and "Traceback" not in plain.stderr
    debug = subprocess.run(d2f + ["--debug", "run", str(p)], capture_output=True, text=True, env=env, timeout=120)
    assert debug.returncode != 0 and "Traceback" in debug.stderr


# ----------------------------------------------------------------------------- scene folders


def test_non_utf8_scene_data_names_the_file(tmp_path, seq):
    scene = good_scene(tmp_path, seq)
    (scene / "scene_data.yaml").write_bytes(b"instruction: \xff\nobject_name: box\n")
    with pytest.raises(DataError, match="scene_data.yaml: not UTF-8"):
        load_scene(scene)


def test_calibration_json_list_is_a_data_error(tmp_path, seq):
    scene = good_scene(tmp_path, seq)
    (scene / "camera_calibration_info.json").write_text("[1, 2]")
    with pytest.raises(DataError, match="camera_calibration_info.json: the top level is a JSON list"):
        load_scene(scene)


def test_broken_video_link_is_named_as_broken(tmp_path, seq):
    scene = good_scene(tmp_path, seq)
    (scene / "rgb.mp4").unlink()
    os.symlink(tmp_path / "gone.mp4", scene / "rgb.mp4")
    with pytest.raises(DataError, match="rgb.mp4: a broken link"):
        load_scene(scene)


def test_millimetre_depth_is_refused_naming_the_fix(tmp_path, seq):
    scene = good_scene(tmp_path, seq)
    d = np.load(scene / "initial_depth.npy")
    np.save(scene / "initial_depth.npy", np.round(d * 1000).astype(np.uint16))
    with pytest.raises(DataError, match=r"initial_depth.npy: integer depth \(uint16\).*scene_depth_scale=0.001"):
        load_scene(scene)
    np.save(scene / "initial_depth.npy", (d * 1000).astype(np.float32))
    with pytest.raises(DataError, match=r"median depth .* outside 0.05-20.0 m.*scene_depth_scale"):
        load_scene(scene)
    loaded = load_scene(scene, depth_scale=0.001)
    valid = d > 0
    assert np.allclose(loaded.rgbd.depth[valid], d[valid], rtol=1e-5)
    cfg = load_config(None, [f"scene={scene}", "scene_depth_scale=0.001"])
    assert cfg.scene_depth_scale == 0.001


def test_all_true_mask_is_refused(tmp_path, seq):
    from PIL import Image
    scene = good_scene(tmp_path, seq)
    Image.fromarray(np.full((72, 96), 255, np.uint8)).save(scene / "mask.png")
    with pytest.raises(DataError, match="mask.png: the mask covers every pixel"):
        load_scene(scene)


def test_few_pixel_mask_is_refused(tmp_path, seq):
    from PIL import Image
    scene = good_scene(tmp_path, seq)
    m = np.zeros((72, 96), np.uint8)
    m[30, 40:43] = 255
    Image.fromarray(m).save(scene / "mask.png")
    with pytest.raises(DataError, match=r"mask.png: the mask marks 3 pixel\(s\); the flow needs at least 10"):
        load_scene(scene)


def test_segmenter_returning_a_full_mask_is_never_silent():
    """Refused outside a run; inside one, a warning in result.json (tiny random-weight smoke models
    produce full masks, and the run must still reach its later stages)."""
    from types import SimpleNamespace

    from d2f_core.pipeline import _check_mask
    with pytest.raises(DataError, match="marked every pixel"):
        _check_mask(np.ones((4, 5), bool), (4, 5), "segmenter 'x'", "box")
    warnings: list[str] = []
    run = SimpleNamespace(warn=warnings.append)
    _check_mask(np.ones((4, 5), bool), (4, 5), "segmenter 'x'", "box", run)
    assert warnings and "marked every pixel as 'box'" in warnings[0]


def test_scene_depth_frames_bomb_is_capped(tmp_path, seq, monkeypatch):
    scene = good_scene(tmp_path, seq)
    (scene / "depth_frames.npy").unlink()
    np.savez_compressed(scene / "depth_frames.npz", depth=np.zeros((8, 72, 96 * 64), np.float32))
    monkeypatch.setenv("D2F_MAX_ARRAY_BYTES", str(1 << 20))
    with pytest.raises(DataError, match="depth_frames.npz: the arrays expand to .* D2F_MAX_ARRAY_BYTES"):
        load_scene(scene)


# ----------------------------------------------------------------------------- flow files


def _flow_file(tmp_path: Path, **replace) -> Path:
    flow = ObjectFlow(points=np.zeros((3, 4, 3), np.float32), visible=np.ones((3, 4), bool))
    p = flow.save(tmp_path / "flow.npz")
    with np.load(p) as z:
        arrays = {k: z[k] for k in z.files}
    arrays.update(replace)
    np.savez(p, **arrays)
    return p


@pytest.mark.parametrize("replace, needle", [
    ({"format_version": np.array("one")}, "format_version is 'one'"),
    ({"provenance": np.array("{not json")}, "provenance is not JSON"),
    ({"provenance": np.array("[1, 2]")}, "provenance is a JSON list"),
    ({"fps": np.array([8.0, 9.0])}, "fps is an array"),
    ({"fps": np.array("fast")}, "not a valid flow"),
])
def test_objectflow_load_raises_only_data_error(tmp_path, replace, needle):
    p = _flow_file(tmp_path, **replace)
    with pytest.raises(DataError, match=needle):
        ObjectFlow.load(p)


@pytest.mark.parametrize("shape", [(1_000_000, 1000, 3), (49, 4_000_000, 1)], ids=["12GB", "0.7GB"])
def test_objectflow_load_refuses_a_zip_bomb_before_reading(tmp_path, shape):
    """An .npy member whose header declares 12 GB (or the sweep's 0.7 GB) is refused from the header,
    never allocated."""
    p = tmp_path / "bomb.npz"
    header = {"descr": "<f4", "fortran_order": False, "shape": shape}
    with zipfile.ZipFile(p, "w", zipfile.ZIP_DEFLATED) as z:
        with z.open("points.npy", "w") as f:
            np.lib.format.write_array_header_1_0(f, header)
            f.write(b"\0" * 1024)
        z.writestr("format_version.npy", b"")
    with pytest.raises(DataError, match="bomb.npz: the arrays expand to .* cap"):
        ObjectFlow.load(p)
    big = ObjectFlow(points=np.zeros((50, 4000, 3), np.float32), visible=np.ones((50, 4000), bool))
    q = big.save(tmp_path / "big.npz")
    assert q.stat().st_size < 100_000  # zeros compress ~1000x
    with pytest.raises(DataError, match="expand to"):
        ObjectFlow.load(q, max_bytes=1 << 20)
    assert ObjectFlow.load(q).num_points == 4000


def test_the_array_cap_can_be_raised_and_lowered(tmp_path, monkeypatch):
    big = ObjectFlow(points=np.zeros((50, 4000, 3), np.float32), visible=np.ones((50, 4000), bool))
    q = big.save(tmp_path / "big.npz")
    monkeypatch.setenv("D2F_MAX_ARRAY_BYTES", str(1 << 20))
    with pytest.raises(DataError, match="D2F_MAX_ARRAY_BYTES"):
        ObjectFlow.load(q)
    monkeypatch.setenv("D2F_MAX_ARRAY_BYTES", str(8 << 20))
    assert ObjectFlow.load(q, max_bytes=1 << 20).num_points == 4000  # the variable replaces the caller's cap


# ----------------------------------------------------------------------------- run folders


def _run(tmp_path: Path, scene: Path, tracker: str = "zero-motion"):
    from d2f_core.pipeline import Run
    cfg = load_config(None, [f"scene={scene}", f"tracker.plugin={tracker}", "flow.num_points=16",
                             "flow.pictures=false", "flow.background_points=0"])
    return Run(config=cfg, out_dir=tmp_path / "run")


def test_a_live_owner_keeps_the_run_folder(tmp_path, seq):
    from d2f_core.pipeline import LOCK_FILE, RunFolderInUse
    scene = good_scene(tmp_path, seq)
    run = _run(tmp_path, scene)
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (tmp_path / "run").mkdir()
        (tmp_path / "run" / LOCK_FILE).write_text(f"{other.pid}\n")
        with pytest.raises(RunFolderInUse, match=f"run folder in use by PID {other.pid}"):
            run.execute()
    finally:
        other.kill()
        other.wait()
    # its process gone, the lock is stale: taken over, and released after the run
    result = _run(tmp_path, scene).execute()
    assert "flow" in result["completed"]
    assert not (tmp_path / "run" / LOCK_FILE).exists()


def test_cli_says_run_folder_in_use(tmp_path, seq):
    from d2f_core.pipeline import LOCK_FILE
    scene = good_scene(tmp_path, seq)
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (tmp_path / "o" / "flow_run").mkdir(parents=True)
        (tmp_path / "o" / "flow_run" / LOCK_FILE).write_text(f"{other.pid}\n")
        res = runner.invoke(app, ["flow", "extract", "--scene", str(scene), "--out", str(tmp_path / "o" / "flow.npz"),
                                  "--set", "tracker.plugin=zero-motion"], catch_exceptions=False)
        one_line_error(res, f"run folder in use by PID {other.pid}")
    finally:
        other.kill()
        other.wait()


def test_result_json_temp_name_is_unique(tmp_path, seq):
    """The old shared name result.json.tmp: a second writer's rename removed the first one's temp file."""
    scene = good_scene(tmp_path, seq)
    (tmp_path / "run" / "result.json.tmp").mkdir(parents=True)  # the old shared name, blocked
    result = _run(tmp_path, scene).execute()
    assert json.loads((tmp_path / "run" / "result.json").read_text())["completed"] == result["completed"]
    assert not [p for p in (tmp_path / "run").iterdir() if p.name.endswith(".tmp") and p.is_file()]


def test_tampered_cached_artifact_is_recomputed_with_a_warning(tmp_path, seq):
    scene = good_scene(tmp_path, seq)
    first = _run(tmp_path, scene).execute()
    meta = json.loads((tmp_path / "run" / "stages" / "flow.json").read_text())
    assert "flow.npz" in meta["files"]
    good = (tmp_path / "run" / "flow.npz").read_bytes()
    tampered = ObjectFlow(points=np.full((8, 16, 3), 5.0, np.float32), visible=np.ones((8, 16), bool))
    tampered.save(tmp_path / "run" / "flow.npz")
    second = _run(tmp_path, scene).execute()
    assert second["stages"]["flow"]["cached"] is False
    assert second["stages"]["track"]["cached"] is True
    assert any("flow.npz changed since it was written" in w for w in second.get("warnings", []))
    (tmp_path / "good.npz").write_bytes(good)
    recomputed = ObjectFlow.load(tmp_path / "run" / "flow.npz")
    assert np.array_equal(recomputed.points, ObjectFlow.load(tmp_path / "good.npz").points)
    assert first["completed"] == second["completed"]


def test_checkout_is_appended_to_sys_path(tmp_path, monkeypatch):
    from d2f_plugins._checkout import add_to_path
    monkeypatch.setattr(sys, "path", list(sys.path))
    add_to_path(tmp_path)
    assert sys.path[-1] == str(tmp_path) and sys.path[0] != str(tmp_path)


# ----------------------------------------------------------------------------- conformance edge cases


def _conformance(component, kind):
    sys.path.insert(0, str(Path(__file__).parent))
    try:
        from d2f_conformance import check_component
        return {r.check: r for r in check_component(component, kind)}
    finally:
        sys.path.remove(str(Path(__file__).parent))


def test_dynamics_nan_at_zero_action_is_caught():
    import broken_plugins as bp

    class UnitDirection(bp.GoodDynamics):
        """Broken: pushes along the action's direction, dividing by its norm (NaN for a zero action)."""

        def _shift(self, a):
            with np.errstate(invalid="ignore", divide="ignore"):
                return 0.01 * a / np.linalg.norm(a, axis=1, keepdims=True)

    res = _conformance(UnitDirection(), "dynamics")
    assert res["dynamics_edge_actions"].status == "failed"
    assert "zero actions" in res["dynamics_edge_actions"].message and "NaN" in res["dynamics_edge_actions"].message
    good = _conformance(bp.GoodDynamics(), "dynamics")
    assert good["dynamics_edge_actions"].status == "passed", good["dynamics_edge_actions"]


def test_dynamics_extreme_actions_crash_is_caught():
    import broken_plugins as bp

    class Overflowing(bp.GoodDynamics):
        def _shift(self, a):
            if np.abs(a).max() > 10:
                raise OverflowError("math range error")
            return a

    res = _conformance(Overflowing(), "dynamics")
    assert res["dynamics_edge_actions"].status == "failed"
    assert "OverflowError" in res["dynamics_edge_actions"].message


def test_tracker_empty_and_single_queries():
    import broken_plugins as bp

    class SqueezingTracker(bp.ReferenceTracker):
        """Broken: squeezes the point axis, so one query loses it; no query crashes with IndexError."""

        def track(self, video, queries):
            if len(queries) == 0:
                raise IndexError("index 0 is out of bounds for axis 0 with size 0")
            tr = super().track(video, queries)
            if len(queries) == 1:
                object.__setattr__(tr, "xy", tr.xy[:, 0, :])
            return tr

    res = _conformance(SqueezingTracker(), "tracker")
    assert res["tracker_edge_queries"].status == "failed"
    assert "one query" in res["tracker_edge_queries"].message
    good = _conformance(bp.ReferenceTracker(), "tracker")
    assert good["tracker_edge_queries"].status == "passed", good["tracker_edge_queries"]


def test_lifting_empty_single_and_nan_depth():
    from d2f_conformance.scenes import standard_scene
    from d2f_core import Tracks2D
    from d2f_core.flow.lifting import lift_tracks
    scene = standard_scene()
    cam = scene.camera if hasattr(scene, "camera") else scene.rgbd.camera
    T, H, W = 3, cam.height, cam.width
    depth = np.full((T, H, W), 1.0, np.float32)
    empty = lift_tracks(Tracks2D(xy=np.zeros((T, 0, 2), np.float32), visible=np.zeros((T, 0), bool),
                                 query_frame=np.zeros(0, np.int64)), depth, cam)
    assert empty.points.shape == (T, 0, 3)
    xy = np.tile(np.array([[[W / 2, H / 2], [W / 4, H / 4]]], np.float32), (T, 1, 1))
    tracks = Tracks2D(xy=xy, visible=np.ones((T, 2), bool), query_frame=np.zeros(2, np.int64))
    single = lift_tracks(Tracks2D(xy=xy[:, :1], visible=np.ones((T, 1), bool), query_frame=np.zeros(1, np.int64)),
                         depth, cam)
    assert single.points.shape == (T, 1, 3) and single.visible.all()
    holed = depth.copy()
    holed[:, H // 2 - 3:H // 2 + 4, W // 2 - 3:W // 2 + 4] = np.nan  # a NaN region under point 0
    flow = lift_tracks(tracks, holed, cam)
    assert not flow.visible[:, 0].any() and flow.visible[:, 1].all()
    assert np.all(np.isfinite(flow.points))


def test_grasper_nan_depth_region_is_checked():
    import broken_plugins as bp
    from d2f_core import Grasp

    class NanBlindGrasper(bp.GoodGrasper):
        """Broken: averages the raw depth under the mask, NaN included, then fails building the grasp."""

        def propose(self, rgbd, mask, *, top_k=40):
            z = float(np.mean(rgbd.depth[mask]))
            ys, xs = np.nonzero(mask)
            p = rgbd.camera.backproject(np.array([[xs.mean(), ys.mean()]]), np.array([z]))[0]
            T = np.eye(4)
            T[:3, :3], T[:3, 3] = bp.R_DOWN, p
            return [Grasp(T_world_grasp=T, width=0.05, score=1.0)]

    res = _conformance(NanBlindGrasper(), "grasper")
    assert res["grasper_nan_depth"].status == "failed", res["grasper_nan_depth"]
    assert "NaN band" in res["grasper_nan_depth"].message
    good = _conformance(bp.GoodGrasper(), "grasper")
    assert good["grasper_nan_depth"].status == "passed", good["grasper_nan_depth"]


@pytest.mark.parametrize("command", [["eval", str(DEMO), "--seeds", "0"], ["train", str(DEMO)]])
def test_eval_and_train_refuse_an_empty_out(command):
    one_line_error(runner.invoke(app, [*command, "--out", ""], catch_exceptions=False), "--out ''")


def test_mask_npy_header_bomb_is_capped(tmp_path):
    from d2f_plugins.segment.file_mask import read_mask
    p = tmp_path / "mask.npy"
    with open(p, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "|b1", "fortran_order": False,
                                                 "shape": (1 << 20, 1 << 20)})
        f.write(b"\0" * 64)
    with pytest.raises(DataError, match="mask.npy: the header declares an array of .* cap"):
        read_mask(p)


def test_flow_extract_prints_paths_as_plain_text(tmp_path, seq):
    """A scene path and an --out path with [brackets] are printed as they are (no markup crash)."""
    pytest.importorskip("cv2")
    scene = good_scene(tmp_path, seq, name="scene[/x]")
    out = tmp_path / "o[bold]" / "flow.npz"
    res = runner.invoke(app, ["flow", "extract", "--scene", str(scene), "--out", str(out),
                              "--set", "flow.num_points=16", "--set", "flow.pictures=false"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert f"flow: {out}" in res.output and "scene[/x]" in res.output


def test_estimator_nan_depth_and_one_point_flow_are_checked():
    from d2f_plugins.estimator.sim_particles import SimParticles

    class NanFromDepth(SimParticles):
        """Broken: offsets particles by a depth statistic computed with NaN included."""

        def estimate(self, observation):
            p, v = super().estimate(observation)
            return (p + np.float32(0.0) * np.float32(np.mean(observation.rgbd.depth))).astype(np.float32), v

    res = _conformance(NanFromDepth(), "estimator")
    assert res["estimator_edge_inputs"].status == "failed", res["estimator_edge_inputs"]
    assert "NaN band" in res["estimator_edge_inputs"].message

    class Squeezing(SimParticles):
        def estimate(self, observation):
            p, v = super().estimate(observation)
            return (p[0], v[0]) if len(v) == 1 else (p, v)

    res = _conformance(Squeezing(), "estimator")
    assert res["estimator_edge_inputs"].status == "failed" and "one-point flow" in res["estimator_edge_inputs"].message
    assert _conformance(SimParticles(), "estimator")["estimator_edge_inputs"].status == "passed"
