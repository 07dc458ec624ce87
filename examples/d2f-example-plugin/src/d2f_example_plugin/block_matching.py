"""SSD block-matching point tracker, pure numpy.

Algorithm (per query point, all points at once):

1. Convert the RGB uint8 frames to luminance ``Y = 0.299 R + 0.587 G + 0.114 B`` (float32,
   grey levels 0-255).
2. Cut a ``patch`` x ``patch`` template centred on the query point (x, y) in its query frame
   (bicubic interpolation, so sub-pixel queries are honoured).
3. Walk frame by frame away from the query frame, forwards to the last frame and backwards to
   frame 0. In each frame, compute the sum of squared differences (SSD) between the template
   and the patch at every integer offset within ``search`` pixels of the previous position.
   Refine to sub-pixel precision by a parabola fit of the SSD minimum: the vertex of the
   paraboloid through the minimum and its 8 neighbours (1 px apart), refitted on 3 x 3 samples
   1/2, 1/4, 1/8 and 1/16 px apart around the refined position, each move kept only when it
   lowers the SSD. This is done from the three lowest integer local minima and from the
   previous position itself, and the lowest refined SSD wins. (On smooth, stripe-like texture the SSD has long
   narrow valleys: a single parabola per axis on the 1 px grid is off by up to half a pixel,
   and the lowest integer sample can lie far along the valley from the true minimum.) A
   minimum on the border of the window (motion beyond ``search``) is kept unrefined.
4. The point is invisible in a frame when its best SSD exceeds ``max_ssd_ratio`` times the
   template energy (sum of squared mean-removed luminance, plus 1 grey level^2 per pixel so a
   flat template does not divide by zero), or when the patch around the found position does not
   lie entirely inside the image. Its position is still the best match, but the next frame is
   searched around its last *good* match, so a point re-found after a short occlusion (motion
   during the occlusion within ``search`` px) is tracked on. At its query frame a point is
   where it was asked for and visible.

The template always comes from the query frame, so errors do not accumulate along the video.
Pixel coordinates follow d2f_core: (x, y) = (column, row), origin at the top-left pixel centre.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from d2f_core import Tracks2D, Video
from d2f_core.validate import check_queries, check_video

LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)
"""ITU-R BT.601 luma weights for R, G, B."""

ENERGY_FLOOR = 1.0
"""Grey levels^2 per template pixel added to the template energy (flat templates)."""

REFINE_STEPS = (0.5, 0.25, 0.125, 0.0625)
"""Spacings (pixels) of the paraboloid refits after the 1 px grid search."""

CANDIDATES = 3
"""How many of the lowest integer local minima of the SSD are refined per point and frame (the
previous position is refined too)."""


def luminance(frames: np.ndarray) -> np.ndarray:
    """uint8 (...) x 3 RGB -> float32 (...) luminance in grey levels 0-255."""
    return np.tensordot(frames.astype(np.float32), LUMA, axes=([-1], [0])).astype(np.float32)


def _cubic_weights(f: np.ndarray) -> tuple[np.ndarray, ...]:
    """Catmull-Rom (Keys, a = -0.5) weights of the samples at -1, 0, 1, 2 for fraction ``f``."""
    f2, f3 = f * f, f * f * f
    return (-0.5 * f3 + f2 - 0.5 * f,
            1.5 * f3 - 2.5 * f2 + 1.0,
            -1.5 * f3 + 2.0 * f2 + 0.5 * f,
            0.5 * f3 - 0.5 * f2)


def patches(Y: np.ndarray, t: np.ndarray, centres: np.ndarray, size: int) -> np.ndarray:
    """Square ``size`` x ``size`` patches (odd ``size``) of ``Y`` (T x H x W) centred at sub-pixel
    ``centres`` (M x K x 2, pixel (x, y)) in frames ``t`` (M,); returns M x K x size x size
    (rows y, columns x), float32.

    Bicubic (Catmull-Rom) interpolation of the image extended by edge replication: exact at
    pixel centres. All pixels of one patch share the same sub-pixel fraction, so the
    interpolation is two 4-tap filters with per-patch weights. Cubic rather than bilinear:
    bilinear blurs fine texture by a different amount at each sub-pixel offset, which moves the
    SSD minimum by up to a pixel on stripe-like texture.
    """
    _, H, W = Y.shape
    half = size // 2
    x0 = np.floor(centres[..., 0])
    y0 = np.floor(centres[..., 1])
    wx = np.stack(_cubic_weights((centres[..., 0] - x0).astype(np.float32)), axis=-1)   # M x K x 4
    wy = np.stack(_cubic_weights((centres[..., 1] - y0).astype(np.float32)), axis=-1)
    taps = np.arange(-half - 1, half + 3)                                                # size + 3
    xs = np.clip(x0.astype(np.int64)[..., None] + taps, 0, W - 1)                       # M x K x (size+3)
    ys = np.clip(y0.astype(np.int64)[..., None] + taps, 0, H - 1)
    block = Y[t[:, None, None, None], ys[..., :, None], xs[..., None, :]]               # M x K x s+3 x s+3
    rows = sum(wx[..., None, None, k] * block[..., :, k:k + size] for k in range(4))    # M x K x s+3 x s
    return sum(wy[..., None, None, k] * rows[..., k:k + size, :] for k in range(4))


def _parabola(left: np.ndarray, centre: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Offset (in sample spacings, within +-1) of the vertex of the parabola through three
    equally spaced samples; 0 where the parabola does not open upwards."""
    denom = left - 2.0 * centre + right
    with np.errstate(divide="ignore", invalid="ignore"):
        d = np.where(denom > 0, 0.5 * (left - right) / denom, 0.0)
    return np.clip(d, -1.0, 1.0)


