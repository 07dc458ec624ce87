"""The real recipe (configs/real/bread_in_bowl.yaml: Wan2.1 -> SpatialTrackerV2 -> Grounding DINO +
SAM 2 -> CoTracker3 -> HaMeR -> AnyGrasp) end to end on this CPU, through `d2f doctor` and `d2f run`.

Real libraries where they install here, on tiny random-weight models built here: Wan 2.1 (diffusers)
and Grounding DINO (transformers) + SAM 2 (sam2). The upstream code that does not install here
(SpaTrackerV2, CoTracker3, HaMeR, the AnyGrasp SDK) is the stand-in of its documented API in
tests/standins, found through the same environment variables a user sets (SPATRACKERV2_DIR,
COTRACKER_DIR, HAMER_DIR, ANYGRASP_DIR). Every weight is found through the recipe's own
`weights:` block under $D2F_WEIGHTS. The frames are noise (random weights): the point is the path.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")
pytest.importorskip("sam2")
pytest.importorskip("cv2")
pytest.importorskip("imageio_ffmpeg")

from d2f_core.cli import app  # noqa: E402
from d2f_core.flow.scene import write_scene  # noqa: E402
from d2f_conformance.scenes import standard_scene  # noqa: E402
from standins.standin_env import STANDINS, standin_modules  # noqa: E402

HAMER_DATA = ["_DATA/hamer_ckpts/checkpoints/hamer.ckpt", "_DATA/hamer_ckpts/model_config.yaml",
              "_DATA/data/mano/MANO_RIGHT.pkl", "_DATA/vitpose_ckpts/vitpose+_huge/wholebody.pth"]
SMALL = ["--set", "video.options.max_area=6912", "--set", "video.options.num_inference_steps=1",
         "--set", "segmenter.options.sam2_config=configs/sam2.1/sam2.1_hiera_t.yaml",
         "--set", "segmenter.options.box_threshold=0.0", "--set", "segmenter.options.text_threshold=0.0",
         "--set", "flow.num_frames=5", "--set", "flow.num_points=20", "--set", "flow.pictures=false",
         "--set", "grasp.top_k=4"]


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """$D2F_WEIGHTS with the recipe's file names (tiny models and stand-in checkpoints) and the
    upstream checkouts (stand-ins), as a user with everything downloaded would have them."""
    from d2f_plugins.segment.grounded_sam2 import TINY_SAM2_OVERRIDES, build_tiny_models
    from d2f_plugins.video.wan_tiny import build_tiny_wan

    root = tmp_path_factory.mktemp("real")
    w = root / "weights"
    build_tiny_wan(w / "Wan2.1-I2V-14B-480P-Diffusers")
    tiny = build_tiny_models(root / "gsam2", seed=0)
    (w / "grounding-dino-tiny").symlink_to(tiny["detector"])
    (w / "sam2.1_hiera_large.pt").symlink_to(tiny["sam2_checkpoint"])
    (w / "SpatialTrackerV2-Offline").mkdir()
    (w / "SpatialTrackerV2-Offline" / "config.json").write_text("{}")
    (w / "SpatialTrackerV2_Front").mkdir()
    (w / "cotracker3").mkdir()
    torch.save({"model_resolution_hw": torch.tensor([72, 96])}, w / "cotracker3" / "scaled_offline.pth")
    (w / "model_final_f05665.pkl").write_bytes(b"placeholder")
    (w / "anygrasp").mkdir()
    (w / "anygrasp" / "checkpoint_detection.tar").write_bytes(b"placeholder")
    hamer = root / "hamer"
    hamer.mkdir()
    for name in ("hamer", "detectron2", "vitpose_model.py"):
        (hamer / name).symlink_to(STANDINS / "hamer" / name)
    for f in HAMER_DATA:
        (hamer / f).parent.mkdir(parents=True, exist_ok=True)
        (hamer / f).write_bytes(b"placeholder")
    s = standard_scene()  # a box on a table (64 x 48 camera), the grasper conformance scene
    scene = write_scene(root / "scene", s.rgbd, "push the box", "box")  # only the observation
    overrides = [f"segmenter.options.sam2_overrides={json.dumps(TINY_SAM2_OVERRIDES)}"]
    return {"weights": w, "hamer": hamer, "scene": scene, "root": root, "sam2_overrides": overrides}


@pytest.fixture
def env(installed, monkeypatch):
    monkeypatch.setenv("D2F_WEIGHTS", str(installed["weights"]))
    monkeypatch.setenv("SPATRACKERV2_DIR", str(STANDINS / "spatrackerv2"))
    monkeypatch.setenv("COTRACKER_DIR", str(STANDINS / "cotracker"))
    monkeypatch.setenv("HAMER_DIR", str(installed["hamer"]))
    monkeypatch.setenv("ANYGRASP_DIR", str(STANDINS / "anygrasp"))
    monkeypatch.setenv("TORCH_HOME", str(installed["root"] / "torch"))
    # detectron2 and graspnetAPI are pip-installed in real life: importable
    with standin_modules(installed["hamer"], STANDINS / "anygrasp"):
        yield installed


def _sets(env):
    out = list(SMALL)
    for o in env["sam2_overrides"]:
        out += ["--set", o]
    return out


def test_doctor_passes_what_the_cpu_can_run(env):
    """With every library, checkout and weight in place, the only thing this CPU machine cannot run
    is AnyGrasp (CUDA only): the doctor says exactly that, with the GL line, and exits 1; without
    the grasper it exits 0."""
    res = CliRunner().invoke(app, ["doctor", "real/bread_in_bowl", *_sets(env)], catch_exceptions=False)
    problems = [ln for ln in res.output.splitlines() if ln.startswith("problem:")]
    if torch.cuda.is_available():
        pytest.skip("CUDA here: AnyGrasp is not refused")
    assert res.exit_code == 1
    assert len(problems) == 1 and "anygrasp: runs on CUDA only" in problems[0], res.output
    assert "MuJoCo GL:" in res.output
    for kind, plugin in (("video", "wan2.1"), ("depth", "spatialtracker-v2"), ("segmenter", "grounded-sam2"),
                         ("tracker", "cotracker3"), ("hand", "hamer")):
        line = next(ln for ln in res.output.splitlines() if ln.startswith(kind + " "))
        assert plugin in line and "library ok" in line and "weights ok" in line and "device cpu float32" in line
    res = CliRunner().invoke(app, ["doctor", "real/bread_in_bowl", *_sets(env), "--set", "grasper=null"],
                             catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert "ready: every component can run here" in res.output


def test_real_recipe_runs_end_to_end_on_a_scene_folder(env, tmp_path):
    out = tmp_path / "run"
    res = CliRunner().invoke(app, [
        "run", "real/bread_in_bowl", "--out", str(out), "--set", f"scene={env['scene']}",
        "--set", "world=null", "--set", "embodiment=null", "--set", "solver=null", "--set", "dynamics=null",
        *_sets(env)], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    result = json.loads((out / "result.json").read_text())
    assert result["completed"] == ["observe", "video", "hands", "depth", "segment", "track", "flow", "grasp"], result
    # nothing stood in for a model: only the observation came from the scene folder
    assert [s["kind"] for s in result["stand_ins"]] in ([], ["world"]), result["stand_ins"]
    cfg = (out / "config.yaml").read_text()
    for path in ("Wan2.1-I2V-14B-480P-Diffusers", "SpatialTrackerV2_Front", "grounding-dino-tiny",
                 "cotracker3/scaled_offline.pth", "model_final_f05665.pkl", "anygrasp/checkpoint_detection.tar"):
        assert f"{env['weights']}/{path}" in cfg  # the weights block, $D2F_WEIGHTS expanded, reached the options
    from d2f_core.artifacts import load_frames
    frames = load_frames(out / "video.npz")
    assert frames.shape == (5, 48, 64, 3) and frames.dtype == np.uint8
    flow = np.load(out / "flow.npz")
    assert flow["points"].shape[:2] == (5, 20)
    grasps = json.loads((out / "grasps.json").read_text())
    # AnyGrasp (its stand-in, through the SDK call path) asked from the camera and the virtual
    # top-down view, 2 + 2 of top_k 4; the box is 4 cm tall on the table at z = 0
    sources = [c["source"] for c in grasps["candidates"]]
    assert 1 <= len(sources) <= 4 and set(sources) <= {"camera", "top-down"}, sources
    assert grasps["chosen"] is not None and grasps["reason"]
    assert all(0.0 < np.asarray(c["T_world_grasp"])[2, 3] < 0.05 for c in grasps["candidates"])


def test_gpu_smoke_runs_the_recipe_and_times_each_stage(env, tmp_path, capsys):
    """benchmarks/gpu_smoke.py on the scene folder (AnyGrasp, CUDA only, left out on this CPU)."""
    import importlib.util
    from pathlib import Path
    path = Path(__file__).parents[1] / "benchmarks" / "gpu_smoke.py"
    spec = importlib.util.spec_from_file_location("gpu_smoke", path)
    smoke = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(smoke)
    sets = [x for x in _sets(env) if x != "--set"]
    args = ["--scene", str(env["scene"]), "--out", str(tmp_path / "smoke")]
    for x in sets + ["grasper=null"]:
        args += ["--set", x]
    assert smoke.main(args) == 0
    out = capsys.readouterr().out
    data = json.loads((tmp_path / "smoke" / "gpu_smoke.json").read_text())
    assert [n for n, s in data["stages"].items() if s["status"] == "done"] == [
        "observe", "video", "hands", "depth", "segment", "track", "flow"]
    assert data["flow_seconds"] > 0 and data["paper_flow_minutes"] == [3, 11]
    assert "3D object flow (video .. flow):" in out and "paper: 3-11 min" in out
    # without the grasper's CUDA, the real recipe as shipped is refused with the doctor's report
    assert smoke.main(["--scene", str(env["scene"]), "--out", str(tmp_path / "no")]) == 2
    assert "anygrasp: runs on CUDA only" in capsys.readouterr().out or torch.cuda.is_available()
