"""Checks of 2D point trackers (d2f_core.protocols.Tracker)."""

from __future__ import annotations

from typing import Any

import numpy as np

from d2f_core.types import Tracks2D, Video

from ..results import CheckFailed
from ..scenes import CheckEnv, channel_order_video
from .common import (Check, require_same, blocked_by, cached, call, common_checks, expect_value_error,
                     has_cap, model_input_check, skip_if_cap, Snapshot, writable_video)

QUERY_TOLERANCE_PX = 0.5
MOTION_TOLERANCE_PX = 1.5
MIN_FRACTION = 0.8  # of interior points that must be tracked within tolerance


def _erode(mask: np.ndarray, r: int) -> np.ndarray:
    out = mask.copy()
    H, W = mask.shape
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            sh = np.zeros_like(mask)
            sh[max(0, -dy):H - max(0, dy), max(0, -dx):W - max(0, dx)] = \
                mask[max(0, dy):H - max(0, -dy), max(0, dx):W - max(0, -dx)]
            out &= sh
    return out


def _pick(n_avail: int, n: int) -> np.ndarray:
    return np.unique(np.linspace(0, n_avail - 1, min(n, n_avail)).round().astype(int))


def frame0_queries(env: CheckEnv, n: int = 12) -> tuple[np.ndarray, np.ndarray]:
    """Queries (t=0, x, y) at box pixels at least 3 px inside the box, and their flow indices."""
    m0 = env.scene.masks[0]
    ys, xs = np.nonzero(m0)  # the order standard_scene built the flow in
    inner = _erode(m0, 3)[ys, xs]
    idx = np.nonzero(inner)[0]
    if idx.size == 0:
        idx = np.arange(xs.size)
    idx = idx[_pick(idx.size, n)]
    q = np.stack([np.zeros(idx.size), xs[idx], ys[idx]], -1).astype(np.float32)
    return q, idx