def paraboloid_vertex(F: np.ndarray) -> np.ndarray:
    """Vertex (dx, dy), in sample spacings, of the paraboloid fitted to 3 x 3 SSD samples.

    ``F`` is M x 3 x 3 (rows y = -1, 0, 1; columns x = -1, 0, 1). Least-squares fit of
    ``a + b x + c y + d x^2 + e x y + f y^2``; the vertex solves the 2 x 2 Newton system, which
    follows diagonal SSD valleys that separate 1D parabolas do not. Where the fit does not open
    upwards, falls back to one parabola per axis through the centre row/column. Returns M x 2,
    clipped to +-1 spacing.
    """
    b = (F[:, :, 2].sum(1) - F[:, :, 0].sum(1)) / 6.0
    c = (F[:, 2, :].sum(1) - F[:, 0, :].sum(1)) / 6.0
    d = (F[:, :, 0].sum(1) + F[:, :, 2].sum(1)) / 6.0 - F[:, :, 1].sum(1) / 3.0
    f = (F[:, 0, :].sum(1) + F[:, 2, :].sum(1)) / 6.0 - F[:, 1, :].sum(1) / 3.0
    e = (F[:, 2, 2] - F[:, 0, 2] - F[:, 2, 0] + F[:, 0, 0]) / 4.0
    hxx, hyy, hxy = 2.0 * d, 2.0 * f, e
    det = hxx * hyy - hxy * hxy
    ok = (hxx > 0) & (det > 1e-12 * np.maximum(hxx * hyy, 1e-30))
    with np.errstate(divide="ignore", invalid="ignore"):
        vx = np.where(ok, -(hyy * b - hxy * c) / det, 0.0)
        vy = np.where(ok, -(hxx * c - hxy * b) / det, 0.0)
    vx = np.where(ok, vx, _parabola(F[:, 1, 0], F[:, 1, 1], F[:, 1, 2]))
    vy = np.where(ok, vy, _parabola(F[:, 0, 1], F[:, 1, 1], F[:, 2, 1]))
    return np.clip(np.stack([vx, vy], axis=1), -1.0, 1.0)


