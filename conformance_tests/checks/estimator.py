"""Checks of estimators (d2f_core.protocols.StateEstimator).

Inputs: the standard scene as an episode (:func:`d2f_conformance.acting.scene_observations`): the
estimator is reset on frame 0 with the scene's true flow (the box top face sliding +x, 4 mm per
frame) and fed the frames in order; frame ``t``'s true particles are ``flow.points[t]``.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np

from ..acting import scene_observations
from ..results import CheckFailed
from ..scenes import CheckEnv
from .common import (Check, Snapshot, blocked_by, call, common_checks, expect_value_error, require_same, skip_if_cap,
                     values_equal)

START_TOLERANCE = 0.005
"""metres: right after reset, visible particles must be this close to ``flow.points[0]``."""
MOTION_TOLERANCE = 0.005
"""metres: median error of the visible particles on the scene's last frame (the box has moved 2.8 cm)."""
MIN_VISIBLE = 0.5
OBSERVATION_FIX = "check isinstance(observation, d2f_core.Observation) and raise ValueError('observation: ...')"
"""fraction of the particles that must stay visible (the box is in full view throughout)."""


def _validated(out: Any, n: int) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(out, tuple) or len(out) != 2:
        raise CheckFailed(f"estimate() returned {type(out).__name__}, expected a tuple (particles float32 N x 3, "
                          "visible bool N)")
    p, v = out
    if not isinstance(p, np.ndarray) or p.shape != (n, 3):
        raise CheckFailed(f"estimate() particles: expected a numpy array {n} x 3 (one row per flow point, in the "
                          f"flow's order), got {type(p).__name__} {getattr(p, 'shape', '')}")
    if p.dtype != np.float32:
        raise CheckFailed(f"estimate() particles: dtype {p.dtype}, expected float32: convert with .astype(np.float32)")
    if not np.all(np.isfinite(p)):
        raise CheckFailed("estimate() particles contain NaN or inf; a lost particle keeps its last finite position "
                          "and is marked in visible")
    if not isinstance(v, np.ndarray) or v.shape != (n,) or v.dtype != np.bool_:
        raise CheckFailed(f"estimate() visible: expected a bool numpy array ({n},), got "
                          f"{getattr(v, 'dtype', type(v).__name__)} {getattr(v, 'shape', '')}")
    return p, v


def _episode(component: Any, env: CheckEnv, frames: list[int], *, root: bool = False) -> list[tuple]:
    """reset on frame 0, then estimate() on ``frames`` in order: [(particles, visible), ...]."""
    obs, flow = scene_observations(env.scene), env.scene.flow
    call("reset(observation, flow)", component.reset, obs[0], flow)
    out = []
    for t in frames:
        res = call(f"estimate(observation of frame {t})", component.estimate, obs[t])
        try:
            out.append(_validated(res, flow.num_points))
        except CheckFailed as e:
            if root:
                raise
            blocked_by("estimator_output_types", str(e).split(";")[0])
    return out


def check_estimator_output_types(component: Any, env: CheckEnv) -> None:
    _episode(component, env, [0, 1], root=True)


def _errors(p: np.ndarray, v: np.ndarray, truth: np.ndarray, when: str) -> np.ndarray:
    if v.mean() < MIN_VISIBLE:
        raise CheckFailed(f"{when}: only {int(v.sum())} of {len(v)} particles are visible; at least "
                          f"{MIN_VISIBLE:.0%} should be (the box is in full view, textured, moving 4 mm per frame)")
    return np.linalg.norm(p[v].astype(np.float64) - truth[v], axis=1)


def check_estimator_starts_at_the_flow(component: Any, env: CheckEnv) -> None:
    (p, v), = _episode(component, env, [0])
    err = _errors(p, v, env.scene.flow.points[0], "estimate() on the reset observation")
    if err.max() > START_TOLERANCE:
        i = int(np.argmax(err))
        raise CheckFailed(f"estimate() on the reset observation puts visible particles up to {1000 * err.max():.1f} mm "
                          f"from flow.points[0] (particle {i}); right after reset(observation, flow) the particles are "
                          "the flow's first-frame points, same N and order")


def check_estimator_known_motion(component: Any, env: CheckEnv) -> None:
    flow = env.scene.flow
    T = flow.num_frames
    results = _episode(component, env, list(range(1, T)))
    p, v = results[-1]
    err = _errors(p, v, flow.points[T - 1], f"after {T - 1} frames")
    moved = float(np.linalg.norm(flow.points[T - 1] - flow.points[0], axis=1).mean())
    if np.median(err) > MOTION_TOLERANCE:
        still = float(np.median(np.linalg.norm(p[v] - flow.points[0][v], axis=1)))
        hint = (" (they did not move: does estimate() follow the observation?)" if still < 0.2 * moved else
                " (check the particles' order and the camera convention: T_world_cam is camera-to-world)")
        raise CheckFailed(f"after the box slid {100 * moved:.1f} cm the visible particles are "
                          f"{1000 * np.median(err):.1f} mm (median) from their true positions, more than "
                          f"{1000 * MOTION_TOLERANCE:.0f} mm{hint}")


def check_estimator_determinism(component: Any, env: CheckEnv) -> None:
    skip_if_cap(component, "api", "a remote service need not be reproducible")
    frames = [1, 2, 3]
    a = _episode(component, env, frames)
    b = _episode(component, env, frames)
    for t, (x, y) in zip(frames, zip(a, b)):
        require_same(x[0], y[0], f"episode (reset on frame 0, frames 1..{t})", "particles")
        require_same(x[1], y[1], f"episode (reset on frame 0, frames 1..{t})", "visibility")


