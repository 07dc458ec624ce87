"""Checks of worlds (d2f_core.protocols.World): reset/step/render contract, seeding, bounds."""

from __future__ import annotations

from typing import Any

import numpy as np

from d2f_core.types import RGBD, Camera, Observation, Task

from ..results import CheckFailed, CheckSkipped
from ..scenes import CheckEnv
from .common import (Check, arrays_equal, blocked_by, cached, call, common_checks, expect_value_error, require_cap,
                     values_equal)


def _bounds(component: Any) -> tuple[np.ndarray, np.ndarray]:
    try:
        lo = np.asarray(component.action_low, dtype=np.float64)
        hi = np.asarray(component.action_high, dtype=np.float64)
    except Exception as e:  # noqa: BLE001
        raise CheckFailed(f"action_low/action_high are not numeric arrays ({type(e).__name__}: {e})") from None
    return lo, hi


def _good_bounds(component: Any) -> tuple[np.ndarray, np.ndarray]:
    lo, hi = _bounds(component)
    if (lo.ndim != 1 or lo.shape != hi.shape or not np.all(np.isfinite(lo)) or not np.all(np.isfinite(hi))
            or np.any(lo >= hi)):
        blocked_by("world_action_bounds", "the action bounds are malformed")
    return lo, hi


def _observation(obs: Any, what: str) -> Observation:
    if not isinstance(obs, Observation):
        raise CheckFailed(f"{what} returned {type(obs).__name__}, expected d2f_core.Observation(rgbd, joints, "
                          "state, privileged)")
    if not np.all(np.isfinite(obs.joints)):
        raise CheckFailed(f"{what}: Observation.joints holds NaN or inf")
    if obs.rgbd is not None and not isinstance(obs.rgbd, RGBD):
        raise CheckFailed(f"{what}: Observation.rgbd is {type(obs.rgbd).__name__}, expected d2f_core.RGBD or None")
    return obs


def _rgbd(component: Any, what: str = "render()") -> RGBD:
    out = call(what, component.render)
    if not isinstance(out, RGBD):
        raise CheckFailed(f"{what} returned {type(out).__name__}, expected d2f_core.RGBD(rgb, depth, camera)")
    return out


def check_world_action_bounds(component: Any, env: CheckEnv) -> None:
    lo, hi = _bounds(component)
    if lo.ndim != 1 or lo.size == 0:
        raise CheckFailed(f"action_low has shape {lo.shape}; declare a 1-D array, one entry per action element")
    if lo.shape != hi.shape:
        raise CheckFailed(f"action_low {lo.shape} and action_high {hi.shape} differ in shape")
    if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi))):
        raise CheckFailed("action bounds hold NaN or inf; declare finite bounds (solvers sample and clip in them)")
    bad = np.nonzero(lo >= hi)[0]
    if bad.size:
        raise CheckFailed(f"action_low >= action_high at indices {bad.tolist()}; low must be below high")


def _state(component: Any, seed: int) -> tuple[Any, RGBD]:
    _observation(call(f"reset({seed})", component.reset, seed), f"reset({seed})")
    priv = call("privileged_state()", component.privileged_state)
    return _copy(priv), _rgbd(component)


