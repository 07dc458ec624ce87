"""``tracking`` estimator: the flow's particles followed in the live camera (real: no simulator state).

On ``reset(observation, flow)`` the flow's first-frame particles (``flow.points[0]``, metres, world
frame) are projected into the live camera (``observation.rgbd.camera``: intrinsics ``K`` and the
camera-to-world ``T_world_cam``, OpenCV axes). A particle is **trackable** when the flow sees it on
its first frame, it projects inside the image in front of the camera, the live depth at its pixel
agrees with its camera depth within ``occlusion_tolerance_m`` (otherwise something else is in
front of it, or the flow's first frame does not match the scene), and its surface faces the camera
within ``max_grazing_deg`` (normal from the live depth; on grazing surfaces a pixel spans too much
surface to lift accurately). Its pixel and its point lifted from the live depth there are kept.

Each ``estimate(observation)``, for the particles still tracked:

1. **Frame to frame**: OpenCV pyramidal Lucas-Kanade (``cv2.calcOpticalFlowPyrLK`` on
   ``COLOR_RGB2GRAY`` images) from the previous observation, checked **forward-backward** (back
   to the previous frame within ``fb_threshold_px``).
2. **Re-anchoring** against drift: each particle is refined by LK against its *key frame* (the
   reset frame at first), warped onto the current frame by a homography fitted (RANSAC) to the
   key-frame pixels and their frame-to-frame estimates, one per locally planar group (up to three;
   the rest unwarped). A refinement that fails, or moves the estimate by more than
   ``anchor_max_shift_px`` (unwarped) or half a window (warped), makes the current frame that
   particle's new key frame.
3. **Lifting** with the live depth (``observation.rgbd.depth``, metres along the camera z: bilinear
   where the 2 x 2 neighbours agree within ``depth_edge_m``, else the nearest pixel's, so points
   next to a depth edge do not take a blend of two surfaces) and ``Camera.backproject``. The
   particle is ``flow.points[0] + (lifted now - lifted at reset)``: the displacement comes from the
   live camera, and an offset between the flow's first frame and the live depth surface (e.g. an
   imperfectly aligned generated-video depth) cancels.
4. **Local rigidity**: the rigid motion of the particle's ``neighbours`` nearest particles (3D, at
   reset; weighted Kabsch over those still tracked) must carry it to within
   ``neighbour_tolerance_m`` of where it was lifted.

A particle is **lost** (visible False for the rest of the episode; it stays at its last position)
when LK fails or the forward-backward check does, it leaves the image (``border_px``), its depth
is invalid, its lifted point jumps more than ``max_step_m`` in one step, or it fails the rigidity
test. Lost particles are not searched for again until the next ``reset``.

Accuracy (tabletop-2d, 320 x 240, ~300 particles on the block's visible faces, 9 cm pushes by the
pusher in 10 steps): mean error 1.4-1.9 mm, over 95 % of the visible particles within 1 cm, 85-90 %
still visible. Known weakness: a particle whose LK window is dominated by an occluder's edge moving
right next to it (the pusher beside the block's face, a gripper) can follow the occluder, together
with its neighbours, by up to ~2 cm.

Needs ``observation.rgbd`` on every step: the robosuite world renders it only with the world option
``render_steps: true``; tabletop-2d with ``render_observations: true`` (its default). The camera
must stay the same (image size) through an episode.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from d2f_core import Manifest, ObjectFlow, Observation, hookimpl
from d2f_core.flow.lifting import bilinear

__all__ = ["TrackingOptions", "TrackingEstimator", "sample_depth"]


class TrackingOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    window_px: int = Field(default=21, ge=5, le=101,
                           description="side of the square Lucas-Kanade window, pixels, at every pyramid level")
    pyramid_levels: int = Field(default=3, ge=0, le=8,
                                description="pyramid levels above full resolution (0 = none); motions up to about "
                                            "window_px/2 * 2**levels pixels per step are caught")
    fb_threshold_px: float = Field(default=1.0, gt=0.0,
                                   description="largest forward-backward error of one step, pixels; above it the "
                                               "particle is lost")
    border_px: float = Field(default=1.0, ge=0.0,
                             description="a tracked pixel closer than this to the image border is lost, pixels")
    occlusion_tolerance_m: float = Field(default=0.02, gt=0.0,
                                         description="at reset, a particle whose camera depth differs from the live "
                                                     "depth at its pixel by more than this is not trackable, metres")
    depth_edge_m: float = Field(default=0.01, gt=0.0,
                                description="2 x 2 depth neighbours differing by more than this are a depth edge: "
                                            "the nearest pixel's depth is used instead of the bilinear blend, metres")
    max_grazing_deg: float = Field(default=65.0, gt=0.0, le=90.0,
                                   description="at reset, a particle on a surface seen more obliquely than this (angle "
                                               "between the surface normal, from the live depth, and the viewing ray) "
                                               "is not trackable: a pixel there spans too much surface, degrees")
    anchor_max_shift_px: float = Field(default=2.0, gt=0.0,
                                       description="re-anchoring to a particle's unwarped key frame may move the "
                                                   "frame-to-frame estimate by at most this (a warped key: half a "
                                                   "window), pixels; otherwise the current frame becomes its key frame")
    neighbours: int = Field(default=8, ge=0, le=64,
                            description="local-rigidity test: the rigid motion of this many nearest particles (at "
                                        "reset, in 3D) since reset must carry a particle to where it was tracked; 0 "
                                        "turns the test off")
    neighbour_tolerance_m: float = Field(default=0.005, gt=0.0,
                                         description="local-rigidity test: a particle farther than this from where its "
                                                     "neighbours' rigid motion puts it is lost, metres")
    max_step_m: float = Field(default=0.05, gt=0.0,
                              description="a particle whose lifted point moves more than this in one step is lost, "
                                          "metres")


def sample_depth(depth: np.ndarray, xy: np.ndarray, edge_m: float) -> tuple[np.ndarray, np.ndarray]:
    """Depth (metres) at float pixels ``xy`` (N x 2, x = column, y = row) and whether it is valid.

    Bilinear (:func:`d2f_core.flow.lifting.bilinear`) where the 2 x 2 neighbours are valid and within
    ``edge_m`` of each other; the nearest pixel's depth elsewhere (at depth edges and next to invalid
    pixels). Invalid: outside the image, or a depth <= 0 / NaN.
    """
    d = np.asarray(depth, dtype=np.float64)
    H, W = d.shape
    xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    val, ok = bilinear(d, xy)
    x, y = xy[:, 0], xy[:, 1]
    inside = np.isfinite(x) & np.isfinite(y) & (x >= -0.5) & (y >= -0.5) & (x < W - 0.5) & (y < H - 0.5)
    xc = np.clip(np.nan_to_num(x), 0, W - 1)
    yc = np.clip(np.nan_to_num(y), 0, H - 1)
    x0 = np.clip(np.floor(xc).astype(int), 0, max(W - 2, 0))
    y0 = np.clip(np.floor(yc).astype(int), 0, max(H - 2, 0))
    nb = np.stack([d[y0, x0], d[y0, x0 + 1], d[y0 + 1, x0], d[y0 + 1, x0 + 1]])
    with np.errstate(invalid="ignore"):
        spread = nb.max(axis=0) - nb.min(axis=0)  # NaN where a neighbour is NaN: a depth edge
    near = d[np.round(yc).astype(int), np.round(xc).astype(int)]
    near_ok = inside & np.isfinite(near) & (near > 0)
    use_near = ~ok | ~(spread <= edge_m)
    return np.where(use_near, np.where(near_ok, near, 0.0), val), np.where(use_near, near_ok, ok)


def _neighbours(points: np.ndarray, use: np.ndarray, k: int) -> np.ndarray | None:
    """Indices (N x k) of the ``k`` nearest ``use`` points of each point (3D, itself excluded); None when ``k`` is
    0 or there are too few points."""
    n = len(points)
    cand = np.nonzero(use)[0]
    if k == 0 or len(cand) <= k:
        return None
    k = int(k)
    out = np.zeros((n, k), np.int64)
    P = points[cand]
    for a in range(0, n, 512):  # chunks keep the distance matrix small
        d2 = ((points[a:a + 512, None, :] - P[None]) ** 2).sum(-1)
        d2[cand[None, :] == np.arange(a, a + len(d2))[:, None]] = np.inf  # not its own neighbour
        part = np.argpartition(d2, k - 1, axis=1)[:, :k]
        out[a:a + 512] = cand[part]
    return out


def _facing(rgbd: Any, xy: np.ndarray, max_deg: float) -> np.ndarray:
    """bool N: the surface at pixels ``xy`` (N x 2) faces the camera within ``max_deg`` degrees (normal from the
    depth map's nearest pixels, one-sided differences towards the closer-in-depth neighbour; False where the
    depth around a pixel is invalid)."""
    d, cam = np.asarray(rgbd.depth, dtype=np.float64), rgbd.camera
    H, W = d.shape
    x = np.clip(np.round(xy[:, 0]).astype(int), 0, W - 1)
    y = np.clip(np.round(xy[:, 1]).astype(int), 0, H - 1)

    def point(xi, yi):
        z = d[yi, xi]
        return cam.backproject(np.stack([xi, yi], -1).astype(np.float64), z), np.isfinite(z) & (z > 0)

    c, ok = point(x, y)
    tangents = []
    for dx, dy in ((1, 0), (0, 1)):
        a, a_ok = point(np.clip(x + dx, 0, W - 1), np.clip(y + dy, 0, H - 1))
        b, b_ok = point(np.clip(x - dx, 0, W - 1), np.clip(y - dy, 0, H - 1))
        fwd, bwd = a - c, c - b
        use_fwd = a_ok & (~b_ok | (np.abs(fwd[:, 2]) <= np.abs(bwd[:, 2])))
        ok &= a_ok | b_ok
        tangents.append(np.where(use_fwd[:, None], fwd, bwd))
    n = np.cross(tangents[0], tangents[1])
    ray = c - cam.position
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = np.abs((n * ray).sum(1)) / (np.linalg.norm(n, axis=1) * np.linalg.norm(ray, axis=1))
    return ok & (np.nan_to_num(cos) >= np.cos(np.deg2rad(max_deg)))


def _kabsch(A: np.ndarray, B: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Batched weighted rigid fit B ~ R A + t: A, B M x k x 3, w M x k (>= 0). Returns (R M x 3 x 3, centroid of A
    M x 3, centroid of B M x 3); R is the identity where the weighted points are (nearly) collinear."""
    wn = w / np.maximum(w.sum(axis=1), 1e-12)[:, None]
    a = (wn[..., None] * A).sum(axis=1)
    b = (wn[..., None] * B).sum(axis=1)
    Ac, Bc = A - a[:, None], B - b[:, None]
    U, _, Vt = np.linalg.svd(np.einsum("mk,mki,mkj->mij", wn, Ac, Bc))
    D = np.ones((len(A), 3))
    D[:, 2] = np.sign(np.linalg.det(np.einsum("mji,mkj->mik", Vt, U)))
    R = np.einsum("mji,mj,mkj->mik", Vt, D, U)  # V diag(D) U^T
    spread = np.linalg.svd(np.einsum("mk,mki,mkj->mij", wn, Ac, Ac), compute_uv=False)
    R[spread[:, 1] <= 1e-3 * np.maximum(spread[:, 0], 1e-12)] = np.eye(3)
    return R, a, b