def check_estimator_rejects_malformed_input(component: Any, env: CheckEnv) -> None:
    obs, flow = scene_observations(env.scene), env.scene.flow
    expect_value_error("reset(observation, flow)", component.reset, obs[0], np.array(flow.points), arg="flow",
                       given="a bare T x N x 3 array as flow",
                       fix="check isinstance(flow, d2f_core.ObjectFlow) and raise ValueError('flow: ...')")
    expect_value_error("reset(observation, flow)", component.reset, "frame 0", flow, arg="observation",
                       given="a string as observation",
                       fix=OBSERVATION_FIX)
    call("reset(observation, flow)", component.reset, obs[0], flow)
    expect_value_error("estimate(observation)", component.estimate, {"rgb": obs[1].rgbd.rgb}, arg="observation",
                       given="a dict as observation",
                       fix=OBSERVATION_FIX)


def check_estimator_edge_inputs(component: Any, env: CheckEnv) -> None:
    """A one-point flow gives 1 x 3 particles; an observation whose depth has a NaN band across the object
    gives finite particles (points that cannot be measured are marked not visible, never NaN)."""
    from d2f_core.types import RGBD, ObjectFlow, Observation
    _episode(component, env, [0])  # a malformed ordinary output is estimator_output_types' failure
    obs, flow = scene_observations(env.scene), env.scene.flow
    one = ObjectFlow(points=np.array(flow.points[:, :1]), visible=np.array(flow.visible[:, :1]),
                     colors=None if flow.colors is None else np.array(flow.colors[:1]), fps=flow.fps)
    call("reset(observation, a one-point flow)", component.reset, obs[0], one)
    out = call("estimate(observation) after a one-point reset", component.estimate, obs[1])
    try:
        _validated(out, 1)
    except CheckFailed as e:
        raise CheckFailed(f"with a one-point flow: {e}; a single point is an N = 1 batch (keep the point "
                          "axis)") from None
    call("reset(observation, flow)", component.reset, obs[0], flow)
    o = obs[1]
    depth = np.array(o.rgbd.depth, copy=True)
    mask = env.scene.masks[1] if getattr(env.scene, "masks", None) is not None else depth > 0
    xs = np.nonzero(mask)[1]
    if xs.size:
        depth[:, int(xs.min()):int((xs.min() + xs.max()) // 2) + 1] = np.nan
    holed = Observation(rgbd=RGBD(rgb=np.array(o.rgbd.rgb, copy=True), depth=depth, camera=o.rgbd.camera),
                        joints=np.array(o.joints), state=dict(o.state), privileged=dict(o.privileged))
    out = call("estimate(observation whose depth has a NaN band)", component.estimate, holed)
    try:
        _validated(out, flow.num_points)
    except CheckFailed as e:
        raise CheckFailed(f"with a NaN band across the object's depth: {e}; treat non-finite or <= 0 depth as "
                          "missing (np.isfinite(depth) & (depth > 0))") from None


def check_estimator_no_input_mutation(component: Any, env: CheckEnv) -> None:
    obs, flow = scene_observations(env.scene), env.scene.flow
    snap = Snapshot(points=flow.points, visible=flow.visible, rgb=obs[1].rgbd.rgb, depth=obs[1].rgbd.depth)
    plain = [copy.deepcopy((dict(o.state), dict(o.privileged))) for o in obs[:2]]
    call("reset(observation, flow)", component.reset, obs[0], flow)
    call("estimate(observation)", component.estimate, obs[1])
    snap.assert_unchanged("reset()/estimate()")
    for t, (state, priv) in enumerate(plain):
        for name, before, after in (("state", state, obs[t].state), ("privileged", priv, obs[t].privileged)):
            ok, why = values_equal(before, dict(after))
            if not ok:
                raise CheckFailed(f"reset()/estimate() modified observation.{name} of frame {t} ({why}); never write "
                                  "into an observation: copy what you keep")


CHECKS: list[Check] = [
    *common_checks("estimator"),
    Check("estimator_output_types", "estimator", check_estimator_output_types,
          "estimate() returns (finite float32 N x 3 particles, bool N visible), N = the flow's points"),
    Check("estimator_starts_at_the_flow", "estimator", check_estimator_starts_at_the_flow,
          "right after reset the visible particles are flow.points[0], same order (within 5 mm)"),
    Check("estimator_known_motion", "estimator", check_estimator_known_motion,
          "the scene's sliding box: after 7 frames the visible particles are within 5 mm (median) of the truth"),
    Check("estimator_determinism", "estimator", check_estimator_determinism,
          "the same episode gives the same particles and visibility (skipped for 'api')"),
    Check("estimator_rejects_malformed_input", "estimator", check_estimator_rejects_malformed_input,
          "a bare array as flow, a non-Observation as observation raise ValueError naming the argument"),
    Check("estimator_edge_inputs", "estimator", check_estimator_edge_inputs,
          "a one-point flow gives 1 x 3 particles; a NaN band in the depth gives finite particles"),
    Check("estimator_no_input_mutation", "estimator", check_estimator_no_input_mutation,
          "the flow and the observations (images, state, privileged) are unchanged after reset()/estimate()"),
]
