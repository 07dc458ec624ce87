"""Rigid object-motion tracks: the object-motion estimates of the two Dream2Flow baselines (§5.2).

Both baselines reduce the imagined video to **one rigid transform per frame** of the object,
``T_t`` (4x4, world frame, metres) mapping the object's frame-0 points to frame t
(``p_t = T_t @ [p_0, 1]``; ``T_0 = I``). A solver then follows the rigidly moved frame-0 points
(:func:`apply`, :func:`as_object_flow`) instead of the 3D flow, with the same grasp and execution.

* :func:`rigid_track_from_flow` (RIGVid-style, as the paper adapts it): a 6-DoF pose track fitted
  to Dream2Flow's 3D flow points. Each frame is fitted directly to frame 0 (no chaining) on the
  points visible in both, by RANSAC on minimal 3-point samples (MSAC score) and a Kabsch refit on
  the inliers (two rounds).
* :func:`avdc_track` (AVDC, Ko et al. 2023): dense optical flow between consecutive frames
  (OpenCV Farneback or DIS here; AVDC uses GMFlow), the first-frame mask's pixels (a grid of up to
  ``max_points``) carried along by the flow, a rigid transform per consecutive frame pair, composed
  into transforms relative to frame 0: ``T_{t+1} = dT_t @ T_t``. Two per-pair solvers:

  - ``solver="kabsch"`` (default): each correspondence lifted to 3D with the depth of *both*
    frames (bilinear, all contributing neighbours valid) and back-projected into the world frame;
    ``dT_t`` by RANSAC + Kabsch. RANSAC outliers and points that leave the image or land on
    invalid depth are dropped for good (as AVDC does with its RANSAC outliers).
  - ``solver="pnp"`` (AVDC's own formulation): depth of frame 0 only; the 3D points are carried
    by the estimated transforms and ``dT_t`` minimises the reprojection error of the flow-carried
    pixels (OpenCV ``solvePnPRansac`` + Levenberg-Marquardt refine, camera assumed static); the
    next frame's pixels are the reprojections of the rigidly moved inlier points.

Frames that cannot be fitted (fewer than ``min_points`` correspondences or inliers, or a
degenerate, collinear inlier set) are marked ``valid = False`` and **hold the last valid
transform** (identity before the first valid one), so a track is always defined on every frame.
``inliers`` counts the points supporting each frame's fit (frame 0: the points available);
``rms_m`` is their RMS residual in metres (NaN where invalid; for ``solver="pnp"`` the image
residual converted to metres at each point's depth, ``px * z / fx``).

numpy only at import; OpenCV is imported inside :func:`avdc_track`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from d2f_core.flow.quality import kabsch
from d2f_core.types import Camera, ObjectFlow, check_rgb_frames

__all__ = ["RigidTrack", "rigid_track_from_flow", "avdc_track", "apply", "as_object_flow", "ransac_rigid"]

_MIN_SPREAD_M = 1e-4
"""Inlier sets whose RMS distance from their best-fit line is below this (m) are degenerate."""


@dataclass(frozen=True)
class RigidTrack:
    """A rigid object-motion track (see the module doc).

    Fields (T frames):
        transforms: float64 T x 4 x 4, world frame, metres: frame-0 points -> frame t; T_0 = I.
        valid: bool T, whether frame t was fitted (invalid frames hold the last valid transform).
        inliers: int64 T, points supporting the fit of frame t (0 where invalid).
        rms_m: float64 T, RMS residual of those points, metres (NaN where invalid).
        method: which estimator made it (``"rigvid"``, ``"avdc-kabsch"``, ``"avdc-pnp"``).
    """

    transforms: np.ndarray
    valid: np.ndarray
    inliers: np.ndarray
    rms_m: np.ndarray
    method: str = ""

    def __post_init__(self) -> None:
        tf = np.array(self.transforms, dtype=np.float64)
        if tf.ndim != 3 or tf.shape[1:] != (4, 4):
            raise ValueError(f"RigidTrack.transforms: expected T x 4 x 4, got shape {tf.shape}")
        n = tf.shape[0]
        arrays = {"transforms": tf}
        for name, dtype in (("valid", np.bool_), ("inliers", np.int64), ("rms_m", np.float64)):
            a = np.array(getattr(self, name), dtype=dtype)
            if a.shape != (n,):
                raise ValueError(f"RigidTrack.{name}: expected shape ({n},) to match transforms, got {a.shape}")
            arrays[name] = a
        for name, a in arrays.items():
            a.flags.writeable = False
            object.__setattr__(self, name, a)

    @property
    def num_frames(self) -> int:
        return int(self.transforms.shape[0])


# --------------------------------------------------------------------------- application


def apply(track: RigidTrack, points0: np.ndarray) -> np.ndarray:
    """Frame-0 points (N x 3, world, metres) moved by the track: float64 T x N x 3."""
    p = np.asarray(points0, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != 3:
        raise ValueError(f"points0: expected N x 3 world points (metres), got shape {p.shape}")
    tf = track.transforms
    return np.einsum("tij,nj->tni", tf[:, :3, :3], p) + tf[:, None, :3, 3]


def as_object_flow(track: RigidTrack, flow: ObjectFlow) -> ObjectFlow:
    """The flow a solver follows for this baseline: ``flow``'s points visible in frame 0 moved
    rigidly by ``track`` (visible in every frame); points not visible in frame 0 have no known
    frame-0 position and are invisible throughout. Colours, normals and fps are kept."""
    if track.num_frames != flow.num_frames:
        raise ValueError(f"track: {track.num_frames} frames but flow has {flow.num_frames}; "
                         "fit the track to the same video")
    vis0 = np.asarray(flow.visible[0])
    p0 = np.where(vis0[:, None], flow.points[0], 0.0)
    pts = apply(track, p0).astype(np.float32)
    visible = np.broadcast_to(vis0, flow.visible.shape).copy()
    prov = dict(flow.provenance)
    prov["rigid_track"] = {"method": track.method, "valid_frames": int(track.valid.sum()),
                           "num_frames": track.num_frames}
    return replace(flow, points=pts, visible=visible, provenance=prov)


# --------------------------------------------------------------------------- robust rigid fit


def _spread(p: np.ndarray) -> float:
    """RMS distance (m) of points from their best-fit line (0 for collinear points)."""
    if len(p) < 3:
        return 0.0
    s = np.linalg.svd(p - p.mean(0), compute_uv=False)
    return float(np.sqrt((s[1:] ** 2).sum() / len(p)))


def ransac_rigid(a: np.ndarray, b: np.ndarray, *, iters: int = 200, inlier_m: float = 0.01,
                 min_points: int = 4, rng: np.random.Generator | None = None) -> dict[str, Any] | None:
    """Robust rigid fit ``b ~ R a + t`` (a, b: N x 3, metres).

    RANSAC on minimal 3-point samples (batched Kabsch, MSAC cost: sum of min(r^2, inlier_m^2)),
    then two rounds of Kabsch refit on the inliers (residual < ``inlier_m``). Returns None when
    fewer than ``min_points`` inliers remain or they are (nearly) collinear; otherwise a dict with
    ``T`` (4x4), ``inliers`` (bool N) and ``rms_m``.
    """
    rng = rng if rng is not None else np.random.default_rng(0)
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    n = len(a)
    if n < max(3, min_points):
        return None
    thr2 = inlier_m ** 2
    idx = np.stack([rng.choice(n, 3, replace=False) for _ in range(iters)]) if n > 3 else np.arange(3)[None]
    A, B = a[idx], b[idx]  # K x 3 x 3
    ca, cb = A.mean(1, keepdims=True), B.mean(1, keepdims=True)
    H = np.einsum("kni,knj->kij", A - ca, B - cb)
    U, _, Vt = np.linalg.svd(H)
    d = np.sign(np.linalg.det(np.einsum("kji,klj->kil", Vt, U)))  # det(V U^T)
    D = np.zeros((len(idx), 3, 3))
    D[:, 0, 0] = D[:, 1, 1] = 1.0
    D[:, 2, 2] = np.where(d == 0, 1.0, d)
    R = np.einsum("kji,kjl,kml->kim", Vt, D, U)  # V D U^T
    t = cb[:, 0] - np.einsum("kij,kj->ki", R, ca[:, 0])
    r2 = ((np.einsum("kij,nj->kni", R, a) + t[:, None] - b[None]) ** 2).sum(-1)  # K x N
    cost = np.minimum(r2, thr2).sum(1)
    area = np.linalg.norm(np.cross(A[:, 1] - A[:, 0], A[:, 2] - A[:, 0]), axis=1)
    cost[area < thr2] = np.inf  # near-collinear sample: its rotation is arbitrary
    if not np.isfinite(cost).any():
        return None
    k = int(np.argmin(cost))
    inl = r2[k] < thr2
    Rb, tb = R[k], t[k]
    for _ in range(2):
        if inl.sum() < max(3, min_points):
            return None
        Rb, tb = kabsch(a[inl], b[inl])
        res = ((a @ Rb.T + tb - b) ** 2).sum(1)
        inl = res < thr2
    if inl.sum() < max(3, min_points) or _spread(a[inl]) < _MIN_SPREAD_M:
        return None
    T = np.eye(4)
    T[:3, :3], T[:3, 3] = Rb, tb
    return {"T": T, "inliers": inl, "rms_m": float(np.sqrt(res[inl].mean()))}


def _check_common(ransac_iters: int, inlier_m: float, min_points: int) -> None:
    if int(ransac_iters) < 1:
        raise ValueError(f"ransac_iters: got {ransac_iters}; use at least 1 (default 200)")
    if not np.isfinite(inlier_m) or inlier_m <= 0:
        raise ValueError(f"inlier_m: got {inlier_m}; give a positive inlier distance in metres (e.g. 0.01)")
    if int(min_points) < 3:
        raise ValueError(f"min_points: got {min_points}; a rigid transform needs at least 3 points (default 4)")


class _Builder:
    """Collects per-frame results with the hold-last-valid rule."""

    def __init__(self, T: int) -> None:
        self.tf = np.tile(np.eye(4), (T, 1, 1))
        self.valid = np.zeros(T, bool)
        self.inliers = np.zeros(T, np.int64)
        self.rms = np.full(T, np.nan)

    def first(self, n: int, ok: bool) -> None:
        self.valid[0], self.inliers[0], self.rms[0] = ok, n if ok else 0, 0.0 if ok else np.nan

    def set(self, t: int, T: np.ndarray, inliers: int, rms: float) -> None:
        self.tf[t], self.valid[t], self.inliers[t], self.rms[t] = T, True, inliers, rms

    def hold(self, t: int) -> None:
        self.tf[t] = self.tf[t - 1]

    def track(self, method: str) -> RigidTrack:
        return RigidTrack(self.tf, self.valid, self.inliers, self.rms, method=method)


# --------------------------------------------------------------------------- RIGVid-style


def rigid_track_from_flow(points: np.ndarray, visible: np.ndarray, *, ransac_iters: int = 200,
                          inlier_m: float = 0.01, min_points: int = 4, seed: int = 0) -> RigidTrack:
    """A 6-DoF pose track fitted to 3D flow points (RIGVid-style baseline; see the module doc).

    Args:
        points: T x N x 3 world points, metres (an :class:`ObjectFlow`'s ``points``).
        visible: bool T x N; only points visible in frame 0 *and* frame t inform frame t.
        ransac_iters: RANSAC samples per frame (3 points each).
        inlier_m: inlier distance, metres.
        min_points: fewer correspondences or inliers than this -> frame invalid, last valid
            transform held.
        seed: RANSAC random seed (results are deterministic for a given seed).
    """
    _check_common(ransac_iters, inlier_m, min_points)
    pts = np.asarray(points)
    if pts.ndim != 3 or pts.shape[-1] != 3:
        raise ValueError(f"points: expected T x N x 3 world points (metres), got shape {pts.shape}")
    vis = np.asarray(visible)
    if vis.shape != pts.shape[:2]:
        raise ValueError(f"visible: expected shape {pts.shape[:2]} (T x N, matching points), got {vis.shape}")
    if vis.dtype != np.bool_:
        raise ValueError(f"visible: expected a bool array, got dtype {vis.dtype}; convert with .astype(bool)")
    pts = pts.astype(np.float64)
    if not np.all(np.isfinite(pts[vis])):
        raise ValueError("points: visible points contain NaN or inf; mark them invisible or drop them")
    rng = np.random.default_rng(seed)
    T = pts.shape[0]
    out = _Builder(T)
    n0 = int(vis[0].sum()) if T else 0
    if T == 0:
        return out.track("rigvid")
    out.first(n0, n0 >= min_points and _spread(pts[0][vis[0]]) >= _MIN_SPREAD_M)
    for t in range(1, T):
        both = vis[0] & vis[t]
        fit = None
        if both.sum() >= min_points:
            fit = ransac_rigid(pts[0][both], pts[t][both], iters=ransac_iters, inlier_m=inlier_m,
                               min_points=min_points, rng=rng)
        if fit is None:
            out.hold(t)
        else:
            out.set(t, fit["T"], int(fit["inliers"].sum()), fit["rms_m"])
    return out.track("rigvid")


# --------------------------------------------------------------------------- AVDC


def _bilinear(img: np.ndarray, xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sample H x W (x C) ``img`` at sub-pixel (x, y) (N x 2). Returns values (N [x C]) and whether
    the point lies inside the image and every neighbour with a nonzero weight is finite and > 0
    (the latter only matters for depth; flow callers ignore the sign check)."""
    H, W = img.shape[:2]
    x, y = xy[:, 0], xy[:, 1]
    inside = (x >= 0) & (x <= W - 1) & (y >= 0) & (y <= H - 1)
    xc, yc = np.clip(x, 0, W - 1), np.clip(y, 0, H - 1)
    x0 = np.minimum(np.floor(xc).astype(np.int64), W - 2 if W > 1 else 0)
    y0 = np.minimum(np.floor(yc).astype(np.int64), H - 2 if H > 1 else 0)
    wx, wy = xc - x0, yc - y0
    x1, y1 = np.minimum(x0 + 1, W - 1), np.minimum(y0 + 1, H - 1)
    corners = [(y0, x0, (1 - wx) * (1 - wy)), (y0, x1, wx * (1 - wy)), (y1, x0, (1 - wx) * wy), (y1, x1, wx * wy)]
    val = 0.0
    ok = inside.copy()
    for yy, xx, w in corners:
        v = img[yy, xx].astype(np.float64)
        if v.ndim == 1:
            ok &= (w == 0) | (np.isfinite(v) & (v > 0))
            v = np.where(np.isfinite(v), v, 0.0)
            val = val + w * v
        else:
            val = val + w[:, None] * v
    return val, ok


def _grid_pixels(mask: np.ndarray, max_points: int) -> np.ndarray:
    """(x, y) float64 of ``mask``'s pixels on the coarsest regular grid keeping <= max_points."""
    ys, xs = np.nonzero(mask)
    step = 1
    while True:
        keep = (xs % step == 0) & (ys % step == 0)
        if keep.sum() <= max_points:
            break
        step += 1
    if keep.sum() == 0:  # a tiny mask between grid lines: take its first pixels instead
        keep = np.arange(len(xs)) < max_points
    return np.stack([xs[keep], ys[keep]], 1).astype(np.float64)


def _dense_flow(cv2, prev: np.ndarray, nxt: np.ndarray, method: str) -> np.ndarray:
    """H x W x 2 float32 displacement (dx, dy) from ``prev`` to ``nxt`` (grey uint8)."""
    if method == "farneback":
        return cv2.calcOpticalFlowFarneback(prev, nxt, None, pyr_scale=0.5, levels=4, winsize=15,
                                            iterations=5, poly_n=5, poly_sigma=1.1, flags=0)
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    return dis.calc(prev, nxt, None)


def _to_world(camera: Camera, T_cam: np.ndarray) -> np.ndarray:
    """A motion expressed in camera coordinates -> the same motion in world coordinates."""
    return camera.T_world_cam @ T_cam @ camera.T_cam_world


def avdc_track(frames: np.ndarray, depth: np.ndarray, mask0: np.ndarray, camera: Camera, *,
               flow_method: str = "farneback", solver: str = "kabsch", max_points: int = 2000,
               ransac_iters: int = 200, inlier_m: float = 0.01, inlier_px: float = 2.0,
               min_points: int = 4, seed: int = 0) -> RigidTrack:
    """AVDC's rigid object track from a video with depth (see the module doc).

    Args:
        frames: uint8 T x H x W x 3 RGB video (camera assumed static).
        depth: T x H x W metres along the camera z axis, aligned with ``frames`` (0/NaN = invalid);
            ``solver="pnp"`` uses only ``depth[0]``.
        mask0: bool H x W, the object's pixels in frame 0.
        camera: the camera of the video (K, T_world_cam); its size must be W x H.
        flow_method: ``"farneback"`` or ``"dis"`` (OpenCV dense optical flow, frame t -> t+1).
        solver: ``"kabsch"`` (3D-3D with both frames' depth) or ``"pnp"`` (AVDC's reprojection fit).
        max_points: pixels sampled from ``mask0`` (coarsest regular grid keeping at most this many).
        ransac_iters: RANSAC samples per frame pair.
        inlier_m: ``"kabsch"`` inlier distance, metres. It matters: a consecutive pair moves by
            millimetres, so a loose threshold admits lagging flow and the track undershoots
            (robosuite bread_in_bowl, exact depth: final error 3.5 / 5.6 / 12.9 mm at 3 / 5 / 10 mm).
            The default equals :func:`rigid_track_from_flow`'s so the two baselines match.
        inlier_px: ``"pnp"`` inlier reprojection error, pixels.
        min_points: fewer usable correspondences or inliers than this -> the pair is invalid and
            frame t+1 holds frame t's transform.
        seed: RANSAC random seed.
    """
    _check_common(ransac_iters, inlier_m, min_points)
    if flow_method not in ("farneback", "dis"):
        raise ValueError(f"flow_method: got {flow_method!r}; use 'farneback' or 'dis'")
    if solver not in ("kabsch", "pnp"):
        raise ValueError(f"solver: got {solver!r}; use 'kabsch' (both frames' depth) or 'pnp' (AVDC's)")
    if int(max_points) < min_points:
        raise ValueError(f"max_points: got {max_points}; must be >= min_points ({min_points})")
    if not np.isfinite(inlier_px) or inlier_px <= 0:
        raise ValueError(f"inlier_px: got {inlier_px}; give a positive reprojection error in pixels (e.g. 2)")
    frames = check_rgb_frames("frames", frames, 4)
    T, H, W = frames.shape[:3]
    depth = np.asarray(depth)
    if depth.shape != (T, H, W):
        raise ValueError(f"depth: expected shape {(T, H, W)} (T x H x W metres, aligned with frames), "
                         f"got {depth.shape}")
    if not np.issubdtype(depth.dtype, np.floating):
        raise ValueError(f"depth: expected float metres, got dtype {depth.dtype}; convert with .astype(np.float32)")
    mask0 = np.asarray(mask0)
    if mask0.shape != (H, W):
        raise ValueError(f"mask0: expected shape {(H, W)} (H x W, the first frame's size), got {mask0.shape}")
    if mask0.dtype != np.bool_:
        raise ValueError(f"mask0: expected a bool array, got dtype {mask0.dtype}; convert with mask > 0")
    if not mask0.any():
        raise ValueError("mask0: the mask is empty (no True pixel); give the object's pixels in frame 0")
    if not isinstance(camera, Camera):
        raise ValueError(f"camera: expected a d2f_core Camera, got {type(camera).__name__}")
    if (camera.width, camera.height) != (W, H):
        raise ValueError(f"camera: intrinsics are for {camera.width}x{camera.height} but the frames are "
                         f"{W}x{H}; use camera.resized({W}, {H})")
    d0 = depth[0]
    usable = mask0 & np.isfinite(d0) & (d0 > 0)
    if not usable.any():
        raise ValueError("mask0: none of its pixels has a valid depth in depth[0]; check the mask and the depth")

    import cv2

    rng = np.random.default_rng(seed)
    p = _grid_pixels(usable, int(max_points))
    out = _Builder(T)
    out.first(len(p), len(p) >= min_points)
    grey = [cv2.cvtColor(np.ascontiguousarray(f), cv2.COLOR_RGB2GRAY) for f in frames]
    X = camera.backproject(p, d0[p[:, 1].astype(int), p[:, 0].astype(int)]) if solver == "pnp" else None
    K = np.asarray(camera.K, np.float64)
    for t in range(T - 1):
        if len(p) < min_points:  # the track died: every later frame holds
            out.hold(t + 1)
            continue
        flow, _ = _bilinear(_dense_flow(cv2, grey[t], grey[t + 1], flow_method), p)
        q = p + flow
        in_img = (q[:, 0] >= 0) & (q[:, 0] <= W - 1) & (q[:, 1] >= 0) & (q[:, 1] <= H - 1)
        if solver == "kabsch":
            z0, ok0 = _bilinear(depth[t], p)
            z1, ok1 = _bilinear(depth[t + 1], q)
            ok = in_img & ok0 & ok1
            fit = None
            if ok.sum() >= min_points:
                fit = ransac_rigid(camera.backproject(p[ok], z0[ok]), camera.backproject(q[ok], z1[ok]),
                                   iters=ransac_iters, inlier_m=inlier_m, min_points=min_points, rng=rng)
            if fit is None:
                out.hold(t + 1)
                p = q[in_img]
                continue
            out.set(t + 1, fit["T"] @ out.tf[t], int(fit["inliers"].sum()), fit["rms_m"])
            keep = np.flatnonzero(ok)[fit["inliers"]]
            p = q[keep]
        else:
            fit = _pnp_step(cv2, camera, K, X[in_img], q[in_img], ransac_iters, inlier_px, min_points, seed + t)
            if fit is None:
                out.hold(t + 1)
                p, X = q[in_img], X[in_img]
                continue
            dT, inl, rms_m = fit
            out.set(t + 1, dT @ out.tf[t], int(inl.sum()), rms_m)
            X = (X[in_img][inl] @ dT[:3, :3].T) + dT[:3, 3]
            uv, z = camera.project(X)
            front = (z > 0) & (uv[:, 0] >= 0) & (uv[:, 0] <= W - 1) & (uv[:, 1] >= 0) & (uv[:, 1] <= H - 1)
            p, X = uv[front], X[front]
    return out.track(f"avdc-{solver}")


def _pnp_step(cv2, camera: Camera, K: np.ndarray, X: np.ndarray, q: np.ndarray, iters: int, inlier_px: float,
              min_points: int, seed: int):
    """AVDC's per-pair solve: the motion dT (world) that best reprojects world points X onto pixels q."""
    n = len(X)
    if n < max(min_points, 4):
        return None
    Xc = X @ camera.T_cam_world[:3, :3].T + camera.T_cam_world[:3, 3]
    obj = np.ascontiguousarray(Xc, np.float64).reshape(-1, 1, 3)
    img = np.ascontiguousarray(q, np.float64).reshape(-1, 1, 2)
    cv2.setRNGSeed(int(seed))
    rvec, tvec = np.zeros((3, 1)), np.zeros((3, 1))
    ok, rvec, tvec, idx = cv2.solvePnPRansac(obj, img, K, None, rvec, tvec, useExtrinsicGuess=True,
                                             iterationsCount=int(iters), reprojectionError=float(inlier_px),
                                             confidence=0.999, flags=cv2.SOLVEPNP_ITERATIVE)
    if not ok or idx is None or len(idx) < max(min_points, 4):
        return None
    inl = np.zeros(n, bool)
    inl[idx.ravel()] = True
    rvec, tvec = cv2.solvePnPRefineLM(obj[inl], img[inl], K, None, rvec, tvec)
    proj, _ = cv2.projectPoints(obj, rvec, tvec, K, None)
    err = np.linalg.norm(proj.reshape(-1, 2) - q, axis=1)
    inl = err < inlier_px
    if inl.sum() < max(min_points, 4) or _spread(X[inl]) < _MIN_SPREAD_M:
        return None
    T_cam = np.eye(4)
    T_cam[:3, :3] = cv2.Rodrigues(rvec)[0]
    T_cam[:3, 3] = tvec.ravel()
    z = (Xc[inl] @ T_cam[:3, :3].T + T_cam[:3, 3])[:, 2]
    rms_m = float(np.sqrt(np.mean((err[inl] * z / K[0, 0]) ** 2)))
    return _to_world(camera, T_cam), inl, rms_m
