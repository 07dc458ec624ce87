"""``lucas-kanade`` tracker: OpenCV pyramidal Lucas-Kanade with forward-backward visibility.

A classical, weight-free point tracker that runs on a CPU (extra ``cv``: OpenCV). It replaces a
learned tracker (CoTracker3 in the paper) when no weights are available; it handles smooth,
textured motion well and has no notion of long occlusions beyond what is described below.

How a point is tracked (queries are (t, x, y) on any frame):

* Frames are converted to grey with ``COLOR_RGB2GRAY`` (video frames are RGB).
* Each point is tracked **forward** from its query frame to the last frame and **backward** to
  frame 0, frame to frame (``cv2.calcOpticalFlowPyrLK``; all points of a frame pair in one call).
* **Visibility** per step: LK status (both directions), the forward-backward error (track
  t -> t+1 -> t and compare with the start, ``fb_threshold_px``), the point still inside the
  image (``border_px``), and an appearance test: the zero-mean normalised cross-correlation
  of a ``ncc_window_px`` patch at the point against the same patch at the query (the
  *template*) must stay >= ``min_ncc`` (catches occluders that LK would happily follow).
* **Bounded drift** (re-anchoring): every ``anchor_every`` frames each tracked point is refined
  by LK *from its query frame* (the template) to the current frame, initialised at the chained
  estimate. The refinement is accepted when its forward-backward check against the query
  position passes and it moves the point by at most ``anchor_max_shift_px``; the error then
  stops accumulating as a random walk (see ``benchmarks/bench_lucas_kanade.py``).
* **Lost points** keep their last visible position in ``xy`` (never NaN) and are invisible.
  With ``reacquire`` (default), a lost point is searched for again on every later frame: LK
  from the template, initialised at its last position moved by the median motion of its
  nearest tracked neighbours (same query frame); it becomes visible again only when the
  forward-backward check passes and the appearance correlation is >= ``reacquire_min_ncc``
  (stricter than ``min_ncc``, so a wrong match is unlikely). Set ``reacquire: false`` to keep
  a point lost for good once it is lost (between it and the query frame it stays visible).
* At its query frame a point is exactly at its query and visible.

Pixels: (x, y) = (column, row), origin at the centre of the top-left pixel (OpenCV's LK
convention).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from d2f_core import Manifest, Tracks2D, Video, hookimpl
from d2f_core.registry import PluginError
from d2f_core.validate import check_queries, check_video

__all__ = ["LucasKanadeOptions", "LucasKanadeTracker"]


class LucasKanadeOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    window_px: int = Field(default=21, ge=5, le=101,
                           description="side of the square LK integration window (pixels) at every "
                                       "pyramid level; larger is more robust, slower and blurs motion "
                                       "boundaries")
    pyramid_levels: int = Field(default=3, ge=0, le=8,
                                description="pyramid levels above full resolution (0 = none); motion of "
                                            "up to about window_px/2 * 2**levels pixels per frame is caught")
    max_iterations: int = Field(default=30, ge=1, le=1000,
                                description="LK iterations per pyramid level (count)")
    epsilon_px: float = Field(default=0.01, gt=0.0,
                              description="LK stops iterating when an update moves the point by less "
                                          "than this (pixels)")
    min_eig_threshold: float = Field(default=1e-4, ge=0.0,
                                     description="OpenCV minEigThreshold: a point whose window's smallest "
                                                 "gradient-matrix eigenvalue (divided by the window area) "
                                                 "is below this is lost (textureless window)")
    fb_threshold_px: float = Field(default=1.0, gt=0.0,
                                   description="largest forward-backward error (pixels) of a frame-to-frame "
                                               "step, anchor refinement or re-acquisition; above it the "
                                               "point is lost / the refinement rejected")
    anchor_every: int = Field(default=1, ge=0,
                              description="re-anchor each point against its query-frame appearance every "
                                          "this many frames (frames from the query frame; 0 = never: pure "
                                          "frame-to-frame chaining, whose error grows like a random walk)")
    anchor_max_shift_px: float = Field(default=3.0, gt=0.0,
                                       description="largest move (pixels) a re-anchoring may apply to the "
                                                   "chained estimate; larger corrections are rejected")
    ncc_window_px: int = Field(default=11, ge=3, le=101,
                               description="side (pixels, odd) of the patch compared with the query-frame "
                                           "patch for the appearance test")
    min_ncc: float = Field(default=0.5, ge=-1.0, le=1.0,
                           description="a tracked point whose patch correlates (zero-mean NCC, -1..1) less "
                                       "than this with its query-frame patch is lost (occluded); -1 disables")
    ncc_floor: float = Field(default=5.0, ge=0.0,
                             description="grey-level standard deviation added to both patches in the NCC "
                                         "(grey levels, 0-255), so flat patches compare as similar and a "
                                         "flat patch never matches a textured one")
    reacquire: bool = Field(default=True,
                            description="search for lost points again on later frames (true) or keep them "
                                        "lost for good (false)")
    reacquire_min_ncc: float = Field(default=0.8, ge=-1.0, le=1.0,
                                     description="NCC (-1..1) with the query-frame patch a lost point needs "
                                                 "to become visible again")
    neighbours: int = Field(default=8, ge=1, le=64,
                            description="tracked neighbours (count) whose median motion predicts where a "
                                        "lost point has gone, for re-acquisition")
    border_px: float = Field(default=0.0, ge=0.0,
                             description="a point closer than this (pixels) to the image border (the outer "
                                         "pixels' edges) is outside the image and invisible")

    @field_validator("ncc_window_px")
    @classmethod
    def _odd(cls, v: int) -> int:
        if v % 2 == 0:
            raise ValueError(f"ncc_window_px must be odd (a patch centred on the point), got {v}; use {v + 1}")
        return v


def _import_cv2() -> Any:
    try:
        import cv2
    except ImportError:
        raise PluginError("the lucas-kanade tracker needs OpenCV (cv2, not installed): "
                          "pip install 'dream2flow[cv]' (or pip install opencv-python)") from None
    return cv2


def _neighbours(qxy: np.ndarray, qf: np.ndarray, k: int) -> np.ndarray:
    """N x k indices of each point's nearest points queried on the same frame (-1 = none)."""
    n = qxy.shape[0]
    out = np.full((n, k), -1, np.int64)
    for f in np.unique(qf):
        idx = np.nonzero(qf == f)[0]
        kk = min(k, idx.size - 1)
        if kk <= 0:
            continue
        P = qxy[idx].astype(np.float64)
        for s in range(0, idx.size, 1024):
            d = ((P[s:s + 1024, None, :] - P[None, :, :]) ** 2).sum(-1)
            rows = np.arange(d.shape[0])
            d[rows, s + rows] = np.inf
            nn = np.argpartition(d, kk - 1, axis=1)[:, :kk]
            out[idx[s:s + 1024], :kk] = idx[nn]
    return out


