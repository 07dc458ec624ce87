"""`d2f doctor`: per component of a config, library / weights / keys / device / GPU memory, one line
per problem with its fix, the GL line, exit 1 when the config cannot run."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from d2f_core.cli import app
from d2f_core.doctor import diagnose

KEYS = ("GEMINI_API_KEY", "GOOGLE_API_KEY", "KLING_ACCESS_KEY", "KLING_SECRET_KEY")
CHECKOUTS = ("COTRACKER_DIR", "SPATRACKERV2_DIR", "HAMER_DIR", "ANYGRASP_DIR", "D2F_WEIGHTS")


@pytest.fixture
def bare(monkeypatch, tmp_path):
    """No keys, no checkouts, no weights folder, an empty torch hub."""
    for v in KEYS + CHECKOUTS:
        monkeypatch.delenv(v, raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))


def _cfg(tmp_path, text):
    p = tmp_path / "c.yaml"
    p.write_text(text)
    return str(p)


def test_real_recipe_without_anything_lists_every_problem_with_its_fix(bare):
    res = CliRunner().invoke(app, ["doctor", "real/open_oven"], catch_exceptions=False)
    assert res.exit_code == 1
    out = res.output
    problems = [ln for ln in out.splitlines() if ln.startswith("problem:")]
    # missing libraries / checkouts, with the install line
    lib = {p.split(":")[1].strip().split()[1] for p in problems
           if "not installed" in p or "needs the AnyGrasp SDK" in p}
    pytest.importorskip("torch")
    assert {"spatialtracker-v2", "cotracker3", "hamer", "anygrasp"} <= lib, problems
    assert any("SPATRACKERV2_DIR" in p for p in problems) and any("HAMER_DIR" in p for p in problems)
    assert any("pip install git+https://github.com/facebookresearch/co-tracker.git" in p for p in problems)
    # weights: the recipe's $D2F_WEIGHTS is not set, named with the fix
    assert any("video.options.weights = $D2F_WEIGHTS/Wan2.1-I2V-14B-480P-Diffusers uses $D2F_WEIGHTS, which is "
               "not set; export D2F_WEIGHTS=" in p for p in problems), problems
    # every problem is one line naming its component
    assert all(len(p.split(": ", 2)) == 3 for p in problems)
    assert "MuJoCo GL:" in out and "not ready:" in out
    assert out.splitlines()[0] == "d2f doctor: real/open_oven"


def test_missing_and_present_weights(bare, tmp_path, monkeypatch):
    pytest.importorskip("diffusers")
    from d2f_plugins.video.wan_tiny import build_tiny_wan

    build_tiny_wan(tmp_path / "Wan2.1-I2V-14B-480P-Diffusers")
    cfg = _cfg(tmp_path, f"scene: {tmp_path}\nvideo: {{plugin: wan2.1}}\n"
                         "weights:\n  wan2.1: {weights: $MY_W/Wan2.1-I2V-14B-480P-Diffusers}\n")
    r = diagnose(cfg)
    assert not r.ok and any("$MY_W, which is not set" in p for p in r.problems)
    monkeypatch.setenv("MY_W", str(tmp_path / "elsewhere"))
    r = diagnose(cfg)
    assert not r.ok and any("Wan2.1-I2V-14B-480P-Diffusers not found; download it (https://huggingface.co/"
                            "Wan-AI/Wan2.1-I2V-14B-480P-Diffusers" in p for p in r.problems), r.problems
    monkeypatch.setenv("MY_W", str(tmp_path))
    r = diagnose(cfg)
    assert r.ok, r.problems
    video = next(c for c in r.components if c.kind == "video")
    assert video.weights == "ok" and video.library == "ok" and video.device.startswith(("cpu", "cuda"))
    # an option the user set wins over the weights block, and a missing one is named
    r = diagnose(cfg, overrides=[f"video.options.weights={tmp_path / 'nope'}"])
    assert any(f"video.options.weights: {tmp_path / 'nope'} not found" in p for p in r.problems)
    # not set at all
    r = diagnose(_cfg(tmp_path, f"scene: {tmp_path}\nvideo: {{plugin: wan2.1}}\n"))
    assert any("video.options.weights is not set; download it" in p and "weights: {wan2.1: {weights: PATH}}" in p
               for p in r.problems)


def test_missing_api_keys(bare, tmp_path):
    pytest.importorskip("PIL")
    r = diagnose(_cfg(tmp_path, f"scene: {tmp_path}\nvideo: {{plugin: kling}}\n"))
    assert not r.ok and any("KLING_ACCESS_KEY and KLING_SECRET_KEY" in p for p in r.problems), r.problems
    pytest.importorskip("google.genai")
    r = diagnose(_cfg(tmp_path, f"scene: {tmp_path}\nvideo: {{plugin: veo3}}\n"))
    assert not r.ok and any("GEMINI_API_KEY" in p for p in r.problems), r.problems


def test_keys_present_is_ok(bare, tmp_path, monkeypatch):
    pytest.importorskip("PIL")
    pytest.importorskip("imageio_ffmpeg")
    monkeypatch.setenv("KLING_ACCESS_KEY", "ak-0123456789")
    monkeypatch.setenv("KLING_SECRET_KEY", "sk-0123456789")
    r = diagnose(_cfg(tmp_path, f"scene: {tmp_path}\nvideo: {{plugin: kling}}\n"))
    assert r.ok, r.problems
    res = CliRunner().invoke(app, ["doctor", _cfg(tmp_path, f"scene: {tmp_path}\nvideo: {{plugin: kling}}\n")])
    assert res.exit_code == 0 and "ready: every component can run here" in res.output


def test_unknown_plugin_bad_options_and_missing_scene(bare, tmp_path):
    r = diagnose(_cfg(tmp_path, f"scene: {tmp_path / 'no-scene'}\ntracker: {{plugin: cotraker3}}\n"
                                 "depth: {plugin: file, options: {bogus: 1}}\n"))
    text = "\n".join(r.problems)
    assert "scene: folder" in text and "not found" in text
    assert "no tracker plugin named 'cotraker3'" in text and "Did you mean 'cotracker3'" in text
    assert "depth file:" in text and "bogus" in text
    assert not r.ok


def test_gpu_memory_with_cuda_mocked(bare, tmp_path, monkeypatch):
    """On a (mocked) GPU with 12 GiB free: SpatialTrackerV2 (~24 GiB at its defaults, ~10 with
    chunking) gets a note naming chunk_frames; Wan 2.1 (~40, ~30 offloaded) is a problem."""
    torch = pytest.importorskip("torch")
    import d2f_core.devices as dev
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda d=None: (12 * 2**30, 24 * 2**30))
    dev._LOGGED.clear()
    r = diagnose("real/bread_in_bowl", overrides=["hand=null", "grasper=null"])
    depth = next(c for c in r.components if c.kind == "depth")
    video = next(c for c in r.components if c.kind == "video")
    assert depth.device == "cuda bfloat16" and video.device == "cuda bfloat16"
    tracker = next(c for c in r.components if c.kind == "tracker")
    assert tracker.device == "cuda float32"
    assert "12.0 of 24.0 GiB free" in depth.memory
    assert any("depth spatialtracker-v2: 12.0 GiB free on cuda" in n and "chunk_frames" in n for n in r.notes), r.notes
    assert any("video wan2.1: 12.0 GiB free on cuda, it needs ~40 GiB; set cpu_offload" in p for p in r.problems)
    assert r.cuda.startswith("CUDA: available (12.0 of 24.0 GiB free")


def test_cuda_only_component_on_a_cpu_machine(bare, tmp_path, monkeypatch):
    torch = pytest.importorskip("torch")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    r = diagnose(_cfg(tmp_path, f"scene: {tmp_path}\ngrasper: {{plugin: anygrasp}}\n"))
    assert any("grasper anygrasp: runs on CUDA only" in p for p in r.problems)
    # an explicit CUDA device on a machine without one is a problem with the fix
    r = diagnose(_cfg(tmp_path, f"scene: {tmp_path}\ntracker: {{plugin: cotracker3, options: {{device: cuda}}}}\n"))
    assert any("tracker cotracker3: tracker cotracker3: device 'cuda': CUDA is not available here" in p
               or "device 'cuda': CUDA is not available here" in p for p in r.problems), r.problems


def test_doctor_json(bare):
    import json
    res = CliRunner().invoke(app, ["doctor", "real/cover_bowl", "--json"])
    data = json.loads(res.output)
    assert data["ok"] is False and data["gl"].startswith("MuJoCo GL:")
    assert {c["kind"] for c in data["components"]} >= {"video", "depth", "segmenter", "tracker", "hand", "grasper"}
