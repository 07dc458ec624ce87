"""``lucas-kanade`` tracker: OpenCV pyramidal Lucas-Kanade, verified against the query frame.

A classical, weight-free point tracker that runs on a CPU (extra ``cv``: OpenCV). It stands in
for a learned tracker (CoTracker3 in the paper) when no weights are available: accurate on
textured, smoothly moving surfaces; conservative (points go invisible) where it cannot verify a
point, e.g. next to occluder edges or on texture-less regions.

Every point is tracked **forward** from its query frame (t, x, y) to the last frame and
**backward** to frame 0 (queries may sit on any frame). Frames become grey with
``COLOR_RGB2GRAY`` (video frames are RGB). Per frame pair, all points of a sweep go through:

1. **Frame-to-frame LK** (``cv2.calcOpticalFlowPyrLK``, one call for all points) and the
   **forward-backward check**: track t -> t+1 -> t, the return must land within
   ``fb_threshold_px``; LK status must be good both ways; the point must be inside the image
   (``border_px``).
2. **Re-anchoring** (every ``anchor_every`` frames, default every frame; bounds the drift): each
   point's neighbourhood *in its query frame*, warped by the point's local affine motion (fitted
   robustly to its ``neighbours`` nearest tracked points: handles rotation and scale), is matched
   by full-resolution LK to the current frame around the chained estimate. Accepted when LK
   succeeds both ways with a forward-backward error <= ``fb_threshold_px``, the correction is
   <= ``anchor_max_shift_px`` and a small LK window (``consistency_window_px``) agrees with the
   large one within ``consistency_threshold_px`` (they disagree where the window straddles an
   occluder edge or a motion boundary, where LK sticks to the edge). A rejected re-anchoring
   makes the point lost. The error then stays flat with the frame index instead of growing like
   a random walk (see ``benchmarks/bench_lucas_kanade.py``).
3. **Appearance tests**: zero-mean NCC of the ``window_px`` patch with the same patch on the
   previous frame >= ``min_step_ncc`` (sudden occluders, jumps), and of the ``ncc_window_px``
   patch with the warped query-frame patch >= ``min_ncc`` (slow drift onto other content).

A point failing any test is **lost**: invisible, and its ``xy`` keeps its last visible position
(never NaN). With ``reacquire`` (default) lost points are searched for again on every later
frame: predicted by the local affine motion of their nearest tracked points (or their mean
motion, or the last position), searched by pyramidal LK from the query frame near the
prediction, refined as in 2, and accepted only within ``anchor_max_shift_px`` of an affine
prediction (``reacquire_radius_px`` otherwise) with NCC >= ``reacquire_min_ncc`` against the
warped query patch. ``reacquire: false`` keeps a point lost for good once it is lost.

At its query frame a point is exactly at its query and visible. Pixels: (x, y) = (column, row),
origin at the centre of the top-left pixel (OpenCV's LK convention).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

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
    min_eig_threshold: float = Field(default=1e-6, ge=0.0,
                                     description="OpenCV minEigThreshold: a point whose LK window's smallest "
                                                 "gradient-matrix eigenvalue per pixel is below this is lost "
                                                 "(about (weakest grey-level gradient per pixel)^2 / 1024: 1e-6 "
                                                 "~ 0.03 grey levels/px; OpenCV's default 1e-4 ~ 0.3 drops smooth "
                                                 "surfaces that the other checks handle)")
    fb_threshold_px: float = Field(default=1.0, gt=0.0,
                                   description="largest forward-backward error (pixels) of a frame-to-frame "
                                               "step, anchor refinement or re-acquisition; above it the "
                                               "point is lost / the refinement rejected")
    anchor_every: int = Field(default=1, ge=0,
                              description="re-anchor each point against its query-frame appearance every "
                                          "this many frames (frames from the query frame; 0 = never: pure "
                                          "frame-to-frame chaining, whose error grows like a random walk)")
    lose_on_anchor_reject: bool = Field(default=False,
                                        description="mark a point lost when its re-anchoring is rejected; "
                                                    "False keeps the frame-to-frame estimate (the other "
                                                    "visibility tests still apply): surfaces that turn or "
                                                    "foreshorten (a door opening, an object carried) no "
                                                    "longer match their query patch, yet are tracked fine")
    anchor_max_shift_px: float = Field(default=3.0, gt=0.0,
                                       description="largest move (pixels) a re-anchoring may apply to the "
                                                   "chained estimate; larger corrections are rejected")
    ncc_window_px: int = Field(default=11, ge=3, le=101,
                               description="side (pixels, odd) of the patch compared with the query-frame "
                                           "patch for the appearance test")
    min_ncc: float = Field(default=0.5, ge=-1.0, le=1.0,
                           description="a tracked point whose patch correlates (zero-mean NCC, -1..1) less "
                                       "than this with its (warped) query-frame patch is lost (drifted onto other "
                                       "content, occluded); -1 disables")
    ncc_floor: float = Field(default=5.0, ge=0.0,
                             description="grey-level standard deviation added to both patches in the NCC "
                                         "(grey levels, 0-255), so flat patches compare as similar and a "
                                         "flat patch never matches a textured one")
    min_step_ncc: float = Field(default=0.9, ge=-1.0, le=1.0,
                                description="a point whose patch (window_px) correlates (zero-mean NCC, -1..1) "
                                            "less than this with its patch on the previous frame is lost: "
                                            "catches sudden occluders and jumps; -1 disables")
    consistency_window_px: int | None = Field(default=None, ge=0, le=101,
                                              description="side (pixels) of a small LK window that must agree with "
                                                          "the large one at each re-anchoring (they disagree at "
                                                          "occluder edges and motion boundaries); default: about "
                                                          "half of window_px (11 for 21); 0 disables")
    consistency_threshold_px: float = Field(default=0.5, gt=0.0,
                                            description="largest disagreement (pixels) between the small and the "
                                                        "large window before the point is lost")
    max_neighbour_deviation_px: float | None = Field(
        default=2.0, gt=0.0,
        description="a point farther than this (pixels) from the position its neighbours' local affine motion "
                    "predicts is lost (it slid along an edge or onto another surface); null disables (for "
                    "strongly non-rigid motion)")
    reacquire: bool = Field(default=True,
                            description="search for lost points again on later frames (true) or keep them "
                                        "lost for good (false)")
    reacquire_min_ncc: float = Field(default=0.8, ge=-1.0, le=1.0,
                                     description="NCC (-1..1) with the query-frame patch a lost point needs "
                                                 "to become visible again")
    reacquire_radius_px: float = Field(default=20.0, gt=0.0,
                                       description="how far (pixels) a lost point is searched for around its "
                                                   "last position moved by its tracked neighbours' mean motion; "
                                                   "where a local affine fit to them predicts it, it must be found "
                                                   "within anchor_max_shift_px of that prediction")
    neighbours: int = Field(default=12, ge=1, le=64,
                            description="nearest points (count, same query frame) whose tracked positions give "
                                        "each point's local affine motion: warps its query-frame patch for "
                                        "re-anchoring and predicts where a lost point has gone")
    border_px: float = Field(default=0.0, ge=0.0,
                             description="a point closer than this (pixels) to the image border (the outer "
                                         "pixels' edges) is outside the image and invisible")

    @field_validator("ncc_window_px")
    @classmethod
    def _odd(cls, v: int) -> int:
        if v % 2 == 0:
            raise ValueError(f"ncc_window_px must be odd (a patch centred on the point), got {v}; use {v + 1}")
        return v

    @property
    def small_window(self) -> int:
        """The consistency window actually used (0 = check disabled)."""
        if self.consistency_window_px is None:
            return max(5, self.window_px // 2) | 1
        return self.consistency_window_px

    @model_validator(mode="after")
    def _small_window(self) -> "LucasKanadeOptions":
        if self.consistency_window_px and self.consistency_window_px >= self.window_px:
            raise ValueError(f"consistency_window_px ({self.consistency_window_px}) must be smaller than "
                             f"window_px ({self.window_px}), or 0 to disable the window-consistency check")
        return self


def _import_cv2() -> Any:
    try:
        import cv2
    except ImportError:
        raise PluginError("the lucas-kanade tracker needs OpenCV (cv2, not installed): "
                          "pip install 'dream2flow[cv]' (or pip install opencv-python)") from None
    return cv2


def _knn(idx: np.ndarray, pool: np.ndarray, qxy: np.ndarray, qf: np.ndarray, k: int) -> np.ndarray:
    """len(idx) x k: for each point idx[i], the indices of its k nearest points in pool that were
    queried on the same frame (distance between query positions; itself excluded; -1 = none)."""
    out = np.full((idx.size, k), -1, np.int64)
    for f in np.unique(qf[idx]):
        rows = np.nonzero(qf[idx] == f)[0]
        cand = pool[qf[pool] == f]
        if cand.size == 0:
            continue
        P = qxy[cand].astype(np.float64)
        kk = min(k, cand.size)
        for s in range(0, rows.size, 1024):
            r = rows[s:s + 1024]
            Q = qxy[idx[r]].astype(np.float64)
            d = Q[:, 0, None] - P[None, :, 0]   # per coordinate: the same sum as ((Q - P) ** 2).sum(-1)
            d *= d
            dy = Q[:, 1, None] - P[None, :, 1]
            dy *= dy
            d += dy
            d[idx[r][:, None] == cand[None, :]] = np.inf
            nn = np.argpartition(d, kk - 1, axis=1)[:, :kk] if kk < cand.size else \
                np.broadcast_to(np.arange(cand.size), (r.size, cand.size))
            out[r, :kk] = np.where(np.isfinite(np.take_along_axis(d, nn, 1)), cand[nn], -1)
    return out


def _grid(m: int) -> tuple[int, int]:
    """(rows, cols) of the mosaic holding m tiles."""
    cols = max(1, int(np.ceil(np.sqrt(m))))
    return max(1, -(-m // cols)), cols


def _inv2(L: np.ndarray) -> np.ndarray:
    """Inverse of m x 2 x 2 matrices (closed form; callers keep det away from 0)."""
    det = L[:, 0, 0] * L[:, 1, 1] - L[:, 0, 1] * L[:, 1, 0]
    out = np.empty_like(L)
    out[:, 0, 0], out[:, 1, 1] = L[:, 1, 1] / det, L[:, 0, 0] / det
    out[:, 0, 1], out[:, 1, 0] = -L[:, 0, 1] / det, -L[:, 1, 0] / det
    return out


def _solve3(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Solve m 3 x 3 systems A X = B (B m x 3 x k) by the adjugate (callers keep A well conditioned)."""
    c0 = np.cross(A[:, 1], A[:, 2])
    c1 = np.cross(A[:, 2], A[:, 0])
    c2 = np.cross(A[:, 0], A[:, 1])
    det = (A[:, 0] * c0).sum(-1)
    inv = np.stack([c0, c1, c2], -1) / det[:, None, None]   # inverse of A (rows of A . columns)
    return inv @ B


