"""dream2flow core: data types, component protocols, plugin registry, config and pipeline.

``import d2f_core`` is light (numpy, pluggy): heavy libraries load only inside plugin factories.
"""

from __future__ import annotations

# first: choose MuJoCo's headless GL backend before anything can import MuJoCo (d2f_core/gl.py)
from .gl import configure_headless_gl

configure_headless_gl()

from .hookspecs import hookimpl  # noqa: E402
from .protocols import KINDS, Agent, IKResult, ModelInputSpec, Policy, Problem
from .registry import CORE_API_VERSION, BuildContext, Manifest, get_registry
from .types import (RGBD, Alignment, Camera, DataError, DepthVideo, Framing, Grasp, HandTrack,
                    JointTrajectory, ObjectFlow, Observation, Task, Tracks2D, Video)

__version__ = "0.1.0"


def __getattr__(name: str):
    """The acting layer, imported on first use (it needs gymnasium): ``d2f_core.make_env``,
    ``FlowEnv``, ``rollout``, ``EpisodeReport``."""
    if name in ("make_env", "FlowEnv", "rollout", "EpisodeReport"):
        from . import acting
        return getattr(acting, name)
    raise AttributeError(f"module 'd2f_core' has no attribute {name!r}")

__all__ = [
    "hookimpl", "KINDS", "Agent", "IKResult", "ModelInputSpec", "Policy", "Problem", "make_env", "FlowEnv",
    "rollout", "EpisodeReport", "CORE_API_VERSION",
    "BuildContext", "Manifest", "get_registry", "RGBD", "Alignment", "Camera", "DataError",
    "DepthVideo", "Framing", "Grasp", "HandTrack", "JointTrajectory", "ObjectFlow", "Observation", "Task",
    "Tracks2D", "Video", "__version__",
]
