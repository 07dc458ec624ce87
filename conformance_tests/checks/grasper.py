"""Checks of grasp proposers (d2f_core.protocols.Grasper)."""

from __future__ import annotations

from typing import Any

import numpy as np

from d2f_core.types import RGBD, Grasp

from ..results import CheckFailed
from ..scenes import CheckEnv
from .common import Check, blocked_by, Snapshot, cached, call, common_checks, expect_value_error, skip_if_cap

TOP_K = 5
ON_OBJECT_M = 0.03


def _inputs(env: CheckEnv) -> tuple[RGBD, np.ndarray, np.ndarray, np.ndarray]:
    """A fresh RGBD over writable copies of frame 0 (and those copies), and the box mask."""
    s = env.scene
    rgb, depth = np.array(s.rgbd.rgb, copy=True), np.array(s.rgbd.depth, copy=True)
    return RGBD(rgb=rgb, depth=depth, camera=s.camera), np.array(s.mask, copy=True), rgb, depth


def _propose(component: Any, env: CheckEnv, top_k: int = TOP_K) -> Any:
    rgbd, mask, _, _ = _inputs(env)
    return call(f"propose(rgbd, mask, top_k={top_k})", component.propose, rgbd, mask, top_k=top_k)


def _canonical(component: Any, env: CheckEnv) -> Any:
    return cached(env, component, "grasper.propose", lambda: _propose(component, env))


def _grasps(component: Any, env: CheckEnv) -> list[Grasp]:
    out = _canonical(component, env)
    if not isinstance(out, (list, tuple)) or not all(isinstance(g, Grasp) for g in out):
        blocked_by("grasper_output_types", "propose() does not return a list of d2f_core.Grasp")
    return list(out)


def check_grasper_output_types(component: Any, env: CheckEnv) -> None:
    out = _canonical(component, env)
    if not isinstance(out, (list, tuple)):
        raise CheckFailed(f"propose() returned {type(out).__name__}, expected a list of d2f_core.Grasp "
                          "(best first); return [] when there is none")
    wrong = [type(g).__name__ for g in out if not isinstance(g, Grasp)]
    if wrong:
        raise CheckFailed(f"propose() returned items of type {sorted(set(wrong))}, expected d2f_core.Grasp; build "
                          "Grasp(T_world_grasp=4x4 world-frame pose, width=metres, score=...)")
    if len(out) > TOP_K:
        raise CheckFailed(f"propose(top_k={TOP_K}) returned {len(out)} grasps; return at most top_k "
                          "(grasps[:top_k] after sorting)")
    scores = np.array([g.score for g in out], np.float64)
    if scores.size > 1 and np.any(np.diff(scores) > 0):
        raise CheckFailed(f"grasps are not sorted by score, best first (scores {np.round(scores, 4).tolist()}); "
                          "sort with sorted(grasps, key=lambda g: g.score, reverse=True)")


def check_grasper_on_object(component: Any, env: CheckEnv) -> None:
    grasps = _grasps(component, env)
    if not grasps:
        raise CheckFailed("propose() returned no grasp for an 8 x 6 x 4 cm box seen from 26 cm; it must find "
                          "grasps on a plainly graspable object (check the mask/depth handling)")
    rgbd, mask, _, _ = _inputs(env)
    pts, _ = rgbd.point_cloud(mask)
    for i, g in enumerate(grasps):
        d = float(np.min(np.linalg.norm(pts - g.position, axis=1)))
        if d > ON_OBJECT_M:
            raise CheckFailed(f"grasp {i} is {100 * d:.1f} cm from the nearest point of the masked object (limit "
                              f"{100 * ON_OBJECT_M:.0f} cm) at {np.round(g.position, 3).tolist()}; grasp positions "
                              "are world-frame metres (T_world_grasp = camera.T_world_cam @ T_cam_grasp), between "
                              "the fingertips on the object")


def check_grasper_rejects_malformed_input(component: Any, env: CheckEnv) -> None:
    rgbd, mask, _, _ = _inputs(env)
    fix = "validate with d2f_core.validate.check_mask(mask, rgbd.depth.shape) and reject empty masks"
    expect_value_error("propose(rgbd, mask)", component.propose, rgbd, np.array(mask[:-1]), top_k=TOP_K,
                       arg="mask", given=f"a mask of shape {mask[:-1].shape} for a {mask.shape} image", fix=fix)
    expect_value_error("propose(rgbd, mask)", component.propose, rgbd, np.zeros_like(mask), top_k=TOP_K,
                       arg="mask", given="an empty mask", fix=fix)