class BlockMatchingTracker:
    """Tracker ``block-matching``: SSD template matching with sub-pixel parabola refinement.

    Args:
        patch: side of the square template, pixels (odd).
        search: search radius per frame, pixels.
        max_ssd_ratio: best SSD / template energy above which a point is invisible
            (dimensionless).
    """

    name = "block-matching"
    capabilities = frozenset({"deterministic"})

    def __init__(self, patch: int = 9, search: int = 4, max_ssd_ratio: float = 0.5) -> None:
        if int(patch) != patch or patch < 3 or patch % 2 == 0:
            raise ValueError(f"patch: expected an odd integer >= 3 (pixels), got {patch!r}")
        if int(search) != search or search < 1:
            raise ValueError(f"search: expected an integer >= 1 (pixels), got {search!r}")
        if not np.isfinite(max_ssd_ratio) or max_ssd_ratio <= 0:
            raise ValueError(f"max_ssd_ratio: expected a positive number, got {max_ssd_ratio!r}")
        self.patch, self.search, self.max_ssd_ratio = int(patch), int(search), float(max_ssd_ratio)

    # ------------------------------------------------------------------ protocol
    def track(self, video: Video, queries: np.ndarray) -> Tracks2D:
        """Track ``queries`` (float N x 3 rows of (t, x, y): frame index, pixel x, pixel y).

        Returns :class:`d2f_core.Tracks2D` with ``xy`` float32 T x N x 2 pixels, ``visible``
        bool T x N and ``query_frame`` int64 N. Inputs are not modified.
        """
        check_video(video, "video")
        q = check_queries(queries, video, "queries")
        T, H, W = video.num_frames, video.height, video.width
        n = q.shape[0]
        qt = q[:, 0].astype(np.int64)
        xy = np.zeros((T, n, 2), np.float32)
        visible = np.zeros((T, n), bool)
        if n == 0:
            return Tracks2D(xy=xy, visible=visible, query_frame=qt)

        Y = luminance(video.frames)
        half = self.patch // 2
        q_xy = q[:, 1:3].astype(np.float64)
        template = patches(Y, qt, q_xy[:, None, :], self.patch)[:, 0]           # N x p x p (rows y)
        centred = template - template.mean(axis=(1, 2), keepdims=True)
        energy = (centred ** 2).sum(axis=(1, 2)) + ENERGY_FLOOR * self.patch ** 2

        cols = np.arange(n)
        xy[qt, cols] = q[:, 1:3]
        visible[qt, cols] = True
        for direction in (1, -1):
            anchor = q_xy.copy()                # last matched position: the search centre
            for k in range(1, T):
                t = qt + direction * k
                idx = np.nonzero((t >= 0) & (t < T))[0]
                if idx.size == 0:
                    break
                found, matched = self._match(Y, t[idx], anchor[idx], template[idx], energy[idx])
                anchor[idx] = np.where(matched[:, None], found, anchor[idx])
                inside = ((found[:, 0] - half >= 0) & (found[:, 0] + half <= W - 1)
                          & (found[:, 1] - half >= 0) & (found[:, 1] + half <= H - 1))
                xy[t[idx], idx] = found
                visible[t[idx], idx] = matched & inside
        return Tracks2D(xy=xy, visible=visible, query_frame=qt)

    # ------------------------------------------------------------------ one frame
    def _ssd(self, Y: np.ndarray, t: np.ndarray, pos: np.ndarray, template: np.ndarray) -> np.ndarray:
        """SSD between each template (M x p x p) and the patches of frame ``t`` centred at
        ``pos`` (M x K x 2 pixels); returns M x K."""
        patch = patches(Y, t, pos, self.patch)                                   # M x K x p x p
        return ((patch - template[:, None]) ** 2).sum(axis=(-2, -1))

    def _descend(self, Y: np.ndarray, t: np.ndarray, pos: np.ndarray, cost: np.ndarray,
                 template: np.ndarray, F: np.ndarray, grid: np.ndarray, h: float
                 ) -> tuple[np.ndarray, np.ndarray]:
        """One refinement level: ``F`` (M x 9) holds the SSD at ``pos + h * grid``.

        Tries the vertex of the paraboloid through the 9 samples (and, if that does not lower
        the SSD, half and a quarter of the way to it); failing that, the lowest of the 9 samples.
        A move is kept only when it lowers the SSD below ``cost`` (the SSD at ``pos``), so the
        SSD never increases. Returns the new (pos, cost).
        """
        m = pos.shape[0]
        step = h * paraboloid_vertex(F.reshape(m, 3, 3))
        moved = np.zeros(m, bool)
        for frac in (1.0, 0.5, 0.25):
            trial = pos + frac * step
            c = self._ssd(Y, t, trial[:, None, :], template)[:, 0]
            take = ~moved & (c < cost)
            pos = np.where(take[:, None], trial, pos)
            cost = np.where(take, c, cost)
            moved |= take
        j = F.argmin(axis=1)
        g_cost = F[np.arange(m), j]
        take = ~moved & (g_cost < cost)
        pos = np.where(take[:, None], pos + h * grid[j], pos)
        cost = np.where(take, g_cost, cost)
        return pos, cost

    def _match(self, Y: np.ndarray, t: np.ndarray, pos: np.ndarray, template: np.ndarray,
               energy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Best sub-pixel match of each template in frame ``t`` within ``search`` pixels of
        ``pos`` (M x 2 pixels).

        SSD at every integer offset of the window, then sub-pixel refinement of the CANDIDATES
        lowest local minima inside the window and of ``pos`` itself (on smooth, stripe-like
        texture the lowest integer sample can sit far along an SSD valley from the true
        minimum, with no integer local minimum near it): the vertex of the paraboloid fitted to
        the minimum and its 8 neighbours at spacing 1 px, then again on 3 x 3 samples at the
        spacings REFINE_STEPS, keeping a step only when it lowers the SSD. The refined candidate
        with the lowest SSD wins; a minimum on the border of the window (motion beyond
        ``search``) is kept unrefined if it is lower still.
        Returns the matched positions (M x 2) and whether each match is good enough (M,).
        """
        p, s = self.patch, self.search
        r = p // 2 + s
        centre = np.round(pos)                                                   # integer pixels
        window = patches(Y, t, centre[:, None, :], 2 * r + 1)[:, 0]              # M x L x L
        blocks = sliding_window_view(window, (p, p), axis=(1, 2))               # M x S x S x p x p
        ssd = ((blocks - template[:, None, None]) ** 2).sum(axis=(-2, -1))      # M x S x S (rows y)
        m, S = ssd.shape[0], ssd.shape[1]
        rows = np.arange(m)

        # the global integer minimum (may lie on the window's border)
        iy, ix = np.divmod(ssd.reshape(m, -1).argmin(axis=1), S)
        best = ssd[rows, iy, ix]
        found = centre + np.stack([ix - s, iy - s], axis=1).astype(np.float64)

        # interior local minima (<= their 8 neighbours), the lowest CANDIDATES of them
        padded = np.pad(ssd, ((0, 0), (1, 1), (1, 1)), constant_values=np.inf)
        neighbours = sliding_window_view(padded, (3, 3), axis=(1, 2)).reshape(m, S, S, 9)
        local = ssd <= neighbours.min(axis=-1)
        local[:, [0, -1], :] = False
        local[:, :, [0, -1]] = False
        score = np.where(local, ssd, np.inf).reshape(m, -1)
        k = min(CANDIDATES, S * S)
        order = np.argsort(score, axis=1, kind="stable")[:, :k]                # M x k
        pi, pk = np.nonzero(np.isfinite(np.take_along_axis(score, order, axis=1)))
        cy, cx = np.divmod(order[pi, pk], S)
        g = np.arange(-1, 2)
        grid = np.stack(np.meshgrid(g, g), axis=-1).reshape(9, 2).astype(np.float64)  # (x, y)
        F_int = ssd[pi[:, None, None], cy[:, None, None] + g[None, :, None],
                    cx[:, None, None] + g[None, None, :]].reshape(-1, 9)               # rows y, cols x
        # plus the previous position itself (no motion since the last good match)
        F_prev = self._ssd(Y, t, pos[:, None, :] + grid[None], template)
        pi = np.concatenate([pi, rows])
        pk = np.concatenate([pk, np.full(m, k)])
        cpos = np.concatenate([centre[pi[:pi.size - m]]
                               + np.stack([cx - s, cy - s], axis=1).astype(np.float64), pos])
        ccost = np.concatenate([ssd[pi[:pi.size - m], cy, cx], F_prev[:, 4]])
        F = np.concatenate([F_int, F_prev])
        ct, ctm = t[pi], template[pi]
        cpos, ccost = self._descend(Y, ct, cpos, ccost, ctm, F, grid, 1.0)
        for h in REFINE_STEPS:
            F = self._ssd(Y, ct, cpos[:, None, :] + h * grid[None], ctm)
            cpos, ccost = self._descend(Y, ct, cpos, ccost, ctm, F, grid, h)
        # per point, the lowest refined candidate (ties: lower rank first)
        cost_mk = np.full((m, k + 1), np.inf)
        cost_mk[pi, pk] = ccost
        pos_mk = np.zeros((m, k + 1, 2))
        pos_mk[pi, pk] = cpos
        j = cost_mk.argmin(axis=1)
        better = cost_mk[rows, j] <= best
        found = np.where(better[:, None], pos_mk[rows, j], found)
        best = np.where(better, cost_mk[rows, j], best)
        matched = best <= self.max_ssd_ratio * energy
        return found, matched
