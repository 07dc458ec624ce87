"""Checks of depth estimators (d2f_core.protocols.DepthEstimator)."""

from __future__ import annotations

from typing import Any

import numpy as np

from d2f_core.types import DepthVideo

from ..results import CheckFailed
from ..scenes import CheckEnv
from .common import (Check, require_same, blocked_by, cached, call, common_checks, expect_value_error,
                     model_input_check, require_cap, skip_if_cap, Snapshot, writable_video)


def _estimate(component: Any, env: CheckEnv) -> Any:
    video, _ = writable_video(env.scene.video)
    return call("estimate(video)", component.estimate, video)


def _canonical(component: Any, env: CheckEnv) -> Any:
    return cached(env, component, "depth.estimate", lambda: _estimate(component, env))


def _depth_video(component: Any, env: CheckEnv) -> DepthVideo:
    out = _canonical(component, env)
    if not isinstance(out, DepthVideo):
        blocked_by("depth_output_types", f"estimate() returned {type(out).__name__}, not d2f_core.DepthVideo")
    return out


def check_depth_output_types(component: Any, env: CheckEnv) -> None:
    out = _canonical(component, env)
    v = env.scene.video
    want = (v.num_frames, v.height, v.width)
    if not isinstance(out, DepthVideo):
        depth = out if isinstance(out, np.ndarray) else getattr(out, "depth", None)
        hint = ""
        if isinstance(depth, np.ndarray):
            if depth.dtype != np.float32:
                hint = f"; its depth is {depth.dtype}: convert with .astype(np.float32)"
            elif depth.shape != want:
                hint = f"; its depth has shape {depth.shape}, expected T x H x W = {want}"
        raise CheckFailed(f"estimate() returned {type(out).__name__}, expected d2f_core.DepthVideo{hint}; "
                          "return DepthVideo(depth=float32 T x H x W, metric=..., model=...)")
    d = out.depth
    if d.dtype != np.float32:
        raise CheckFailed(f"DepthVideo.depth is {d.dtype}; convert with .astype(np.float32)")
    if d.shape != want:
        extra = ""
        if d.ndim == 3 and d.shape[0] == want[0] and d.shape[1:] != want[1:]:
            extra = ("; resize the model's output back to the video's size (bilinear) before returning "
                     "it" if d.shape[1:] != want[2:0:-1] else "; height and width are swapped")
        raise CheckFailed(f"DepthVideo.depth has shape {d.shape}, expected T x H x W = {want} (the "
                          f"video's frames and size){extra}")


def check_depth_values_valid(component: Any, env: CheckEnv) -> None:
    d = np.asarray(_depth_video(component, env).depth, np.float64)
    if np.any(np.isinf(d)):
        raise CheckFailed(f"depth holds {int(np.isinf(d).sum())} inf values; mark invalid pixels with 0 or NaN")
    finite = d[np.isfinite(d)]
    if np.any(finite < 0):
        raise CheckFailed(f"depth holds {int((finite < 0).sum())} negative values (min {finite.min():.3g}); "
                          "depth is a distance along +z (>= 0). If the model predicts disparity or inverse "
                          "depth, convert (depth = 1 / disparity where disparity > 0, else 0)")
    valid = np.isfinite(d) & (d > 0)
    empty = [t for t in range(d.shape[0]) if not valid[t].any()]
    if empty:
        raise CheckFailed(f"frames {empty} have no valid pixel (all 0 or NaN); 0/NaN mark invalid pixels "
                          "only, return the estimated depth elsewhere")


def check_depth_determinism(component: Any, env: CheckEnv) -> None:
    skip_if_cap(component, "api", "a remote service need not be reproducible")
    a = _depth_video(component, env)
    b = _estimate(component, env)
    if not isinstance(b, DepthVideo):
        raise CheckFailed(f"estimate() returned {type(b).__name__} on the second call")
    require_same(a.depth, b.depth, "video", "depth")


def check_depth_rejects_malformed_input(component: Any, env: CheckEnv) -> None:
    frames = np.array(env.scene.video.frames, copy=True)
    fix = "validate it first with d2f_core.validate.check_video(video, 'video')"
    expect_value_error("estimate(video)", component.estimate, frames, arg="video",
                       given="a bare uint8 frame array instead of d2f_core.Video", fix=fix)
    expect_value_error("estimate(video)", component.estimate, None, arg="video", given="None", fix=fix)


def check_depth_no_input_mutation(component: Any, env: CheckEnv) -> None:
    video, frames = writable_video(env.scene.video)
    snap = Snapshot(frames=frames)
    call("estimate(video)", component.estimate, video)
    snap.assert_unchanged("estimate()")


def check_depth_metric_declared(component: Any, env: CheckEnv) -> None:
    require_cap(component, "metric_depth", "relative depth is fine: the core aligns it to metres")
    out = _depth_video(component, env)
    if not out.metric:
        raise CheckFailed("declares capability 'metric_depth' but returns DepthVideo(metric=False); return "
                          "metric=True with depth in metres, or drop the capability")


CHECKS: list[Check] = [
    *common_checks("depth"),
    Check("depth_output_types", "depth", check_depth_output_types,
          "estimate() returns DepthVideo with float32 T x H x W depth of the video's size"),
    Check("depth_values_valid", "depth", check_depth_values_valid,
          "no negative or inf values; 0/NaN only as invalid; every frame has valid pixels"),
    Check("depth_determinism", "depth", check_depth_determinism,
          "the same video gives the same depth (skipped for 'api')"),
    Check("depth_rejects_malformed_input", "depth", check_depth_rejects_malformed_input,
          "a bare frame array or None raises ValueError naming 'video'"),
    Check("depth_no_input_mutation", "depth", check_depth_no_input_mutation,
          "the video's frames are unchanged after estimate()"),
    Check("depth_metric_declared", "depth", check_depth_metric_declared,
          "declared 'metric_depth': DepthVideo.metric is True"),
    model_input_check("depth"),
]