def check_grasper_no_input_mutation(component: Any, env: CheckEnv) -> None:
    rgbd, mask, rgb, depth = _inputs(env)
    snap = Snapshot(rgb=rgb, depth=depth, mask=mask)
    call("propose(rgbd, mask)", component.propose, rgbd, mask, top_k=TOP_K)
    snap.assert_unchanged("propose()")


def check_grasper_determinism(component: Any, env: CheckEnv) -> None:
    skip_if_cap(component, "api", "a remote service need not be reproducible")
    a = _grasps(component, env)
    b = _propose(component, env)
    if not isinstance(b, (list, tuple)) or len(a) != len(b):
        raise CheckFailed(f"the same inputs gave {len(a)} then {len(b) if isinstance(b, (list, tuple)) else b!r} "
                          "grasps; seed every random source (np.random.default_rng(seed))")
    for i, (g, h) in enumerate(zip(a, b)):
        if not (np.allclose(g.T_world_grasp, h.T_world_grasp, atol=1e-6) and abs(g.width - h.width) < 1e-6
                and abs(g.score - h.score) < 1e-6):
            raise CheckFailed(f"the same inputs gave a different grasp {i}; seed every random source "
                              "(np.random.default_rng(seed)) and keep the sort stable")


def check_grasper_nan_depth(component: Any, env: CheckEnv) -> None:
    """Depth with a NaN band (invalid, as sensors report it) over part of the object: finite grasps or a
    ValueError naming depth; never NaN poses or another exception."""
    _grasps(component, env)  # a malformed ordinary output is grasper_output_types' failure
    rgbd, mask, _, depth = _inputs(env)
    ys, xs = np.nonzero(mask)
    x0, x1 = xs.min(), xs.max()
    band = slice(int(x0 + (x1 - x0) // 3), int(x0 + 2 * (x1 - x0) // 3) + 1)
    depth[:, band] = np.nan
    rgbd = RGBD(rgb=rgbd.rgb, depth=depth, camera=rgbd.camera)
    try:
        out = component.propose(rgbd, mask, top_k=TOP_K)
    except ValueError as e:
        if "depth" not in str(e).lower():
            raise CheckFailed(f"propose() with a NaN band in the depth raised ValueError not naming 'depth': {e}") \
                from None
        return
    except Exception as e:  # noqa: BLE001
        raise CheckFailed(f"propose() with a NaN band across the object's depth raised {type(e).__name__}: {e}; "
                          "treat non-finite or <= 0 depth as missing (np.isfinite(depth) & (depth > 0))") from None
    if not isinstance(out, (list, tuple)) or not all(isinstance(g, Grasp) for g in out):
        raise CheckFailed(f"propose() with a NaN band in the depth returned {type(out).__name__}; return a list "
                          "of d2f_core.Grasp ([] when there is none)")
    for i, g in enumerate(out):
        if not (np.all(np.isfinite(g.T_world_grasp)) and np.isfinite(g.width) and np.isfinite(g.score)):
            raise CheckFailed(f"propose() with a NaN band in the depth returned grasp {i} with NaN or inf "
                              "(pose, width or score); drop pixels whose depth is not finite before lifting")


CHECKS: list[Check] = [
    *common_checks("grasper"),
    Check("grasper_output_types", "grasper", check_grasper_output_types,
          "propose() returns a list of Grasp, at most top_k, sorted by score descending"),
    Check("grasper_on_object", "grasper", check_grasper_on_object,
          "at least one grasp; every grasp position within 3 cm of the masked object's points"),
    Check("grasper_rejects_malformed_input", "grasper", check_grasper_rejects_malformed_input,
          "a mask of the wrong shape or an empty mask raises ValueError naming 'mask'"),
    Check("grasper_no_input_mutation", "grasper", check_grasper_no_input_mutation,
          "rgb, depth and mask are unchanged after propose()"),
    Check("grasper_determinism", "grasper", check_grasper_determinism,
          "the same inputs give the same grasps (skipped for 'api')"),
    Check("grasper_nan_depth", "grasper", check_grasper_nan_depth,
          "a NaN band in the depth across the object gives finite grasps (or a ValueError naming depth)"),
]
