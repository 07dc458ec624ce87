"""dream2flow core: data types, component protocols, plugin registry, config and pipeline.

``import d2f_core`` is light (numpy, pluggy): heavy libraries load only inside plugin factories.
"""

from __future__ import annotations

# first: choose MuJoCo's headless GL backend before anything can import MuJoCo (d2f_core/gl.py)
from .gl import configure_headless_gl

configure_headless_gl()

from .hookspecs import hookimpl  # noqa: E402
from .protocols import KINDS, IKResult, ModelInputSpec, Policy, Problem
from .registry import CORE_API_VERSION, BuildContext, Manifest, get_registry
from .types import (RGBD, Alignment, Camera, DataError, DepthVideo, Framing, Grasp, HandTrack,
                    JointTrajectory, ObjectFlow, Observation, Task, Tracks2D, Video)

__version__ = "0.1.0"

__all__ = [
    "hookimpl", "KINDS", "IKResult", "ModelInputSpec", "Policy", "Problem", "CORE_API_VERSION",
    "BuildContext", "Manifest", "get_registry", "RGBD", "Alignment", "Camera", "DataError",
    "DepthVideo", "Framing", "Grasp", "HandTrack", "JointTrajectory", "ObjectFlow", "Observation", "Task",
    "Tracks2D", "Video", "__version__",
]
