"""Checks of hand detectors (d2f_core.protocols.HandDetector)."""

from __future__ import annotations

from typing import Any

import numpy as np

from d2f_core.types import HandTrack

from ..results import CheckFailed
from ..scenes import CheckEnv
from .common import (Check, require_same, blocked_by, cached, call, common_checks, expect_value_error,
                     has_cap, skip_if_cap, Snapshot, writable_video)


def _detect(component: Any, env: CheckEnv) -> Any:
    video, _ = writable_video(env.scene.video)
    return call("detect(video)", component.detect, video)


def _canonical(component: Any, env: CheckEnv) -> Any:
    return cached(env, component, "hand.detect", lambda: _detect(component, env))


def check_hand_output_types(component: Any, env: CheckEnv) -> None:
    out = _canonical(component, env)
    T = env.scene.video.num_frames
    if not isinstance(out, HandTrack):
        kp = getattr(out, "keypoints", None)
        hint = ""
        if isinstance(kp, np.ndarray) and kp.dtype != np.float32:
            hint = f"; its keypoints are {kp.dtype}: convert with .astype(np.float32)"
        pres = getattr(out, "present", None)
        if isinstance(pres, np.ndarray) and pres.dtype != np.bool_:
            hint += f"; its present flags are {pres.dtype}: return bool (.astype(bool))"
        raise CheckFailed(f"detect() returned {type(out).__name__}, expected d2f_core.HandTrack{hint}; return "
                          "HandTrack(keypoints=float32 T x 21 x 2 (NaN where absent), present=bool T)")
    if out.keypoints.shape != (T, 21, 2):
        raise CheckFailed(f"HandTrack.keypoints has shape {out.keypoints.shape}, expected T x 21 x 2 = "
                          f"{(T, 21, 2)}: one row per video frame")
    if out.keypoints.dtype != np.float32 or out.present.dtype != np.bool_:
        raise CheckFailed("HandTrack.keypoints must be float32 and present bool")
    if has_cap(component, "world_keypoints") and out.keypoints_world is None:
        raise CheckFailed("declares capability 'world_keypoints' but HandTrack.keypoints_world is None; return "
                          "float32 T x 21 x 3 world-frame metres (NaN where absent) or drop the capability")


def check_hand_determinism(component: Any, env: CheckEnv) -> None:
    skip_if_cap(component, "api", "a remote service need not be reproducible")
    a = _canonical(component, env)
    b = _detect(component, env)
    if not (isinstance(a, HandTrack) and isinstance(b, HandTrack)):
        blocked_by("hand_output_types", "detect() does not return d2f_core.HandTrack")
    for f in ("keypoints", "present"):
        require_same(getattr(a, f), getattr(b, f), "video", f"HandTrack.{f}", atol=1e-4)


def check_hand_no_input_mutation(component: Any, env: CheckEnv) -> None:
    video, frames = writable_video(env.scene.video)
    snap = Snapshot(frames=frames)
    call("detect(video)", component.detect, video)
    snap.assert_unchanged("detect()")


def check_hand_rejects_malformed_input(component: Any, env: CheckEnv) -> None:
    fix = "validate it first with d2f_core.validate.check_video(video, 'video')"
    expect_value_error("detect(video)", component.detect, np.array(env.scene.video.frames), arg="video",
                       given="a bare uint8 frame array instead of d2f_core.Video", fix=fix)
    expect_value_error("detect(video)", component.detect, None, arg="video", given="None", fix=fix)


CHECKS: list[Check] = [
    *common_checks("hand"),
    Check("hand_output_types", "hand", check_hand_output_types,
          "detect() returns HandTrack with one row per frame (keypoints_world when 'world_keypoints')"),
    Check("hand_determinism", "hand", check_hand_determinism,
          "the same video gives the same keypoints (skipped for 'api')"),
    Check("hand_no_input_mutation", "hand", check_hand_no_input_mutation,
          "the video's frames are unchanged after detect()"),
    Check("hand_rejects_malformed_input", "hand", check_hand_rejects_malformed_input,
          "a bare frame array or None raises ValueError naming 'video'"),
]