def _locally_rigid(ref: np.ndarray, now: np.ndarray, nbrs: np.ndarray, alive: np.ndarray, idx: np.ndarray,
                   tol: float) -> np.ndarray:
    """bool M: particle ``idx[m]`` is where the rigid motion of its alive neighbours (``nbrs[m]``, a weighted
    Kabsch fit from ``ref`` to ``now``) puts it, within ``tol`` metres. True when fewer than 3 neighbours are
    alive (nothing to compare with)."""
    w = alive[nbrs].astype(np.float64)  # M x k
    R, a, b = _kabsch(ref[nbrs], now[nbrs], w)
    pred = np.einsum("mij,mj->mi", R, ref[idx] - a) + b
    return (w.sum(axis=1) < 3) | (np.linalg.norm(now[idx] - pred, axis=1) <= tol)


def _rgbd(observation: Any, call: str):
    if not isinstance(observation, Observation):
        raise ValueError(f"observation: expected a d2f_core.Observation, got {type(observation).__name__}")
    if observation.rgbd is None:
        raise ValueError(f"observation.rgbd: the tracking estimator's {call} needs the live RGB-D camera frame on "
                         "every step, and this observation has none; set the robosuite world's option "
                         "`render_steps: true` (tabletop-2d: `render_observations: true`)")
    return observation.rgbd


