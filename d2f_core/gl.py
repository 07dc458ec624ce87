"""The one place that chooses MuJoCo's OpenGL backend (``MUJOCO_GL``) on a machine without a display.

MuJoCo reads ``MUJOCO_GL`` once, when it is first imported, and falls back to GLFW when it is
unset; on a headless machine GLFW fails with ``gladLoadGL error`` / "The DISPLAY environment
variable is missing". So the choice must be made before anything can import MuJoCo:
:func:`configure_headless_gl` runs when ``d2f_core`` or ``d2f_plugins`` is imported (so the CLI,
``make_env``, the conformance suite, the test suite and every plugin module pass through it), and
the simulator's renderer asks :func:`gl_context_class` for its GL context instead of trusting the
class MuJoCo picked at its own import (which may have happened before ours, with the variable unset).

Rules, in order:

1. ``MUJOCO_GL`` set by the user: kept as it is (an unknown value is reported by :func:`gl_choice`).
2. A display (``DISPLAY`` or ``WAYLAND_DISPLAY``), or not Linux: left unset, MuJoCo's own default.
3. No display: ``egl`` when libEGL is installed, else ``osmesa`` when libOSMesa is, else left unset
   and reported with the fix (``apt-get install libegl1`` or ``libosmesa6``).

Light: no MuJoCo or OpenGL import here; library detection is a few ``os.path.exists`` calls.
"""

from __future__ import annotations

import ctypes.util
import glob
import os
import sys
from dataclasses import dataclass

__all__ = ["GLChoice", "configure_headless_gl", "gl_choice", "gl_context_class", "VALID_BACKENDS"]

VALID_BACKENDS = ("egl", "osmesa", "glfw", "glx", "enable", "enabled", "on", "true", "1",
                  "disable", "disabled", "off", "false", "0", "")

_LIB_DIRS = ("/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64", "/usr/lib",
             "/lib/x86_64-linux-gnu", "/lib/aarch64-linux-gnu", "/lib64", "/lib", "/usr/local/lib")


@dataclass(frozen=True)
class GLChoice:
    """What MuJoCo will render with and why.

    ``backend``: the ``MUJOCO_GL`` value in force (``None``: unset, MuJoCo's default GLFW);
    ``reason``: one line saying who chose it; ``problem``: a one-line error with the fix when
    rendering cannot work as configured, else ``None``."""

    backend: str | None
    reason: str
    problem: str | None = None

    def describe(self) -> str:
        """One line for ``d2f plugins`` / ``d2f doctor``: ``MuJoCo GL: egl (no display; libEGL found)``."""
        text = f"MuJoCo GL: {self.backend or 'glfw (MuJoCo default)'} ({self.reason})"
        return text + (f" - {self.problem}" if self.problem else "")


_CHOICE: GLChoice | None = None


def _has_library(stem: str) -> bool:
    """Whether ``lib<stem>.so*`` is installed (checked in the usual folders, then ``LD_LIBRARY_PATH``,
    then ``ctypes.util.find_library``)."""
    dirs = [d for d in os.environ.get("LD_LIBRARY_PATH", "").split(os.pathsep) if d] + list(_LIB_DIRS)
    for d in dirs:
        if glob.glob(os.path.join(d, f"lib{stem}.so*")):
            return True
    try:
        return ctypes.util.find_library(stem) is not None
    except OSError:  # pragma: no cover - find_library shells out to ldconfig/gcc
        return False


def _decide(environ: os._Environ[str] | dict[str, str], platform: str) -> tuple[GLChoice, dict[str, str]]:
    """The choice for this environment and the variables to set (pure: nothing is changed)."""
    if "MUJOCO_GL" in environ:
        value = environ["MUJOCO_GL"]
        problem = None
        if value.lower().strip() not in VALID_BACKENDS:
            problem = (f"MUJOCO_GL={value[:40]!r} is not a MuJoCo GL backend: set MUJOCO_GL=egl "
                       "(headless GPU/Mesa), osmesa (software) or glfw (a desktop), or unset it")
        return GLChoice(value, "MUJOCO_GL set by the user", problem), {}
    if not platform.startswith("linux"):
        return GLChoice(None, f"{platform}: MuJoCo's own default"), {}
    display = environ.get("DISPLAY") or environ.get("WAYLAND_DISPLAY")
    if display:
        return GLChoice(None, f"display {display[:40]}: MuJoCo's own default"), {}
    if _has_library("EGL"):
        return GLChoice("egl", "no display; libEGL found"), {"MUJOCO_GL": "egl"}
    if _has_library("OSMesa"):
        return GLChoice("osmesa", "no display, no libEGL; libOSMesa found"), {"MUJOCO_GL": "osmesa"}
    return GLChoice(None, "no display", "neither libEGL nor libOSMesa is installed: apt-get install libegl1 "
                    "(or libosmesa6 and set MUJOCO_GL=osmesa)"), {}


def configure_headless_gl() -> GLChoice:
    """Choose the backend (rules in the module doc) and set ``MUJOCO_GL`` (and the matching
    ``PYOPENGL_PLATFORM`` when unset) in ``os.environ``. Idempotent: the first call decides; later
    calls re-decide only if the user changed ``MUJOCO_GL`` since."""
    global _CHOICE
    if _CHOICE is not None and os.environ.get("MUJOCO_GL") == _CHOICE.backend:
        return _CHOICE
    choice, env = _decide(os.environ, sys.platform)
    for key, value in env.items():
        os.environ[key] = value
    if choice.backend in ("egl", "osmesa") and "PYOPENGL_PLATFORM" not in os.environ:
        os.environ["PYOPENGL_PLATFORM"] = choice.backend
    _CHOICE = choice
    return choice


def gl_choice() -> GLChoice:
    """The choice in force (made now if nothing has made it yet)."""
    return configure_headless_gl()


def _load_triton_first() -> None:
    """Load Triton's native library (when installed, e.g. beside a CUDA torch build) before the first
    EGL context: once Mesa's EGL has loaded its libLLVM, torch's optimisers loading Triton lazily
    crash the process (seen with SAC training after rendering a robosuite scene). About 0.15 s."""
    import importlib
    import importlib.util

    try:
        if importlib.util.find_spec("triton") is not None:
            importlib.import_module("triton._C.libtriton")
    except Exception:  # noqa: BLE001 - best effort: a broken Triton must not stop rendering
        pass


def gl_context_class() -> type | None:
    """MuJoCo's GL context class for the backend in force, imported now.

    Unlike ``mujoco.gl_context.GLContext``, which MuJoCo fixes at its first import, this follows
    the choice made here, so rendering works even when a user imported MuJoCo before dream2flow
    with ``MUJOCO_GL`` unset. ``None`` when rendering is disabled (``MUJOCO_GL=disable``)."""
    choice = configure_headless_gl()
    if choice.problem and choice.backend is not None:
        raise RuntimeError(choice.problem)
    backend = (choice.backend or "").lower().strip()
    if backend == "egl":
        _load_triton_first()
        from mujoco.egl import GLContext
        return GLContext
    if backend == "osmesa":
        from mujoco.osmesa import GLContext
        return GLContext
    if backend in ("disable", "disabled", "off", "false", "0"):
        return None
    if backend == "" and not sys.platform.startswith("linux"):
        from mujoco import gl_context
        return gl_context.GLContext
    from mujoco.glfw import GLContext
    return GLContext
