"""SSD block-matching point tracker, pure numpy.

Algorithm (per query point, all points at once):

1. Convert the RGB uint8 frames to luminance ``Y = 0.299 R + 0.587 G + 0.114 B`` (float32,
   grey levels 0-255).
2. Cut a ``patch`` x ``patch`` template centred on the query point (x, y) in its query frame
   (bilinear sampling, so sub-pixel queries are honoured).
3. Walk frame by frame away from the query frame, forwards to the last frame and backwards to
   frame 0. In each frame, compare the template with the patch at every integer offset within
   ``search`` pixels of the previous position by the sum of squared differences (SSD) and take
   the minimum. Refine it to sub-pixel precision with a parabola fit of the SSD minimum: the
   vertex of the paraboloid through the minimum and its 8 neighbours, refitted on 3 x 3 samples
   at spacings of 1/2, 1/4, 1/8 and 1/16 px around the refined position, each step kept only
   when it lowers the SSD. (A single separable parabola on the 1 px grid is biased by up to
   half a pixel: the SSD of a bilinearly sampled image is only piecewise quadratic, and smooth
   textures give narrow diagonal valleys.) A minimum on the border of the search window is not
   refined.
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


def luminance(frames: np.ndarray) -> np.ndarray:
    """uint8 (...) x 3 RGB -> float32 (...) luminance in grey levels 0-255."""
    return np.tensordot(frames.astype(np.float32), LUMA, axes=([-1], [0])).astype(np.float32)


def sample(Y: np.ndarray, t: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Bilinear samples of ``Y`` (T x H x W) at frame ``t`` (N,) and pixels ``x``, ``y`` (N, ...).

    Coordinates outside the image are clamped to the border (edge replication).
    """
    _, H, W = Y.shape
    x = np.clip(x, 0.0, W - 1.0)
    y = np.clip(y, 0.0, H - 1.0)
    x0 = np.minimum(np.floor(x).astype(np.int64), W - 2)
    y0 = np.minimum(np.floor(y).astype(np.int64), H - 2)
    fx = (x - x0).astype(np.float32)
    fy = (y - y0).astype(np.float32)
    tt = t.reshape((-1,) + (1,) * (x.ndim - 1))
    top = Y[tt, y0, x0] * (1 - fx) + Y[tt, y0, x0 + 1] * fx
    bottom = Y[tt, y0 + 1, x0] * (1 - fx) + Y[tt, y0 + 1, x0 + 1] * fx
    return top * (1 - fy) + bottom * fy


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
        off = np.arange(-half, half + 1, dtype=np.float64)
        q_xy = q[:, 1:3].astype(np.float64)
        template = sample(Y, qt, q_xy[:, 0, None, None] + off[None, None, :],
                          q_xy[:, 1, None, None] + off[None, :, None])           # N x p x p (rows y)
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
        half = self.patch // 2
        off = np.arange(-half, half + 1, dtype=np.float64)
        patch = sample(Y, t, pos[:, :, 0, None, None] + off[None, None, None, :],
                       pos[:, :, 1, None, None] + off[None, None, :, None])      # M x K x p x p
        return ((patch - template[:, None]) ** 2).sum(axis=(-2, -1))

    def _descend(self, Y: np.ndarray, t: np.ndarray, pos: np.ndarray, cost: np.ndarray,
                 template: np.ndarray, F: np.ndarray, grid: np.ndarray, h: float
                 ) -> tuple[np.ndarray, np.ndarray]:
        """One refinement level: ``F`` (M x 9) holds the SSD at ``pos + h * grid``. Moves each
        point to the lowest of its current position (SSD ``cost``), the 9 samples and the vertex
        of the paraboloid through them, so the SSD never increases. Returns (pos, cost)."""
        m = pos.shape[0]
        vertex = pos + h * paraboloid_vertex(F.reshape(m, 3, 3))
        v_cost = self._ssd(Y, t, vertex[:, None, :], template)[:, 0]
        j = F.argmin(axis=1)
        g_cost = F[np.arange(m), j]
        g_pos = pos + h * grid[j]
        use_v = (v_cost <= g_cost) & (v_cost < cost)
        use_g = ~use_v & (g_cost < cost)
        pos = np.where(use_v[:, None], vertex, np.where(use_g[:, None], g_pos, pos))
        cost = np.where(use_v, v_cost, np.where(use_g, g_cost, cost))
        return pos, cost

    def _match(self, Y: np.ndarray, t: np.ndarray, pos: np.ndarray, template: np.ndarray,
               energy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Best sub-pixel match of each template in frame ``t`` within ``search`` pixels of
        ``pos`` (M x 2 pixels).

        Integer search over the window, then sub-pixel refinement: the vertex of the paraboloid
        fitted to the SSD minimum and its 8 neighbours at spacing 1 px, then again on 3 x 3
        samples at the spacings REFINE_STEPS around the refined position, keeping a step only
        when it lowers the SSD (the SSD of a bilinearly sampled image is only piecewise
        quadratic, so one fit alone can be off by half a pixel in a narrow diagonal valley).
        Returns the matched positions (M x 2) and whether each match is good enough (M,).
        """
        p, s = self.patch, self.search
        r = p // 2 + s
        w = np.arange(-r, r + 1, dtype=np.float64)
        centre = np.round(pos)                                                   # integer pixels
        window = sample(Y, t, centre[:, 0, None, None] + w[None, None, :],
                        centre[:, 1, None, None] + w[None, :, None])             # M x L x L
        blocks = sliding_window_view(window, (p, p), axis=(1, 2))               # M x S x S x p x p
        ssd = ((blocks - template[:, None, None]) ** 2).sum(axis=(-2, -1))      # M x S x S (rows y)
        m, S = ssd.shape[0], ssd.shape[1]
        iy, ix = np.divmod(ssd.reshape(m, -1).argmin(axis=1), S)
        best = ssd[np.arange(m), iy, ix]
        found = centre + np.stack([ix - s, iy - s], axis=1).astype(np.float64)
        # A minimum on the border of the search window means the motion may exceed `search`:
        # no refinement there (the 3 x 3 neighbourhood is incomplete).
        interior = (ix > 0) & (ix < S - 1) & (iy > 0) & (iy < S - 1)
        if interior.any():
            k = np.nonzero(interior)[0]
            g = np.arange(-1, 2)
            grid = np.stack(np.meshgrid(g, g), axis=-1).reshape(9, 2).astype(np.float64)  # (x, y)
            F = ssd[k[:, None, None], iy[k, None, None] + g[None, :, None],
                    ix[k, None, None] + g[None, None, :]].reshape(-1, 9)                 # rows y, cols x
            found[k], best[k] = self._descend(Y, t[k], found[k], best[k], template[k], F, grid, 1.0)
            for h in REFINE_STEPS:
                F = self._ssd(Y, t[k], found[k, None, :] + h * grid[None], template[k])
                found[k], best[k] = self._descend(Y, t[k], found[k], best[k], template[k], F, grid, h)
        matched = best <= self.max_ssd_ratio * energy
        return found, matched
