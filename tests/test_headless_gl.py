"""MuJoCo rendering on a machine without a display works without the user setting MUJOCO_GL.

The choice is made in one place (d2f_core/gl.py) when d2f_core or d2f_plugins is imported; the
renderer takes its GL context from that choice, so importing MuJoCo first does not break it.
"""

import os
import subprocess
import sys

import pytest

from d2f_core import gl


def _clean_env() -> dict[str, str]:
    """This process's environment as a fresh headless shell has it: no MUJOCO_GL, display or
    PyOpenGL platform."""
    return {k: v for k, v in os.environ.items()
            if k not in ("MUJOCO_GL", "DISPLAY", "WAYLAND_DISPLAY", "PYOPENGL_PLATFORM")}


def test_decide_rules(monkeypatch):
    monkeypatch.setattr(gl, "_has_library", lambda stem: stem == "EGL")
    choice, env = gl._decide({}, "linux")
    assert (choice.backend, env, choice.problem) == ("egl", {"MUJOCO_GL": "egl"}, None)
    choice, env = gl._decide({"MUJOCO_GL": "osmesa"}, "linux")
    assert (choice.backend, env) == ("osmesa", {})  # an explicit choice is kept
    assert "set by the user" in choice.reason
    choice, env = gl._decide({"DISPLAY": ":0"}, "linux")
    assert (choice.backend, env) == (None, {})  # a desktop keeps MuJoCo's own default
    choice, env = gl._decide({}, "darwin")
    assert (choice.backend, env) == (None, {})
    monkeypatch.setattr(gl, "_has_library", lambda stem: stem == "OSMesa")
    choice, env = gl._decide({}, "linux")
    assert (choice.backend, env) == ("osmesa", {"MUJOCO_GL": "osmesa"})
    monkeypatch.setattr(gl, "_has_library", lambda stem: False)
    choice, env = gl._decide({}, "linux")
    assert choice.backend is None and env == {} and "apt-get install libegl1" in choice.problem
    choice, _ = gl._decide({"MUJOCO_GL": "eggl"}, "linux")
    assert "MUJOCO_GL='eggl' is not a MuJoCo GL backend" in choice.problem and "egl" in choice.problem


def test_configure_sets_the_environment(monkeypatch):
    for k in ("MUJOCO_GL", "DISPLAY", "WAYLAND_DISPLAY", "PYOPENGL_PLATFORM"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setattr(gl, "_CHOICE", None)
    monkeypatch.setattr(gl, "_has_library", lambda stem: stem == "OSMesa")
    choice = gl.configure_headless_gl()
    assert choice.backend == "osmesa" and os.environ["MUJOCO_GL"] == "osmesa"
    assert os.environ["PYOPENGL_PLATFORM"] == "osmesa"
    assert gl.gl_choice() is choice  # decided once
    assert choice.describe().startswith("MuJoCo GL: osmesa (")


def test_import_chooses_before_anything_else():
    """A bare `import d2f_plugins.<module>` (no CLI, no d2f_core import first) sets MUJOCO_GL."""
    code = ("import os, d2f_plugins.embodiment.robosuite_kinematics\n"
            "print(os.environ.get('MUJOCO_GL'))")
    out = subprocess.run([sys.executable, "-c", code], env=_clean_env(), capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    expected = gl._decide({}, sys.platform)[0].backend
    assert out.stdout.strip() == str(expected)


def test_plugins_command_says_which_backend():
    out = subprocess.run([sys.executable, "-m", "d2f_core.cli", "plugins"], env=_clean_env(),
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "MuJoCo GL: " in out.stdout


_RENDER = """
import numpy as np
from d2f_core.registry import get_registry
from d2f_core import BuildContext
reg = get_registry().discover()
emb = reg.create('embodiment', 'franka', {})
ctx = BuildContext(seed=0, getter=lambda k: emb if k == 'embodiment' else None)
w = reg.create('world', 'robosuite', {'task': 'open_door', 'width': 64, 'height': 48}, ctx=ctx)
w.reset(0)
rgb = w.render().rgb
print('MEAN', float(rgb.mean()), float(rgb.std()))
"""


@pytest.mark.sim
@pytest.mark.parametrize("first", ["", "import mujoco\n", "import mujoco, robosuite\n"],
                         ids=["dream2flow-first", "mujoco-first", "robosuite-first"])
def test_world_renders_without_mujoco_gl_set(first):
    """MuJoCo (or robosuite) imported before dream2flow with MUJOCO_GL unset, then a rendered frame."""
    pytest.importorskip("robosuite")
    out = subprocess.run([sys.executable, "-c", first + _RENDER], env=_clean_env(), capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    mean, std = (float(v) for v in out.stdout.split("MEAN")[-1].split())
    assert mean > 5 and std > 1  # a real image, not a black or flat frame