class LucasKanadeTracker:
    """Pyramidal LK with forward-backward checks and query-frame re-anchoring (see module doc)."""

    name = "lucas-kanade"
    capabilities = frozenset({"deterministic"})

    def __init__(self, options: LucasKanadeOptions | None = None) -> None:
        self.options = options or LucasKanadeOptions()
        self._cv2 = _import_cv2()

    # ------------------------------------------------------------------ primitives
    def _lk(self, a: np.ndarray, b: np.ndarray, p: np.ndarray,
            init: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Track points p (M x 2) from grey image a to b; returns (M x 2 positions, M ok)."""
        cv2, o = self._cv2, self.options
        if p.shape[0] == 0:
            return p.copy(), np.zeros(0, bool)
        p0 = np.ascontiguousarray(p, np.float32).reshape(-1, 1, 2)
        nxt = None if init is None else np.ascontiguousarray(init, np.float32).reshape(-1, 1, 2).copy()
        flags = 0 if init is None else cv2.OPTFLOW_USE_INITIAL_FLOW
        p1, st, _err = cv2.calcOpticalFlowPyrLK(
            a, b, p0, nxt, winSize=(o.window_px, o.window_px), maxLevel=o.pyramid_levels,
            criteria=(cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, o.max_iterations, o.epsilon_px),
            flags=flags, minEigThreshold=o.min_eig_threshold)
        p1 = p1.reshape(-1, 2)
        ok = (st.reshape(-1) == 1) & np.all(np.isfinite(p1), axis=1)
        return np.where(ok[:, None], p1, p), ok

    def _patches(self, grey: np.ndarray, p: np.ndarray) -> np.ndarray:
        """M x P*P bilinear patches (float32 grey levels) centred on p."""
        cv2 = self._cv2
        r = self.options.ncc_window_px // 2
        off = np.arange(-r, r + 1, dtype=np.float32)
        oy, ox = np.meshgrid(off, off, indexing="ij")
        mx = (p[:, 0:1].astype(np.float32) + ox.reshape(1, -1))
        my = (p[:, 1:2].astype(np.float32) + oy.reshape(1, -1))
        if p.shape[0] == 0:
            return np.zeros((0, ox.size), np.float32)
        return cv2.remap(grey.astype(np.float32), mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)

    def _ncc(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Zero-mean NCC of patch rows with a variance floor (flat vs flat = 1, flat vs textured ~ 0)."""
        a = a - a.mean(1, keepdims=True)
        b = b - b.mean(1, keepdims=True)
        c = self.options.ncc_floor ** 2
        cov = (a * b).mean(1)
        return (cov + c) / np.sqrt(((a * a).mean(1) + c) * ((b * b).mean(1) + c))

    def _inside(self, p: np.ndarray, W: int, H: int) -> np.ndarray:
        m = self.options.border_px
        return ((p[:, 0] >= -0.5 + m) & (p[:, 0] <= W - 0.5 - m)
                & (p[:, 1] >= -0.5 + m) & (p[:, 1] <= H - 0.5 - m))

    def _from_template(self, grey: list[np.ndarray], u: int, idx: np.ndarray, init: np.ndarray,
                       qf: np.ndarray, qxy: np.ndarray, templates: np.ndarray,
                       max_shift: float | None, min_ncc: float) -> tuple[np.ndarray, np.ndarray]:
        """Find points idx in frame u by LK from their query frame, starting at init (M x 2).

        Accepted where LK succeeds both ways, tracking back to the query frame lands within
        fb_threshold_px of the query, the result stays inside the image, moved at most
        max_shift from init (when given) and its patch correlates >= min_ncc with the template.
        """
        o = self.options
        H, W = grey[0].shape
        out = init.astype(np.float32).copy()
        ok = np.zeros(idx.size, bool)
        for f in np.unique(qf[idx]):
            sel = np.nonzero(qf[idx] == f)[0]
            pts = idx[sel]
            p, st = self._lk(grey[f], grey[u], qxy[pts], init=init[sel])
            back, stb = self._lk(grey[u], grey[f], p, init=qxy[pts])
            good = st & stb & (np.linalg.norm(back - qxy[pts], axis=1) <= o.fb_threshold_px)
            good &= self._inside(p, W, H)
            if max_shift is not None:
                good &= np.linalg.norm(p - init[sel], axis=1) <= max_shift
            out[sel] = np.where(good[:, None], p, out[sel])
            ok[sel] = good
        if np.any(ok) and min_ncc > -1.0:
            k = np.nonzero(ok)[0]
            ok[k] = self._ncc(templates[idx[k]], self._patches(grey[u], out[k])) >= min_ncc
        return out, ok

    # ------------------------------------------------------------------ tracking
    def track(self, video: Video, queries: np.ndarray) -> Tracks2D:
        check_video(video, "video")
        q = check_queries(queries, video)
        cv2 = self._cv2
        T, H, W = video.num_frames, video.height, video.width
        N = q.shape[0]
        qf = q[:, 0].astype(np.int64)
        qxy = np.ascontiguousarray(q[:, 1:3], np.float32)
        xy = np.zeros((T, N, 2), np.float32)
        vis = np.zeros((T, N), bool)
        if N == 0:
            return Tracks2D(xy=xy, visible=vis, query_frame=qf)
        grey = [cv2.cvtColor(np.ascontiguousarray(f), cv2.COLOR_RGB2GRAY) for f in video.frames]
        templates = np.zeros((N, self.options.ncc_window_px ** 2), np.float32)
        for f in np.unique(qf):
            sel = qf == f
            templates[sel] = self._patches(grey[f], qxy[sel])
        nbrs = _neighbours(qxy, qf, self.options.neighbours)
        n = np.arange(N)
        xy[qf, n] = qxy
        vis[qf, n] = True
        for direction in (1, -1):
            self._sweep(grey, direction, qf, qxy, templates, nbrs, xy, vis)
        return Tracks2D(xy=xy, visible=vis, query_frame=qf)

    def _sweep(self, grey: list[np.ndarray], d: int, qf: np.ndarray, qxy: np.ndarray,
               templates: np.ndarray, nbrs: np.ndarray, xy: np.ndarray, vis: np.ndarray) -> None:
        """Track every point from its query frame in direction d (+1 forward, -1 backward)."""
        o = self.options
        T = len(grey)
        H, W = grey[0].shape
        N = qf.size
        pos = qxy.copy()                      # current (alive) or last visible (lost) position
        alive = np.zeros(N, bool)             # tracked and visible
        active = np.zeros(N, bool)            # its query frame has been passed
        last_seen = qf.copy()                 # frame of the last visible position
        order = range(T) if d > 0 else range(T - 1, -1, -1)
        for t in order:
            new = qf == t
            pos[new], alive[new], active[new], last_seen[new] = qxy[new], True, True, t
            u = t + d
            if not 0 <= u < T:
                break
            # 1. frame-to-frame step with forward-backward check
            a = np.nonzero(active & alive)[0]
            if a.size:
                p1, st = self._lk(grey[t], grey[u], pos[a])
                back, stb = self._lk(grey[u], grey[t], p1)
                ok = st & stb & (np.linalg.norm(back - pos[a], axis=1) <= o.fb_threshold_px)
                ok &= self._inside(p1, W, H)
                # 2. re-anchor against the query-frame appearance (bounded drift)
                if o.anchor_every > 0:
                    due = ok & (np.abs(u - qf[a]) % o.anchor_every == 0)
                    k = np.nonzero(due)[0]
                    if k.size:
                        ref, acc = self._from_template(grey, u, a[k], p1[k], qf, qxy, templates,
                                                       o.anchor_max_shift_px, -1.0)
                        p1[k[acc]] = ref[acc]
                # 3. appearance test against the template (occlusion)
                if o.min_ncc > -1.0:
                    k = np.nonzero(ok)[0]
                    ok[k] = self._ncc(templates[a[k]], self._patches(grey[u], p1[k])) >= o.min_ncc
                pos[a[ok]] = p1[ok]
                last_seen[a[ok]] = u
                alive[a[~ok]] = False
            # 4. re-acquire lost points from the template near their predicted position
            if o.reacquire:
                lost = np.nonzero(active & ~alive)[0]
                if lost.size:
                    pred = pos[lost] + self._neighbour_motion(lost, nbrs, pos, alive & active, last_seen,
                                                              xy, vis)
                    inside = self._inside(pred, W, H)
                    cand = lost[inside]
                    if cand.size:
                        found, acc = self._from_template(grey, u, cand, pred[inside], qf, qxy, templates,
                                                         None, o.reacquire_min_ncc)
                        got = cand[acc]
                        pos[got], alive[got], last_seen[got] = found[acc], True, u
            act = np.nonzero(active)[0]
            xy[u, act] = pos[act]
            vis[u, act] = alive[act]

    @staticmethod
    def _neighbour_motion(lost: np.ndarray, nbrs: np.ndarray, pos: np.ndarray, tracked: np.ndarray,
                          last_seen: np.ndarray, xy: np.ndarray, vis: np.ndarray) -> np.ndarray:
        """M x 2 median motion, since each lost point's last visible frame, of its tracked neighbours."""
        nb = nbrs[lost]
        valid = nb >= 0
        nbc = np.where(valid, nb, 0)
        s = last_seen[lost][:, None]
        ok = valid & tracked[nbc] & vis[s, nbc]
        motion = pos[nbc] - xy[s, nbc]
        motion = np.where(ok[..., None], motion, np.nan)
        out = np.zeros((lost.size, 2), np.float32)
        has = ok.any(1)
        if np.any(has):
            out[has] = np.nanmedian(motion[has], axis=1)
        return out


def _factory(options: LucasKanadeOptions | None, ctx: Any = None) -> LucasKanadeTracker:
    return LucasKanadeTracker(options)


@hookimpl
def d2f_register(register):
    register(Manifest(
        name="lucas-kanade", kind="tracker", factory=_factory, options_model=LucasKanadeOptions,
        capabilities=LucasKanadeTracker.capabilities, extra="cv", requires=("cv2",),
        description="OpenCV pyramidal Lucas-Kanade, forward-backward + appearance visibility, "
                    "re-anchored to the query frame (CPU, no weights)",
        verified="sub-pixel error vs ground truth on synthetic translating/rotating textures; "
                 "occlusion and leaving-the-image tests"))