def _gray(rgb: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)


class TrackingEstimator:
    """Lucas-Kanade tracking of the flow's particles + live-depth lifting (see the module docstring)."""

    name, kind, Options = "tracking", "estimator", TrackingOptions
    capabilities = frozenset({"online", "deterministic"})
    extra, requires = "cv", ("cv2",)
    description = ("the flow's particles tracked in the live camera (OpenCV pyramidal Lucas-Kanade, forward-backward "
                   "checked) and lifted with the live depth; no simulator state")
    verified = ("tabletop-2d block moved and pushed by known amounts: particles against the true rigid motion "
                "(within 1 cm; tests/test_estimators.py)")

    def __init__(self, options: TrackingOptions | None = None) -> None:
        self.options = options or TrackingOptions()
        self._gray_prev: np.ndarray | None = None

    # ------------------------------------------------------------------ protocol
    def reset(self, observation: Observation, flow: ObjectFlow) -> None:
        """Project ``flow.points[0]`` (N x 3 metres, world) into ``observation.rgbd`` and keep the trackable ones."""
        if not isinstance(flow, ObjectFlow):
            raise ValueError(f"flow: expected a d2f_core.ObjectFlow (T x N x 3 metres, world frame), got "
                             f"{type(flow).__name__}")
        rgbd = _rgbd(observation, "reset(observation, flow)")
        o, cam = self.options, rgbd.camera
        p0 = np.where(flow.visible[0][:, None], np.asarray(flow.points[0], dtype=np.float64), 0.0)
        uv, z = cam.project(p0)
        depth, dok = sample_depth(rgbd.depth, np.nan_to_num(uv), o.depth_edge_m)
        with np.errstate(invalid="ignore"):
            trackable = (flow.visible[0] & np.all(np.isfinite(uv), axis=1) & (z > 1e-6) & self._inside(uv, cam)
                         & dok & (np.abs(depth - z) <= o.occlusion_tolerance_m))
        trackable &= _facing(rgbd, np.nan_to_num(uv), o.max_grazing_deg)
        lift = cam.backproject(np.nan_to_num(uv), depth)
        self._p0 = np.array(flow.points[0], dtype=np.float64)
        self._particles = self._p0.copy()
        self._xy = np.where(trackable[:, None], np.nan_to_num(uv), 0.0).astype(np.float32)
        self._lift_ref = np.where(trackable[:, None], lift, 0.0)
        self._lift_prev = self._lift_ref.copy()
        self._alive = trackable
        self._gray_prev = _gray(rgbd.rgb)
        self._nbrs = _neighbours(self._lift_ref, trackable, self.options.neighbours)
        self._step = 0
        self._keys = {0: self._gray_prev}  # step -> grey image some particle's appearance is anchored to
        self._key_id = np.zeros(len(trackable), np.int64)
        self._key_xy = self._xy.copy()

    def estimate(self, observation: Observation) -> tuple[np.ndarray, np.ndarray]:
        """Track from the previous observation to ``observation``: (particles float32 N x 3 metres world frame,
        visible bool N), the flow's order."""
        if self._gray_prev is None:
            raise RuntimeError("tracking: call reset(observation, flow) before estimate(observation)")
        rgbd = _rgbd(observation, "estimate(observation)")
        gray = _gray(rgbd.rgb)
        if gray.shape != self._gray_prev.shape:
            raise ValueError(f"observation.rgbd: the image is {gray.shape[1]}x{gray.shape[0]} but the episode started "
                             f"with {self._gray_prev.shape[1]}x{self._gray_prev.shape[0]}; the camera must stay the "
                             "same through an episode (reset the estimator after changing it)")
        idx = np.nonzero(self._alive)[0]
        if idx.size:
            self._track(idx, gray, rgbd)
        self._gray_prev = gray
        return self._particles.astype(np.float32), self._alive.copy()

    # ------------------------------------------------------------------ internals
    def _inside(self, uv: np.ndarray, cam: Any) -> np.ndarray:
        b = self.options.border_px
        with np.errstate(invalid="ignore"):
            return ((uv[:, 0] >= b) & (uv[:, 1] >= b) & (uv[:, 0] <= cam.width - 1 - b)
                    & (uv[:, 1] <= cam.height - 1 - b))

    def _lk(self, a: np.ndarray, b: np.ndarray, p: np.ndarray, init: np.ndarray | None = None,
            levels: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """LK of points ``p`` (M x 2) from image ``a`` to ``b`` checked back to ``a``: (positions in ``b``, ok)."""
        import cv2

        o = self.options
        lk = dict(winSize=(o.window_px, o.window_px),
                  maxLevel=o.pyramid_levels if levels is None else levels,
                  criteria=(cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 30, 0.01))
        p32 = np.ascontiguousarray(p, dtype=np.float32).reshape(-1, 1, 2)
        if init is None:
            nxt, st, _ = cv2.calcOpticalFlowPyrLK(a, b, p32, None, **lk)
        else:
            guess = np.ascontiguousarray(init, dtype=np.float32).reshape(-1, 1, 2).copy()
            nxt, st, _ = cv2.calcOpticalFlowPyrLK(a, b, p32, guess, flags=cv2.OPTFLOW_USE_INITIAL_FLOW, **lk)
        back, st2, _ = cv2.calcOpticalFlowPyrLK(b, a, nxt, p32.copy(), flags=cv2.OPTFLOW_USE_INITIAL_FLOW, **lk)
        nxt2, back2 = nxt.reshape(-1, 2).astype(np.float64), back.reshape(-1, 2).astype(np.float64)
        fb = np.linalg.norm(back2 - p32.reshape(-1, 2), axis=1)
        ok = ((st.ravel() == 1) & (st2.ravel() == 1) & np.all(np.isfinite(nxt2), axis=1)
              & (fb <= self.options.fb_threshold_px))
        return nxt2, ok

    def _track(self, idx: np.ndarray, gray: np.ndarray, rgbd: Any) -> None:
        import cv2

        o = self.options
        self._step += 1
        # 1. frame to frame, forward-backward checked
        nxt, ok = self._lk(self._gray_prev, gray, self._xy[idx])
        # 2. re-anchoring: refine against each point's key frame (where its appearance was last verified),
        #    warped by a homography that maps the key frame's points onto their current estimates (one per
        #    locally planar group: RANSAC, up to three groups; the rest unwarped)
        for k in np.unique(self._key_id[idx[ok]]):
            sel = np.nonzero(ok & (self._key_id[idx] == k))[0]
            src, pts = self._key_xy[idx[sel]].astype(np.float64), nxt[sel]
            refined, rok = np.array(pts), np.zeros(len(sel), bool)
            todo = np.ones(len(sel), bool)
            for _ in range(3):
                if todo.sum() < 8:
                    break
                H, inl = cv2.findHomography(src[todo], pts[todo], cv2.RANSAC, 1.5)
                if H is None or not np.all(np.isfinite(H)) or inl is None or inl.sum() < 8:
                    break
                group = np.nonzero(todo)[0][inl.ravel() == 1]
                key = cv2.warpPerspective(self._keys[int(k)], H, (gray.shape[1], gray.shape[0]),
                                          flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
                start = cv2.perspectiveTransform(src[group].reshape(-1, 1, 2), H).reshape(-1, 2)
                refined[group], rok[group] = self._lk(key, gray, start, init=pts[group], levels=1)
                todo[group] = False
            if todo.any():
                rest = np.nonzero(todo)[0]
                refined[rest], rok[rest] = self._lk(self._keys[int(k)], gray, src[rest], init=pts[rest], levels=1)
            # the warped key is drift-free: trusted over the frame-to-frame estimate within half a window (e.g. a
            # point the frame-to-frame step let slide onto a passing occluder's edge); unwarped, only nearby
            shift = np.linalg.norm(refined - pts, axis=1)
            rok &= np.where(todo, shift <= o.anchor_max_shift_px, shift <= o.window_px / 2)
            pts = np.where(rok[:, None], refined, pts)
            nxt[sel] = pts
            rekey = idx[sel][~rok]  # the key's appearance no longer matches: this frame becomes their key
            self._key_id[rekey] = self._step
            self._key_xy[rekey] = pts[~rok].astype(np.float32)
        ok &= self._inside(nxt, rgbd.camera)
        # 3. lift with the live depth; a jump is a slide onto another surface
        depth, dok = sample_depth(rgbd.depth, np.nan_to_num(nxt), o.depth_edge_m)
        lift = rgbd.camera.backproject(np.nan_to_num(nxt), depth)
        ok &= dok & (np.linalg.norm(lift - self._lift_prev[idx], axis=1) <= o.max_step_m)
        # 4. local rigidity: a particle must move as the rigid motion of its neighbours predicts (else it slid
        #    onto another surface, e.g. an occluder or the background next to its object)
        if self._nbrs is not None and ok.any():
            alive = np.zeros_like(self._alive)
            alive[idx[ok]] = True
            now = self._lift_prev.copy()
            now[idx] = lift
            ok &= _locally_rigid(self._lift_ref, now, self._nbrs[idx], alive, idx, o.neighbour_tolerance_m)
        good, lost = idx[ok], idx[~ok]
        self._xy[good] = nxt[ok].astype(np.float32)
        self._lift_prev[good] = lift[ok]
        self._particles[good] = self._p0[good] + lift[ok] - self._lift_ref[good]
        self._alive[lost] = False
        # keep the key frames still in use (and this one, if some point was re-keyed to it)
        used = set(np.unique(self._key_id[self._alive]).tolist())
        if self._step in used:
            self._keys[self._step] = gray
        self._keys = {k: v for k, v in self._keys.items() if k in used}


@hookimpl
def d2f_register(register):
    register(Manifest.of(TrackingEstimator))
