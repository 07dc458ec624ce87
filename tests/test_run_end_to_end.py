"""`d2f run` end to end on the reference plugins, with success measured by the world's physics.

The "generated" video, its depth and the mask are rendered from the tabletop world along a
scripted push (files played back by the `file` plugins: stand-ins), the actions are replayed.
"""

import json
import subprocess
import sys

import numpy as np
import pytest
import yaml

from d2f_core import ObjectFlow
from d2f_plugins.video.file_video import write_video
from d2f_plugins.world.tabletop_2d import Tabletop2DOptions, Tabletop2DWorld

SEED = 4
OPTS = {"width": 160, "height": 120}


def d2f(*args):
    return subprocess.run([sys.executable, "-m", "d2f_core.cli", *args], capture_output=True, text=True,
                          timeout=120)


@pytest.fixture(scope="module")
def scene_files(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tabletop")
    world = Tabletop2DWorld(Tabletop2DOptions(**OPTS))
    world.reset(SEED)
    (tmp / "block0.json").write_text(json.dumps(list(world.privileged_state()["block_pose"])))
    actions = world.scripted_push()
    first = world.render()
    mask = world.object_mask("block")
    frames, depths = [first.rgb], [first.depth]
    for i, a in enumerate(actions):
        world.step(a)
        if i % max(1, len(actions) // 12) == 0 or i == len(actions) - 1:
            r = world.render()
            frames.append(r.rgb)
            depths.append(r.depth)
    assert world.success()
    write_video(tmp / "video.npz", np.stack(frames), 8.0)
    np.save(tmp / "depth.npy", np.stack(depths))
    from PIL import Image
    Image.fromarray(mask.astype(np.uint8) * 255).save(tmp / "mask.png")
    np.save(tmp / "actions.npy", np.stack(actions))
    cfg = {
        "name": "tabletop", "seed": SEED,
        "world": {"plugin": "tabletop-2d", "options": OPTS},
        "embodiment": {"plugin": "point-mass"},
        "video": {"plugin": "file", "options": {"path": str(tmp / "video.npz")}},
        "depth": {"plugin": "file", "options": {"path": str(tmp / "depth.npy"), "metric": True}},
        "segmenter": {"plugin": "file", "options": {"path": str(tmp / "mask.png")}},
        "tracker": {"plugin": "zero-motion"},
        "hand": {"plugin": "no-hands"},
        "grasper": {"plugin": "centroid", "options": {"max_width": 0.12}},
        "solver": {"plugin": "replay", "options": {"file": str(tmp / "actions.npy")}},
        "flow": {"num_points": 64, "num_frames": len(frames)},
        "execute": {"max_steps": len(actions) + 5},
    }
    (tmp / "run.yaml").write_text(yaml.safe_dump(cfg))
    return tmp


def test_run_writes_everything_and_measures_success(scene_files):
    out = scene_files / "run1"
    p = d2f("run", str(scene_files / "run.yaml"), "--out", str(out))
    assert p.returncode == 0, p.stderr
    res = json.loads((out / "result.json").read_text())
    assert res["success"] is True
    assert res["stages"]["execute"]["status"] == "done"
    for stage in ("observe", "video", "hands", "depth", "segment", "track", "flow", "grasp", "plan", "execute"):
        assert res["stages"][stage]["status"] == "done", stage
        assert res["stages"][stage]["seconds"] >= 0
    stand = {s["kind"]: s["plugin"] for s in res["stand_ins"]}
    assert stand == {"video": "file", "depth": "file", "segmenter": "file", "tracker": "zero-motion"}
    flow = ObjectFlow.load(out / "flow.npz")
    assert flow.num_points == 64 and flow.visible[0].all()
    # frame-0 points lie on the block's surface (10 x 6 x 4 cm box at its initial pose)
    x, y, yaw = json.loads((scene_files / "block0.json").read_text())
    d = flow.points[0, :, :2] - [x, y]
    lx = np.cos(yaw) * d[:, 0] + np.sin(yaw) * d[:, 1]
    ly = -np.sin(yaw) * d[:, 0] + np.cos(yaw) * d[:, 1]
    z = flow.points[0, :, 2]
    assert np.all(np.abs(lx) <= 0.05 + 2e-3) and np.all(np.abs(ly) <= 0.03 + 2e-3)
    assert np.all((z >= -1e-3) & (z <= 0.04 + 1e-3))
    on_top = np.abs(z - 0.04) < 1e-3
    on_side = (np.abs(np.abs(lx) - 0.05) < 2e-3) | (np.abs(np.abs(ly) - 0.03) < 2e-3)
    assert np.all(on_top | on_side) and on_top.mean() > 0.5
    grasps = json.loads((out / "grasps.json").read_text())
    assert len(grasps["candidates"]) == 1 and grasps["chosen"] == 0
    # the world's own final state agrees with success
    final = res["privileged_final"]
    assert np.hypot(*(np.array(final["block_pose"][:2]) - final["goal_pose"][:2])) < 0.02
    assert (out / "rollout.npz").exists() and (out / "config.yaml").exists()
    # the rollout: rendered at the video's frame rate (8 fps), as rollout.mp4 + the sparse state in rollout.npz
    with np.load(out / "rollout.npz") as z:
        every, control = int(z["frame_every"]), float(z["control_freq"])
        assert every == max(1, int(control / 8.0 + 0.5)) and float(z["fps"]) == pytest.approx(control / every)
        steps = z["frame_steps"]
        assert steps[0] == 0 and steps[-1] == res["steps"] and np.all(np.diff(steps) > 0)
        assert len(z["rewards"]) == res["steps"] and "frames" not in z.files
    assert (out / "rollout.mp4").exists()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["plugins"]["tracker"]["package"] == "dream2flow"
    assert "✓ flow" in p.stderr  # progress display


def test_rerun_resumes_and_a_changed_component_reruns_only_what_follows(scene_files):
    out = scene_files / "run2"
    assert d2f("run", str(scene_files / "run.yaml"), "--out", str(out)).returncode == 0
    again = json.loads((out / "result.json").read_text()) if d2f(
        "run", str(scene_files / "run.yaml"), "--out", str(out)).returncode == 0 else None
    cached = {k for k, v in again["stages"].items() if v.get("cached")}
    assert {"video", "hands", "depth", "segment", "track", "flow", "grasp"} <= cached
    p = d2f("run", str(scene_files / "run.yaml"), "--out", str(out), "--set", "flow.num_points=32")
    assert p.returncode == 0, p.stderr
    res = json.loads((out / "result.json").read_text())
    cached = {k for k, v in res["stages"].items() if v.get("cached")}
    assert {"video", "hands", "depth", "segment"} <= cached
    assert not {"track", "flow", "grasp"} & cached
    assert ObjectFlow.load(out / "flow.npz").num_points == 32


def test_failed_episode_exits_1_and_keeps_result(scene_files, tmp_path):
    np.save(tmp_path / "idle.npy", np.tile([[0.0, 0.0, 0.25]], (3, 1)))
    out = tmp_path / "run"
    p = d2f("run", str(scene_files / "run.yaml"), "--out", str(out),
            "--set", f"solver.options.file={tmp_path / 'idle.npy'}")
    assert p.returncode == 1
    res = json.loads((out / "result.json").read_text())
    assert res["success"] is False and res["steps"] == 3
    # the failure says why, in one line: the agent ran out of actions with the block off its goal
    assert res["message"].startswith("the agent stopped after 3 steps: block ") and "\n" not in res["message"]
    assert "from the goal (success needs <= 2 cm" in res["message"] and res["episode"]["ended"] == "agent_done"


def test_a_failing_stage_keeps_earlier_work(scene_files, tmp_path):
    out = tmp_path / "run"
    p = d2f("run", str(scene_files / "run.yaml"), "--out", str(out),
            "--set", f"depth.options.path={scene_files / 'actions.npy'}")
    assert p.returncode == 1 and "Traceback" not in p.stderr
    assert "stage 'depth' failed" in p.stderr
    res = json.loads((out / "result.json").read_text())
    assert res["stopped_at"] == "depth" and res["stages"]["video"]["status"] == "done"
    assert (out / "video.npz").exists() and (out / "error.log").exists()
    assert res["success"] is False  # a run with a world and a solver that could not act has failed


def test_rollout_frames_go_losslessly_into_rollout_npz_without_a_movie_writer(scene_files, monkeypatch):
    from d2f_core import pipeline
    from d2f_core.artifacts import load_frames
    from d2f_core.config import load_config
    monkeypatch.setattr(pipeline, "_try_write_mp4", lambda *a, **k: False)
    out = scene_files / "run_no_mp4"
    res = pipeline.Run(config=load_config(str(scene_files / "run.yaml"), []), out_dir=out).execute()
    assert res["success"] is True and not (out / "rollout.mp4").exists()
    frames = load_frames(out / "rollout.npz")
    with np.load(out / "rollout.npz") as z:
        assert frames.dtype == np.uint8 and len(frames) == len(z["frame_steps"]) >= 2
        assert z["frame_steps"][-1] == res["steps"]
