"""``sim-depth`` depth estimator: the simulator's metric depth of the oracle video (a STAND-IN).

For a video made by ``sim-oracle`` the world cached the depth of every frame while rendering it;
``estimate`` returns that depth (float32 metres along the camera z axis; 0 where nothing is drawn).
A video the world did not render (frames not matching a cached rollout) gets the depth of a fresh
oracle rollout with as many frames, from the world's current state, and a warning: the pixels
of such a video are not looked at.

To exercise depth alignment as a monocular estimator would, the depth can be corrupted:
``Z_out = scale * Z + shift + noise`` (noise ~ N(0, noise_std) per pixel, seeded by
``noise_seed``; pixels that end up <= 0 become 0 = invalid). Uncorrupted (scale 1, shift 0, no
noise) the output is metric and the capability ``metric_depth`` is declared; corrupted it is
reported as relative depth (``metric=False``).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from pydantic import Field

from d2f_core import DepthVideo, Manifest, Video, hookimpl
from d2f_core.validate import check_video

from d2f_plugins.world.robosuite_world import SIM_INSTALL, SIM_REQUIRES, StandInOptions, oracle_world

__all__ = ["SimDepthOptions", "SimDepthEstimator", "resize_nearest"]


class SimDepthOptions(StandInOptions):
    scale: float = Field(default=1.0, gt=0.0, description="multiply the true depth by this (dimensionless)")
    shift: float = Field(default=0.0, description="then add this, metres")
    noise_std: float = Field(default=0.0, ge=0.0, description="then add Gaussian noise of this std, metres")
    noise_seed: int = Field(default=0, ge=0, description="seed of the noise")


def resize_nearest(a: np.ndarray, height: int, width: int) -> np.ndarray:
    """Nearest-neighbour resize of axes (-2, -1) of a T x H x W or H x W array (pixel centres)."""
    H, W = a.shape[-2:]
    if (H, W) == (height, width):
        return a
    ys = np.clip(((np.arange(height) + 0.5) * H / height).astype(np.int64), 0, H - 1)
    xs = np.clip(((np.arange(width) + 0.5) * W / width).astype(np.int64), 0, W - 1)
    return a[..., ys[:, None], xs[None, :]]


class SimDepthEstimator:
    """``estimate(video)``: the oracle rollout's depth (optionally corrupted)."""

    name = "sim-depth"
    kind = "depth"
    capabilities = frozenset({"stand_in", "deterministic", "metric_depth"})
    """Declared by the plugin; an instance with corruption (scale, shift, noise) drops ``metric_depth``."""
    Options = SimDepthOptions
    extra, requires, install = "sim", SIM_REQUIRES, SIM_INSTALL
    description = ("STAND-IN for a depth estimator: the simulator's metric depth of the oracle video, optionally "
                   "corrupted by scale/shift/noise")
    verified = ("equals the renderer's depth (table plane within 5 mm); corruption parameters recovered by "
                "the core's alignment")

    def __init__(self, world: Any, options: SimDepthOptions | None = None) -> None:
        self.world = world
        self.options = o = options or SimDepthOptions()
        self.corrupted = o.scale != 1.0 or o.shift != 0.0 or o.noise_std > 0.0
        caps = {"stand_in", "deterministic"} | (set() if self.corrupted else {"metric_depth"})
        self.capabilities = frozenset(caps)

    def estimate(self, video: Video) -> DepthVideo:
        check_video(video, "video")
        r = self.world.find_oracle_rollout(video.frames)
        note = "oracle rollout depth"
        if r is None:
            r = self.world.oracle_rollout(video.num_frames)
            if not r.matches(video.frames):
                note = "video not rendered by this world: depth of a fresh oracle rollout"
                warnings.warn(f"sim-depth: the video's frames do not match an oracle rollout of this world; returning "
                              f"the depth of a fresh {video.num_frames}-frame rollout from the world's current state "
                              "(reset the world to the episode's seed before generating the video)", stacklevel=2)
        d = resize_nearest(np.asarray(r.depth, np.float32), video.height, video.width).astype(np.float32)
        o = self.options
        if self.corrupted:
            valid = d > 0
            out = o.scale * d.astype(np.float64) + o.shift
            if o.noise_std > 0:
                out += np.random.default_rng(o.noise_seed).normal(0.0, o.noise_std, size=out.shape)
            d = np.where(valid & (out > 0), out, 0.0).astype(np.float32)
            note += f", corrupted: {o.scale:g} * Z + {o.shift:g} m + N(0, {o.noise_std:g} m)"
        return DepthVideo(depth=d, metric=not self.corrupted, model=f"sim-depth ({note}; stand-in)")


def _factory(options: SimDepthOptions | None, ctx: Any = None) -> SimDepthEstimator:
    """The run's world (or a robosuite world of ``options.task`` when the run has none)."""
    options = options or SimDepthOptions()
    return SimDepthEstimator(oracle_world(ctx, options, SimDepthEstimator.name), options)


@hookimpl
def d2f_register(register):
    register(Manifest.of(SimDepthEstimator, factory=_factory))
