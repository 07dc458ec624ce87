"""MuJoCo rendering on a machine without a display works without the user setting MUJOCO_GL."""

import os
import subprocess
import sys

import pytest

from d2f_plugins.embodiment.robosuite_kinematics import headless_gl


def test_defaults_to_egl_only_when_unset_and_headless(monkeypatch):
    monkeypatch.delenv("MUJOCO_GL", raising=False)
    monkeypatch.delenv("DISPLAY", raising=False)
    headless_gl()
    assert os.environ["MUJOCO_GL"] == "egl"
    monkeypatch.setenv("MUJOCO_GL", "osmesa")
    headless_gl()
    assert os.environ["MUJOCO_GL"] == "osmesa"  # an explicit choice is kept
    monkeypatch.delenv("MUJOCO_GL")
    monkeypatch.setenv("DISPLAY", ":0")
    headless_gl()
    assert "MUJOCO_GL" not in os.environ  # a desktop keeps MuJoCo's own default


@pytest.mark.sim
def test_world_renders_without_mujoco_gl_set(tmp_path):
    pytest.importorskip("robosuite")
    env = {k: v for k, v in os.environ.items() if k not in ("MUJOCO_GL", "DISPLAY", "PYOPENGL_PLATFORM")}
    code = ("from d2f_core.registry import get_registry; from d2f_core import BuildContext\n"
            "reg = get_registry().discover()\n"
            "emb = reg.create('embodiment', 'franka', {})\n"
            "ctx = BuildContext(seed=0, getter=lambda k: emb if k == 'embodiment' else None)\n"
            "w = reg.create('world', 'robosuite', {'task': 'open_door', 'width': 64, 'height': 48}, ctx=ctx)\n"
            "print(int(w.render().rgb.mean() > 5))")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().endswith("1")