def _centre(tiles: np.ndarray, side: int) -> np.ndarray:
    """The central side x side part of m x S x S tiles (S, side odd)."""
    c = (tiles.shape[1] - side) // 2
    return tiles[:, c:c + side, c:c + side]


def _tile_centres(m: int, S: int) -> np.ndarray:
    """m x 2 (x, y) centres of the tiles of a mosaic (see _grid)."""
    cols = _grid(m)[1]
    i = np.arange(m)
    return np.stack([(i % cols) * S + S // 2, (i // cols) * S + S // 2], -1).astype(np.float32)


class LucasKanadeTracker:
    """Pyramidal LK with forward-backward checks and query-frame re-anchoring (see module doc)."""

    name = "lucas-kanade"
    kind = "tracker"
    capabilities = frozenset({"deterministic"})
    Options = LucasKanadeOptions
    extra, requires = "cv", ("cv2",)
    description = ("OpenCV pyramidal Lucas-Kanade (CPU, no weights): forward-backward, appearance and "
                   "local-rigidity visibility, re-anchored to the query frame against drift")
    verified = ("tests vs ground truth on synthetic textured planes (translation, rotation up to 48 deg, "
                "200 frames), a rendered box scene, occluders and points leaving the image")

    def __init__(self, options: LucasKanadeOptions | None = None) -> None:
        self.options = options or LucasKanadeOptions()
        self._cv2 = _import_cv2()

    # ------------------------------------------------------------------ primitives
    def _lk(self, a: np.ndarray, b: np.ndarray, p: np.ndarray, init: np.ndarray | None = None,
            levels: int | None = None, window: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Track points p (M x 2) from grey image a to b; returns (M x 2 positions, M ok)."""
        cv2, o = self._cv2, self.options
        if p.shape[0] == 0:
            return p.copy(), np.zeros(0, bool)
        p0 = np.ascontiguousarray(p, np.float32).reshape(-1, 1, 2)
        nxt = None if init is None else np.ascontiguousarray(init, np.float32).reshape(-1, 1, 2).copy()
        flags = 0 if init is None else cv2.OPTFLOW_USE_INITIAL_FLOW
        p1, st, _err = cv2.calcOpticalFlowPyrLK(
            a, b, p0, nxt, winSize=(window or o.window_px,) * 2,
            maxLevel=o.pyramid_levels if levels is None else levels,
            criteria=(cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, o.max_iterations, o.epsilon_px),
            flags=flags, minEigThreshold=o.min_eig_threshold)
        p1 = p1.reshape(-1, 2)
        ok = (st.reshape(-1) == 1) & np.all(np.isfinite(p1), axis=1)
        return np.where(ok[:, None], p1, p), ok

    def _sample(self, grey: np.ndarray, centres: np.ndarray, lin: np.ndarray | None, side: int) -> np.ndarray:
        """Mosaic of side x side bilinear tiles (uint8): tile i samples grey at centres[i] + lin[i] @ o
        for the integer offsets o of the tile (lin None = identity)."""
        cv2 = self._cv2
        m = centres.shape[0]
        rows, cols = _grid(m)
        off = np.arange(-(side // 2), side // 2 + 1, dtype=np.float32)
        ox, oy = off[None, None, None, :], off[None, :, None, None]     # broadcast to rows x S x cols x S

        def per_tile(v: np.ndarray) -> np.ndarray:                      # m values -> rows x 1 x cols x 1
            full = np.zeros(rows * cols, np.float32)
            full[:m] = v
            return full.reshape(rows, 1, cols, 1)

        cx, cy = per_tile(centres[:, 0]), per_tile(centres[:, 1])
        if lin is None:
            mx, my = cx + ox, cy + oy
        else:
            mx = cx + per_tile(lin[:, 0, 0]) * ox + per_tile(lin[:, 0, 1]) * oy
            my = cy + per_tile(lin[:, 1, 0]) * ox + per_tile(lin[:, 1, 1]) * oy
        full, shape = (rows, side, cols, side), (rows * side, cols * side)
        mx = np.broadcast_to(mx, full).reshape(shape)
        my = np.broadcast_to(my, full).reshape(shape)
        return cv2.remap(grey, mx, my, cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_REPLICATE)

    @staticmethod
    def _tiles(mosaic: np.ndarray, m: int, side: int) -> np.ndarray:
        rows, cols = mosaic.shape[0] // side, mosaic.shape[1] // side
        return mosaic.reshape(rows, side, cols, side).transpose(0, 2, 1, 3).reshape(-1, side, side)[:m]

    def _ncc(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Zero-mean NCC of patches (M x ...) with a variance floor (flat vs flat = 1, flat vs textured ~ 0)."""
        a = a.reshape(a.shape[0], -1).astype(np.float32)
        b = b.reshape(b.shape[0], -1).astype(np.float32)
        a = a - a.mean(1, keepdims=True)
        b = b - b.mean(1, keepdims=True)
        c = self.options.ncc_floor ** 2
        return ((a * b).mean(1) + c) / np.sqrt(((a * a).mean(1) + c) * ((b * b).mean(1) + c))

    def _appearance(self, grey: list[np.ndarray], u: int, idx: np.ndarray, p: np.ndarray, qf: np.ndarray,
                    qxy: np.ndarray, lin: np.ndarray, cur: np.ndarray | None = None) -> np.ndarray:
        """NCC of the patch at p (frame u; or the given m x S x S patches there) with each point's
        query-frame patch warped by lin."""
        side = self.options.ncc_window_px
        m = idx.size
        cur = (self._tiles(self._sample(grey[u], p, None, side), m, side) if cur is None
               else _centre(cur, side))
        tmpl = np.empty_like(cur)
        inv = _inv2(lin)
        for f in np.unique(qf[idx]):
            sel = np.nonzero(qf[idx] == f)[0]
            tmpl[sel] = self._tiles(self._sample(grey[f], qxy[idx[sel]], inv[sel], side), sel.size, side)
        return self._ncc(tmpl, cur)

    def _inside(self, p: np.ndarray, W: int, H: int) -> np.ndarray:
        m = self.options.border_px
        return ((p[:, 0] >= -0.5 + m) & (p[:, 0] <= W - 0.5 - m)
                & (p[:, 1] >= -0.5 + m) & (p[:, 1] <= H - 0.5 - m))

    def _local_fit(self, idx: np.ndarray, nb: np.ndarray, cur: np.ndarray, tracked: np.ndarray,
                   qxy: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Local motion of points idx from their tracked neighbours nb (m x k indices, -1 = none).

        Fits cur_j = L (qxy_j - qxy_i) + t_i over the tracked neighbours j by least squares,
        then once more without neighbours whose residual exceeds max(0.5 px, 3 x the median).
        Returns (L m x 2 x 2: identity where fewer than 3 usable neighbours or the fit is poor,
        t m x 2: the predicted position of point i (NaN without tracked neighbours; the mean
        neighbour translation where the affine fit was not usable), m bool: whether any neighbour
        was tracked, m bool: whether the affine fit was used).
        """
        m = idx.size
        L = np.broadcast_to(np.eye(2, dtype=np.float64), (m, 2, 2)).copy()
        pred = np.full((m, 2), np.nan)
        fitted = np.zeros(m, bool)
        if m == 0:
            return L, pred, np.zeros(0, bool), fitted
        nbc = np.where(nb >= 0, nb, 0)
        w = ((nb >= 0) & tracked[nbc]).astype(np.float64)
        cnt = w.sum(1)
        has = cnt > 0
        d = (qxy[nbc] - qxy[idx][:, None]).astype(np.float64)            # m x k x 2 query offsets
        Y = cur[nbc].astype(np.float64)                                   # m x k x 2 current positions
        # translation-only fallback: mean of (current - offset)
        with np.errstate(invalid="ignore", divide="ignore"):
            pred[has] = ((Y - d) * w[..., None]).sum(1)[has] / cnt[has, None]
        X = np.concatenate([d, np.ones(d.shape[:2] + (1,))], -1)          # m x k x 3
        full = cnt >= 3
        if np.any(full):
            Xf, Yf, wf = X[full], Y[full], w[full]
            for it in range(2):
                XtW = (Xf * wf[..., None]).transpose(0, 2, 1)
                A, B = XtW @ Xf, XtW @ Yf
                # not collinear: the weighted covariance of the offsets is far from rank 1
                mean = A[:, :2, 2] / np.maximum(A[:, 2, 2, None], 1e-9)
                cov = A[:, :2, :2] / np.maximum(A[:, 2, 2, None, None], 1e-9) - mean[:, :, None] * mean[:, None, :]
                tr = cov[:, 0, 0] + cov[:, 1, 1]
                dt = cov[:, 0, 0] * cov[:, 1, 1] - cov[:, 0, 1] * cov[:, 1, 0]
                well = (wf.sum(1) >= 3) & (tr > 1e-6) & (dt > 0.01 * tr ** 2)
                beta = np.zeros((Xf.shape[0], 3, 2))
                if np.any(well):
                    beta[well] = _solve3(A[well], B[well])
                res = np.linalg.norm(Yf - Xf @ beta, axis=-1)
                if it == 0:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore", RuntimeWarning)   # rows without neighbours
                        med = np.nanmedian(np.where(wf > 0, res, np.nan), axis=1)
                    wf = wf * (res <= np.maximum(0.5, 3.0 * np.nan_to_num(med))[:, None])
            Lf = beta[:, :2, :].transpose(0, 2, 1)
            rms = np.sqrt((wf * res ** 2).sum(1) / np.maximum(wf.sum(1), 1))
            sv = np.linalg.svd(Lf, compute_uv=False)                      # m x 2, descending
            det = Lf[:, 0, 0] * Lf[:, 1, 1] - Lf[:, 0, 1] * Lf[:, 1, 0]
            # a plausible local motion: no reflection, scale within 0.5-2, mild anisotropy
            good = (well & (rms <= 1.0) & (det > 0) & (sv[:, 1] >= 0.5) & (sv[:, 0] <= 2.0)
                    & (sv[:, 0] <= 1.5 * sv[:, 1]))
            rows = np.nonzero(full)[0][good]
            L[rows] = Lf[good]
            pred[rows] = beta[good, 2, :]
            fitted[rows] = True
        return L, pred, has, fitted

    def _refine(self, grey: list[np.ndarray], u: int, idx: np.ndarray, init: np.ndarray, qf: np.ndarray,
                qxy: np.ndarray, lin: np.ndarray, max_shift: float) -> tuple[np.ndarray, np.ndarray]:
        """Refine points idx in frame u against their query-frame appearance, warped by lin.

        Each point's query-frame neighbourhood, warped by its local linear motion, is matched by
        LK (full resolution) to the current frame around init. Accepted where LK succeeds both
        ways, the forward-backward error is <= fb_threshold_px and the move is <= max_shift.
        Returns (m x 2 positions: refined where accepted, else init; m bool accepted).
        """
        o = self.options
        side = 2 * (o.window_px // 2 + int(np.ceil(max_shift)) + 2) + 1
        out = init.astype(np.float32).copy()
        ok = np.zeros(idx.size, bool)
        inv = _inv2(lin)
        for f in np.unique(qf[idx]):
            sel = np.nonzero(qf[idx] == f)[0]
            tmpl = self._sample(grey[f], qxy[idx[sel]], inv[sel], side)
            # current frame: integer-centred crops (no resampling); init sits at c + frac in its tile
            centre = np.round(init[sel]).astype(np.float32)
            cur = self._sample(grey[u], centre, None, side)           # integer positions: exact pixels
            c = _tile_centres(sel.size, side)
            start = c + (init[sel] - centre).astype(np.float32)
            p, st = self._lk(tmpl, cur, c, init=start, levels=0)
            shift = p - start
            good = st & (np.linalg.norm(shift, axis=1) <= max_shift)
            g = np.nonzero(good)[0]  # LK is per point: checking only the candidates gives the same answers
            if g.size:
                back, stb = self._lk(cur, tmpl, p[g], levels=0)
                good[g] = stb & (np.linalg.norm(back - c[g], axis=1) <= o.fb_threshold_px)
                g = np.nonzero(good)[0]
            if o.small_window and g.size:
                # a small window must agree with the large one: they disagree where the large window
                # straddles a motion boundary or an occluder's edge (LK then sticks to the edge)
                small, sts = self._lk(tmpl, cur, c[g], init=p[g], levels=0, window=o.small_window)
                good[g] = ~sts | (np.linalg.norm(small - p[g], axis=1) <= o.consistency_threshold_px)
            out[sel[good]] = init[sel[good]] + shift[good]
            ok[sel] = good
        return out, ok

    # ------------------------------------------------------------------ tracking
    def track(self, video: Video, queries: np.ndarray) -> Tracks2D:
        check_video(video, "video")
        q = check_queries(queries, video)
        cv2 = self._cv2
        T = video.num_frames
        N = q.shape[0]
        qf = q[:, 0].astype(np.int64)
        qxy = np.ascontiguousarray(q[:, 1:3], np.float32)
        xy = np.zeros((T, N, 2), np.float32)
        vis = np.zeros((T, N), bool)
        if N == 0:
            return Tracks2D(xy=xy, visible=vis, query_frame=qf)
        grey = [cv2.cvtColor(np.ascontiguousarray(f), cv2.COLOR_RGB2GRAY) for f in video.frames]
        everyone = np.arange(N)
        nbrs = _knn(everyone, everyone, qxy, qf, self.options.neighbours)
        n = np.arange(N)
        xy[qf, n] = qxy
        vis[qf, n] = True
        for direction in (1, -1):
            self._sweep(grey, direction, qf, qxy, nbrs, xy, vis)
        return Tracks2D(xy=xy, visible=vis, query_frame=qf)

    def _sweep(self, grey: list[np.ndarray], d: int, qf: np.ndarray, qxy: np.ndarray, nbrs: np.ndarray,
               xy: np.ndarray, vis: np.ndarray) -> None:
        """Track every point from its query frame in direction d (+1 forward, -1 backward)."""
        o = self.options
        T = len(grey)
        H, W = grey[0].shape
        N = qf.size
        pos = qxy.copy()                      # current (alive) or last visible (lost) position
        vel = np.zeros_like(pos)              # last frame-to-frame step of tracked points (initial guess)
        alive = np.zeros(N, bool)             # tracked and visible
        active = np.zeros(N, bool)            # its query frame has been passed
        step_side = o.window_px // 2 * 2 + 1
        side = max(step_side, o.ncc_window_px)
        patch = np.zeros((N, side, side), np.uint8)   # patch at pos on the last frame, where cached
        cached = np.zeros(N, bool)
        order = range(T) if d > 0 else range(T - 1, -1, -1)
        for t in order:
            new = qf == t
            pos[new], alive[new], active[new], cached[new] = qxy[new], True, True, False
            vel[new] = 0.0
            u = t + d
            if not 0 <= u < T:
                break
            # 1. frame-to-frame step with forward-backward check
            a = np.nonzero(active & alive)[0]
            if a.size:
                was_cached, prev_patch = cached.copy(), patch.copy() if o.min_step_ncc > -1.0 else patch
                cached[:] = False
                # started where the point's last step would take it (fewer LK iterations; converges to
                # the same match), else at its position
                p1, st = self._lk(grey[t], grey[u], pos[a], init=pos[a] + vel[a])
                ok = st & self._inside(p1, W, H)
                g = np.nonzero(ok)[0]
                if g.size:  # backward check of the forward successes only (LK is per point)
                    back, stb = self._lk(grey[u], grey[t], p1[g])
                    ok[g] = stb & (np.linalg.norm(back - pos[a[g]], axis=1) <= o.fb_threshold_px)
                k = np.nonzero(ok)[0]
                if k.size:
                    cur, tracked = pos.copy(), np.zeros(N, bool)
                    cur[a[k]], tracked[a[k]] = p1[k], True
                    lin, pred, _, fitted = self._local_fit(a[k], nbrs[a[k]], cur, tracked, qxy)
                    # 2. re-anchor against the query-frame appearance (bounded drift)
                    if o.anchor_every > 0:
                        due = np.nonzero(np.abs(u - qf[a[k]]) % o.anchor_every == 0)[0]
                        if due.size:
                            ref, acc = self._refine(grey, u, a[k[due]], p1[k[due]], qf, qxy, lin[due],
                                                    o.anchor_max_shift_px)
                            acc &= self._inside(ref, W, H)
                            p1[k[due[acc]]] = ref[acc]
                            if o.lose_on_anchor_reject:
                                # a point that no longer matches its query appearance is lost
                                keep = np.ones(k.size, bool)
                                keep[due[~acc]] = False
                                ok[k[~keep]] = False
                                k, lin, pred, fitted = k[keep], lin[keep], pred[keep], fitted[keep]
                    # local rigidity: a point far from where its neighbours' affine motion puts it has
                    # slid (along an edge, on weak texture) or is on another surface
                    if o.max_neighbour_deviation_px is not None and k.size:
                        good = ~fitted | (np.linalg.norm(p1[k] - pred, axis=1) <= o.max_neighbour_deviation_px)
                        ok[k[~good]] = False
                        k, lin = k[good], lin[good]
                    # 3. appearance tests: against the previous frame (sudden change) and against
                    #    the (warped) query-frame patch (slow drift onto other content)
                    if k.size:
                        now = self._tiles(self._sample(grey[u], p1[k], None, side), k.size, side)
                        patch[a[k]], cached[a[k]] = now, True
                    if o.min_step_ncc > -1.0 and k.size:
                        miss = ~was_cached[a[k]]
                        prev = prev_patch[a[k]]
                        if np.any(miss):
                            prev[miss] = self._tiles(self._sample(grey[t], pos[a[k[miss]]], None, side),
                                                     int(miss.sum()), side)
                        good = self._ncc(_centre(prev, step_side), _centre(now, step_side)) >= o.min_step_ncc
                        ok[k[~good]] = False
                        k, lin, now = k[good], lin[good], now[good]
                    if o.min_ncc > -1.0 and k.size:
                        ok[k] = self._appearance(grey, u, a[k], p1[k], qf, qxy, lin, cur=now) >= o.min_ncc
                vel[a] = 0.0
                vel[a[ok]] = p1[ok] - pos[a[ok]]
                pos[a[ok]] = p1[ok]
                alive[a[~ok]] = False
                cached[a[~ok]] = False
            # 4. re-acquire lost points from the query-frame appearance near their predicted position
            if o.reacquire:
                lost = np.nonzero(active & ~alive)[0]
                if lost.size:
                    self._reacquire(grey, u, lost, pos, alive, active, qf, qxy, W, H)
            act = np.nonzero(active)[0]
            xy[u, act] = pos[act]
            vis[u, act] = alive[act]

    def _reacquire(self, grey: list[np.ndarray], u: int, lost: np.ndarray, pos: np.ndarray, alive: np.ndarray,
                   active: np.ndarray, qf: np.ndarray, qxy: np.ndarray, W: int, H: int) -> None:
        """Search lost points in frame u; found ones get pos and alive set in place."""
        o = self.options
        tracked = alive & active
        near = _knn(lost, np.nonzero(tracked)[0], qxy, qf, o.neighbours)   # nearest *tracked* points
        lin, pred, has, fitted = self._local_fit(lost, near, pos, tracked, qxy)
        pred = np.where(has[:, None], pred, pos[lost]).astype(np.float32)
        # how far from the prediction the point may be found: close to a local affine prediction,
        # within reacquire_radius_px of a translation-only one or of the last position
        radius = np.where(fitted, o.anchor_max_shift_px, o.reacquire_radius_px)
        inside = self._inside(pred, W, H)
        cand, pred, lin, radius = lost[inside], pred[inside], lin[inside], radius[inside]
        if cand.size == 0:
            return
        # coarse: pyramidal LK from the query frame, started at the prediction
        start = pred.copy()
        for f in np.unique(qf[cand]):
            sel = np.nonzero(qf[cand] == f)[0]
            p, st = self._lk(grey[f], grey[u], qxy[cand[sel]], init=pred[sel])
            st &= np.linalg.norm(p - pred[sel], axis=1) <= radius[sel]
            start[sel[st]] = p[st]
        start = np.clip(start, [-0.5, -0.5], [W - 0.5, H - 0.5]).astype(np.float32)
        # fine: warped-template refinement (forward-backward and window-consistency checks), then
        # the prediction gate and a strict appearance test
        found, acc = self._refine(grey, u, cand, start, qf, qxy, lin, o.anchor_max_shift_px)
        acc &= self._inside(found, W, H) & (np.linalg.norm(found - pred, axis=1) <= radius)
        k = np.nonzero(acc)[0]
        if k.size:
            acc[k] = self._appearance(grey, u, cand[k], found[k], qf, qxy, lin[k]) >= o.reacquire_min_ncc
        pos[cand[acc]] = found[acc]
        alive[cand[acc]] = True


@hookimpl
def d2f_register(register):
    register(Manifest.of(LucasKanadeTracker))