def multi_frame_queries(env: CheckEnv, per_frame: int = 4) -> np.ndarray:
    """Queries spread over the first, middle and last frames, inside the box at that frame."""
    T = env.scene.video.num_frames
    rows = []
    for t in sorted({0, T // 2, T - 1}):
        ys, xs = np.nonzero(_erode(env.scene.masks[t], 2))
        sel = _pick(xs.size, per_frame)
        rows += [(t, float(xs[i]), float(ys[i])) for i in sel]
    return np.array(rows, np.float32)


def _track(component: Any, video: Video, queries: np.ndarray, what: str = "track(video, queries)") -> Any:
    return call(what, component.track, video, np.array(queries, copy=True))


def _canonical(component: Any, env: CheckEnv) -> Any:
    def run() -> Any:
        video, _ = writable_video(env.scene.video)
        return _track(component, video, multi_frame_queries(env))
    return cached(env, component, "tracker.track", run)


def diagnose_tracks(out: Any, T: int, N: int) -> str | None:
    """What is wrong with a would-be Tracks2D (None when nothing is)."""
    fields = {"xy": (np.float32, (T, N, 2)), "visible": (np.bool_, (T, N)), "query_frame": (np.int64, (N,))}
    for f, (dtype, shape) in fields.items():
        if not hasattr(out, f):
            continue
        v = getattr(out, f)
        if not isinstance(v, np.ndarray):
            return f"{f} is {type(v).__name__}, expected a numpy array"
        if v.dtype != np.dtype(dtype):
            if f == "visible":
                fix = ("return bool: visible = prob > 0.5 (or .astype(bool))"
                       if np.issubdtype(v.dtype, np.floating) else "return bool with .astype(bool)")
            else:
                fix = f"convert with .astype(np.{np.dtype(dtype).name})"
            return f"{f} is {v.dtype}, expected {np.dtype(dtype)}: {fix}"
        if v.shape != shape:
            hint = "; tracks must be T x N (frames first)" if v.shape[:2] == (N, T) else ""
            return f"{f} has shape {v.shape}, expected {'x'.join(map(str, shape))}{hint}"
    return None


def check_tracker_output_types(component: Any, env: CheckEnv) -> None:
    out = _canonical(component, env)
    T, N = env.scene.video.num_frames, len(multi_frame_queries(env))
    problem = diagnose_tracks(out, T, N)
    if not isinstance(out, Tracks2D):
        base = f"track() returned {type(out).__name__}, expected d2f_core.Tracks2D"
        if problem:
            raise CheckFailed(f"{base}; {problem}, then return Tracks2D(xy=..., visible=..., query_frame=...)")
        raise CheckFailed(f"{base}; return Tracks2D(xy=float32 T x N x 2, visible=bool T x N, "
                          "query_frame=int64 N)")
    if problem:
        raise CheckFailed(f"Tracks2D.{problem}")


def _tracks(component: Any, env: CheckEnv) -> Tracks2D:
    out = _canonical(component, env)
    if not isinstance(out, Tracks2D) or diagnose_tracks(out, env.scene.video.num_frames,
                                                        len(multi_frame_queries(env))):
        blocked_by("tracker_output_types", "track() does not return a well-formed d2f_core.Tracks2D")
    return out


def check_tracker_query_position(component: Any, env: CheckEnv) -> None:
    q = multi_frame_queries(env)
    tr = _tracks(component, env)
    qf = q[:, 0].astype(np.int64)
    if not np.array_equal(tr.query_frame, qf):
        raise CheckFailed(f"Tracks2D.query_frame is {tr.query_frame.tolist()}, the queries asked for frames "
                          f"{qf.tolist()}; return queries[:, 0] as int64")
    n = np.arange(len(q))
    at = tr.xy[qf, n]
    err = np.linalg.norm(at - q[:, 1:], axis=-1)
    bad = np.nonzero(~(err <= QUERY_TOLERANCE_PX))[0]
    if bad.size:
        i = int(bad[0])
        raise CheckFailed(f"{bad.size} of {len(q)} points are not at their query at their query frame (e.g. "
                          f"query (t={qf[i]}, x={q[i, 1]:g}, y={q[i, 2]:g}) is at ({at[i, 0]:.2f}, "
                          f"{at[i, 1]:.2f}), {err[i]:.2f} px away; tolerance {QUERY_TOLERANCE_PX} px). Start each "
                          "track at its own frame queries[:, 0] (not frame 0) and keep (x, y) = (column, row)")
    hidden = np.nonzero(~tr.visible[qf, n])[0]
    if hidden.size:
        raise CheckFailed(f"{hidden.size} points are marked invisible at their own query frame; a queried point "
                          "is visible where it was queried")


def check_tracker_known_motion(component: Any, env: CheckEnv) -> None:
    q, idx = frame0_queries(env)
    video, _ = writable_video(env.scene.video)
    tr = _track(component, video, q)
    T = env.scene.video.num_frames
    if not isinstance(tr, Tracks2D) or diagnose_tracks(tr, T, len(q)):
        blocked_by("tracker_output_types", "track() does not return a well-formed d2f_core.Tracks2D")
    if has_cap(component, "zero_motion"):
        moved = np.abs(tr.xy - q[None, :, 1:]).max()
        if moved > 1e-3:
            raise CheckFailed(f"declares 'zero_motion' but tracks move by up to {moved:.3g} px; a zero-motion "
                              "tracker keeps every point at its query in every frame (or drop the capability)")
        return
    truth, _ = env.scene.camera.project(env.scene.flow.points[-1, idx])
    err = np.linalg.norm(tr.xy[-1] - truth, axis=-1)
    ok = tr.visible[-1] & (err <= MOTION_TOLERANCE_PX)
    if ok.mean() < MIN_FRACTION:
        true_motion = float(np.median(truth[:, 0] - q[:, 1]))
        got = tr.xy[-1, :, 0] - q[:, 1]
        got_motion = float(np.nanmedian(got)) if np.any(np.isfinite(got)) else float("nan")
        raise CheckFailed(f"on the standard scene the box moves {true_motion:+.2f} px in x by the last frame; "
                          f"only {int(ok.sum())} of {len(q)} points inside it are tracked there within "
                          f"{MOTION_TOLERANCE_PX} px and visible (median tracked x motion {got_motion:+.2f} px, "
                          f"median error {np.nanmedian(err):.2f} px). Check pixel conventions ((x, y) = "
                          "(column, row), origin at the pixel centre), resizing back to the video's size, "
                          "and the model input (run model_input_convention)")


def check_tracker_channel_order(component: Any, env: CheckEnv) -> None:
    skip_if_cap(component, "zero_motion", "a zero-motion tracker follows nothing")
    cv = channel_order_video(env.scene.video.width, env.scene.video.height, env.scene.video.num_frames)
    W, H = cv.video.width, cv.video.height
    xs = np.linspace(0.25 * W, 0.6 * W, 4).round()
    ys = np.linspace(0.3 * H, 0.7 * H, 3).round()
    q = np.array([(0, x, y) for x in xs for y in ys], np.float32)
    frames = np.array(cv.video.frames, copy=True)
    tr = _track(component, Video(frames=frames, fps=cv.video.fps), q, "track(channel-order video, queries)")
    T = cv.video.num_frames
    if not isinstance(tr, Tracks2D) or diagnose_tracks(tr, T, len(q)):
        blocked_by("tracker_output_types", "track() does not return a well-formed d2f_core.Tracks2D")
    truth = cv.speed_px * (T - 1)
    dx = tr.xy[-1, :, 0] - q[:, 1]
    dy = tr.xy[-1, :, 1] - q[:, 2]
    on_red = (np.abs(dx - truth) <= MOTION_TOLERANCE_PX) & (np.abs(dy) <= MOTION_TOLERANCE_PX)
    on_blue = (np.abs(dx) <= MOTION_TOLERANCE_PX) & (np.abs(dy) <= MOTION_TOLERANCE_PX)
    if on_red.mean() >= 0.5:
        return
    if on_blue.mean() >= 0.5:
        what = f"{int(on_blue.sum())} of {len(q)} points stayed on the static blue texture"
    else:
        what = (f"only {int(on_red.sum())} of {len(q)} points follow the red motion (median motion "
                f"{np.nanmedian(dx):+.2f}, {np.nanmedian(dy):+.2f} px)")
    raise CheckFailed(f"in a video whose RED channel moves {truth:+.0f} px in x over a static, weaker BLUE texture, "
                      f"{what}. A tracker that reads the RGB frames as BGR (cv2 and many C++ trackers assume "
                      "BGR) sees the blue texture as the strong one and fails like this. Video frames are RGB: "
                      "reverse channels (frames[..., ::-1]) only when the model expects BGR, and declare "
                      "model_input_spec")


def check_tracker_determinism(component: Any, env: CheckEnv) -> None:
    skip_if_cap(component, "api", "a remote service need not be reproducible")
    a = _tracks(component, env)
    video, _ = writable_video(env.scene.video)
    b = _track(component, video, multi_frame_queries(env))
    if not isinstance(b, Tracks2D):
        raise CheckFailed(f"track() returned {type(b).__name__} on the second call")
    for f in ("xy", "visible"):
        require_same(getattr(a, f), getattr(b, f), "video and queries", f"Tracks2D.{f}", atol=1e-4)


def check_tracker_rejects_malformed_input(component: Any, env: CheckEnv) -> None:
    video, _ = writable_video(env.scene.video)
    q = multi_frame_queries(env)
    fix = "validate with d2f_core.validate.check_queries(queries, video)"
    expect_value_error("track(video, queries)", component.track, video, np.array(q[:, 1:]), arg="queries",
                       given="N x 2 queries (no frame index column)", fix=fix)
    bad = np.array(q, copy=True)
    bad[0, 0] = video.num_frames
    expect_value_error("track(video, queries)", component.track, video, bad, arg="queries",
                       given=f"a query on frame {video.num_frames} of a {video.num_frames}-frame video", fix=fix)
    expect_value_error("track(video, queries)", component.track, np.array(video.frames), q, arg="video",
                       given="a bare frame array instead of d2f_core.Video",
                       fix="validate with d2f_core.validate.check_video(video, 'video')")


def check_tracker_edge_queries(component: Any, env: CheckEnv) -> None:
    """One query gives T x 1 tracks; no query (0 x 3) gives empty T x 0 tracks or a ValueError naming
    ``queries`` - never another exception."""
    _tracks(component, env)  # a malformed output on ordinary queries is tracker_output_types' failure
    video, _ = writable_video(env.scene.video)
    T = video.num_frames
    q1 = frame0_queries(env, 1)[0][:1]
    one = _track(component, video, q1, "track(video, one query)")
    why = (None if isinstance(one, Tracks2D) else f"{type(one).__name__}, not d2f_core.Tracks2D") \
        or diagnose_tracks(one, T, 1)
    if why:
        raise CheckFailed(f"track(video, one query) returned a malformed result: {why}; a single query is an "
                          "N = 1 batch (keep the point axis: xy T x 1 x 2)")
    if not np.all(np.isfinite(np.asarray(one.xy)[np.asarray(one.visible)])):
        raise CheckFailed("track(video, one query) returned NaN or inf at a visible point")
    video, _ = writable_video(env.scene.video)
    try:
        none = component.track(video, np.zeros((0, 3), np.float32))
    except ValueError as e:
        if "quer" not in str(e).lower():
            raise CheckFailed(f"track(video, 0 x 3 queries) raised ValueError not naming 'queries': {e}") from None
        return
    except Exception as e:  # noqa: BLE001
        raise CheckFailed(f"track(video, 0 x 3 queries) raised {type(e).__name__}: {e}; return empty tracks "
                          "(xy T x 0 x 2) or raise ValueError('queries: at least one query is needed')") from None
    why = (None if isinstance(none, Tracks2D) else f"{type(none).__name__}, not d2f_core.Tracks2D") \
        or diagnose_tracks(none, T, 0)
    if why:
        raise CheckFailed(f"track(video, 0 x 3 queries) returned a malformed result: {why}; return empty tracks "
                          "(xy T x 0 x 2) or raise ValueError('queries: ...')")


def check_tracker_no_input_mutation(component: Any, env: CheckEnv) -> None:
    video, frames = writable_video(env.scene.video)
    q = multi_frame_queries(env)
    snap = Snapshot(frames=frames, queries=q)
    call("track(video, queries)", component.track, video, q)
    snap.assert_unchanged("track()")


CHECKS: list[Check] = [
    *common_checks("tracker"),
    Check("tracker_output_types", "tracker", check_tracker_output_types,
          "track() returns Tracks2D: xy float32 T x N x 2, visible bool T x N, query_frame int64 N"),
    Check("tracker_query_position", "tracker", check_tracker_query_position,
          "at its query frame each point is within 0.5 px of its query and visible"),
    Check("tracker_known_motion", "tracker", check_tracker_known_motion,
          "points on the standard scene's moving box follow its true motion within 1.5 px "
          "('zero_motion': points stay put)"),
    Check("tracker_channel_order", "tracker", check_tracker_channel_order,
          "follows a texture moving in the red channel, not a static one in blue (catches BGR readers)"),
    Check("tracker_determinism", "tracker", check_tracker_determinism,
          "the same video and queries give the same tracks (skipped for 'api')"),
    Check("tracker_rejects_malformed_input", "tracker", check_tracker_rejects_malformed_input,
          "N x 2 queries, out-of-range frame indices and bare arrays raise ValueError naming the argument"),
    Check("tracker_edge_queries", "tracker", check_tracker_edge_queries,
          "one query gives T x 1 tracks; zero queries give T x 0 tracks or a ValueError naming queries"),
    Check("tracker_no_input_mutation", "tracker", check_tracker_no_input_mutation,
          "the video's frames and the queries are unchanged after track()"),
    model_input_check("tracker"),
]
