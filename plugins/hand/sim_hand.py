"""``sim-hand`` hand detector: the oracle's scripted contact point as the thumb (a STAND-IN for HaMeR).

The oracle video shows no hand; the point a hand would hold is known instead (the door's or the
oven's handle, the top of the bread). ``detect(video)`` reports it in every frame of the oracle
rollout the video came from: keypoint 4 (the thumb tip, OpenPose order) at the contact point's
pixel, and ``keypoints_world`` at its world position (metres). The other 20 keypoints are put
at the same point (no hand pose is simulated; only the thumb tip is meaningful). A video the world
did not render gets the contact track of a fresh rollout with as many frames, with a warning.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from d2f_core import HandTrack, Manifest, Video, hookimpl
from d2f_core.validate import check_video

from d2f_plugins.world.robosuite_world import SIM_INSTALL, SIM_REQUIRES, StandInOptions, oracle_world

__all__ = ["SimHandOptions", "SimHandDetector"]


class SimHandOptions(StandInOptions):
    pass


class SimHandDetector:
    """``detect(video)``: the scripted contact point per frame as the thumb tip."""

    name = "sim-hand"
    kind = "hand"
    capabilities = frozenset({"stand_in", "deterministic", "world_keypoints"})
    Options = SimHandOptions
    extra, requires, install = "sim", SIM_REQUIRES, SIM_INSTALL
    description = ("STAND-IN for a hand detector: the oracle's scripted contact point (handle, bread top) as the "
                   "thumb tip, with world coordinates")
    verified = "thumb pixel is the projection of the contact point; it lies on the handle's mask"

    def __init__(self, world: Any, options: SimHandOptions | None = None) -> None:
        self.world = world
        self.options = options or SimHandOptions()

    def detect(self, video: Video) -> HandTrack:
        check_video(video, "video")
        r = self.world.find_oracle_rollout(video.frames)
        if r is None:
            r = self.world.oracle_rollout(video.num_frames)
            if not r.matches(video.frames):
                warnings.warn("sim-hand: the video's frames do not match an oracle rollout of this world; returning "
                              f"the contact track of a fresh {video.num_frames}-frame rollout", stacklevel=2)
        px = np.asarray(r.contact_px, np.float64)
        sx, sy = video.width / r.camera.width, video.height / r.camera.height
        px = np.stack([(px[:, 0] + 0.5) * sx - 0.5, (px[:, 1] + 0.5) * sy - 0.5], -1)
        T = video.num_frames
        kp = np.repeat(px[:, None, :], 21, axis=1).astype(np.float32)
        kw = np.repeat(np.asarray(r.contact_world)[:, None, :], 21, axis=1).astype(np.float32)
        return HandTrack(keypoints=kp, present=np.ones(T, bool), keypoints_world=kw)


def _factory(options: SimHandOptions | None, ctx: Any = None) -> SimHandDetector:
    """The run's world (or a robosuite world of ``options.task`` when the run has none)."""
    options = options or SimHandOptions()
    return SimHandDetector(oracle_world(ctx, options, SimHandDetector.name), options)


@hookimpl
def d2f_register(register):
    register(Manifest.of(SimHandDetector, factory=_factory))
