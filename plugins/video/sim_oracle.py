"""``sim-oracle`` video model: the simulator scripts the task done right (a STAND-IN for a video model).

No video model runs on a CPU without weights, so in simulation the "generated" video is rendered
by the world itself: from the world's current state (the episode's initial state, after
``reset``) the task object or its movable part is moved along a smooth scripted motion (door
handle turned and door swung open, oven door lowered, bread lifted into the bowl), the robot
hidden, and only the RGB frames are returned, as a generated video would be. See
``d2f_plugins.world.robosuite_world.tasks`` for the motions. Runs report it as a stand-in.

The input ``image`` is validated but not used: frame 0 is the world's current state rendered
with the robot hidden, at the world camera's resolution. The rollout is cached by the world, so
``sim-depth`` and ``sim-hand`` read the same rollout. ``seed`` does not change the video (the
script is deterministic); it is recorded in ``Video.seed``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import Field

from d2f_core import Manifest, Video, hookimpl
from d2f_core.validate import check_image

from d2f_plugins.world.robosuite_world import SIM_INSTALL, SIM_REQUIRES, StandInOptions, oracle_world

__all__ = ["SimOracleOptions", "SimOracleVideo"]


class SimOracleOptions(StandInOptions):
    hide_robot: bool = Field(default=True, description="hide the robot in the frames (a video of a hand doing "
                                                       "the task shows no robot)")


class SimOracleVideo:
    """``generate(image, prompt, num_frames=49)``: the world's oracle rollout as a Video."""

    name = "sim-oracle"
    kind = "video"
    capabilities = frozenset({"stand_in", "deterministic"})
    Options = SimOracleOptions
    extra, requires, install = "sim", SIM_REQUIRES, SIM_INSTALL
    description = ("STAND-IN for a video model: the robosuite world renders the task done right by a scripted "
                   "object motion, robot hidden (no weights, CPU)")
    verified = "final oracle states pass the task's success check (seeds 0-9, every task); frames looked at"

    def __init__(self, world: Any, options: SimOracleOptions | None = None) -> None:
        self.world = world
        self.options = options or SimOracleOptions()

    def generate(self, image: np.ndarray, prompt: str, *, last_image: np.ndarray | None = None,
                 num_frames: int = 49, seed: int | None = None) -> Video:
        check_image(image, "image")
        if last_image is not None:
            raise ValueError("last_image: sim-oracle does not condition on an end frame (it scripts the task in "
                             "the simulator); drop last_image")
        if isinstance(num_frames, bool) or not isinstance(num_frames, (int, np.integer)) or num_frames < 2:
            raise ValueError(f"num_frames: expected an integer >= 2, got {num_frames!r}")
        r = self.world.oracle_rollout(int(num_frames), hide_robot=self.options.hide_robot)
        what = "robot hidden" if r.robot_hidden else "robot shown"
        return Video(frames=r.frames, fps=r.fps, model=f"sim-oracle ({r.task}: scripted motion, {what}; stand-in)",
                     prompt=str(prompt), seed=seed)


def _factory(options: SimOracleOptions | None, ctx: Any = None) -> SimOracleVideo:
    """The run's world (or a robosuite world of ``options.task`` when the run has none)."""
    options = options or SimOracleOptions()
    return SimOracleVideo(oracle_world(ctx, options, SimOracleVideo.name), options)


@hookimpl
def d2f_register(register):
    register(Manifest.of(SimOracleVideo, factory=_factory))