def _copy(x: Any) -> Any:
    if isinstance(x, dict) or hasattr(x, "items"):
        return {k: _copy(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return type(x)(_copy(v) for v in x) if isinstance(x, list) else tuple(_copy(v) for v in x)
    if isinstance(x, np.ndarray):
        return np.array(x, copy=True)
    return x


def check_world_reset_determinism(component: Any, env: CheckEnv) -> None:
    p1, r1 = _state(component, 0)
    p2, r2 = _state(component, 0)
    ok, why = values_equal(p1, p2)
    if not ok:
        raise CheckFailed(f"reset(0) twice gave different privileged_state() ({why}); derive every random "
                          "placement from `seed` (rng = np.random.default_rng(seed)) and never from global state")
    for f in ("rgb", "depth"):
        ok, why = arrays_equal(getattr(r1, f), getattr(r2, f))
        if not ok:
            raise CheckFailed(f"reset(0) twice rendered different {f} ({why}); rendering after the same seed must "
                              "be identical")
    p3, _ = _state(component, 1)
    same, _ = values_equal(p1, p3)
    if same:
        raise CheckFailed("reset(0) and reset(1) give the same privileged_state(); object placements must be "
                          "randomised by seed (and privileged_state() must report them, e.g. object poses)")


def check_world_step_contract(component: Any, env: CheckEnv) -> None:
    lo, hi = _good_bounds(component)
    _observation(call("reset(0)", component.reset, 0), "reset(0)")
    mid = (lo + hi) / 2
    _observation(call("step(midpoint of the bounds)", component.step, mid), "step(midpoint)")
    far = hi + 10 * (hi - lo)
    _observation(call("step(action above action_high)", component.step, far), "step(out-of-bounds action)")
    low = lo - 10 * (hi - lo)
    _observation(call("step(action below action_low)", component.step, low), "step(out-of-bounds action)")


def check_world_rejects_malformed_input(component: Any, env: CheckEnv) -> None:
    lo, hi = _good_bounds(component)
    call("reset(0)", component.reset, 0)
    fix = f"check action has shape {lo.shape} and is finite, raising ValueError('action: ...')"
    expect_value_error("step(action)", component.step, np.zeros(lo.size + 1), arg="action",
                       given=f"an action of length {lo.size + 1}", fix=fix)
    nan = (lo + hi) / 2
    nan[0] = np.nan
    expect_value_error("step(action)", component.step, nan, arg="action", given="an action containing NaN", fix=fix)


def check_world_render(component: Any, env: CheckEnv) -> None:
    call("reset(0)", component.reset, 0)
    rgbd = _rgbd(component)
    H, W = rgbd.rgb.shape[:2]
    if (rgbd.camera.width, rgbd.camera.height) != (W, H):
        raise CheckFailed(f"render(): the camera is {rgbd.camera.width}x{rgbd.camera.height} but the image "
                          f"{W}x{H}; use Camera.resized()")
    cam = getattr(component, "camera", None)
    if isinstance(cam, Camera) and (cam.width, cam.height) != (W, H):
        raise CheckFailed(f"world.camera is {cam.width}x{cam.height} but render() returns {W}x{H} images")
    valid = rgbd.valid
    if not valid.any():
        raise CheckFailed("render() returned no valid depth pixel (all 0 or NaN); return metres along the camera "
                          "z axis (convert a simulator's normalised z-buffer with the near/far planes)")
    d = rgbd.depth[valid]
    if np.any(d <= 0):
        raise CheckFailed("render(): valid depth pixels must be > 0 metres")
    if rgbd.rgb.std() == 0:
        raise CheckFailed("render() returned a constant-colour image; is the camera pointed at the scene?")


def check_world_success_is_bool(component: Any, env: CheckEnv) -> None:
    call("reset(0)", component.reset, 0)
    s = call("success()", component.success)
    if not isinstance(s, (bool, np.bool_)):
        raise CheckFailed(f"success() returned {type(s).__name__} {s!r}; return a bool (bool(x))")


def check_world_horizon(component: Any, env: CheckEnv) -> None:
    h = getattr(component, "horizon", None)
    if isinstance(h, bool) or not isinstance(h, (int, np.integer)) or h <= 0:
        raise CheckFailed(f"horizon is {h!r}; declare a positive int, the maximum number of steps of an episode")


def check_world_task_and_camera(component: Any, env: CheckEnv) -> None:
    if not isinstance(getattr(component, "task", None), Task):
        raise CheckFailed(f"world.task is {type(getattr(component, 'task', None)).__name__}; expose a d2f_core.Task "
                          "(instruction and object)")
    if not isinstance(getattr(component, "camera", None), Camera):
        raise CheckFailed(f"world.camera is {type(getattr(component, 'camera', None)).__name__}; expose the "
                          "calibrated d2f_core.Camera render() uses")


def check_world_segmentation(component: Any, env: CheckEnv) -> None:
    require_cap(component, "segmentation", "no simulator masks are offered")
    if not callable(getattr(component, "object_mask", None)):
        raise CheckFailed("declares capability 'segmentation' but has no object_mask(name) method; add one returning "
                          "a bool H x W mask of the named object, or drop the capability")
    call("reset(0)", component.reset, 0)
    rgbd = _rgbd(component)
    task = getattr(component, "task", None)
    obj = getattr(task, "object", None)
    if not isinstance(obj, str):
        blocked_by("world_task_and_camera", "world.task is not a Task")
    m = call(f"object_mask({obj!r})", component.object_mask, obj)
    if not isinstance(m, np.ndarray) or m.dtype != np.bool_:
        raise CheckFailed(f"object_mask({obj!r}) returned {getattr(m, 'dtype', type(m).__name__)}, expected a bool "
                          "numpy mask: return mask.astype(bool)")
    if m.shape != rgbd.depth.shape:
        raise CheckFailed(f"object_mask({obj!r}) has shape {m.shape}, render() images are {rgbd.depth.shape}; return "
                          "the mask of the camera image")
    if not m.any():
        raise CheckFailed(f"object_mask({obj!r}) is empty after reset(0); the task object (world.task.object) must be "
                          "visible and its name accepted by object_mask")
    expect_value_error("object_mask(name)", component.object_mask, "no-such-object-xyz", arg="name",
                       given="an unknown object name", fix="raise ValueError('name: no object ...; known objects: ...')")


# --------------------------------------------------------------------------- camera calibration (simulated worlds)

PROBE_DOC = """Optional world method the camera checks use: ``calibration_probe() -> Mapping`` with

    "points": float (N, 3), N >= 1: world positions (metres) of the centres of small markers
        (e.g. spheres of 1 cm radius) placed in front of the camera;
    "masks": bool (N, H, W): the simulator's own rendering (e.g. its segmentation) of each marker
        alone, through the camera of render(), at render()'s size;
    "plane_point", "plane_normal": (3,) a plane of the world (e.g. the table top), metres;
    "plane_mask": bool (H, W): pixels of render() where that plane is seen.

The probe must leave the world's state unchanged (markers are drawn only for the probe). Worlds
without it (e.g. ray-cast worlds whose camera is exact by construction) skip these checks."""


def _probe(component: Any, env: CheckEnv) -> dict[str, Any]:
    fn = getattr(component, "calibration_probe", None)
    if not callable(fn):
        raise CheckSkipped("the world has no calibration_probe() (optional; see "
                           "d2f_conformance.checks.world.PROBE_DOC)")

    def run() -> dict[str, Any]:
        call("reset(0)", component.reset, 0)
        before = _copy(call("privileged_state()", component.privileged_state))
        probe = call("calibration_probe()", fn)
        after = call("privileged_state()", component.privileged_state)
        ok, why = values_equal(before, after)
        if not ok:
            raise CheckFailed(f"calibration_probe() changed the world's state ({why}); draw the markers only for "
                              "the probe and restore everything it moves")
        if not hasattr(probe, "keys"):
            raise CheckFailed(f"calibration_probe() returned {type(probe).__name__}; return a dict ({PROBE_DOC})")
        missing = [k for k in ("points", "masks", "plane_point", "plane_normal", "plane_mask") if k not in probe]
        if missing:
            raise CheckFailed(f"calibration_probe() lacks {missing}; {PROBE_DOC}")
        return dict(probe)

    return cached(env, component, "world.calibration_probe", run)


def _camera(component: Any) -> Camera:
    cam = getattr(component, "camera", None)
    if not isinstance(cam, Camera):
        blocked_by("world_task_and_camera", "world.camera is not a d2f_core.Camera")
    return cam


def check_world_camera_projection(component: Any, env: CheckEnv) -> None:
    probe = _probe(component, env)
    cam = _camera(component)
    pts = np.asarray(probe["points"], dtype=np.float64)
    masks = np.asarray(probe["masks"])
    if pts.ndim != 2 or pts.shape[1] != 3 or len(pts) == 0:
        raise CheckFailed(f"calibration_probe()['points'] has shape {pts.shape}; expected N x 3 metres, N >= 1")
    if masks.dtype != np.bool_ or masks.shape != (len(pts), cam.height, cam.width):
        raise CheckFailed(f"calibration_probe()['masks'] is {masks.dtype} {masks.shape}; expected bool "
                          f"N x H x W = {(len(pts), cam.height, cam.width)} (one mask per marker, camera size)")
    uv, z = cam.project(pts)
    errors = []
    for i in range(len(pts)):
        ys, xs = np.nonzero(masks[i])
        if len(xs) == 0:
            raise CheckFailed(f"marker {i} at {pts[i].round(3).tolist()} is not drawn in its mask; place the markers "
                              "in front of the camera and render each alone")
        c = np.array([xs.mean(), ys.mean()])
        errors.append((float(np.linalg.norm(uv[i] - c)), i, c))
    worst, i, c = max(errors, key=lambda e: e[0])
    if worst > 1.0:
        d = uv[i] - c
        hint = ""
        if abs(d[1]) > 2 and abs(uv[i][1] - (cam.height - 1 - c[1])) < 2:
            hint = ("; the image rows look flipped: OpenGL/MuJoCo buffers come bottom-up (flip with [::-1]) and "
                    "their cameras look along -z with y up (R_cv = R_gl @ diag(1, -1, -1))")
        elif np.allclose(np.abs(d), 0.5, atol=0.2):
            hint = ("; a half-pixel offset: pixel (0, 0) is the centre of the top-left pixel, so cx = (W - 1) / 2 "
                    "for a centred principal point")
        elif z[i] <= 0:
            hint = "; the marker is behind the camera: T_world_cam must be camera-to-world, z forward"
        raise CheckFailed(f"world.camera projects marker {i} ({pts[i].round(3).tolist()} m) to pixel "
                          f"{uv[i].round(2).tolist()}, but the simulator draws it at {c.round(2).tolist()} "
                          f"({worst:.2f} px off, limit 1 px); check K (fx = fy = (H/2)/tan(fovy/2)) and "
                          f"T_world_cam{hint}")


def check_world_depth_plane(component: Any, env: CheckEnv) -> None:
    probe = _probe(component, env)
    cam = _camera(component)
    rgbd = _rgbd(component)
    m = np.asarray(probe["plane_mask"])
    if m.dtype != np.bool_ or m.shape != rgbd.depth.shape:
        raise CheckFailed(f"calibration_probe()['plane_mask'] is {m.dtype} {m.shape}; expected bool H x W = "
                          f"{rgbd.depth.shape}")
    p0 = np.asarray(probe["plane_point"], dtype=np.float64).reshape(3)
    n = np.asarray(probe["plane_normal"], dtype=np.float64).reshape(3)
    n = n / np.linalg.norm(n)
    keep = m & rgbd.valid
    if keep.sum() < 50:
        raise CheckFailed(f"only {int(keep.sum())} pixels of the probe plane have valid depth; the plane must be "
                          "visible (>= 50 pixels) and render() must return depth there")
    ys, xs = np.nonzero(keep)
    pts = cam.backproject(np.stack([xs, ys], -1).astype(np.float64), rgbd.depth[ys, xs])
    dist = np.abs((pts - p0) @ n)
    p99 = float(np.percentile(dist, 99))
    if p99 > 0.005:
        med = float(np.median(dist))
        xy = np.stack([xs, ys], -1).astype(np.float64)
        rays = cam.backproject(xy, np.ones(len(xs))) - cam.position  # camera z = 1 along each ray
        with np.errstate(divide="ignore", invalid="ignore"):
            z_true = ((p0 - cam.position) @ n) / (rays @ n)
            ratio = float(np.nanmedian(rgbd.depth[ys, xs] / z_true))
        hint = ""
        if rgbd.depth[ys, xs].max() <= 1.0 and ratio < 0.9:
            hint = ("; depth looks like a normalised z-buffer: convert it to metres with the near/far planes "
                    "(e.g. robosuite.utils.camera_utils.get_real_depth_map)")
        elif abs(ratio - 1) > 0.002:
            hint = f"; depth is {ratio:.4f} x the true depth: check units (metres) and that depth is along z, not the ray"
        raise CheckFailed(f"back-projected depth of the probe plane lies up to {p99 * 1000:.1f} mm (99th percentile; "
                          f"median {med * 1000:.1f} mm) off the plane, limit 5 mm{hint}")


CHECKS: list[Check] = [
    *common_checks("world"),
    Check("world_action_bounds", "world", check_world_action_bounds,
          "action_low/action_high are finite 1-D arrays of one shape with low < high"),
    Check("world_reset_determinism", "world", check_world_reset_determinism,
          "same seed -> same privileged state and images; seeds 0 and 1 -> different placements"),
    Check("world_step_contract", "world", check_world_step_contract,
          "step() at the bounds' midpoint and out of bounds returns an Observation with finite joints"),
    Check("world_rejects_malformed_input", "world", check_world_rejects_malformed_input,
          "an action of the wrong length or with NaN raises ValueError naming 'action'"),
    Check("world_render", "world", check_world_render,
          "render() returns RGBD whose camera matches the image, with valid depth > 0"),
    Check("world_success_is_bool", "world", check_world_success_is_bool, "success() returns a bool"),
    Check("world_horizon", "world", check_world_horizon, "horizon is an int > 0"),
    Check("world_task_and_camera", "world", check_world_task_and_camera,
          "world.task is a Task and world.camera a Camera"),
    Check("world_segmentation", "world", check_world_segmentation,
          "'segmentation': object_mask(task.object) is a non-empty bool mask of the image; unknown names raise"),
    Check("world_camera_projection", "world", check_world_camera_projection,
          "calibration_probe() markers project with world.camera within 1 px of where the simulator draws them"),
    Check("world_depth_plane", "world", check_world_depth_plane,
          "render() depth of the calibration_probe() plane, back-projected, lies within 5 mm of the plane"),
]
