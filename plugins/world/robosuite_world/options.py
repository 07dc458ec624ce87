"""Options of the ``robosuite`` world and what its plugins need installed (pydantic only; imported by
the package and by :mod:`.world`)."""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["RobosuiteWorldOptions", "SIM_REQUIRES", "SIM_INSTALL"]

SIM_REQUIRES = ("robosuite", "mujoco")
SIM_INSTALL = "pip install 'dream2flow[sim]' (robosuite==1.5.2 with mujoco==3.9.0)"


class RobosuiteWorldOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    task: Literal["open_door", "bread_in_bowl", "open_oven", "cover_bowl"] = Field(
        default="open_door", description="which task: open_door, bread_in_bowl, open_oven, cover_bowl")
    width: int = Field(default=640, ge=32, le=2048, description="image width, pixels")
    height: int = Field(default=480, ge=32, le=2048, description="image height, pixels")
    camera: str = Field(default="task", description="'task': the task's own view (camera d2f_camera, posed by "
                                                    "camera_eye/camera_target/camera_fovy); or the name of a "
                                                    "static camera of the robosuite model, e.g. 'agentview', "
                                                    "'frontview', 'birdview', 'sideview'")
    camera_eye: list[float] | None = Field(default=None, description="camera centre (x, y, z), metres, world "
                                                                     "frame (camera 'task'; default per task)")
    camera_target: list[float] | None = Field(default=None, description="point the camera looks at (x, y, z), "
                                                                        "metres, world frame (camera 'task')")
    camera_fovy: float | None = Field(default=None, gt=5.0, lt=150.0,
                                      description="vertical field of view, degrees (camera 'task'; default 45)")
    horizon: int = Field(default=500, ge=1, description="maximum number of steps of one episode")
    control_freq: float = Field(default=20.0, gt=0.0, le=500.0,
                                description="actions per simulated second, Hz (one step = 1/control_freq s)")
    render_steps: bool = Field(default=False, description="render RGB-D into the Observation of every step "
                                                          "(reset always renders; render() always works)")
    oven_open_threshold: float = Field(default=0.5, gt=0.0, lt=1.6,
                                       description="open_oven success: door hinge angle at least this, radians")
    oracle_fps: float = Field(default=8.0, gt=0.0, description="frame rate of oracle videos, Hz")

    @field_validator("camera_eye", "camera_target")
    @classmethod
    def _xyz(cls, v: list[float] | None) -> list[float] | None:
        if v is not None and (len(v) != 3 or not all(math.isfinite(x) for x in v)):
            raise ValueError("expected 3 finite numbers (x, y, z) in metres")
        return v
